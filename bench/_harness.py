"""Shared machinery of the cycle benchmarks: data, a real Prometheus, and a measured daemon.

The daemon side runs in a child process (``python bench/_harness.py worker ...``) so its peak RSS
is the daemon's own, not the generator's or the orchestrator's. The child drives
``Pipeline.run_cycle`` with simulated "now" values inside the backfilled history: a cold cycle,
then steady cycles one step apart. Right after each cycle it fetches the very same ranges with
plain ``requests`` (same queries, same start/end/step, same concurrency) so the cost of the daemon
is compared with the cost of Prometheus answering, measured in the same run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

# A fixed end keeps generated files and TSDBs reusable between runs (--reuse).
BENCH_END = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
STEP = 60.0
# Backfilled blocks are 54 h (promtool's --max-block-duration); capping Prometheus's compaction
# there keeps it from rewriting them in the background while cycles are timed. The default
# 2 min query timeout is too short for a 24 h range over 6k series on a loaded 2-core machine.
COMPACTION_ARGS = ["--storage.tsdb.max-block-duration=54h", "--query.timeout=15m"]


# --- data and Prometheus (orchestrator side) ----------------------------------------------------
@dataclass
class Dataset:
    series: int  # raw series in Prometheus
    samples: int
    hours: float
    generate_s: float
    backfill_s: float
    file_bytes: int
    tsdb_dir: Path


def prepare_dataset(
    target_series: int, hours: float, workdir: Path, *, reuse: bool = True, part_samples: int = 15_000_000
) -> Dataset:
    """Generate ~``target_series`` series × ``hours`` ending at BENCH_END and backfill them."""
    from aiops.demo.prometheus import backfill
    from aiops.demo.synth import Scenario, Topology, write_openmetrics

    name = f"synth-{target_series}-{hours:g}h"
    tsdb = workdir / name / "tsdb"  # PrometheusServer(workdir / name) serves <data_dir>/tsdb
    meta_path = workdir / name / "dataset.json"
    if reuse and meta_path.exists() and tsdb.is_dir():
        meta = json.loads(meta_path.read_text())
        return Dataset(**{**meta, "tsdb_dir": tsdb})
    (workdir / name).mkdir(parents=True, exist_ok=True)
    scenario = Scenario.sized(target_series, duration=timedelta(hours=hours), end=BENCH_END, faults=_faults())
    # promtool keeps a whole block in memory (~150 B a sample: 22 GB for 100k × 24 h), so the
    # history goes in as parts of at most ``part_samples``, disjoint in series; Prometheus then
    # merges the overlapping blocks itself (waited for in _compact, before anything is timed).
    points = int(hours * 3600 // STEP) + 1
    parts = max(1, math.ceil(Topology.build(scenario).series_count() * points / part_samples))
    om = workdir / name / "history.om"
    if tsdb.exists():
        shutil.rmtree(tsdb)
    generate_s = backfill_s = 0.0
    size = series = samples = 0
    for k in range(parts):
        t0 = time.perf_counter()
        result = write_openmetrics(scenario, om, part=k, parts=parts)
        t1 = time.perf_counter()
        backfill(om, tsdb)
        backfill_s += time.perf_counter() - t1
        generate_s += t1 - t0
        size += om.stat().st_size
        series += result.series
        samples += result.samples
        om.unlink()  # 100k × 24 h is ~23 GB of text; the TSDB is ~20x smaller
    if parts > 1:
        backfill_s += _compact(workdir / name)
    ds = Dataset(series, samples, hours, generate_s, backfill_s, size, tsdb)
    assert Topology.build(scenario).series_count() == series
    meta_path.write_text(json.dumps({k: v for k, v in asdict(ds).items() if k != "tsdb_dir"}))
    return ds


def _compact(data_dir: Path, timeout_s: float = 900) -> float:
    """Start Prometheus on the TSDB and wait until it has merged the overlapping part blocks."""
    from aiops.demo.prometheus import PrometheusServer

    tsdb = data_dir / "tsdb"
    t0 = time.perf_counter()
    server = PrometheusServer(data_dir, startup_timeout=600, extra_args=COMPACTION_ARGS).start()
    try:
        while time.perf_counter() - t0 < timeout_s:
            blocks = [p for p in tsdb.iterdir() if p.is_dir() and (p / "meta.json").exists()]
            metas = [json.loads((b / "meta.json").read_text()) for b in blocks]
            ranges = {(m["minTime"], m["maxTime"]) for m in metas}
            if len(blocks) == len(ranges):  # no two blocks cover the same range any more
                break
            time.sleep(2)
    finally:
        server.stop()
    return time.perf_counter() - t0


def _faults() -> list[Any]:
    from aiops.demo.synth import CrashLoop, GpuXid, LatencyRegression, MemoryLeak

    # A few faults so detectors and policy have real work, as in a cluster with problems.
    return [MemoryLeak(pod=0), CrashLoop(pod=3), GpuXid(gpu=0), LatencyRegression(model=0)]


def start_prometheus(ds: Dataset) -> Any:
    """Serve the dataset's TSDB. Blocks are 54 h already; capping compaction there keeps
    Prometheus from merging them in the background while the cycles are measured."""
    from aiops.demo.prometheus import PrometheusServer

    return PrometheusServer(ds.tsdb_dir.parent, startup_timeout=600, extra_args=COMPACTION_ARGS).start()


def run_worker(
    url: str,
    *,
    hours_lookback: float,
    steady: int,
    workdir: Path,
    detectors: str,
    timeout_s: float,
    profile: Path | None = None,
    max_points_per_query: int | None = None,
    shard: str | None = None,
) -> dict:
    """Run the daemon side in a child process and return its JSON result.

    Each run gets a fresh state database, so audit rows of earlier runs never weigh on it.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "worker",
        "--url",
        url,
        "--lookback-hours",
        f"{hours_lookback:g}",
        "--steady",
        str(steady),
        "--state",
        str(state_dir / "state.sqlite"),
        "--detectors",
        detectors,
        *(["--profile", str(profile)] if profile else []),
        *(["--max-points-per-query", str(max_points_per_query)] if max_points_per_query else []),
        *(["--shard", shard] if shard else []),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    if profile:
        print(proc.stderr, file=sys.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the daemon side (worker process) -----------------------------------------------------------
def _proc_status(field_name: str) -> float:
    """A /proc/self/status memory field in MiB (VmRSS now, VmHWM peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return math.nan


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _glibc_in_use_mib() -> float:
    """Bytes glibc's malloc has handed out and not had back (``mallinfo2``: uordblks in the arenas
    plus hblkhd in mmapped chunks), in MiB; NaN where the C library has no mallinfo2 (musl, glibc
    before 2.33). Beside RSS it tells a growing heap (this grows) from fragmentation or pages glibc
    has not returned (RSS grows, this does not)."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return math.nan
    fn.restype = _Mallinfo2
    info = fn()
    return (info.uordblks + info.hblkhd) / 2**20


def _window_count(pipeline: Any, what: str) -> int:
    """A counter summed over the collector's signal windows (0 where this tree's window has none)."""
    windows = getattr(pipeline.collector.window, "_signals", {})
    return sum(getattr(w, what, 0) for w in windows.values())


@dataclass
class CycleFigures:
    kind: str  # cold | steady
    now: float
    wall_s: float
    cpu_s: float  # the daemon process's CPU seconds (all threads): robust to a loaded machine
    stages: dict[str, float]
    series: int
    points: int  # in the frame the cycle saw
    fetched_points: int
    bare_fetch_s: float
    bare_decode_s: float
    bare_bytes: int
    rss_mib: float
    findings: int
    malloc_in_use_mib: float = math.nan  # glibc's in-use heap (see _glibc_in_use_mib)
    # Times the window's live columns reached the end of their arrays so far: slid in place / moved
    # to new arrays because a view of them was still held (aiops/collect/window.py).
    window_slides: int = 0
    window_moves: int = 0
    detector_s: dict[str, float] = field(default_factory=dict)
    detector_cpu_s: dict[str, float] = field(default_factory=dict)  # thread CPU, robust to load
    collect_cpu_s: float = 0.0  # the process's CPU while collecting (the fetch threads: nothing else runs)
    errors: list[str] = field(default_factory=list)


def _ranges(
    signals: dict[str, str], now: float, previous: float | None, lookback: float
) -> dict[str, tuple[float, float]]:
    """The [start, end] the collector asks for each signal at ``now`` (mirrors Collector.collect)."""
    from aiops.collect.collector import OVERLAP_STEPS

    start = now - lookback if previous is None else max(now - lookback, previous - OVERLAP_STEPS * STEP)
    lo = math.ceil(start / STEP) * STEP
    hi = math.floor(now / STEP) * STEP
    return {name: (lo, hi) for name in signals}


def bare_fetch(
    session: requests.Session,
    url: str,
    queries: dict[str, str],
    ranges: dict[str, tuple[float, float]],
    workers: int,
    max_points: int,
) -> tuple[float, float, int, int, list[str]]:
    """Fetch the same ranges, in the same chunks, with plain requests.

    Returns (fetch s, JSON decode s, bytes, points, errors); a failed request is reported, not raised.
    """
    requests_: list[tuple[str, float, float]] = []
    for name, (lo, hi) in ranges.items():
        while lo <= hi:  # the collector's chunking: at most max_points per series per request
            top = min(hi, lo + (max_points - 1) * STEP)
            requests_.append((name, lo, top))
            lo = top + STEP

    def one(item: tuple[str, float, float]) -> bytes | str:
        name, lo, hi = item
        resp = session.get(
            f"{url}/api/v1/query_range",
            params={"query": queries[name], "start": f"{lo:.3f}", "end": f"{hi:.3f}", "step": f"{STEP:g}"},
            timeout=900,
        )
        if resp.status_code != 200:
            return f"{name}: HTTP {resp.status_code} {resp.text[:200]}"
        return resp.content

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(one, requests_))
    fetch_s = time.perf_counter() - t0
    bodies = [a for a in answers if isinstance(a, bytes)]
    t1 = time.perf_counter()
    points = sum(len(r["values"]) for b in bodies for r in json.loads(b)["data"]["result"])
    decode_s = time.perf_counter() - t1
    return fetch_s, decode_s, sum(len(b) for b in bodies), points, [a for a in answers if isinstance(a, str)]


def detector_configs(which: str) -> list[dict[str, Any]]:
    from aiops import plugins
    from aiops.config.detect import default_detectors

    if which == "default":
        return [d.model_dump(exclude_none=True) for d in default_detectors()]
    names = sorted(plugins.available(plugins.DETECTORS)) if which == "all" else which.split(",")
    loadable = []
    for name in names:
        try:
            plugins.load(plugins.DETECTORS, name)
        except plugins.PluginError:
            continue  # not implemented yet in this tree: measured without it (listed in the JSON)
        loadable.append({"plugin": name})
    return loadable


def _time_detectors(pipeline: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Wrap each detector's ``run`` (``detect`` for older ones), and each member of a composite
    one (``ensemble/seasonal``), to add up its wall and its thread CPU seconds, per instance."""
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def wrap(name: str, det: Any) -> None:
        attr = "run" if hasattr(det, "run") else "detect"
        inner = getattr(det, attr)

        def timed(frame: Any, _inner: Any = inner, _name: str = name) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return _inner(frame)
            finally:
                seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - t0
                cpu[_name] = cpu.get(_name, 0.0) + time.thread_time() - c0

        setattr(det, attr, timed)

    for name, det in pipeline.detectors:
        wrap(name, det)
        for member, inner in getattr(det, "members", {}).items():
            wrap(f"{name}/{member}", inner)
    return seconds, cpu


def _time_collect(pipeline: Any) -> list[float]:
    """Wrap the collector's ``collect`` to add up the process CPU it takes (its fetch threads'
    included: the cycle's other stages wait for it)."""
    spent: list[float] = []
    inner = pipeline.collector.collect

    def timed(*args: Any, **kwargs: Any) -> Any:
        c0 = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent.append(time.process_time() - c0)

    pipeline.collector.collect = timed
    return spent


class _FixedShards:
    """Holds the same shards, always: what a replica of a settled sharded deployment sees."""

    def __init__(self, held: frozenset[int], shards: int) -> None:
        from aiops.engine.shards import ShardLeases

        self.shards, self._held = shards, held
        self.restrict = ShardLeases.restrict.__get__(self)
        self.keep = ShardLeases.keep.__get__(self)
        self.owns = ShardLeases.owns.__get__(self)

    def held(self) -> frozenset[int]:
        return self._held


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from aiops.config import parse_config
    from aiops.engine.pipeline import Pipeline

    logging.disable(logging.WARNING)  # findings on the synthetic faults would flood stderr
    lookback = args.lookback_hours * 3600
    config = parse_config(
        {
            "prometheus": {
                "url": args.url,
                "lookback": f"{args.lookback_hours:g}h",
                "step": "60s",
                "timeout": "600s",
                **({"max_points_per_query": args.max_points_per_query} if args.max_points_per_query else {}),
            },
            "detectors": detector_configs(args.detectors),
            "safety": {"mode": "observe", "dry_run": True},
            "notify": {"channels": {}},
            "state": {"path": args.state},
            "logging": {"level": "ERROR", "format": "text"},
        },
        "<bench>",
    )
    queries = {name: s.query for name, s in config.resolved_signals().items()}
    workers = config.prometheus.max_concurrency
    session = requests.Session()
    rss_start = _proc_status("VmRSS")
    pipeline = Pipeline.from_config(config)
    if args.shard:
        # One replica of a sharded deployment: it holds shards k,... of n (no Kubernetes needed to
        # measure what that replica's cycle costs; the Leases are tested in tests/engine/test_shards.py).
        held, n = args.shard.split("/")
        pipeline.shards = _FixedShards(frozenset(int(k) for k in held.split(",")), int(n))  # type: ignore[assignment]
    detector_s, detector_cpu_s = _time_detectors(pipeline)
    collect_cpu = _time_collect(pipeline)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    end = BENCH_END.timestamp()
    first = end - args.steady * STEP
    cycles: list[CycleFigures] = []
    previous: float | None = None
    try:
        for k in range(args.steady + 1):
            now = first + k * STEP
            detector_s.clear()
            detector_cpu_s.clear()
            collect_cpu.clear()
            if profiler is not None and k > 0:  # profile the steady cycles only
                profiler.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            report = pipeline.run_cycle(datetime.fromtimestamp(now, UTC))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if profiler is not None:
                profiler.disable()
            ranges = _ranges(queries, now, previous, lookback)
            fetch_s, decode_s, nbytes, fetched, bare_errors = bare_fetch(
                session, args.url, queries, ranges, workers, config.prometheus.max_points_per_query
            )
            cycles.append(
                CycleFigures(
                    kind="cold" if k == 0 else "steady",
                    now=now,
                    wall_s=wall,
                    cpu_s=cpu,
                    stages=dict(report.stage_seconds),
                    series=report.series_count,
                    points=report.points,
                    fetched_points=fetched,
                    bare_fetch_s=fetch_s,
                    bare_decode_s=decode_s,
                    bare_bytes=nbytes,
                    rss_mib=_proc_status("VmRSS"),
                    malloc_in_use_mib=_glibc_in_use_mib(),
                    window_slides=_window_count(pipeline, "slides"),
                    window_moves=_window_count(pipeline, "moves"),
                    findings=len(report.findings),
                    detector_s=dict(detector_s),
                    detector_cpu_s=dict(detector_cpu_s),
                    collect_cpu_s=sum(collect_cpu),
                    errors=[f"{e.stage}: {e.message}" for e in report.errors] + [f"bare: {e}" for e in bare_errors],
                )
            )
            previous = now
    finally:
        pipeline.close()
    if profiler is not None:
        import pstats

        profiler.dump_stats(args.profile)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    return {
        "detectors": [d["plugin"] for d in detector_configs(args.detectors)],
        "max_points_per_query": config.prometheus.max_points_per_query,
        "signals": len(queries),
        "concurrency": workers,
        "rss_start_mib": rss_start,
        "peak_rss_mib": _proc_status("VmHWM"),
        "cycles": [asdict(c) for c in cycles],
    }


# --- reporting ---------------------------------------------------------------------------------
def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A fixed-width text table of ``rows`` (dicts) with (key, header) columns."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[fmt(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) for (_, h), w in zip(columns, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import platform

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_at_start": os.getloadavg(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--url", required=True)
    w.add_argument("--lookback-hours", type=float, required=True)
    w.add_argument("--steady", type=int, default=5)
    w.add_argument("--state", required=True)
    w.add_argument("--detectors", default="all")
    w.add_argument("--profile", help="write cProfile stats of the steady cycles here")
    w.add_argument("--max-points-per-query", type=int, help="prometheus.max_points_per_query for the daemon")
    w.add_argument("--shard", help="K[,K...]/N: run as the replica holding shards K... of N")
    args = p.parse_args()
    print(json.dumps(worker(args)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
