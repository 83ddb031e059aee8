"""What a new daemon's first read of history costs (``Pipeline.learn_history``, before its first cycle).

A new daemon reads, once, the days before its first frame that its detectors compare with
(:class:`aiops.plugins.LearnsFromHistory`: exhaustion's daily peaks at 5-minute steps, serving
headroom's days at the daemon's step). ``bench/cycle_scaling.py`` does not see it: its lookback
spans the whole history, so nothing lies before the first frame. Here the daemon's lookback is
``--lookback-hours`` (6 h, the default config's) over the same synthetic cluster history, so it
learns the rest (18 h of a 24 h dataset), and the figures are that one read: wall and CPU
seconds, points, and how far it raised the process's peak RSS above the pipeline's own start;
then the first cycle's wall, CPU and peak RSS (the seasonal baseline traces what it learnt with
its first frame).

    nice -n 10 python bench/learn_history.py --size 10000 [--hours 24] [--lookback-hours 6]

Prints one table; asserts nothing. The dataset is cycle_scaling's (generated once under --workdir).
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import BENCH_END, prepare_dataset, start_prometheus, table


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10_000, help="raw series in Prometheus")
    p.add_argument("--hours", type=float, default=24.0, help="history length")
    p.add_argument("--lookback-hours", type=float, default=6.0, help="the daemon's lookback (its first frame)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/aiops-bench"), help="data (reused between runs)")
    args = p.parse_args()

    from aiops.config import parse_config
    from aiops.engine.pipeline import Pipeline

    ds = prepare_dataset(args.size, args.hours, args.workdir)
    prom = start_prometheus(ds)
    try:
        logging.disable(logging.INFO)
        config = parse_config({
            "prometheus": {"url": prom.url, "lookback": f"{args.lookback_hours:g}h", "step": "60s", "timeout": "600s"},
            "safety": {"mode": "observe", "dry_run": True},
            "notify": {"channels": {}},
            "state": {"path": str(args.workdir / "learn-history-state.sqlite")},
        }, "<bench>")
        pipeline = Pipeline.from_config(config)
        learnt: dict[str, int] = {}
        for name, part in pipeline._parts():
            learn = getattr(part, "learn_history", None)
            if learn is not None:
                def counted(series: list, learn=learn, name=name) -> None:  # noqa: ANN001
                    learnt[name] = learnt.get(name, 0) + sum(len(s) for s in series)
                    learn(series)
                part.learn_history = counted  # type: ignore[method-assign]
        rss_before = _peak_rss_mib()
        wall, cpu = time.perf_counter(), time.process_time()
        pipeline.learn_history(BENCH_END)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rss_after = _peak_rss_mib()
        first_wall, first_cpu = time.perf_counter(), time.process_time()
        report = pipeline.run_cycle(BENCH_END)
        first_wall, first_cpu = time.perf_counter() - first_wall, time.process_time() - first_cpu
        rss_first = _peak_rss_mib()
        pipeline.close()
    finally:
        prom.stop()
    rows = [{
        "raw_series": ds.series,
        "learnt_from": f"{args.hours - args.lookback_hours:g} h",
        "points": sum(learnt.values()),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mib_before": round(rss_before),
        "peak_rss_mib_after": round(rss_after),
        # The seasonal baseline traces its learnt days with the first frame: the first cycle pays.
        "first_cycle_wall_s": round(first_wall, 2),
        "first_cycle_cpu_s": round(first_cpu, 2),
        "peak_rss_mib_after_first_cycle": round(rss_first),
        "first_cycle_degraded": report.degraded,
    }]
    print(table(rows, [(k, k) for k in rows[0]]))
    for name, points in sorted(learnt.items()):
        print(f"  {name}: {points} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
