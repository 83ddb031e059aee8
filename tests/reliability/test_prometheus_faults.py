"""Prometheus misbehaves; the daemon keeps working, takes no action on missing data, and recovers."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from aiops.config import parse_config
from aiops.daemon import Daemon
from aiops.engine.pipeline import Pipeline
from aiops.model import ActionStatus
from aiops.demo.prometheus import PrometheusServer
from tests.prometheus_history import write_history
from tests.collect.test_collector import ONLY_MEMORY

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[tuple[PrometheusServer, datetime]]:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    write_history(tmp_path / "h.om", end)
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "h.om") as server:
        yield server, end


def pipeline_for(url: str, tmp_path: Path, **prometheus: object) -> Pipeline:
    cfg = parse_config({
        "prometheus": {"url": url, "lookback": "3h", "timeout": "2s", "retries": 0, **prometheus},
        "safety": {"mode": "auto", "dry_run": True},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
        **ONLY_MEMORY,
    })
    return Pipeline.from_config(cfg)


def acted(report) -> list:  # noqa: ANN001
    return [r for r in report.results if r.status is not ActionStatus.SKIPPED]


def test_killed_and_restarted_prometheus(prom: tuple[PrometheusServer, datetime], tmp_path: Path) -> None:
    server, end = prom
    pipeline = pipeline_for(server.url, tmp_path)
    try:
        healthy = pipeline.run_cycle(end)
        assert not healthy.degraded and acted(healthy), "the leaky pod is acted on (dry-run) when data is whole"
        assert pipeline.ready()[0]

        server.kill()
        down = pipeline.run_cycle(end)
        assert down.degraded and acted(down) == []
        assert all(e.stage == "collect" and e.temporary for e in down.errors)
        assert pipeline.ready() == (False, "Prometheus did not answer the last cycle")

        server.restart()
        # Same pipeline object: recovery needs no restart of the daemon.
        back = pipeline.run_cycle(end)
        assert not back.degraded and acted(back)
        assert pipeline.ready()[0]
    finally:
        pipeline.close()


class _Proxy(BaseHTTPRequestHandler):
    """Forwards to the real Prometheus; after ``budget`` requests, drops connections (killed mid-cycle)
    or answers after ``delay`` seconds (slow) or with ``status`` (5xx)."""

    upstream = ""
    budget = 10**9
    delay = 0.0
    status = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        cls = type(self)
        with cls.lock:
            cls.budget -= 1
            over = cls.budget < 0
        if over and cls.delay:
            time.sleep(cls.delay)
        elif over and cls.status:
            body = b'{"status":"error","errorType":"internal","error":"overloaded"}'
            self.send_response(cls.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        elif over:
            self.close_connection = True
            self.connection.shutdown(2)  # a dead peer: the connection goes away without an answer
            return
        upstream = requests.get(cls.upstream + self.path, timeout=10)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(prom: tuple[PrometheusServer, datetime]) -> Iterator[tuple[str, type[_Proxy]]]:
    handler = type("P", (_Proxy,), {"upstream": prom[0].url, "lock": threading.Lock()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


@pytest.mark.parametrize("fault", ["dies_mid_cycle", "slow", "http_503"])
def test_partial_answers_degrade_without_action(
    fault: str, proxy: tuple[str, type[_Proxy]], prom: tuple[PrometheusServer, datetime], tmp_path: Path
) -> None:
    url, handler = proxy
    _, end = prom
    pipeline = pipeline_for(url, tmp_path, max_concurrency=1)
    try:
        handler.budget = 1  # the first signal answers, the rest fail: a partial picture
        if fault == "slow":
            handler.delay = 3.0  # beyond the 2 s timeout
        elif fault == "http_503":
            handler.status = 503
        t0 = time.monotonic()
        report = pipeline.run_cycle(end)
        assert time.monotonic() - t0 < 30, "a slow Prometheus must not stall the cycle beyond its timeouts"
        assert report.degraded and acted(report) == []
        assert all(r.status is ActionStatus.SKIPPED for r in report.results)
        assert report.errors and all(e.temporary for e in report.errors)
        handler.budget, handler.delay, handler.status = 10**9, 0.0, 0
        recovered = pipeline.run_cycle(end)
        assert not recovered.degraded and acted(recovered)
    finally:
        pipeline.close()


def test_readyz_follows_prometheus(prom: tuple[PrometheusServer, datetime], tmp_path: Path) -> None:
    server, _ = prom
    cfg = parse_config({
        "prometheus": {"url": server.url, "lookback": "1h", "timeout": "2s", "retries": 0},
        "schedule": {"interval": "1s"},
        "server": {"host": "127.0.0.1", "port": 0},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
        **ONLY_MEMORY,
    })
    daemon = Daemon(cfg, Pipeline.from_config(cfg))
    daemon.start()
    base = f"http://127.0.0.1:{daemon.server.port}"

    def ready() -> int:
        return requests.get(f"{base}/readyz", timeout=5).status_code

    def until(status: int, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready() == status:
                return True
            time.sleep(0.2)
        return False

    try:
        assert until(200)
        server.kill()
        assert until(503)
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # alive, just not ready
        server.restart()
        assert until(200)
    finally:
        daemon.shutdown()
    with pytest.raises((requests.ConnectionError, http.client.HTTPException)):
        requests.get(f"{base}/healthz", timeout=2)
