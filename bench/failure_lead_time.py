"""Lead time before a resource fails: the daemon's forecaster vs a static rule and ``predict_linear``.

Series come from ``bench/failure_series.py`` (failing leaks and benign look-alikes, each a ratio of
its limit with its catalog failure point). Three methods, each one number per minute:

* ``ours``: what the daemon runs, ``ExhaustionForecast`` aimed at the signal's failure point; the
  number is its score (P(crossing the failure point within the horizon));
* ``static``: the value itself (a rule ``value > x``);
* ``predict_linear``: least squares over the last hour extrapolated one hour ahead, divided by the
  failure point (``predict_linear(v[1h], 3600) > c * point``); ``predict_linear & value`` adds a
  level guard, ``predict_linear(v[1h], 3600) > point and v > x`` (kubernetes-mixin's shape), and
  ``predict_linear[6h]`` reads six hours, as kubernetes-mixin's disk alerts do.

Each alarms where its number reaches a threshold, optionally held for 5 or 15 minutes (a rule's
``for:``). An alarm is a run of alarming minutes; one that starts less than 30 minutes after the
last one ended belongs to the same episode (as Alertmanager groups a flapping alert). A failing series is caught when its first alarm
after the leak starts comes before the failure; lead = failure − that alarm. Every alarm on a benign
series, and every alarm before a leak starts, is a false alarm; the rate is per series-day, counted
from the second day on for every method (a daemon's first day learns the daily pattern and resets;
no leak starts in it).

Matched false alarms: every setting of every method (threshold x ``for``) is run on the development
seeds; each method keeps the setting with the best recall (then lead) at ≤ 0.05 false alarms per
series-day there, and that setting is applied unchanged to the held-out seeds. The table shows both.
``ours`` is also shown at the policy's default warning (0.7) and critical (0.9) thresholds, which
nothing here tunes.

Run: ``python bench/failure_lead_time.py`` (about a minute; ``--per-cell`` scales the sets).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from failure_series import BENIGN, DAY, LEAKS, STEP, Generated, series_set  # noqa: E402

from detectors.exhaustion import ExhaustionForecast  # noqa: E402

DEV_SEEDS = 0  # the range the detector was developed on
HELD_OUT_SEEDS = 1_000_000  # never looked at while developing
MAX_FA = 0.05
WARNING, CRITICAL = 0.7, 0.9  # the policy's default severity thresholds
HOLDS = (0, 5, 15)
REARM = 30  # minutes
WARM_UP = int(DAY / STEP)  # false alarms count from the second day on: the daemon's first day learns  # minutes a condition must hold (a rule's ``for:``)


PARAMS: dict[str, float] = {}  # ExhaustionForecast parameters (--param), the defaults otherwise


def ours(g: Generated) -> np.ndarray:
    return ExhaustionForecast(**PARAMS).trace(g.timestamps, g.values, g.failure_point).score


def static(g: Generated) -> np.ndarray:
    return g.values / g.failure_point


def predict_linear(g: Generated, window: float = 3600.0, ahead: float = 3600.0) -> np.ndarray:
    """``predict_linear(v[window], ahead)`` at every sample, as Prometheus computes it (least squares)."""
    t = pd.Series(g.timestamps - g.timestamps[0])
    y = pd.Series(g.values)
    w = int(window / STEP)
    mt, my = t.rolling(w, min_periods=2).mean(), y.rolling(w, min_periods=2).mean()
    cov = (t * y).rolling(w, min_periods=2).mean() - mt * my
    var = (t * t).rolling(w, min_periods=2).mean() - mt * mt
    slope = cov / var
    # Prometheus extrapolates from the evaluation time: intercept at now + slope * ahead.
    pred = my + slope * (t - mt) + slope * ahead
    return (pred / g.failure_point).fillna(0.0).to_numpy()


METHODS: dict[str, tuple[Callable[[Generated], np.ndarray], np.ndarray]] = {
    "ours": (ours, np.concatenate([np.linspace(0.3, 0.95, 14), [0.97, 0.98, 0.99, 0.995, 0.999, 0.9999]])),
    "static": (static, np.round(np.arange(0.50, 1.0001, 0.005), 4)),
    "predict_linear": (predict_linear, np.round(np.arange(0.90, 2.0001, 0.01), 4)),
    # kubernetes-mixin's shape: a trend to the point *and* a level guard (value > x), x swept.
    "predict_linear & value": (
        lambda g: np.where(predict_linear(g) >= 1.0, g.values / g.failure_point, 0.0),
        np.round(np.arange(0.30, 1.0001, 0.01), 4),
    ),
    # kubernetes-mixin reads six hours for its disk-filling alerts: steadier, slower.
    "predict_linear[6h]": (lambda g: predict_linear(g, window=6 * 3600.0), np.round(np.arange(0.90, 2.0001, 0.01), 4)),
}


@dataclass(frozen=True)
class Outcome:
    recall: float
    median_lead_min: float
    fa_per_series_day: float
    caught: int
    failing: int


def held(x: np.ndarray, minutes: int) -> np.ndarray:
    """The number held for ``minutes``: the rolling minimum (alarm only when it stayed above)."""
    if minutes == 0:
        return x
    return pd.Series(x).rolling(minutes + 1, min_periods=minutes + 1).min().fillna(-np.inf).to_numpy()


def episodes(alarm: np.ndarray) -> np.ndarray:
    """Where alarm episodes start; an alarm less than REARM minutes after the last one ended is the same
    episode (Alertmanager keeps a flapping alert in one notification group)."""
    onsets = np.flatnonzero(alarm & ~np.concatenate([[False], alarm[:-1]]))
    ends = np.flatnonzero(alarm & ~np.concatenate([alarm[1:], [False]]))
    if onsets.shape[0] < 2:
        return onsets
    keep = np.concatenate([[True], onsets[1:] - ends[:-1] > REARM])
    return onsets[keep]


def evaluate(series: Sequence[Generated], numbers: Sequence[np.ndarray], threshold: float) -> Outcome:
    leads, false, days, n_fail = [], 0, 0.0, 0
    for g, x in zip(series, numbers):
        end = g.failure_index if g.failing else x.shape[0]
        alarm = x[:end] >= threshold  # the failure sample itself is no warning
        onsets = episodes(alarm)
        quiet_until = g.leak_start if g.failing else end
        false += int(np.sum((onsets < quiet_until) & (onsets >= WARM_UP)))
        days += max(0, quiet_until - WARM_UP) * STEP / DAY
        if g.failing:
            n_fail += 1
            # Still alarming when the leak starts counts as a catch at the leak's start.
            warned = onsets[onsets >= quiet_until]
            first = int(quiet_until) if quiet_until < end and alarm[quiet_until] else (int(warned[0]) if warned.size else None)
            if first is not None:
                leads.append((g.failure_index - first) * STEP / 60.0)
    return Outcome(
        recall=len(leads) / n_fail if n_fail else float("nan"),
        median_lead_min=float(np.median(leads)) if leads else float("nan"),
        fa_per_series_day=false / days if days else float("nan"),
        caught=len(leads),
        failing=n_fail,
    )


def score_all(series: Sequence[Generated]) -> dict[str, list[np.ndarray]]:
    out = {}
    for name, (fn, _) in METHODS.items():
        began = time.perf_counter()
        out[name] = [fn(g) for g in series]
        print(f"  {name}: {len(series)} series in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return out


def choose(series: Sequence[Generated], numbers: dict[str, list[np.ndarray]]) -> dict[str, tuple[float, int]]:
    """Per method, the (threshold, hold) with the best recall, then lead, at ≤ MAX_FA on these series."""
    best: dict[str, tuple[float, int]] = {}
    for name, (_, thresholds) in METHODS.items():
        top: tuple[float, float, float, int] | None = None
        for hold in HOLDS:
            xs = [held(x, hold) for x in numbers[name]]
            for thr in thresholds:
                o = evaluate(series, xs, float(thr))
                if o.fa_per_series_day <= MAX_FA:
                    key = (o.recall, np.nan_to_num(o.median_lead_min, nan=-1.0))
                    if top is None or key > top[:2]:
                        top = (*key, float(thr), hold)
        best[name] = (top[2], top[3]) if top is not None else (float(thresholds[-1]), HOLDS[-1])
    return best


def breakdown(series: Sequence[Generated], numbers: Sequence[np.ndarray], threshold: float) -> list[str]:
    rows = []
    for shape in (*LEAKS, *BENIGN):
        idx = [i for i, g in enumerate(series) if g.shape == shape]
        o = evaluate([series[i] for i in idx], [numbers[i] for i in idx], threshold)
        if shape in LEAKS:
            rows.append(f"    {shape:<13} recall {o.recall:.2f}  median lead {o.median_lead_min:5.0f} min")
        else:
            rows.append(f"    {shape:<13} false alarms {o.fa_per_series_day:.3f} per series-day")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-cell", type=int, default=3, help="series per (signal kind, shape) cell (default 3)")
    parser.add_argument("--dev-only", action="store_true", help="development seeds only (while developing)")
    parser.add_argument("--detail", action="store_true", help="per shape breakdown of ours")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a forecaster parameter")
    args = parser.parse_args(argv)
    PARAMS.update({k: float(v) for k, _, v in (p.partition("=") for p in args.param)})
    sets = {"dev": series_set(DEV_SEEDS, args.per_cell)}
    if not args.dev_only:
        sets["held-out"] = series_set(HELD_OUT_SEEDS, args.per_cell)
    scored = {}
    for label, series in sets.items():
        print(f"scoring the {label} set ({len(series)} series)", file=sys.stderr)
        scored[label] = score_all(series)
    chosen = choose(sets["dev"], scored["dev"])
    n_fail = sum(g.failing for g in sets["dev"])
    print(
        f"{n_fail} failing and {len(sets['dev']) - n_fail} benign series per set (1-min samples, 3 days each);"
        f" settings chosen on the dev set at <= {MAX_FA} false alarms per series-day"
    )
    head = f"{'method':<23}{'setting':<18}" + "".join(
        f"{label + ' ' + col:>{width}}" for label in sets for col, width in (("recall", 17), ("lead", 15), ("FA/s-day", 19))
    )
    print(head)
    print("-" * len(head))
    rows = [(name, *chosen[name]) for name in METHODS] + [
        ("ours @ warning", WARNING, 0), ("ours @ warn 15m", WARNING, 15), ("ours @ critical", CRITICAL, 0),
    ]
    for name, thr, hold in rows:
        method = "ours" if name.startswith("ours") else name
        setting = f">= {thr:g}" + (f" for {hold}m" if hold else "")
        cells = ""
        for label, series in sets.items():
            o = evaluate(series, [held(x, hold) for x in scored[label][method]], thr)
            cells += f"{o.recall:>17.2f}{o.median_lead_min:>13.0f} m{o.fa_per_series_day:>19.3f}"
        print(f"{name:<23}{setting:<18}{cells}")
    if args.detail:
        for label, series in sets.items():
            thr, hold = chosen["ours"]
            print(f"  ours on {label}, by shape:")
            print("\n".join(breakdown(series, [held(x, hold) for x in scored[label]["ours"]], thr)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
