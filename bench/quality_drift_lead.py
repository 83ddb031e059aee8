"""Lead of ``quality_drift`` on the replay fixture's accuracy drift, per profile and seed, in seconds.

What ``aiops replay`` reports for the drift incident (first warning and first observed drop before
the static alert), computed from the detector's backtest trace of the fixture's ``model_accuracy``
series alone, so that many profiles x seeds take seconds instead of an hour of replays. The
backtest and the daemon score the same series identically (``tests/detectors/test_quality_drift``),
so the figures are the replay's up to the replay's cycle spacing.

For each profile x seed it prints:

- ``warn``: minutes between the first warning (score >= 0.7, the policy's warning threshold) after
  the drift starts and the static alert (accuracy 5 % below its baseline); the target for a trend
  is >= 60;
- ``confirm``: the same for the observed drop alone (CUSUM or the drop's magnitude, without the
  forecast): what the ``model-quality`` rule suggests the rollback on;
- ``false``: warning episodes on the healthy model and on the drifting one outside
  [drift start, resolution + 1 h], per series-day (the target is none).

A second table scores benign series built here (daily seasonality up to 3 %, noise up to 1 %,
level steps of 1-2 %, a slow 1 %/h wander that never reaches the floor): warning episodes per
series-day, which should be 0.

Run: ``nice -n 10 python bench/quality_drift_lead.py [--profiles default,us-east,eu-rough] [--seeds 7,11,23]``.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from aiops.testing.cluster_history import HistorySpec, generate
from aiops.testing.cluster_profiles import PROFILES, profile
from detectors.quality_drift import QualityDrift

WARNING = 0.7


def episodes(t: np.ndarray, flag: np.ndarray) -> list[float]:
    """Start times of runs of ``flag``."""
    start = flag & ~np.r_[False, flag[:-1]]
    return list(t[start])


def lead_rows(name: str, seed: int, detector: QualityDrift) -> dict[str, object]:
    hist = generate(HistorySpec(hours=48, filler_pods=2, incident_offset_h=24, seed=seed, profile=profile(name)))
    inc = next(i for i in hist.incidents if i["name"].startswith("accuracy drift"))
    alert = inc["static_alert_at"].timestamp()
    resolved = inc["resolved_at"].timestamp()
    timing = hist.spec.profile.timing
    onset = hist.at(hist.spec.incident_offset_h + timing.drift_from_h).timestamp()
    t = hist.t.astype(np.float64)
    out: dict[str, object] = {"profile": name, "seed": seed, "alert_after_onset_min": (alert - onset) / 60}
    false_eps: list[float] = []
    for g in hist.gauges:
        if g.name != "model_accuracy":
            continue
        tr = detector.trace(t, g.values, "down")
        warned = tr.score >= WARNING
        observed = tr.observed >= WARNING
        if g.labels["model"] == "qwen2-7b":
            during = (t >= onset) & (t <= resolved + 3600)
            first = t[warned & during]
            conf = t[observed & during]
            out["warn_min"] = (alert - first[0]) / 60 if first.shape[0] else None
            out["confirm_min"] = (alert - conf[0]) / 60 if conf.shape[0] else None
            false_eps += episodes(t, warned & ~during)
        else:
            false_eps += episodes(t, warned)
    days = 2 * (t[-1] - t[0]) / 86400
    out["false_per_series_day"] = len(false_eps) / days
    return out


def benign(detector: QualityDrift, seed: int) -> tuple[int, float]:
    """Warning episodes on benign quality series (no incident), and series-days scored."""
    rng = np.random.default_rng(seed)
    step, days = 60.0, 3
    t = np.arange(days * 1440) * step
    h = t / 3600
    shapes = []
    for amp in (0.01, 0.02, 0.03):
        for phase in (0.0, 2.0):
            shapes.append(0.9 * (1 + amp * np.sin(2 * np.pi * (h + phase * 3) / 24)))
    flat = np.full(t.shape, 0.9)
    for size in (0.01, 0.02):
        shapes.append(np.where(h > 50, 0.9 * (1 - size), 0.9))
    wander = 0.9 * (1 - 0.01 * np.clip(h - 50, 0, 2))  # 1 %/h for 2 h, then flat: 2 %, never 5 %
    shapes.append(wander)
    shapes.append(flat)
    count = 0
    scored = 0
    for base in shapes:
        for noise in (0.002, 0.005, 0.01):
            y = base + rng.normal(0, noise * 0.9, t.shape)
            tr = detector.trace(t, y, "down")
            warned = tr.score >= WARNING
            warned[: 1500] = False  # the first day builds the reference
            count += len(episodes(t, warned))
            scored += 1
    return count, scored * (days - 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default=",".join(sorted(PROFILES)))
    p.add_argument("--seeds", default="7,11,23")
    args = p.parse_args()
    detector = QualityDrift()
    print(f"{'profile':<10} {'seed':>4} {'alert-onset':>11} {'warn':>6} {'confirm':>7} {'false/series-day':>16}")
    t0 = time.process_time()
    for name in args.profiles.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            r = lead_rows(name, seed, detector)

            def fmt(v: object) -> str:
                return "none" if v is None else f"{v:.1f}"

            print(f"{name:<10} {seed:>4} {r['alert_after_onset_min']:>11.1f} {fmt(r['warn_min']):>6} "
                  f"{fmt(r['confirm_min']):>7} {r['false_per_series_day']:>16.2f}")
    for seed in (int(s) for s in args.seeds.split(",")):
        count, series_days = benign(detector, seed)
        print(f"benign seed {seed}: {count} warning episodes in {series_days} series-days")
    print(f"cpu {time.process_time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
