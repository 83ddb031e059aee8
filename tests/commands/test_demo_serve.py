"""`aiops demo --serve` as a dashboard backend: the shipped rules loaded, the daemon scraped, and
the demo series kept moving after the backfilled history ends, so panels stay live."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from aiops.demo.prometheus import free_port
from tests.dashboards.panels_with_data import coverage

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
READY_NODES = 'kube_node_status_condition{condition="Ready",status="true"}'


def _query(url: str, expr: str) -> list[dict]:
    return requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]


@pytest.mark.timeout(360)
def test_served_demo_feeds_the_dashboards(tmp_path: Path) -> None:
    port = free_port()
    err = tmp_path / "err.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiops", "demo", "--serve", "--port", str(port), "--workdir", str(tmp_path / "w")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err.open("w"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"Prometheus at (http://[0-9.:]+)", err.read_text())
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert url, err.read_text()[-3000:]
        started = time.time()

        def ready() -> bool:
            # The daemon scraped, the live feed scraped past the end of the backfill, rules evaluated.
            daemon = _query(url, 'up{job="aiops"} == 1')
            fresh = _query(url, f"timestamp({READY_NODES}) > {started + 20}")
            recorded = _query(url, "gpu:dcgm_gpu_util:avg_5m")
            return bool(daemon and fresh and recorded)

        while not ready():
            assert time.monotonic() < deadline + 60, err.read_text()[-3000:]
            time.sleep(2)
        rules = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert {Path(g["file"]).name for g in rules} == {"self.rules.yml", "workloads.rules.yml"}
        # The live feed continues the backfilled series (same labels), not new ones beside them.
        assert len(_query(url, READY_NODES)) == 3
        # Rate panels fill once Prometheus holds two scrapes of the daemon inside their window: poll
        # (bounded) rather than count at the first ready instant.
        result = coverage(url)
        settle = time.monotonic() + 120
        while result.with_data < 45 and time.monotonic() < settle:
            time.sleep(5)
            result = coverage(url)
        assert result.with_data >= 45, result.empty
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
