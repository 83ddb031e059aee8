"""Throughput of every installed detector, on one core, in backtest and online mode.

    python bench/detector_throughput.py [--points 200000] [--series 200] [--window 360] [--repeat 3]

* backtest: ``score_series`` over one long synthetic series (univariate detectors), or
  ``score_matrix`` over a synthetic multi-column history (multivariate detectors);
* online: ``detect`` on one frame shaped like a daemon cycle (``--series`` series of ``--window``
  points of each signal the detector reads, entities as in the catalog).

Figures are points per second per core (BLAS and OpenMP pools held to one thread), best of
``--repeat`` runs. The target for the univariate default in backtest mode is 100k points/s.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

# One core: numerical libraries must not fan out over the machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
from threadpoolctl import threadpool_limits

from aiops import plugins
from aiops.collect.catalog import DEFAULT_SIGNALS
from aiops.collect.collector import signal_info
from aiops.model import Entity, Frame, Series

STEP = 60.0


def synthetic_series(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A daily cycle, noise, a slow leak, a few spikes and a gap: the shapes detectors meet."""
    t = 1.7e9 + np.arange(n) * STEP
    y = 0.5 + 0.2 * np.sin(2 * np.pi * t / 86_400) + 0.02 * rng.standard_normal(n) + np.linspace(0, 0.2, n)
    y[rng.integers(0, n, size=max(1, n // 5000))] += 0.5
    y[n // 2 : n // 2 + 30] = np.nan
    return t, np.clip(y, 0.0, 1.0)


def frame_for(signals: tuple[str, ...], series_count: int, window: int, rng: np.random.Generator) -> Frame:
    infos = {name: signal_info(name, DEFAULT_SIGNALS[name]) for name in signals if name in DEFAULT_SIGNALS}
    entities = [
        Entity("gpu", f"GPU-{k}", attributes=(("Hostname", f"node-{k // 8}"), ("gpu", str(k % 8)))) for k in range(series_count)
    ]
    series = []
    for name, info in infos.items():
        for k, entity in enumerate(entities):
            entity_k = Entity(info.entity_kind, entity.name, entity.namespace, entity.attributes)
            t, y = synthetic_series(window, rng)
            series.append(Series(name, {"id": str(k)}, t, y, entity_k))
    now = datetime.fromtimestamp(float(series[0].timestamps[-1]), UTC) if series else datetime.now(UTC)
    return Frame(now, tuple(series), infos, STEP)


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000, help="length of the backtest series")
    parser.add_argument("--series", type=int, default=200, help="series per signal in the online frame")
    parser.add_argument("--window", type=int, default=360, help="points per series in the online frame")
    parser.add_argument("--matrix-rows", type=int, default=20_000, help="rows of history and of test for score_matrix")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t, y = synthetic_series(args.points, rng)
    features = 10
    train = rng.standard_normal((args.matrix_rows, features))
    test = rng.standard_normal((args.matrix_rows, features))
    rows = []
    with threadpool_limits(limits=1):
        for name in sorted(plugins.available(plugins.DETECTORS)):
            try:
                detector = plugins.instantiate(plugins.DETECTORS, name)
            except plugins.PluginError as exc:
                rows.append((name, "not loadable", str(exc)[:60], ""))
                continue
            if callable(getattr(detector, "score_series", None)):
                secs = best_of(args.repeat, partial(detector.score_series, t, y))
                backtest = f"{args.points / secs:>12,.0f}"
                mode = "score_series"
            elif callable(getattr(detector, "score_matrix", None)):
                ts = np.arange(args.matrix_rows) * STEP
                secs = best_of(args.repeat, partial(detector.score_matrix, ts, test, train=train))
                backtest = f"{args.matrix_rows / secs:>12,.0f}"
                mode = f"score_matrix rows ({features} features, {args.matrix_rows:,} history)"
            else:
                backtest, mode = f"{'n/a':>12}", "no backtest mode"
            # A router (the ensemble) names no signals of its own: give it the whole catalog.
            signals = tuple(detector.signals) or tuple(DEFAULT_SIGNALS)
            frame = frame_for(signals, args.series, args.window, rng)
            secs = best_of(args.repeat, partial(detector.detect, frame))
            online = f"{frame.points / secs:>12,.0f}" if frame.points else f"{'n/a':>12}"
            rows.append((name, backtest, online, f"{mode}; frame {len(frame)} series x {args.window} points"))
    print(f"points/s per core (best of {args.repeat}); backtest series {args.points:,} points")
    print(f"{'detector':<16}{'backtest':>12}{'online':>12}  notes")
    for name, backtest, online, note in rows:
        print(f"{name:<16}{backtest:>12}{online:>12}  {note}")


if __name__ == "__main__":
    main()
