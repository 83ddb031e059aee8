"""Streaming thresholds on the multivariate detector's own statistic, SMD/ASD layout (labelled machines).

    python bench/smd_thresholds.py DATA [--step 1m] [--rate 0.001]

Why the detector's fixed threshold (score 0.9: "rarer than ``alarm_rate`` of the history") falls
far short of each machine's F1-best, and whether a threshold that adapts to each stream closes
the gap. Every machine's model is fitted once on its train split (as ``aiops backtest --format
smd`` does) and its combined statistic computed causally over the test rows; then each rule
below turns that one statistic into alarms:

* ``calibrated``: the detector's own rule, p <= ``--rate`` among the train split's newest 30 %;
* ``SPOT``: streaming peaks-over-threshold (Siffer et al., KDD 2017, Alg. 1), risk ``--rate``,
  initialised on the same reference rows: initial level at their 98th percentile, a generalised
  Pareto tail (scipy's maximum likelihood) refitted every 50 new peaks, alarms kept out of it;
* ``DSPOT``: SPOT on the statistic minus the mean of the last hour of non-alarm rows (Alg. 2);
* ``conformal 7d``: p among the last 7 days of rows, alarms counted as exceedances (a rolling
  conformal level that follows drift; it is bound to absorb any incident longer than ``--rate``
  of its window).

Beside each rule's F1 (point-wise, no point adjustment, mean over machines) it prints the share
of normal rows it flagged (its false-alarm rate), and two label-peeking figures: F1-best and the
best F1 of any threshold flagging at most ``--rate`` of normal rows (the ceiling of every rule
that keeps that rate). No rule has a setting chosen on these machines: the values are the
detector's defaults and the paper's.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import genpareto

from aiops.config import parse_duration
from aiops.evaluation.metrics import best_f1_threshold, point_metrics
from aiops.evaluation.multicolumn import find_machines, read_machine
from detectors.multivariate import Calibration, EntityAnomaly

INITIAL_QUANTILE = 0.98  # SPOT's initial threshold t, as in the paper
REFIT_EVERY = 50  # new peaks between two tail fits (the paper refits at every peak)


def reference_values(calibration: Calibration) -> np.ndarray:
    """The reference statistics a Calibration was fitted on, sorted."""
    counts = np.diff(np.append(calibration.below, calibration.count)).astype(int)
    return np.repeat(calibration.values, counts)


def _tail_level(peaks: list[float], n: int, risk: float, t: float) -> float:
    shape, _, scale = genpareto.fit(np.asarray(peaks), floc=0.0)
    r = risk * n / len(peaks)
    return float(t - scale * np.log(r) if abs(shape) < 1e-9 else t + scale / shape * (r ** (-shape) - 1.0))


def spot(reference: np.ndarray, stream: np.ndarray, risk: float, depth: int = 0) -> np.ndarray:
    """Alarms of SPOT (``depth`` 0) or DSPOT (drift = mean of the last ``depth`` non-alarm values)."""
    init = np.asarray(reference, dtype=float)
    recent: collections.deque[float] = collections.deque(init[-depth:] if depth else (), maxlen=depth or None)
    if depth:
        means = np.convolve(init, np.ones(depth) / depth, mode="valid")[:-1]
        init = init[depth:] - means
    t = float(np.quantile(init, INITIAL_QUANTILE))
    peaks = list(init[init > t] - t)
    n, new = init.shape[0], 0
    level = _tail_level(peaks, n, risk, t)
    alarms = np.zeros(stream.shape[0], dtype=bool)
    for i, x in enumerate(stream):
        v = x - (float(np.mean(recent)) if depth else 0.0)
        if v > level:
            alarms[i] = True
            continue
        if v > t:
            peaks.append(v - t)
            new += 1
            if new % REFIT_EVERY == 0:
                level = _tail_level(peaks, n, risk, t)
        n += 1
        if depth:
            recent.append(float(x))
    return alarms


def rolling_conformal(reference: np.ndarray, stream: np.ndarray, risk: float, window: int) -> np.ndarray:
    """Alarms where p <= ``risk`` among the last ``window`` rows; an alarm row enters as +inf."""
    kept: collections.deque[float] = collections.deque(reference[-window:])
    ordered = sorted(kept)
    alarms = np.zeros(stream.shape[0], dtype=bool)
    for i, v in enumerate(stream):
        above = len(ordered) - bisect.bisect_left(ordered, v)
        alarms[i] = (above + 1) / (len(ordered) + 1) <= risk
        if len(kept) >= window:
            del ordered[bisect.bisect_left(ordered, kept.popleft())]
        value = float("inf") if alarms[i] else float(v)
        kept.append(value)
        bisect.insort(ordered, value)
    return alarms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="SMD-layout folder: train/, test/, test_label/")
    parser.add_argument("--step", default="1m", help="row step (SMD 1m, ASD 5m)")
    parser.add_argument("--rate", type=float, default=0.001, help="false-alarm rate every rule is set to (the detector's alarm_rate)")
    args = parser.parse_args(argv)
    step = parse_duration(args.step).total_seconds()
    detector = EntityAnomaly(alarm_rate=args.rate)
    rules: dict[str, Callable[[Calibration, np.ndarray], np.ndarray]] = {
        "calibrated": lambda cal, s: cal.log_exceedance(s) <= np.log(args.rate),
        "SPOT": lambda cal, s: spot(reference_values(cal), s, args.rate),
        "DSPOT (1 h drift)": lambda cal, s: spot(reference_values(cal), s, args.rate, depth=max(1, round(3600 / step))),
        "conformal 7d": lambda cal, s: rolling_conformal(reference_values(cal), s, args.rate, round(7 * 86400 / step)),
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in [*rules, "F1-best", f"ceiling at {args.rate:g}"]}
    names = find_machines(args.data)
    for name in names:
        machine = read_machine(args.data, name)
        if machine.train is None or machine.labels is None:
            print(f"{name}: needs train/ and test_label/ files; skipped", file=sys.stderr)
            continue
        rows = np.concatenate([machine.train, machine.test])
        rows = np.where(np.isfinite(rows), rows, np.nan)
        model = detector.reference_model([rows[: machine.train.shape[0]]], step)
        statistic = model.statistic(rows)[machine.train.shape[0] :]
        assert model.calibration is not None
        y = machine.labels
        for rule, alarms_of in rules.items():
            alarms = alarms_of(model.calibration, statistic)
            figures[rule].append((point_metrics(y, alarms).f1, float(alarms[~y].mean())))
        figures["F1-best"].append((best_f1_threshold([y], [statistic])[1], float("nan")))
        figures[f"ceiling at {args.rate:g}"].append((best_f1_threshold([y], [statistic], max_false_alarm_rate=args.rate)[1], float("nan")))
        print(f"  {name}: " + "  ".join(f"{rule} {f[-1][0]:.3f}" for rule, f in figures.items()), flush=True)
    print(f"{args.data}: {len(names)} machines, rate {args.rate:g}; F1 point-wise (mean over machines), false-alarm rate per machine")
    for rule, values in figures.items():
        f1 = np.mean([v[0] for v in values])
        rates = " ".join(f"{v[1]:.3f}" for v in values if np.isfinite(v[1]))
        print(f"{rule:<20} F1 {f1:.3f}" + (f"   flagged normal rows {rates}" if rates else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
