"""The daemon's memory at 100k series × 24 h, against a synthetic Prometheus (issue 17).

A promtool backfill of 100k series × 24 h needs ~10 parts at 5+ GB of RSS each and most of an
hour of two cores; this bench instead serves the catalog's answers from a seeded generator
(bench/fake_prometheus.py, a child process) and runs the daemon's real pipeline against it in
another child (bench/_harness.py's worker): one cold cycle over the whole lookback, then steady
cycles one step apart, each followed by a bare fetch of the same ranges from the same server.

    nice -n 10 python bench/memory_100k.py --series 33000          # what 100k raw series aggregate to
    nice -n 10 python bench/memory_100k.py --series 100000         # 100k series as the daemon sees them

Prints the daemon's peak RSS (VmHWM: the cold fetch), its RSS after the cold and the last cycle,
the steady cycle's wall and CPU seconds and the bare fetch's, and the targets. What the figures
mean, and what a synthetic server cannot tell, is in bench/README.md ("Issue 17").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import machine, run_worker

BUDGET_MIB = 2048


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=33_000, help="series the daemon sees (the signals' answers)")
    p.add_argument("--hours", type=float, default=24.0, help="the daemon's lookback")
    p.add_argument("--steady", type=int, default=5)
    p.add_argument("--detectors", default="default")
    p.add_argument("--shard", help="K[,K...]/N: run as the replica holding shards K... of N")
    p.add_argument("--pod-lifetime-hours", type=float, default=48.0, help="pods are replaced this often")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--profile", type=Path, help="cProfile the steady cycles into this .pstats file")
    p.add_argument("--malloc-arena-max", default="2", help="MALLOC_ARENA_MAX for the daemon, as the image sets it ('' unset)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "memory_100k.json")
    args = p.parse_args()

    if args.malloc_arena_max:
        os.environ["MALLOC_ARENA_MAX"] = args.malloc_arena_max  # the worker child inherits it
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parent / "fake_prometheus.py"), "--series", str(args.series),
         "--pod-lifetime-hours", str(args.pod_lifetime_hours)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit(f"the fake Prometheus did not start (said {url!r})")
        with tempfile.TemporaryDirectory(prefix="aiops-mem-") as work:
            result = run_worker(
                url, hours_lookback=args.hours, steady=args.steady, workdir=Path(work),
                detectors=args.detectors, timeout_s=args.timeout, shard=args.shard, profile=args.profile,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)

    cycles = result["cycles"]
    cold, steady = cycles[0], cycles[1:]
    med = statistics.median
    row = {
        "series_target": args.series,
        "frame_series": cold["series"],
        "hours": args.hours,
        "shard": args.shard,
        "malloc_arena_max": args.malloc_arena_max,
        "cold_points": cold["points"],
        "cold_wall_s": cold["wall_s"],
        "cold_cpu_s": cold["cpu_s"],
        "cold_bare_s": cold["bare_fetch_s"],
        "peak_rss_mib": result["peak_rss_mib"],
        "rss_start_mib": result["rss_start_mib"],
        "rss_after_cold_mib": cold["rss_mib"],
        "rss_after_last_mib": cycles[-1]["rss_mib"],
        "steady_wall_s": med(c["wall_s"] for c in steady) if steady else None,
        "steady_cpu_s": med(c["cpu_s"] for c in steady) if steady else None,
        "steady_collect_s": med(c["stages"].get("collect", 0.0) for c in steady) if steady else None,
        "steady_detect_s": med(c["stages"].get("detect", 0.0) for c in steady) if steady else None,
        "steady_bare_s": med(c["bare_fetch_s"] for c in steady) if steady else None,
        "errors": sorted({e for c in cycles for e in c["errors"]}),
        "machine": machine(),
    }
    print(f"frame series {row['frame_series']:,}, {row['cold_points']:,} points in the cold window ({args.hours:g} h)")
    print(f"cold cycle   {row['cold_wall_s']:.1f} s wall, {row['cold_cpu_s']:.1f} s CPU; bare fetch {row['cold_bare_s']:.1f} s")
    print(f"RSS          start {row['rss_start_mib']:.0f} MiB, after cold {row['rss_after_cold_mib']:.0f} MiB, "
          f"after last {row['rss_after_last_mib']:.0f} MiB, peak {row['peak_rss_mib']:.0f} MiB")
    if steady:
        print(f"steady       {row['steady_wall_s']:.3f} s wall, {row['steady_cpu_s']:.3f} s CPU "
              f"(collect {row['steady_collect_s']:.3f}, detect {row['steady_detect_s']:.3f}); "
              f"bare fetch {row['steady_bare_s']:.3f} s (the fake server's, not Prometheus's)")
    verdict = "met" if row["peak_rss_mib"] <= BUDGET_MIB else "MISSED"
    print(f"cold peak RSS {row['peak_rss_mib']:.0f} MiB (target <= {BUDGET_MIB}): {verdict}")
    for e in row["errors"]:
        print(f"note: cycle error: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.out.read_text()).get("runs", []) if args.out.exists() else []
    runs.append(row)
    args.out.write_text(json.dumps({"runs": runs}, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
