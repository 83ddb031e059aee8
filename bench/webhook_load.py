"""Latency and throughput of the daemon's Alertmanager webhook under a bounded local load (issue 8).

Starts the daemon's real HTTP server (``Daemon`` with ``webhook_for``: bearer check, size limit,
JSON and schema validation, one SQLite transaction per request) on loopback, then sends a fixed
number of requests from a fixed thread pool, each with its own alert fingerprint; every
``--invalid-every``-th request carries a wrong token and must be refused. Prints latency
percentiles and checks that every valid alert was stored exactly once.

    nice -n 10 python bench/webhook_load.py --requests 2000 --workers 16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from aiops.config import parse_config
from aiops.daemon import Daemon, webhook_for
from aiops.engine.pipeline import Pipeline
from aiops.server import WEBHOOK_PATH

TOKEN = "bench-webhook-token"


def payload(i: int, alerts: int) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": "aiops", "alerts": [
        {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": f"p-{i}-{a}"},
         "annotations": {"summary": "crash looping"}, "fingerprint": f"fp-{i:06d}-{a}"} for a in range(alerts)]}).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(n: int, workers: int, alerts: int, invalid_every: int, directory: Path) -> dict[str, float]:
    os.environ["BENCH_WEBHOOK_TOKEN"] = TOKEN
    cfg = parse_config({
        "prometheus": {"url": "http://127.0.0.1:9"},  # never queried: no cycle runs
        "server": {"host": "127.0.0.1", "port": 0, "webhook_token": {"env": "BENCH_WEBHOOK_TOKEN"}},
        "notify": {"channels": {}},
        "state": {"path": str(directory / "state.sqlite")},
    })
    pipeline = Pipeline.from_config(cfg)
    daemon = Daemon(cfg, pipeline, webhook=webhook_for(cfg, pipeline))
    daemon.server.start()
    url = f"http://127.0.0.1:{daemon.server.port}{WEBHOOK_PATH}"
    local = threading.local()

    def send(i: int) -> tuple[int, int, float]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        token = "wrong" if invalid_every and i % invalid_every == 0 else TOKEN
        t0 = time.perf_counter()
        r = session.post(url, data=payload(i, alerts), headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return i, r.status_code, time.perf_counter() - t0

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(send, range(n)))
        elapsed = time.perf_counter() - t0
        stored = pipeline.store.query("SELECT COUNT(*) AS n, COUNT(DISTINCT fingerprint) AS d FROM notify_inbox")[0]
    finally:
        daemon.server.stop()
        pipeline.close()
    valid = {i for i in range(n) if not (invalid_every and i % invalid_every == 0)}
    wrong = [(i, s) for i, s, _ in results if s != (200 if i in valid else 403)]
    ms = [d * 1000 for _, _, d in results]
    return {
        "requests": n, "workers": workers, "alerts_per_request": alerts, "seconds": round(elapsed, 2),
        "requests_per_s": round(n / elapsed), "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1), "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1), "mean_ms": round(statistics.fmean(ms), 1),
        "unexpected_status": len(wrong), "stored": int(stored["n"]), "expected_stored": len(valid) * alerts,
        "exactly_once": int(stored["n"]) == int(stored["d"]) == len(valid) * alerts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--alerts", type=int, nargs="+", default=[1, 20], help="alerts per request (one run each)")
    parser.add_argument("--invalid-every", type=int, default=10, help="every Nth request has a wrong token (0: none)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one "rejected a wrong token" line per invalid request
    for alerts in args.alerts:
        with tempfile.TemporaryDirectory(prefix="aiops-webhook-bench-") as tmp:
            figures = run(args.requests, args.workers, alerts, args.invalid_every, Path(tmp))
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
