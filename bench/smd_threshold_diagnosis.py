"""Why the multivariate detector's fixed threshold misses F1-best on SMD/ASD: where its alarms fall.

    PYTHONPATH=. nice -n 10 python3 bench/smd_threshold_diagnosis.py DATA/smd [--cache /tmp/diag-smd.npz]
    PYTHONPATH=. nice -n 10 python3 bench/smd_threshold_diagnosis.py DATA/asd --step 5m [--cache ...]

Every labelled machine is scored exactly as ``aiops backtest DATA --format smd`` scores it (a
fresh ``EntityAnomaly`` with its defaults, ``score_matrix`` with the train split as history; the
daily refits of the daemon's reference included). The instants of those refits are recorded by
wrapping ``detectors._mv_reference._refit`` (a look inside, for this diagnosis only: the scores
are unchanged). With ``--cache`` the scores and refit instants are saved, and read back on the
next run instead of scoring again. Nothing here is chosen on the labels except the columns that
say so (F1-best and its threshold peek, as the backtest's do).

Per machine, at each threshold of ``--thresholds`` (default the policy's three fixed levels: 0.5,
the report floor; 0.7, warning, the lowest level notified by default; 0.9, critical, which the
backtest's ``F1@thr`` uses):

* precision, recall, F1 and the share of normal rows flagged, beside F1-best (each machine's own
  best threshold, and the share of normal rows that threshold flags) and the median score of the
  labelled rows with the share of normal rows scoring as high (what flagging half the labelled
  rows would cost);
* **inside labelled segments**: the share of segments with a flag (event recall), the median
  delay to the first flag (rows), recall over the segment's first smoothing window (a causal
  average has not risen yet) and over the rest, and how the flags lie: how many separate runs of
  flags a detected segment holds (1 = one block; many = scattered);
* **labelled rows by segment length** (shorter than the smoothing window, up to 5 hours, longer):
  their share of the labelled rows, recall, and the median score of their rows (a segment whose
  rows score like normal rows cannot be reached by any threshold that keeps false alarms rare);
* **flagged normal rows in time**: how many runs they form and how long (the share of them in
  runs of at least an hour, a day), the share in the smoothing window right after a segment ends
  (the causal average still carries the incident), the share in the first hour after a refit of
  the reference, against the hour's share of the time (a refit that moved the scale would
  crowd them there), and the share on each test day.

Then the same scores, post-processed with an alert **hysteresis** (an alert fires when the score
reaches ``fire`` and stays firing while it is at least ``hold``, clearing below): ``fire`` 0.9 or
0.5, ``hold`` the score where p = 10 x ``alarm_rate`` (odds 0.9: score 0.474). No level is chosen
on these machines: 0.9 and 0.5 are the policy's critical and the report floor, the hold level a
decade above the alarm rate, fixed before looking.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import detectors._mv_reference as mv_reference
from aiops.config import parse_duration
from aiops.evaluation.metrics import best_f1_threshold, label_segments, point_metrics
from aiops.evaluation.multicolumn import find_machines, read_machine
from detectors.multivariate import EntityAnomaly, _window_rows

HOUR, DAY = 3600.0, 86_400.0


def score_with_refits(detector: EntityAnomaly, timestamps: np.ndarray, test: np.ndarray, train: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The backtest's scores of ``test`` and the instants at which the reference was (re)fitted."""
    refits: list[float] = []
    original = mv_reference._refit

    def recording(state: Any, now: float, *args: Any, **kwargs: Any) -> Any:
        out = original(state, now, *args, **kwargs)
        if out.saved is not state.saved:
            refits.append(now)
        return out

    mv_reference._refit = recording
    try:
        scores = detector.score_matrix(timestamps, test, train=train)
    finally:
        mv_reference._refit = original
    return np.asarray(scores, dtype=float), np.asarray(refits, dtype=float)


def load(data: Path, step: float, cache: Path | None) -> dict[str, dict[str, np.ndarray]]:
    """Per labelled machine: timestamps, scores, labels, refit instants (from ``cache`` when it has them)."""
    if cache is not None and cache.is_file():
        with np.load(cache) as saved:
            names = sorted({k.split("/")[0] for k in saved.files})
            return {n: {f: saved[f"{n}/{f}"] for f in ("t", "scores", "labels", "refits")} for n in names}
    out = {}
    for name in find_machines(data):
        machine = read_machine(data, name)
        if machine.labels is None:
            continue
        t = np.arange(machine.test.shape[0], dtype=float) * step
        scores, refits = score_with_refits(EntityAnomaly(), t, machine.test, machine.train)
        out[name] = {"t": t, "scores": scores, "labels": machine.labels.astype(bool), "refits": refits}
        print(f"  scored {name}: {t.shape[0]} rows, {refits.shape[0]} fits", file=sys.stderr)
    if cache is not None:
        arrays: dict[str, Any] = {f"{n}/{f}": v for n, d in out.items() for f, v in d.items()}  # savez's keywords
        np.savez_compressed(cache, **arrays)
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) inclusive of each run of True."""
    return label_segments(mask)


def hysteresis(scores: np.ndarray, fire: float, hold: float) -> np.ndarray:
    """Alert state per row: on when the score reaches ``fire``, kept while it is at least ``hold``."""
    out = np.zeros(scores.shape[0], dtype=bool)
    on = False
    for i, s in enumerate(scores):
        on = s >= fire or (on and s >= hold)
        out[i] = on
    return out


def share(part: int | float, whole: int | float) -> float:
    return float(part) / float(whole) if whole else float("nan")


def inside_segments(y: np.ndarray, flagged: np.ndarray, window: int) -> dict[str, float]:
    """How the flags lie inside labelled segments."""
    segments = label_segments(y)
    detected, delays, pieces = 0, [], []
    head = np.zeros_like(y)
    for first, last in segments:
        head[first : min(last + 1, first + window)] = True
        hits = np.flatnonzero(flagged[first : last + 1])
        if hits.size:
            detected += 1
            delays.append(int(hits[0]))
            pieces.append(len(runs(flagged[first : last + 1])))
    body = y & ~head
    return {
        "segments": len(segments),
        "event_recall": share(detected, len(segments)),
        "median_delay_rows": float(np.median(delays)) if delays else float("nan"),
        "recall_head": share(int((flagged & head).sum()), int(head.sum())),
        "recall_body": share(int((flagged & body).sum()), int(body.sum())),
        "median_runs_per_detected": float(np.median(pieces)) if pieces else float("nan"),
        "detected_in_one_run": share(sum(1 for p in pieces if p == 1), len(pieces)),
    }


def false_alarms_in_time(y: np.ndarray, flagged: np.ndarray, t: np.ndarray, refits: np.ndarray, window: int, step: float) -> dict[str, Any]:
    """How the flagged normal rows are distributed in time."""
    fp = flagged & ~y
    n_fp = int(fp.sum())
    lengths = np.array([b - a + 1 for a, b in runs(fp)], dtype=int)
    hour_rows, day_rows = max(1, round(HOUR / step)), max(1, round(DAY / step))
    after_segment = np.zeros_like(y)
    for _, last in label_segments(y):
        after_segment[last + 1 : last + 1 + window] = True
    # Time since the newest refit at or before each row (refits during the history are before t[0]).
    fits = np.sort(refits)
    idx = np.searchsorted(fits, t, side="right") - 1
    since = np.where(idx >= 0, t - fits[np.maximum(idx, 0)], np.inf)
    first_hour = since < HOUR
    day = ((t - t[0]) // DAY).astype(int)
    per_day = [share(int((fp & (day == d)).sum()), n_fp) for d in range(int(day.max()) + 1)]
    return {
        "fp_rows": n_fp,
        "fp_runs": int(lengths.shape[0]),
        "median_run_rows": float(np.median(lengths)) if lengths.size else float("nan"),
        "in_runs_ge_hour": share(int(lengths[lengths >= hour_rows].sum()), n_fp),
        "in_runs_ge_day": share(int(lengths[lengths >= day_rows].sum()), n_fp),
        "longest_run_hours": float(lengths.max() * step / HOUR) if lengths.size else 0.0,
        "after_segment_end": share(int((fp & after_segment).sum()), n_fp),
        "first_hour_after_refit": share(int((fp & first_hour).sum()), n_fp),
        "first_hour_share_of_time": share(int(first_hour.sum()), t.shape[0]),
        "refits_in_test": int(((fits >= t[0]) & (fits <= t[-1])).sum()),
        "per_day": per_day,
    }


LENGTH_CLASSES = ((0.0, 1800.0, "< 30 min"), (1800.0, 5 * HOUR, "30 min - 5 h"), (5 * HOUR, math.inf, ">= 5 h"))


def by_segment_length(y: np.ndarray, scores: np.ndarray, step: float, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Labelled rows by the length of their segment: share, recall at each threshold, median score."""
    segments = label_segments(y)
    out = []
    for lo, hi, label in LENGTH_CLASSES:
        rows = np.zeros_like(y)
        count = 0
        for first, last in segments:
            if lo <= (last - first + 1) * step < hi:
                rows[first : last + 1] = True
                count += 1
        n = int(rows.sum())
        out.append({
            "class": label,
            "segments": count,
            "share": share(n, int(y.sum())),
            "recall": {thr: share(int((scores[rows] >= thr).sum()), n) for thr in thresholds},
            "median_score": float(np.median(scores[rows])) if n else float("nan"),
        })
    return out


def point_row(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    m = point_metrics(y, flagged)
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1, "normal_flagged": share(int((flagged & ~y).sum()), int((~y).sum()))}


def diagnose(machines: dict[str, dict[str, np.ndarray]], step: float, thresholds: Sequence[float], hold: float) -> dict[str, Any]:
    window = _window_rows(EntityAnomaly().smooth_minutes, step)
    report: dict[str, Any] = {}
    for name, d in machines.items():
        y, s, t = d["labels"], d["scores"], d["t"]
        best_thr, best = best_f1_threshold([y], [s])
        entry: dict[str, Any] = {
            "anomalous": float(y.mean()),
            "f1_best": best,
            "best_threshold": best_thr,
            "best_normal_flagged": share(int(((s >= best_thr) & ~y).sum()), int((~y).sum())),
            "labelled_median": float(np.median(s[y])),
            "normal_at_labelled_median": share(int(((s >= np.median(s[y])) & ~y).sum()), int((~y).sum())),
            "at": {},
            "hysteresis": {},
            "lengths": by_segment_length(y, s, step, thresholds),
        }
        for thr in thresholds:
            flagged = s >= thr
            entry["at"][thr] = {
                **point_row(y, flagged),
                **inside_segments(y, flagged, window),
                **false_alarms_in_time(y, flagged, t, d["refits"], window, step),
            }
        for fire in (0.9, 0.5):
            flagged = hysteresis(s, fire, hold)
            entry["hysteresis"][fire] = {**point_row(y, flagged), **inside_segments(y, flagged, window)}
        report[name] = entry
    return report


def _f(v: float, digits: int = 3) -> str:
    return "  nan" if isinstance(v, float) and math.isnan(v) else f"{v:.{digits}f}"


def print_report(report: dict[str, Any], thresholds: Sequence[float], hold: float) -> None:
    names = list(report)
    print("Point-wise, no point adjustment. F1-best peeks at labels (each machine's own best threshold).")
    print("thr*: that threshold; normal: the share of normal rows it flags; labelled median: the median score of the")
    print("labelled rows, and the share of normal rows that score at least as high.")
    print(f"{'machine':<12}{'anom':>6}{'F1-best':>8}{'thr*':>8}{'normal':>8}{'lab.med':>8}{'normal':>8}")
    for n in names:
        r = report[n]
        print(
            f"{n:<12}{_f(r['anomalous']):>6}{_f(r['f1_best']):>8}{_f(r['best_threshold'], 4):>8}{_f(r['best_normal_flagged']):>8}"
            f"{_f(r['labelled_median']):>8}{_f(r['normal_at_labelled_median']):>8}"
        )
    for thr in thresholds:
        print(f"\nAt threshold {thr:g}:")
        print(f"{'machine':<12}{'P':>6}{'R':>6}{'F1':>6}{'normal':>8}{'ev.rec':>7}{'delay':>6}{'R head':>7}{'R body':>7}{'runs/seg':>9}{'1 run':>6}")
        for n in names:
            a = report[n]["at"][thr]
            print(
                f"{n:<12}{_f(a['precision'], 2):>6}{_f(a['recall'], 2):>6}{_f(a['f1'], 3):>6}{_f(a['normal_flagged'], 4):>8}"
                f"{_f(a['event_recall'], 2):>7}{_f(a['median_delay_rows'], 0):>6}{_f(a['recall_head'], 2):>7}{_f(a['recall_body'], 2):>7}"
                f"{_f(a['median_runs_per_detected'], 0):>9}{_f(a['detected_in_one_run'], 2):>6}"
            )
        print("  flagged normal rows:")
        print(f"  {'machine':<12}{'rows':>7}{'runs':>6}{'med run':>8}{'>=1h':>6}{'>=1d':>6}{'longest h':>10}{'after seg':>10}{'1h/refit':>9}{'(time)':>7}{'refits':>7}  per test day")
        for n in names:
            a = report[n]["at"][thr]
            days = " ".join(f"{v:.2f}" for v in a["per_day"])
            print(
                f"  {n:<12}{a['fp_rows']:>7}{a['fp_runs']:>6}{_f(a['median_run_rows'], 0):>8}{_f(a['in_runs_ge_hour'], 2):>6}"
                f"{_f(a['in_runs_ge_day'], 2):>6}{_f(a['longest_run_hours'], 1):>10}{_f(a['after_segment_end'], 2):>10}"
                f"{_f(a['first_hour_after_refit'], 2):>9}{_f(a['first_hour_share_of_time'], 2):>7}{a['refits_in_test']:>7}  {days}"
            )
    print("\nLabelled rows by segment length: share of labelled rows (segments), recall at each threshold, median score:")
    for n in names:
        cells = []
        for c in report[n]["lengths"]:
            recall = "/".join(_f(c["recall"][thr], 2) for thr in thresholds)
            cells.append(f"{c['class']}: {_f(c['share'], 2)} ({c['segments']}) R {recall} med {_f(c['median_score'])}")
        print(f"  {n:<12}" + " | ".join(cells))
    print(f"\nHysteresis (fire at the level, hold while score >= {hold:.3f}, i.e. p <= 10 x alarm_rate):")
    print(f"{'machine':<12}" + "".join(f"{f'fire {fire:g}: P':>12}{'R':>6}{'F1':>6}{'normal':>8}" for fire in (0.9, 0.5)))
    for n in names:
        h = report[n]["hysteresis"]
        print(f"{n:<12}" + "".join(f"{_f(h[f]['precision'], 2):>12}{_f(h[f]['recall'], 2):>6}{_f(h[f]['f1']):>6}{_f(h[f]['normal_flagged'], 4):>8}" for f in (0.9, 0.5)))
    print("\nMeans over machines (F1):")
    print(f"  F1-best {np.mean([report[n]['f1_best'] for n in names]):.3f}", end="")
    for thr in thresholds:
        print(f"  F1@{thr:g} {np.mean([report[n]['at'][thr]['f1'] for n in names]):.3f}", end="")
    for fire in (0.9, 0.5):
        print(f"  hyst {fire:g}/{hold:.3f} {np.mean([report[n]['hysteresis'][fire]['f1'] for n in names]):.3f}", end="")
    print()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path)
    p.add_argument("--step", default="1m", help="row step (SMD 1m, ASD 5m)")
    p.add_argument("--cache", type=Path, help="npz of scores and refit instants: written once, read after")
    p.add_argument("--thresholds", default="0.5,0.7,0.9")
    args = p.parse_args(argv)
    step = parse_duration(args.step).total_seconds()
    thresholds = [float(v) for v in args.thresholds.split(",")]
    alarm_rate = EntityAnomaly().alarm_rate
    # The score where p = 10 x alarm_rate: odds 9 x alarm_rate / p = 0.9.
    hold = 0.9 / 1.9
    assert math.isclose(hold, 1 / (1 + 10 * alarm_rate / (9 * alarm_rate)))
    machines = load(args.data, step, args.cache)
    print_report(diagnose(machines, step, thresholds, hold), thresholds, hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
