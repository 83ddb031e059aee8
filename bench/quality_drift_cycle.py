"""CPU of ``quality_drift`` per steady daemon cycle, on its own (issue 17).

The whole-cycle benchmark (``cycle_scaling.py``) times every detector against a real Prometheus;
this one isolates ``quality_drift`` so that its figure is not lost in the machine's noise. It
builds what the daemon hands the detector: ``--models`` model-accuracy series and as many
conversion-rate KPIs (15 each: the 10k-series cluster of ``cycle_scaling.py``), a frame of the
lookback (6 h) ending each minute, after ``--warm-hours`` of history (the detector keeps a day and
a quarter of its own), one cycle a minute. It prints the thread CPU of ``detect`` per steady cycle
(median and 90th percentile of ``--steady`` cycles) and of the first (cold) cycle. The warm-up
feeds half-hour strides (the history fills the same way, faster).

A third of the models decline at 3 %/h during the steady cycles (forecasts, then confirmed
drops), so that the figure includes findings being explained, not only quiet series.

Run: ``nice -n 10 python bench/quality_drift_cycle.py [--models 15] [--steady 200]``. Run it from
two checkouts to compare (``PYTHONPATH=.`` picks the checkout's detector). Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import detectors.quality_drift as module
from aiops.model import Entity, Frame, Series, SignalInfo, from_epoch

T0 = 1_750_000_000.0
MINUTE = 60.0
SIGNALS = {
    "model_accuracy": SignalInfo("model_accuracy", "model", "ratio", bad_direction="down"),
    "business_conversion_rate": SignalInfo("business_conversion_rate", "model", "ratio", bad_direction="down"),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=15)
    p.add_argument("--steady", type=int, default=200)
    p.add_argument("--warm-hours", type=float, default=26.0, help="history before the first timed steady cycle")
    p.add_argument("--lookback-hours", type=float, default=6.0)
    args = p.parse_args()
    rng = np.random.default_rng(7)
    n = int((args.warm_hours * 60) + args.steady)
    t = T0 + np.arange(n) * MINUTE
    decline_from = t[int(args.warm_hours * 60)] - 20 * MINUTE
    entities = [Entity("model", f"m{k}", "ml") for k in range(args.models)]
    acc, kpi = [], []
    for k in range(args.models):
        y = 0.9 + rng.normal(0, 0.002, n)
        if k % 3 == 0:
            y *= 1 - 0.03 * np.clip(t - decline_from, 0, None) / 3600
        acc.append(y)
        kpi.append(0.04 + rng.normal(0, 0.0004, n))
    det = module.QualityDrift()
    lookback = int(args.lookback_hours * 60)
    cpu: list[float] = []
    findings = 0
    # Warm-up in half-hour strides (the history fills the same), then one cycle a minute.
    ends = [*range(lookback, n - args.steady, 30), *range(n - args.steady + 1, n + 1)]
    for end in ends:
        lo = max(0, end - lookback)
        series = [Series("model_accuracy", {"model": e.name, "namespace": e.namespace}, t[lo:end], acc[k][lo:end], e)
                  for k, e in enumerate(entities)]
        series += [Series("business_conversion_rate", {"model": e.name, "namespace": e.namespace}, t[lo:end],
                          kpi[k][lo:end], e) for k, e in enumerate(entities)]
        frame = Frame(now=from_epoch(t[end - 1]), series=tuple(series), signals=dict(SIGNALS), step_seconds=MINUTE)
        c0 = time.thread_time()
        out = det.detect(frame)
        cpu.append(time.thread_time() - c0)
        if end > n - args.steady:
            findings += len(out)
    cold = cpu[0]
    steady = sorted(cpu[-args.steady:])
    print(f"{module.__file__}")
    print(f"models {args.models}: cold {cold * 1e3:.1f} ms; steady median {statistics.median(steady) * 1e3:.2f} ms, "
          f"p90 {steady[int(0.9 * len(steady))] * 1e3:.2f} ms (thread CPU per cycle, {args.steady} cycles); "
          f"{findings} findings in the steady cycles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
