"""Does a calibrated score generalise better than the seasonal detector's record ratio? (issue 14)

    python bench/nab_calibration.py DATA/nab --labels DATA/nab/labels/combined_windows.json \
        [--categories artificialWithAnomaly realAdExchange realTraffic]

The seasonal detector scores a point by how far its robust z-score beats the series' own faded
record, never less than ``min_reference_z`` (8); the score sits at 0.7 when it just beats it.
The usual alternative is to *calibrate*: turn each view's statistic into a tail probability
against the series' own past statistics and threshold that, so that one threshold means one
false-alarm rate on any series. This script scores both on the same statistics (the level and
spread views of ``SeasonalBaseline.trace``), through the same leave-one-category-out protocol as
``aiops backtest --cv`` and with its baselines in the same run:

* ``seasonal`` -- today's default;
* ``tail`` -- per view, an exponential tail through the series' own past 90th and 99th
  percentiles of the statistic (over the memory span, 100 past points before anything counts),
  never more significant than a normal tail would say; the smaller p-value of the two views
  (Bonferroni); ``-log10 p`` mapped to [0, 1] so that p = 1e-5 scores 0.7; the same refractory
  damping as the detector;
* ``tail+record`` -- the lesser of that score and the record score without its fixed floor: a
  point must be both improbable for this series and beyond its faded record;
* ``shift`` -- the default plus a third view for sustained level shifts: the median over
  ``short_seconds`` of the level residual (against the seasonal median, the recent one before two
  periods are known), minus its median over ``memory_seconds``, over its MAD there; scored like
  the other views (ratio to its faded record, never below ``min_reference_z``), no new knob.

``--categories`` restricts the run to some categories (folds): explore on a subset, then confirm
on all of them once. Nothing here is used by the daemon; it documents why the detector's score is
not a per-point tail probability (see detectors/seasonal.py).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import log_ndtr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiops.evaluation.baselines import BASELINES
from aiops.evaluation.cv import CvResult, category_folds, format_cv_table
from aiops.evaluation.nab import PROFILES, load_windows, prepare_corpus
from aiops.evaluation.nab_cv import nab_cross_validate
from aiops.evaluation.replay import find_series_files, load_corpus, replay_corpus
from detectors._univariate import MAD_TO_SIGMA, clip01, typical_step
from detectors.seasonal import SURPRISE_OFFSET, SeasonalBaseline, fading_record, past_rolling

# The policy's warning threshold, where the held-out folds are also scored (no threshold learnt).
ALARM_THRESHOLD = 0.7
# -log10 p that scores 0.7 (policy's warning threshold): one point in 100,000.
ALARM_LOG10P = 5.0
TAIL_QUANTILES = (0.9, 0.99)
BURN_IN = 100


def tail_log10p(stat: np.ndarray, memory: int) -> np.ndarray:
    """-log10 P(S >= s) of each statistic against the series' own past ones (0 during burn-in)."""
    lo, hi = TAIL_QUANTILES
    past = pd.Series(stat).shift(1).rolling(memory, min_periods=BURN_IN)
    q_lo, q_hi = past.quantile(lo).to_numpy(), past.quantile(hi).to_numpy()
    decades = math.log10((1 - lo) / (1 - hi))
    with np.errstate(invalid="ignore", divide="ignore"):
        beyond = -math.log10(1 - lo) + (stat - q_lo) / np.maximum(q_hi - q_lo, 1e-9) * decades
        below = -math.log10(1 - lo) * np.clip(stat / np.maximum(q_lo, 1e-9), 0.0, 1.0)
        own = np.where(stat > q_lo, beyond, below)
    normal = -(math.log(2.0) + log_ndtr(-np.abs(stat))) / math.log(10.0)
    return np.nan_to_num(np.minimum(own, normal), nan=0.0)


class Calibrated:
    """The seasonal detector's statistics, scored by a calibrated tail probability."""

    def __init__(self, with_record: bool) -> None:
        self.with_record = with_record
        self.seasonal = SeasonalBaseline()

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        tr = self.seasonal.trace(timestamps, values, "both")
        if tr.oriented is None:
            return tr.score
        sp = self.seasonal.spans(typical_step(np.asarray(timestamps, dtype=np.float64)))
        views = tr.oriented
        logp = np.column_stack([tail_log10p(views[:, j], sp.memory) for j in range(views.shape[1])])
        c = ALARM_LOG10P * (1 - 0.7) / 0.7
        if self.with_record:
            # Per view: the lesser of the tail score and the record score (floor only against 0).
            t = np.asarray(timestamps, dtype=np.float64)
            record = np.column_stack([fading_record(t, views[:, j], sp.fade) for j in range(views.shape[1])])
            u = views / np.maximum(record, 1e-6)
            raw = np.minimum(u / (u + SURPRISE_OFFSET), logp / (logp + c)).max(axis=1)
        else:
            best = np.maximum(logp.max(axis=1) - math.log10(views.shape[1]), 0.0)  # Bonferroni over views
            raw = best / (best + c)
        if sp.refractory:
            prior = np.nan_to_num(past_rolling(raw, sp.refractory, 1, "max"), nan=0.0)
            raw = np.where(raw > prior, raw, raw * self.seasonal.damp)
        score = clip01(raw)
        score[np.isnan(np.asarray(values, dtype=np.float64))] = 0.0
        return score


class LevelShift:
    """The default's two views plus a sustained-shift view, each against its own faded record."""

    def __init__(self) -> None:
        self.seasonal = SeasonalBaseline()

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        t, y = np.asarray(timestamps, dtype=np.float64), np.asarray(values, dtype=np.float64)
        tr = self.seasonal.trace(t, y, "both")
        if tr.oriented is None or tr.residual_recent is None or tr.residual_seasonal is None:
            return tr.score
        sp = self.seasonal.spans(typical_step(t))
        level = np.where(np.isnan(tr.seasonal), tr.residual_recent, tr.residual_seasonal)
        median = pd.Series(level).rolling(sp.short, min_periods=sp.short).median().to_numpy()
        dev = median - past_rolling(median, sp.memory, 8, "median")
        scale = past_rolling(np.abs(dev), sp.memory, min(sp.window, sp.memory), "median") * MAD_TO_SIGMA
        magnitude = np.nan_to_num(past_rolling(np.abs(y), sp.memory, 1, "median"), nan=0.0)
        shift = np.nan_to_num(np.abs(dev / np.maximum(scale, 1e-3 * magnitude + 1e-12)), nan=0.0)
        views = np.column_stack([tr.oriented, shift])
        record = np.column_stack([fading_record(t, views[:, j], sp.fade) for j in range(views.shape[1])])
        u = (views / np.maximum(record, self.seasonal.min_reference_z)).max(axis=1)
        raw = u / (u + SURPRISE_OFFSET)
        if sp.refractory:
            prior = np.nan_to_num(past_rolling(raw, sp.refractory, 1, "max"), nan=0.0)
            raw = np.where(raw > prior, raw, raw * self.seasonal.damp)
        score = clip01(raw)
        score[np.isnan(y)] = 0.0
        return score


METHODS: dict[str, Callable[[], object]] = {
    "seasonal": SeasonalBaseline,
    "tail": lambda: Calibrated(with_record=False),
    "tail+record": lambda: Calibrated(with_record=True),
    "shift": LevelShift,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="NAB data folder (one sub-folder per category)")
    parser.add_argument("--labels", type=Path, required=True, help="NAB combined_windows.json")
    parser.add_argument("--categories", nargs="*", help="only these category folders (default: all)")
    parser.add_argument("--methods", nargs="*", choices=list(METHODS), help="only these methods (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the reader's "dropped repeated timestamp" warnings are known

    windows = load_windows(args.labels)
    files = [(rel, p) for rel, p in find_series_files(args.data) if rel in windows]
    if args.categories:
        files = [(rel, p) for rel, p in files if rel.split("/")[0] in set(args.categories)]
    frames = load_corpus(files)
    chosen = [(name, make) for name, make in METHODS.items() if not args.methods or name in args.methods]
    makers: list[tuple[str, Callable[[], object]]] = list(chosen)
    makers += [(base.name, base) for base in BASELINES]
    folds = category_folds(sorted(frames))
    results: list[CvResult] = []
    for name, make in makers:
        replayed = replay_corpus(frames, make, progress=False, desc=name)  # type: ignore[arg-type]
        naive = {rel: r.frame.assign(timestamp=r.frame["timestamp"].dt.tz_convert(None)) for rel, r in replayed.items()}
        prepared = prepare_corpus(naive, {rel: windows[rel] for rel in naive})
        results.append(nab_cross_validate(name, folds, {"default": prepared}, fixed_threshold=ALARM_THRESHOLD))
    print(f"NAB, leave one category out ({len(folds)} folds: {', '.join(f.name for f in folds)}; {len(frames)} files)")
    print(format_cv_table(results, list(PROFILES), ["standard", "low_FP", "low_FN"]))
    print(f"\nAt the fixed threshold {ALARM_THRESHOLD} (nothing learnt from labels), fold mean | pooled, standard / low_FP / low_FN:")
    for r in results:
        fixed = r.extra["fixed_threshold"]
        cells = " ".join(f"{fixed['mean'][p]:7.1f}" for p in PROFILES) + " |" + " ".join(f"{fixed['pooled'][p]:7.1f}" for p in PROFILES)
        print(f"  {r.method:<16}{cells}")
    print()
    print("held-out folds, standard threshold and standard / low_FP / low_FN:")
    for r in results[: len(chosen)]:
        for f in r.folds:
            cells = "  ".join(f"{f.held_out[p]:6.1f}" if math.isfinite(f.held_out[p]) else f"{'-':>6}" for p in PROFILES)
            print(f"  {r.method:<12} {f.fold:<24} thr {f.settings['threshold']['standard']:.3f}  {cells}")


if __name__ == "__main__":
    main()
