"""Cycle cost as the cluster grows, measured against Prometheus itself (issue 7, part 1).

For each size N (raw series in Prometheus): generate N series × H hours of synthetic cluster
history (aiops.demo.synth, with a few injected faults), backfill it into a real Prometheus with
promtool, then run the daemon's full pipeline in a child process: one cold cycle (fetches the
whole lookback) and S steady cycles one step apart (incremental fetch). After every cycle the
same ranges are fetched with bare ``requests`` at the same concurrency: that is "Prometheus
alone", and the ratio cycle / bare is the daemon's overhead.

    nice -n 10 python bench/cycle_scaling.py                       # 1k and 10k × 24 h
    nice -n 10 python bench/cycle_scaling.py --sizes 100000 --hours 6

Prints a table and writes ``bench/results/cycle_scaling.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import machine, prepare_dataset, run_worker, start_prometheus, table

STAGES = ("collect", "detect", "decide", "act", "notify", "record")


def summarise(n: int, ds: Any, result: dict[str, Any], startup_s: float) -> dict[str, Any]:
    cycles = result["cycles"]
    cold, steady = cycles[0], cycles[1:]

    def med(key: str, stage: str | None = None) -> float:
        vals = [c["stages"].get(stage, 0.0) if stage else c[key] for c in steady]
        return statistics.median(vals) if vals else float("nan")

    row: dict[str, Any] = {
        "target_series": n,
        "raw_series": ds.series,
        "samples": ds.samples,
        "hours": ds.hours,
        "generate_s": ds.generate_s,
        "backfill_s": ds.backfill_s,
        "prometheus_start_s": startup_s,
        "frame_series": cold["series"],
        "signals": result["signals"],
        "detectors": result["detectors"],
        "max_points_per_query": result.get("max_points_per_query"),
        "cold_wall_s": cold["wall_s"],
        "cold_cpu_s": cold.get("cpu_s", float("nan")),
        "steady_cpu_s": statistics.median(c.get("cpu_s", float("nan")) for c in steady) if steady else float("nan"),
        "steady_collect_cpu_s": (
            statistics.median(c.get("collect_cpu_s", float("nan")) for c in steady) if steady else float("nan")
        ),
        "cold_collect_cpu_s": cold.get("collect_cpu_s", float("nan")),
        "cold_bare_s": cold["bare_fetch_s"],
        "cold_bare_decode_s": cold["bare_decode_s"],
        "cold_ratio": cold["wall_s"] / cold["bare_fetch_s"],
        "cold_points": cold["points"],
        "cold_points_per_s": cold["points"] / cold["wall_s"],
        "steady_wall_s": med("wall_s"),
        "steady_bare_s": med("bare_fetch_s"),
        "steady_ratio": med("wall_s") / med("bare_fetch_s"),
        "steady_detect_decide_ratio": (med("", "detect") + med("", "decide")) / med("bare_fetch_s"),
        "steady_fetched_points": med("fetched_points"),
        "steady_points_per_s": med("points") / med("wall_s"),
        "peak_rss_mib": result["peak_rss_mib"],
        "rss_after_cold_mib": cold["rss_mib"],
        "rss_after_last_mib": cycles[-1]["rss_mib"],
        "findings_cold": cold["findings"],
        "errors": sorted({e for c in cycles for e in c["errors"]}),
    }
    detectors = sorted({d for c in cycles for d in c["detector_s"]})
    for d in detectors:
        row[f"cold_det_{d}_s"] = cold["detector_s"].get(d, 0.0)
        row[f"steady_det_{d}_s"] = statistics.median(c["detector_s"].get(d, 0.0) for c in steady) if steady else 0.0
        row[f"steady_det_cpu_{d}_s"] = (
            statistics.median(c.get("detector_cpu_s", {}).get(d, 0.0) for c in steady) if steady else 0.0
        )
    for stage in STAGES:
        row[f"cold_{stage}_s"] = cold["stages"].get(stage, 0.0)
        row[f"steady_{stage}_s"] = med("", stage)
    row["cycles"] = cycles
    return row


def targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["target_series"] == 10_000:
            out.append(
                f"10k steady total {r['steady_wall_s']:.3f}s vs 1.5 x bare {1.5 * r['steady_bare_s']:.3f}s: "
                + ("met" if r["steady_ratio"] <= 1.5 else "MISSED")
            )
            out.append(
                f"10k steady detect+decide {r['steady_detect_decide_ratio']:.2f} x bare (target <= 0.5): "
                + ("met" if r["steady_detect_decide_ratio"] <= 0.5 else "MISSED")
            )
            if r["hours"] >= 24:
                out.append(
                    f"10k x {r['hours']:g}h cold cycle {r['cold_wall_s']:.1f}s (target <= 60s): "
                    + ("met" if r["cold_wall_s"] <= 60 else "MISSED")
                )
        if r["target_series"] >= 100_000:
            out.append(
                f"{r['target_series'] // 1000}k x {r['hours']:g}h peak RSS {r['peak_rss_mib']:.0f} MiB (target <= 2048): "
                + ("met" if r["peak_rss_mib"] <= 2048 else "MISSED")
            )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000], help="raw series counts")
    p.add_argument("--hours", type=float, default=24.0, help="history length (and the daemon's lookback)")
    p.add_argument("--steady", type=int, default=5, help="steady cycles after the cold one")
    p.add_argument(
        "--detectors", default="default", help="'default' (the config default), 'all' loadable, or a comma list"
    )
    p.add_argument("--workdir", type=Path, default=Path("/tmp/aiops-bench"), help="data (reused between runs)")
    p.add_argument("--fresh", action="store_true", help="regenerate data even if the workdir has it")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cycle_scaling.json")
    p.add_argument(
        "--max-points-per-query",
        type=int,
        help="the daemon's prometheus.max_points_per_query (smaller = more, smaller requests)",
    )
    p.add_argument("--profile", type=Path, help="cProfile the steady cycles (prints the top; .pstats per size)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one size's cycles")
    p.add_argument("--shard", help="K[,K...]/N: measure the replica that holds shards K... of N (sharding.shards: N)")
    args = p.parse_args()

    rows = []
    for n in args.sizes:
        print(f"[{n:,} series x {args.hours:g}h] preparing data ...", file=sys.stderr, flush=True)
        ds = prepare_dataset(n, args.hours, args.workdir, reuse=not args.fresh)
        print(
            f"  {ds.series:,} series, {ds.samples:,} samples, {ds.file_bytes / 1e9:.2f} GB text; "
            f"generate {ds.generate_s:.1f}s, backfill {ds.backfill_s:.1f}s",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.perf_counter()
        prom = start_prometheus(ds)
        startup = time.perf_counter() - t0
        try:
            print(f"  Prometheus up in {startup:.1f}s; running cycles ...", file=sys.stderr, flush=True)
            result = run_worker(
                prom.url,
                hours_lookback=args.hours,
                steady=args.steady,
                workdir=args.workdir,
                detectors=args.detectors,
                timeout_s=args.timeout,
                profile=args.profile.with_suffix(f".{n}.pstats") if args.profile else None,
                max_points_per_query=args.max_points_per_query,
                shard=args.shard,
            )
        finally:
            prom.stop()
        rows.append(summarise(n, ds, result, startup))

    print()
    print(
        table(
            rows,
            [
                ("raw_series", "series"),
                ("frame_series", "frame"),
                ("cold_wall_s", "cold s"),
                ("cold_cpu_s", "cpu s"),
                ("cold_collect_cpu_s", "collect cpu"),
                ("cold_collect_s", "collect"),
                ("cold_detect_s", "detect"),
                ("cold_decide_s", "decide"),
                ("cold_record_s", "record"),
                ("cold_bare_s", "bare s"),
                ("cold_ratio", "ratio"),
                ("cold_points_per_s", "pts/s"),
                ("peak_rss_mib", "peak MiB"),
            ],
        )
    )
    print()
    print(
        table(
            rows,
            [
                ("raw_series", "series"),
                ("steady_wall_s", "steady s"),
                ("steady_cpu_s", "cpu s"),
                ("steady_collect_cpu_s", "collect cpu"),
                ("steady_collect_s", "collect"),
                ("steady_detect_s", "detect"),
                ("steady_decide_s", "decide"),
                ("steady_record_s", "record"),
                ("steady_bare_s", "bare s"),
                ("steady_ratio", "ratio"),
                ("steady_detect_decide_ratio", "(det+dec)/bare"),
                ("steady_points_per_s", "pts/s"),
            ],
        )
    )
    print()
    for r in rows:
        dets = sorted(k[len("steady_det_cpu_") : -2] for k in r if k.startswith("steady_det_cpu_"))
        parts = ", ".join(f"{d} {r[f'cold_det_{d}_s']:.2f}/{r[f'steady_det_{d}_s']:.3f}" for d in dets)
        print(f"{r['raw_series']:,} series, detector wall seconds cold/steady: {parts}")
        cpu = ", ".join(f"{d} {1000 * r[f'steady_det_cpu_{d}_s']:.1f}" for d in dets)
        print(f"{r['raw_series']:,} series, steady detector thread CPU ms (median): {cpu}")
    print()
    for line in targets(rows):
        print(line)
    for r in rows:
        for e in r["errors"]:
            print(f"note: {r['raw_series']:,} series: cycle error: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = {str(r["target_series"]) + f"x{r['hours']:g}h": r for r in existing.get("runs", [])}
    runs.update({str(r["target_series"]) + f"x{r['hours']:g}h": r for r in rows})
    args.out.write_text(json.dumps({"machine": machine(), "runs": list(runs.values())}, indent=1, default=str))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
