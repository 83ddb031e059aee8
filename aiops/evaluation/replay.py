"""Replay recorded series through a detector as if live, in NAB's file layout.

Each series is scored in one causal pass (``score_series``): the score of row ``i`` depends only on
rows ``<= i``, so the output is what the daemon would have said at each instant. One detector
configuration serves every file; nothing here reads labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiops import plugins

__all__ = [
    "ReplayError",
    "Replayed",
    "SeriesScorer",
    "epoch_seconds",
    "find_series_files",
    "load_scorer",
    "read_series_csv",
    "replay_corpus",
    "replay_series",
    "write_replayed",
]

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score")


class ReplayError(Exception):
    """Input that cannot be replayed; the message names the file and what to fix."""


class SeriesScorer(Protocol):
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Replayed:
    """One replayed series: ``frame`` has timestamp (UTC datetime), value, anomaly_score."""

    path: str  # relative to the data root, POSIX separators
    frame: pd.DataFrame
    seconds: float  # time spent in the detector

    @property
    def timestamps(self) -> np.ndarray:
        return epoch_seconds(self.frame["timestamp"])


def load_scorer(name: str, params: Mapping[str, Any] | None = None) -> Callable[[], SeriesScorer]:
    """A factory of fresh detector instances of plugin ``name`` that support backtests."""
    cls = plugins.load(plugins.DETECTORS, name)
    if not callable(getattr(cls, "score_series", None)):
        raise plugins.PluginError(
            f"detector {name!r} cannot replay a single series (it has no score_series); "
            "use --format smd for multivariate detectors, or pick a univariate detector"
        )

    def make() -> SeriesScorer:
        try:
            return cls(**dict(params or {}))
        except (TypeError, ValueError) as exc:
            raise plugins.PluginError(f"detector {name!r} rejected its parameters: {exc}") from exc

    return make


def find_series_files(data: Path) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of the CSV file ``data`` or of every CSV under the folder ``data``."""
    if data.is_file():
        return [(data.name, data)]
    if not data.is_dir():
        raise ReplayError(f"{data} does not exist; pass a NAB-format CSV file or a folder of them")
    files = sorted(p for p in data.rglob("*.csv") if p.is_file())
    if not files:
        raise ReplayError(f"no .csv files under {data}; expected NAB-format files with a timestamp,value header")
    return [(p.relative_to(data).as_posix(), p) for p in files]


def read_series_csv(path: Path) -> pd.DataFrame:
    """Read a ``timestamp,value`` CSV. Timestamps without a zone are taken as UTC."""
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc
    missing = {"timestamp", "value"} - set(raw.columns)
    if missing:
        raise ReplayError(f"{path} lacks column(s) {', '.join(sorted(missing))}; expected a header line 'timestamp,value'")
    ts = pd.to_datetime(raw["timestamp"], utc=True, errors="coerce", format="mixed")
    if ts.isna().any():
        row = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise ReplayError(f"{path}: unreadable timestamp {raw['timestamp'].iloc[row]!r} on data row {row + 1}")
    if (ts.diff().dropna() < pd.Timedelta(0)).any():
        raise ReplayError(f"{path}: timestamps go backwards; sort the file by timestamp")
    # A non-numeric value is a gap, like a missing scrape: the detector sees NaN.
    values = pd.to_numeric(raw["value"], errors="coerce").astype(float)
    return pd.DataFrame({"timestamp": ts, "value": values})


def epoch_seconds(timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    ts = pd.DatetimeIndex(timestamps)
    if ts.tz is None:
        ts = ts.tz_localize("UTC")
    # Divide a timedelta rather than read asi8: pandas 2 datetimes may be in s, ms, us or ns.
    return ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)


def replay_series(scorer: SeriesScorer, frame: pd.DataFrame, name: str = "series") -> np.ndarray:
    """Score one ``timestamp,value`` frame; one score in [0, 1] per row.

    Rows that repeat a timestamp (NAB has a few) are not new samples: the detector sees the first
    row of each instant, and the repeats take its score.
    """
    t = epoch_seconds(frame["timestamp"])
    y = frame["value"].to_numpy(dtype=float)
    first = np.concatenate([[True], np.diff(t) > 0]) if t.shape[0] else np.zeros(0, dtype=bool)
    scores = np.asarray(scorer.score_series(t[first], y[first]), dtype=float)
    if scores.shape != (int(first.sum()),):
        raise ReplayError(f"{name}: the detector returned {scores.shape} scores for {int(first.sum())} points")
    if not np.all(np.isfinite(scores)) or scores.min(initial=0.0) < 0.0 or scores.max(initial=0.0) > 1.0:
        raise ReplayError(f"{name}: the detector returned scores outside [0, 1] or NaN; that is a detector bug")
    return scores[np.cumsum(first) - 1]


def replay_corpus(
    files: Iterable[tuple[str, Path]],
    make_scorer: Callable[[], SeriesScorer],
    *,
    progress: bool = True,
    desc: str = "replay",
) -> dict[str, Replayed]:
    """Replay every file with a fresh detector of the same configuration."""
    files = list(files)
    out: dict[str, Replayed] = {}
    for rel, path in tqdm(files, desc=desc, unit="file", disable=not progress, leave=False):
        frame = read_series_csv(path)
        started = time.perf_counter()
        scores = replay_series(make_scorer(), frame, rel)
        elapsed = time.perf_counter() - started
        out[rel] = Replayed(rel, frame.assign(anomaly_score=scores), elapsed)
    return out


def write_replayed(replayed: Mapping[str, Replayed], out_dir: Path) -> list[Path]:
    """Write ``out_dir/<relative path>`` with columns timestamp,value,anomaly_score."""
    written = []
    for rel, item in replayed.items():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        frame = item.frame.loc[:, list(OUTPUT_COLUMNS)].copy()
        frame["timestamp"] = frame["timestamp"].dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S")
        frame.to_csv(target, index=False)
        written.append(target)
    return written
