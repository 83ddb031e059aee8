"""Memory bound (issue 7, part 3): RSS over 100 steady cycles at 10k series must stay flat.

Generates 10k series covering the lookback plus the cycles, starts a real Prometheus, runs the
pipeline in a child process for one cold and N steady cycles one step apart, and records the
daemon's RSS and glibc's in-use heap (``mallinfo2``) after each cycle. Flat means: the least-squares slope of RSS over the last third of
the run, extrapolated over a day of one-minute cycles, is under 10 % of the RSS (rolling windows
trimmed, caches bounded, audit rows pruned). Fitting the last third keeps a one-off re-allocation
step earlier on from reading as a leak; ``--cycles 300`` shows more of the turnover. The in-use
heap beside RSS separates memory the process holds (a creep) from pages glibc keeps after a free
(fragmentation, arenas): both are reported per cycle from cycle 100 on.

    nice -n 10 python bench/memory_bound.py                 # 10k series, 6 h lookback, 100 cycles
    nice -n 10 python bench/memory_bound.py --cycles 30     # quicker

Prints the RSS series summary and writes ``bench/results/memory_bound.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import machine, prepare_dataset, run_worker, start_prometheus


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--lookback-hours", type=float, default=6.0, help="the daemon's default lookback")
    p.add_argument("--cycles", type=int, default=100, help="steady cycles after the cold one")
    p.add_argument("--detectors", default="default")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/aiops-bench"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "memory_bound.json")
    p.add_argument("--timeout", type=float, default=4 * 3600)
    args = p.parse_args()

    # History must cover the lookback at the first cycle plus one step per steady cycle.
    hours = float(np.ceil(args.lookback_hours + args.cycles / 60 + 0.5))
    ds = prepare_dataset(args.series, hours, args.workdir)
    print(
        f"{ds.series:,} series x {hours:g}h ready; running {args.cycles} steady cycles ...", file=sys.stderr, flush=True
    )
    prom = start_prometheus(ds)
    t0 = time.perf_counter()
    try:
        result = run_worker(
            prom.url,
            hours_lookback=args.lookback_hours,
            steady=args.cycles,
            workdir=args.workdir,
            detectors=args.detectors,
            timeout_s=args.timeout,
        )
    finally:
        prom.stop()
    elapsed = time.perf_counter() - t0

    rss = np.array([c["rss_mib"] for c in result["cycles"]])
    heap = np.array([c.get("malloc_in_use_mib", np.nan) for c in result["cycles"]])
    walls = np.array([c["wall_s"] for c in result["cycles"]])
    # A one-off step (all window buffers re-allocating together when their headroom fills) is
    # bounded; a leak keeps climbing. So: the largest single-cycle step is reported apart, and
    # the trend is fitted over the last third, after the windows have filled and turned over.
    tail = rss[2 * len(rss) // 3 :]
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) > 2 else float("nan")
    heap_tail = heap[2 * len(heap) // 3 :]
    heap_slope = (
        float(np.polyfit(np.arange(len(heap_tail)), heap_tail, 1)[0])
        if len(heap_tail) > 2 and np.isfinite(heap_tail).all()
        else float("nan")
    )
    # From cycle 100 (or a tenth of the run) on: past the first turns of every window and cache.
    settled = min(100, len(rss) // 10)

    def per_cycle(series: np.ndarray) -> float:
        n = len(series) - 1 - settled
        return float((series[-1] - series[settled]) / n) if n > 0 else float("nan")

    steps = np.diff(rss)
    big = int(np.argmax(steps)) if len(steps) else 0
    summary = {
        "series": ds.series,
        "frame_series": result["cycles"][0]["series"],
        "lookback_hours": args.lookback_hours,
        "cycles": len(rss) - 1,
        "detectors": result["detectors"],
        "rss_start_mib": result["rss_start_mib"],
        "rss_after_cold_mib": float(rss[0]),
        "rss_after_cycle_10_mib": float(rss[min(10, len(rss) - 1)]),
        "rss_last_mib": float(rss[-1]),
        "rss_max_mib": float(rss.max()),
        "peak_rss_mib": result["peak_rss_mib"],
        "slope_mib_per_cycle_last_third": slope,
        "largest_step_mib": float(steps[big]) if len(steps) else 0.0,
        "largest_step_after_cycle": big,
        "extrapolated_growth_mib_per_day": slope * 1440,
        "steady_wall_median_s": float(np.median(walls[1:])) if len(walls) > 1 else float("nan"),
        "elapsed_s": elapsed,
        "rss_per_cycle_mib": rss.round(1).tolist(),
        "settled_cycle": settled,
        "rss_growth_kib_per_cycle_after_settled": per_cycle(rss) * 1024,
        "malloc_in_use_after_cold_mib": float(heap[0]),
        "malloc_in_use_settled_mib": float(heap[settled]),
        "malloc_in_use_last_mib": float(heap[-1]),
        "malloc_in_use_growth_kib_per_cycle_after_settled": per_cycle(heap) * 1024,
        "malloc_in_use_slope_kib_per_cycle_last_third": heap_slope * 1024,
        "malloc_in_use_per_cycle_mib": heap.round(2).tolist(),
        "window_slides": result["cycles"][-1].get("window_slides", 0),
        "window_moves": result["cycles"][-1].get("window_moves", 0),
        "errors": sorted({e for c in result["cycles"] for e in c["errors"]}),
        "cycles_with_errors": sum(1 for c in result["cycles"] if c["errors"]),
    }
    flat = abs(summary["extrapolated_growth_mib_per_day"]) < 0.1 * summary["rss_last_mib"]
    summary["flat"] = bool(flat)
    print(
        f"{summary['series']:,} series ({summary['frame_series']:,} in the frame), {summary['cycles']} steady cycles, "
        f"lookback {args.lookback_hours:g}h, detectors {', '.join(summary['detectors'])}\n"
        f"RSS after cold {summary['rss_after_cold_mib']:.0f} MiB, after cycle 10 {summary['rss_after_cycle_10_mib']:.0f} MiB, "
        f"last {summary['rss_last_mib']:.0f} MiB, max {summary['rss_max_mib']:.0f} MiB, peak (HWM) {summary['peak_rss_mib']:.0f} MiB\n"
        f"largest step {summary['largest_step_mib']:.1f} MiB after cycle {big}; "
        f"last-third slope {slope * 1024:.1f} KiB/cycle = {summary['extrapolated_growth_mib_per_day']:.1f} MiB/day "
        f"at one cycle a minute: {'flat' if flat else 'GROWING'}\n"
        f"from cycle {settled} to the last: RSS {summary['rss_growth_kib_per_cycle_after_settled']:.1f} KiB/cycle, "
        f"glibc in use {summary['malloc_in_use_settled_mib']:.1f} -> {summary['malloc_in_use_last_mib']:.1f} MiB "
        f"({summary['malloc_in_use_growth_kib_per_cycle_after_settled']:.1f} KiB/cycle; last-third slope "
        f"{summary['malloc_in_use_slope_kib_per_cycle_last_third']:.1f} KiB/cycle)\n"
        f"window columns at the end of their arrays: slid in place {summary['window_slides']}, "
        f"moved to new arrays {summary['window_moves']}\n"
        f"steady cycle median {summary['steady_wall_median_s']:.2f}s"
    )
    for e in summary["errors"]:
        print(f"note: cycle error ({summary['cycles_with_errors']} cycles had errors): {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "result": summary}, indent=1))
    print(f"wrote {args.out}")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
