"""Lead time and false alarms: ExhaustionForecast vs Prometheus-style ``predict_linear``.

Generates resource-usage series (ratio of a hard limit, 1-minute samples, seeded) of the shapes
that matter for OOMKills and full disks:

* failing: linear growth, accelerating growth, noisy growth, growth after a restart, growth
  with spikes — each crosses the limit at a known instant;
* healthy: spikes that recover, level steps, sawtooth resets (GC, log rotation), flat but high
  and noisy — none ever reaches the limit.

Both methods alarm when they expect the limit within the horizon (1 h):

* ``predict_linear``: least squares over a fixed range (as in kubernetes-mixin's
  ``predict_linear(x[1h], 3600) > limit``), evaluated at every sample;
* ``exhaustion``: ExhaustionForecast's score (P(limit within the horizon)) ≥ 0.5, and ≥ 0.9.

An alarm is *true* when the series really crosses the limit within two horizons after it, else it
is a false alarm; false alarms are counted as episodes (a run of alarming samples), as a pager would
see them. Lead time = crossing − first true alarm.

Run: ``python bench/detector_lead_time.py [--seeds 20]``. Prints a table; no assertion.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.exhaustion import ExhaustionForecast

STEP = 60.0
HORIZON = 3600.0
CAPACITY = 1.0
HOURS = 10.0


@dataclass(frozen=True)
class Scenario:
    name: str
    failing: bool
    make: Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _time(hours: float = HOURS) -> np.ndarray:
    return np.arange(0.0, hours * 3600.0, STEP)


def _h(t: np.ndarray) -> np.ndarray:
    return t / 3600.0


def linear(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rate = rng.uniform(0.075, 0.12)  # per hour, from 0.35: the limit at 5.4 to 8.7 h
    return 0.35 + rate * _h(t) + rng.normal(0, 0.004, t.shape[0])


def accelerating(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Flat for a while, then a leak that speeds up (quadratic), as a cache filling faster.
    start = rng.uniform(3.0, 5.0)
    x = np.clip(_h(t) - start, 0.0, None)
    return 0.45 + rng.uniform(0.03, 0.06) * x**2 + rng.normal(0, 0.004, t.shape[0])


def noisy(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 0.3 + rng.uniform(0.08, 0.11) * _h(t) + rng.normal(0, 0.025, t.shape[0])


def after_restart(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A leak that was "fixed" by a restart at 4 h, then leaks again, faster.
    y = np.where(_h(t) < 4.0, 0.5 + 0.08 * _h(t), 0.3 + rng.uniform(0.12, 0.18) * (_h(t) - 4.0))
    return y + rng.normal(0, 0.004, t.shape[0])


def growth_with_spikes(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = linear(t, rng)
    idx = rng.choice(t.shape[0], 8, replace=False)
    # Spikes never reach the limit on their own; the trend does.
    y[idx] = np.maximum(y[idx], np.minimum(y[idx] + rng.uniform(0.1, 0.25, 8), 0.99))
    return y


def spikes_recover(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = np.asarray(0.6 + rng.normal(0, 0.005, t.shape[0]))
    for start in rng.choice(t.shape[0] - 20, 6, replace=False):
        y[start : start + rng.integers(2, 15)] += rng.uniform(0.15, 0.3)  # batch jobs, then back
    return np.minimum(y, 0.98)


def level_steps(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = np.asarray(0.4 + rng.normal(0, 0.005, t.shape[0]))
    for at in sorted(rng.uniform(1.0, 9.0, 3)):
        y[_h(t) >= at] += 0.15  # a new tenant, a bigger cache: steps that stay, under the limit
    return np.minimum(y, 0.97)


def sawtooth(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Grows 0.3 -> 0.9 over a period of about 1.5 h, then GC / rotation drops it back.
    period = rng.uniform(1.2, 1.8) * 3600.0
    phase = (t % period) / period
    return 0.3 + 0.6 * phase + rng.normal(0, 0.004, t.shape[0])


def flat_high(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(0.9 + rng.normal(0, 0.02, t.shape[0]))


SCENARIOS = (
    Scenario("linear growth", True, linear),
    Scenario("accelerating growth", True, accelerating),
    Scenario("noisy growth", True, noisy),
    Scenario("growth after restart", True, after_restart),
    Scenario("growth with spikes", True, growth_with_spikes),
    Scenario("spikes that recover", False, spikes_recover),
    Scenario("level steps", False, level_steps),
    Scenario("sawtooth resets", False, sawtooth),
    Scenario("flat, high, noisy", False, flat_high),
)


def predict_linear_alarm(t: np.ndarray, y: np.ndarray, range_seconds: float) -> np.ndarray:
    """``predict_linear(y[range], HORIZON) >= CAPACITY`` at every sample (least squares)."""
    n = max(2, int(range_seconds / STEP))
    s = pd.DataFrame({"t": t, "y": y})
    roll = s.rolling(n, min_periods=max(2, n // 2))
    mean_t, mean_y = roll["t"].mean(), roll["y"].mean()
    cov = roll["t"].cov(s["y"])
    var = roll["t"].var()
    slope = cov / var
    predicted = mean_y + slope * (t + HORIZON - mean_t)
    return (predicted >= CAPACITY).to_numpy()


def crossing_time(t: np.ndarray, y: np.ndarray) -> float | None:
    """When the underlying series first reaches the limit (the true failure)."""
    hit = np.flatnonzero(y >= CAPACITY)
    return float(t[hit[0]]) if hit.shape[0] else None


@dataclass
class Tally:
    leads: list[float]
    missed: int = 0
    false_episodes: int = 0
    series: int = 0


def evaluate(alarm: np.ndarray, t: np.ndarray, crossing: float | None, tally: Tally) -> None:
    tally.series += 1
    upto = t < crossing if crossing is not None else np.ones(t.shape[0], dtype=bool)
    alarm = alarm & upto  # after the failure, alarms no longer matter
    true = np.zeros(t.shape[0], dtype=bool) if crossing is None else (crossing - t <= 2 * HORIZON) & (crossing > t)
    false = alarm & ~true
    starts = false & ~np.concatenate([[False], false[:-1]])
    tally.false_episodes += int(starts.sum())
    if crossing is not None:
        hits = np.flatnonzero(alarm & true)
        if hits.shape[0]:
            tally.leads.append((crossing - t[hits[0]]) / 60.0)
        else:
            tally.missed += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="series per scenario (default 20)")
    args = parser.parse_args()

    methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "predict_linear[30m]": lambda t, y: predict_linear_alarm(t, y, 1800.0),
        "predict_linear[1h]": lambda t, y: predict_linear_alarm(t, y, 3600.0),
        "predict_linear[3h]": lambda t, y: predict_linear_alarm(t, y, 3 * 3600.0),
    }
    forecaster = ExhaustionForecast(horizon_seconds=HORIZON, capacity=CAPACITY)
    timing = {"seconds": 0.0, "points": 0}

    def exhaustion_score(t: np.ndarray, y: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        score = forecaster.score_series(t, y)
        timing["seconds"] += time.perf_counter() - start
        timing["points"] += t.shape[0]
        return score

    methods["exhaustion (score>=0.5)"] = lambda t, y: exhaustion_score(t, y) >= 0.5
    methods["exhaustion (score>=0.9)"] = lambda t, y: exhaustion_score(t, y) >= 0.9

    per_scenario: dict[tuple[str, str], Tally] = {}
    totals = {m: Tally([]) for m in methods}
    t = _time()
    for sc in SCENARIOS:
        for seed in range(args.seeds):
            y = sc.make(t, np.random.default_rng(1000 * SCENARIOS.index(sc) + seed))
            crossing = crossing_time(t, y) if sc.failing else None
            assert sc.failing == (crossing is not None), f"scenario {sc.name} seed {seed} is mislabelled"
            observed = np.minimum(y, CAPACITY)  # the container is killed at the limit
            for m, fn in methods.items():
                alarm = fn(t, observed)
                evaluate(alarm, t, crossing, per_scenario.setdefault((sc.name, m), Tally([])))
                evaluate(alarm, t, crossing, totals[m])

    print(f"{len(SCENARIOS)} scenarios x {args.seeds} seeds, {HOURS:.0f} h at {STEP:.0f} s, horizon {HORIZON / 60:.0f} min\n")
    header = f"{'scenario':24s} {'method':26s} {'median lead':>12s} {'missed':>7s} {'false alarms':>13s}"
    print(header)
    print("-" * len(header))
    for sc in SCENARIOS:
        for m in methods:
            tally = per_scenario[(sc.name, m)]
            lead = f"{np.median(tally.leads):.1f} min" if tally.leads else "-"
            missed = f"{tally.missed}/{tally.series}" if sc.failing else ""
            print(f"{sc.name:24s} {m:26s} {lead:>12s} {missed:>7s} {tally.false_episodes:>13d}")
        print()
    print("ALL")
    for m, tally in totals.items():
        print(
            f"  {m:26s} median lead {np.median(tally.leads):5.1f} min over {len(tally.leads)} detected, "
            f"missed {tally.missed}, false-alarm episodes {tally.false_episodes}"
        )
    print(f"\nExhaustionForecast throughput: {timing['points'] / timing['seconds']:,.0f} points/s (one core)")


if __name__ == "__main__":
    main()
