"""Online (daemon) cost of the default detectors at 1k-10k series: a cold cycle and steady-state cycles.

    nice -n 10 python bench/detector_online.py [--series 1000 10000] [--hours 6] [--steady 5]

For each N, a synthetic frame of N series x ``--hours`` at 1-minute resolution (a diurnal cycle,
noise, and a few memory leaks / latency spikes / accuracy drops) is scored by:

* ``exhaustion`` on N ``pod_memory_usage_ratio`` series;
* ``seasonal`` on N ``node_cpu_utilization`` series;
* ``quality_drift`` on N ``model_accuracy`` series;
* ``ensemble`` on N series split evenly over those three signals.

*cold* is the first ``detect`` of a fresh detector (the daemon's first cycle after a start);
*steady* is the median of ``--steady`` further cycles, each with the window moved on by one
point per series (what an incremental fetch adds every minute). Figures are seconds on one core
(BLAS/OpenMP pools held to one thread), plus the findings of the last cycle, printed as a table
and written as JSON to ``bench/results/detector_online.json``.

Accuracy of the online path: ``--nab DATA --labels combined_windows.json`` replays each NAB file
through the daemon's incremental seasonal state (seeded from the first 6 h, as a cold cycle is,
then one point per cycle) and prints the NAB scores next to those of the backtest (``score_series``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
from threadpoolctl import threadpool_limits

from aiops import plugins
from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.collect.collector import signal_info
from aiops.model import Entity, Frame, Series, from_epoch

STEP = 60.0
T0 = 1_750_000_000.0
DAY = 86_400.0
MEMBER_SIGNALS = {
    "exhaustion": "pod_memory_usage_ratio",
    "seasonal": "node_cpu_utilization",
    "quality_drift": "model_accuracy",
}


def history(signal: str, count: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` x ``points`` values of ``signal``: diurnal + noise, with a few injected faults."""
    t = T0 + np.arange(points) * STEP
    phase = 2 * np.pi * (t - T0) / DAY + rng.uniform(0, 2 * np.pi, (count, 1))
    faulty = rng.choice(count, size=max(1, count // 200), replace=False)
    ramp = np.clip((np.arange(points) - points * 0.6) / (points * 0.4), 0.0, 1.0)
    if signal == "pod_memory_usage_ratio":
        y = 0.45 + 0.05 * np.sin(phase) + 0.01 * rng.standard_normal((count, points))
        y[faulty] += 0.6 * ramp  # leaks that reach the limit about when the window ends
    elif signal == "node_cpu_utilization":
        y = 0.4 + 0.2 * np.sin(phase) + 0.02 * rng.standard_normal((count, points))
        y[faulty, -1] += 0.5  # a spike on the newest point
    else:
        y = 0.92 + 0.005 * rng.standard_normal((count, points))
        y[faulty, -30:] *= 0.9  # a 10 % accuracy drop in the last half hour
    return np.clip(y, 0.0, None)


class Workload:
    """The full synthetic history of one signal mix; ``frame(end)`` is the daemon's view at ``end``."""

    def __init__(self, mix: dict[str, int], window: int, extra: int, rng: np.random.Generator) -> None:
        self.window = window
        self.t = T0 + np.arange(window + extra) * STEP
        self.infos = {sig: signal_info(sig, DEFAULT_SIGNALS[sig]) for sig in mix}
        self.blocks: list[tuple[str, list[Entity], list[dict[str, str]], np.ndarray]] = []
        for sig, count in mix.items():
            kind = self.infos[sig].entity_kind
            entities = [
                Entity(kind, f"{sig[:5]}-{k}", "bench" if kind in ("pod", "model") else "") for k in range(count)
            ]
            labels = [{"instance": e.name} for e in entities]
            self.blocks.append((sig, entities, labels, history(sig, count, window + extra, rng)))

    def frame(self, end: int) -> Frame:
        lo = end - self.window
        t = self.t[lo:end]
        series = tuple(
            Series(sig, labels[k], t, values[k, lo:end], entity)
            for sig, entities, labels, values in self.blocks
            for k, entity in enumerate(entities)
        )
        return Frame(from_epoch(t[-1]), series, self.infos, STEP)

    @property
    def points(self) -> int:
        return sum(v.shape[0] for *_, v in self.blocks) * self.window


def run(detector_name: str, mix: dict[str, int], window: int, steady: int, seed: int) -> dict[str, Any]:
    work = Workload(mix, window, steady, np.random.default_rng(seed))
    detector = plugins.instantiate(plugins.DETECTORS, detector_name)
    frame = work.frame(window)
    started = time.perf_counter()
    detector.detect(frame)
    cold = time.perf_counter() - started
    times, findings = [], 0
    for k in range(1, steady + 1):
        frame = work.frame(window + k)  # built outside the timed region, as the collector does
        started = time.perf_counter()
        findings = len(detector.detect(frame))
        times.append(time.perf_counter() - started)
    series = sum(mix.values())
    seasonal = detector.members.get("seasonal") if detector_name == "ensemble" else detector  # type: ignore[attr-defined]
    tables = getattr(seasonal, "_tables", {}).values()
    held = sum(len(tb) for tb in tables)
    return {
        "seasonal_state_bytes_per_series": (sum(tb.nbytes for tb in tables) / held) if held else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "detector": detector_name,
        "series": series,
        "points_per_series": window,
        "cold_s": cold,
        "steady_s": statistics.median(times),
        "steady_runs_s": times,
        "cold_points_per_s": work.points / cold,
        "steady_us_per_series": statistics.median(times) / series * 1e6,
        "findings_last_cycle": findings,
    }


class OnlineSeasonal:
    """``score_series`` through the daemon's path: a trace of the first ``seed_seconds``, then one point a cycle."""

    def __init__(self, seed_seconds: float = 6 * 3600.0, scale_stride: int = 4, scale_refresh: int = 8) -> None:
        from detectors._univariate import check_series, points_for, typical_step
        from detectors.seasonal import SeasonalBaseline

        self.det = SeasonalBaseline(scale_stride=scale_stride, scale_refresh=scale_refresh)
        self.seed_seconds = seed_seconds
        self._check, self._points_for, self._step = check_series, points_for, typical_step

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        t, y = self._check(timestamps, values)
        seed = min(t.shape[0], self._points_for(self.seed_seconds, self._step(t), minimum=10))
        first = self.det.trace(t[:seed], y[:seed], "both")
        table = self.det._table(self._step(t[:seed]), "both")
        table.seed("series", t[:seed], y[:seed], first)
        out = np.concatenate([first.score, np.zeros(t.shape[0] - seed)])
        for i in range(seed, t.shape[0]):
            table.advance(["series"], [t[i : i + 1]], [y[i : i + 1]])
            out[i] = table.score("series")
        return out


def nab_online(data: Path, labels: Path, scale_stride: int, scale_refresh: int) -> dict[str, Any]:
    """NAB figures of the online path and of the backtest, on the same files."""
    from aiops.commands.backtest import _labels_for
    from aiops.evaluation.corpus import evaluate_corpus
    from aiops.evaluation.nab import load_windows
    from aiops.evaluation.replay import find_series_files, load_scorer, replay_corpus

    files = find_series_files(data)
    windows = load_windows(labels)
    out = {}
    online = partial(OnlineSeasonal, scale_stride=scale_stride, scale_refresh=scale_refresh)
    label = f"online (scale_stride {scale_stride}, scale_refresh {scale_refresh})"
    for name, make in (("backtest", load_scorer("seasonal", {})), (label, online)):
        started = time.perf_counter()
        replayed = replay_corpus(files, make, progress=False)
        scoped = _labels_for(list(replayed), windows)
        ev = evaluate_corpus(name, {k: v for k, v in replayed.items() if k in scoped}, scoped)
        out[name] = {profile: round(r.normalized, 1) for profile, r in ev.nab.items()} | {
            "seconds": round(time.perf_counter() - started, 1)
        }
        print(f"NAB {name:<44}" + "  ".join(f"{k} {v}" for k, v in out[name].items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--hours", type=float, default=6.0, help="history in the frame (the collector's lookback)")
    parser.add_argument("--steady", type=int, default=5, help="steady-state cycles measured after the cold one")
    parser.add_argument("--detectors", nargs="+", default=["exhaustion", "seasonal", "quality_drift", "ensemble"])
    parser.add_argument("--nab", type=Path, help="NAB data folder: also compare online and backtest NAB scores")
    parser.add_argument("--labels", type=Path, help="NAB combined_windows.json (with --nab)")
    parser.add_argument(
        "--scale-stride", type=int, default=4, help="SeasonalBaseline scale_stride of the online NAB replay"
    )
    parser.add_argument(
        "--scale-refresh", type=int, default=8, help="SeasonalBaseline scale_refresh of the online NAB replay"
    )
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "detector_online.json")
    args = parser.parse_args()
    if args.nab and not args.labels:
        parser.error("--nab needs --labels (combined_windows.json)")
    window = int(args.hours * 3600 / STEP)
    rows = []
    with threadpool_limits(limits=1):
        for n in args.series:
            for name in args.detectors:
                if name == "ensemble":
                    mix = {sig: n // len(MEMBER_SIGNALS) for sig in MEMBER_SIGNALS.values()}
                else:
                    mix = {MEMBER_SIGNALS[name]: n}
                row = run(name, mix, window, args.steady, seed=n)
                rows.append(row)
                print(
                    f"{name:<14}{row['series']:>8,}  cold {row['cold_s']:8.2f} s  steady {row['steady_s']:8.3f} s"
                    f"  ({row['steady_us_per_series']:8.1f} us/series)  findings {row['findings_last_cycle']}",
                    flush=True,
                )
    print()
    print(
        f"{'detector':<14}{'series':>8}{'cold s':>10}{'steady s':>10}{'us/series':>11}{'cold pts/s':>13}{'state KiB/series':>18}"
    )
    for r in rows:
        print(
            f"{r['detector']:<14}{r['series']:>8,}{r['cold_s']:>10.2f}{r['steady_s']:>10.3f}"
            f"{r['steady_us_per_series']:>11.1f}{r['cold_points_per_s']:>13,.0f}"
            + (
                f"{r['seasonal_state_bytes_per_series'] / 1024:>18.1f}"
                if r["seasonal_state_bytes_per_series"]
                else f"{'-':>18}"
            )
        )
    nab = nab_online(args.nab, args.labels, args.scale_stride, args.scale_refresh) if args.nab else None
    args.json.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_start": os.getloadavg()}
    doc = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "hours": args.hours,
        "rows": rows,
        "nab": nab,
    }
    args.json.write_text(json.dumps(doc, indent=2))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
