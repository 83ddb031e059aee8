"""The headroom forecast on the replay fixture's request rates, with noise the fixture lacks.

The fixture's counters are exact, so its request rates carry no noise and every seed gives the
same surge leads. This script rebuilds each model's ``sum(rate(...[5m]))`` from the generated
counters (vLLM, Triton, TorchServe), optionally multiplies it by per-minute noise and by a level
per day (days that differ), and runs :class:`detectors.headroom.ServingHeadroom` over it as the
daemon would (a 6 h lookback, one cycle a minute, from hour 6 of 48). It prints, per profile and
seed, each surge's first warning and first critical forecast (minutes before its static alert) and
the forecast episodes on every other model (false alarms).

Run: ``PYTHONPATH=. nice -n 10 python bench/headroom_noise.py [--noise 0.03] [--day-sigma 0.05]
[--seeds 7,11] [--profiles default,us-east,eu-rough,ap-autoscale]``. Asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from aiops.testing.cluster_history import HistorySpec, generate
from aiops.testing.cluster_profiles import PROFILES, profile
from detectors._daily import DailyMaxima
from detectors.headroom import ServingHeadroom

COUNTERS = (("vllm:request_success_total", "model_name"), ("nv_inference_request_success", "model"),
            ("ts_inference_requests_total", "model_name"))


def rates(hist) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Per model: the sum over its pods of the 5-minute rate (NaN where no pod reports)."""
    n = hist.t.shape[0]
    out: dict[str, np.ndarray] = {}
    for name, label in COUNTERS:
        for s in hist.counters:
            if s.name != name:
                continue
            key = f"model/{s.labels['namespace']}/{s.labels[label]}"
            r = np.full(n, np.nan)
            r[5:] = (s.values[5:] - s.values[:-5]) / 300.0
            r[r < 0] = np.nan  # a counter reset: rate() drops the negative step
            tot = out.get(key, np.full(n, np.nan))
            out[key] = np.where(np.isnan(tot), r, np.where(np.isnan(r), tot, tot + r))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noise", type=float, default=0.0, help="per-minute multiplicative noise (sigma)")
    p.add_argument("--day-sigma", type=float, default=0.0, help="each day's level differs by this (sigma)")
    p.add_argument("--seeds", default="7,11")
    p.add_argument("--profiles", default=",".join(PROFILES))
    a = p.parse_args()
    for name in a.profiles.split(","):
        for seed in (int(x) for x in a.seeds.split(",")):
            hist = generate(HistorySpec(hours=48, filler_pods=5, incident_offset_h=24, seed=seed, profile=profile(name)))
            t = hist.t
            rng = np.random.default_rng(seed)
            day = np.floor((t - t[0]) / 86400).astype(int)
            alerts = {i["entity"]: i["static_alert_at"].timestamp() for i in hist.incidents if "surge" in i["name"]}
            det = ServingHeadroom()
            for model, y in rates(hist).items():
                level = 1 + rng.normal(0, a.day_sigma, day.max() + 1)
                y = y * (1 + rng.normal(0, a.noise, t.shape[0])) * level[day]
                held = DailyMaxima(det.params.days)
                held.merge(model, t[:360], y[:360])
                episodes: list[list[float]] = []  # [first, last, first critical]
                for i in range(360, t.shape[0]):
                    held.update(model, t[i : i + 1], y[i : i + 1])
                    fc = det._forecast(t[i - 360 : i + 1], y[i - 360 : i + 1], held.merge(model, t[:0], y[:0]))
                    if fc is None or det._score(fc) < 0.7:
                        continue
                    if not episodes or t[i] - episodes[-1][1] > 180:
                        episodes.append([t[i], t[i], np.nan])
                    episodes[-1][1] = t[i]
                    if fc.crossing_seconds is not None and fc.crossing_seconds <= 1800 and np.isnan(episodes[-1][2]):
                        episodes[-1][2] = t[i]
                alert = alerts.get(model)
                if alert is not None:
                    mine = [e for e in episodes if e[0] <= alert <= e[1] + 3600] or [[np.nan] * 3]
                    warn = (alert - mine[0][0]) / 60
                    crit = (alert - np.nanmin([e[2] for e in mine] or [np.nan])) / 60
                    others = len(episodes) - len([e for e in episodes if e[0] <= alert <= e[1] + 3600])
                    print(f"{name:13} seed {seed:3} {model:30} surge: warn {warn:5.1f} critical {crit:5.1f} min ahead; "
                          f"other episodes {others}")
                else:
                    print(f"{name:13} seed {seed:3} {model:30} forecast episodes (false): {len(episodes)}"
                          f"{'' if not episodes else f', critical in {sum(not np.isnan(e[2]) for e in episodes)}'}")


if __name__ == "__main__":
    main()
