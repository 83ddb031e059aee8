"""One PNG per replayed series: the value, the score, label windows and detections."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: a backtest runs on servers without a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from aiops.evaluation.nab import Window

__all__ = ["plot_series"]


def plot_series(
    frame: pd.DataFrame,
    target: Path,
    *,
    title: str,
    threshold: float | None,
    windows: Sequence[Window] = (),
    value_columns: Sequence[str] = ("value",),
    unscored_rows: int = 0,
) -> Path:
    """Write ``target`` (PNG): values on top, the anomaly score below, shared time axis.

    ``frame`` has a ``timestamp`` column, the ``value_columns`` and ``anomaly_score``; an optional
    0/1 ``label`` column is shaded like windows. The first ``unscored_rows`` (NAB's probationary
    period) are greyed out.
    """
    ts = pd.DatetimeIndex(frame["timestamp"])
    if ts.tz is not None:
        ts = ts.tz_convert(None)
    score = frame["anomaly_score"].to_numpy(dtype=float)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(12, 5), height_ratios=(3, 1.4))
    try:
        many = len(value_columns) > 8  # a multi-metric machine: thin lines, no legend
        for column in value_columns:
            label = column if 1 < len(value_columns) <= 8 else None
            top.plot(ts, frame[column].to_numpy(dtype=float), lw=0.4 if many else 0.7, alpha=0.6 if many else 1.0, label=label)
        if 0 < unscored_rows < len(ts):
            for ax in (top, bottom):
                ax.axvspan(ts[0], ts[unscored_rows], color="0.85", alpha=0.5, lw=0, label="not scored" if ax is bottom else None)
        for start, end in windows:
            for ax in (top, bottom):
                ax.axvspan(start, end, color="tab:orange", alpha=0.2, lw=0)
        if "label" in frame:
            labelled = frame["label"].to_numpy(dtype=bool)
            bottom.fill_between(ts, 0, 1, where=labelled, color="tab:orange", alpha=0.3, lw=0, step="mid", label="labelled")
        bottom.plot(ts, score, lw=0.7, color="tab:purple", label="anomaly score")
        if threshold is not None and np.isfinite(threshold):
            bottom.axhline(threshold, color="tab:red", lw=0.6, ls="--", label=f"threshold {threshold:.3g}")
            hits = score >= threshold
            if hits.any():
                first_col = frame[value_columns[0]].to_numpy(dtype=float)
                top.scatter(ts[hits], first_col[hits], s=10, color="tab:red", zorder=3, label="detections")
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_ylabel("score")
        top.set_title(title, fontsize=10)
        for ax in (top, bottom):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=90)
    finally:
        plt.close(fig)
    return target
