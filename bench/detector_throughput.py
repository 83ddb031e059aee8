"""Throughput of every installed detector, on one core, in backtest and online mode.

    python bench/detector_throughput.py [--points 200000] [--series 200] [--window 360] [--repeat 3]

* backtest: ``score_series`` over one long synthetic series (univariate detectors), or
  ``score_matrix`` over a synthetic multi-column history (multivariate detectors);
* online: ``detect`` on one frame shaped like a daemon cycle (``--series`` series of ``--window``
  points of each signal the detector reads, entities as in the catalog).

Figures are points per second per core (BLAS and OpenMP pools held to one thread), best of
``--repeat`` runs, printed and written to ``bench/results/detector_throughput.json``. The target
for the univariate default in backtest mode is 100k points/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

# One core: numerical libraries must not fan out over the machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
from threadpoolctl import threadpool_limits

from aiops import plugins
from aiops.config.catalog import DEFAULT_SIGNALS
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
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "detector_throughput.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t, y = synthetic_series(args.points, rng)
    features = 10
    train = rng.standard_normal((args.matrix_rows, features))
    test = rng.standard_normal((args.matrix_rows, features))
    rows: list[dict[str, Any]] = []
    with threadpool_limits(limits=1):
        for name in sorted(plugins.available(plugins.DETECTORS)):
            try:
                detector = plugins.instantiate(plugins.DETECTORS, name)
            except plugins.PluginError as exc:
                rows.append({"detector": name, "error": str(exc)})
                continue
            row: dict[str, Any] = {"detector": name, "backtest_points_per_s": None}
            if callable(getattr(detector, "score_series", None)):
                secs = best_of(args.repeat, partial(detector.score_series, t, y))
                row |= {"backtest_points_per_s": args.points / secs, "backtest_mode": f"score_series, {args.points:,} points"}
            elif callable(getattr(detector, "score_matrix", None)):
                ts = np.arange(args.matrix_rows) * STEP
                secs = best_of(args.repeat, partial(detector.score_matrix, ts, test, train=train))
                row |= {
                    "backtest_points_per_s": args.matrix_rows / secs,
                    "backtest_mode": f"score_matrix rows, {features} features, {args.matrix_rows:,} rows of history",
                }
            else:
                row["backtest_mode"] = "none"
            # A router (the ensemble) names no signals of its own: give it the whole catalog.
            signals = tuple(detector.signals) or tuple(DEFAULT_SIGNALS)
            frame = frame_for(signals, args.series, args.window, rng)
            secs = best_of(args.repeat, partial(detector.detect, frame))
            row |= {"online_points_per_s": frame.points / secs, "online_frame": f"{len(frame)} series x {args.window} points"}
            rows.append(row)
    print(f"points/s per core (best of {args.repeat})")
    print(f"{'detector':<16}{'backtest':>12}{'online':>12}  notes")
    for row in rows:
        if "error" in row:
            print(f"{row['detector']:<16}  not loadable: {row['error']}")
            continue
        print(
            f"{row['detector']:<16}{_fmt(row['backtest_points_per_s']):>12}{_fmt(row['online_points_per_s']):>12}"
            f"  backtest: {row['backtest_mode']}; online: {row['online_frame']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": _machine(), "args": {k: str(v) for k, v in vars(args).items()}, "detectors": rows}, indent=2))
    print(f"written {args.json}")


def _fmt(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}"


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    main()
