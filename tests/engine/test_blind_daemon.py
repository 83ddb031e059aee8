"""A daemon pointed at a Prometheus that answers but whose series stopped 30 minutes ago, as when
scraping broke. No data is not health: the cycle is degraded, each signal that went quiet is a
finding, and /readyz and /metrics say so."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from aiops.daemon import Daemon
from aiops.engine.pipeline import Pipeline
from aiops.model import Severity
from aiops.report import render_text
from aiops.demo.prometheus import PrometheusServer
from tests.prometheus_history import write_history
from tests.engine.test_pipeline import config

STOPPED_AGO = timedelta(minutes=30)


@pytest.fixture(scope="module")
def stopped_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    root = tmp_path_factory.mktemp("prom-stopped")
    om = root / "history.om"
    write_history(om, datetime.now(UTC) - STOPPED_AGO)
    with PrometheusServer(root / "data", openmetrics=om) as prom:
        yield prom


def _metric(text: str, name: str) -> float:
    return float(next(ln for ln in text.splitlines() if ln.startswith(name + " ")).split()[-1])


def test_a_blind_daemon_says_it_is_blind(stopped_prometheus: PrometheusServer, tmp_path: Path) -> None:
    cfg = config(stopped_prometheus.url, tmp_path, server={"host": "127.0.0.1", "port": 0},
                 schedule={"interval": "1h"})
    pipeline = Pipeline.from_config(cfg)
    daemon = Daemon(cfg, pipeline)
    daemon.start()  # the first cycle runs at once
    try:
        deadline = time.monotonic() + 60
        while pipeline.last_report is None and time.monotonic() < deadline:
            time.sleep(0.1)
        report = pipeline.last_report
        assert report is not None, "no cycle ran"
        base = f"http://127.0.0.1:{daemon.server.port}"
        ready = requests.get(f"{base}/readyz", timeout=5)
        text = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        daemon.shutdown()

    # The cycle is degraded and says why, once.
    assert report.degraded and report.series_count == 0
    [blind] = report.errors
    assert "scraping looks broken" in blind.message
    # Each signal that had series and has none now is a finding, for people only.
    absent = {f.signal: f for f in report.findings if f.detector == "absent"}
    assert set(absent) == {"pod_memory_usage_ratio", "model_accuracy", "pod_restarts"}
    assert all(f.severity is Severity.WARNING for f in absent.values())
    assert "min ago" in absent["pod_memory_usage_ratio"].evidence.summary
    assert report.decisions == [] and report.results == []
    rendered = render_text(report)
    assert "Nothing looks wrong" not in rendered and "absent" in rendered
    # /readyz and the self-metrics agree.
    assert ready.status_code == 503 and "no fresh series" in ready.json()["reason"]
    assert _metric(text, "aiops_ready") == 0.0
    assert _metric(text, "aiops_series") == 0.0
    assert _metric(text, "aiops_signals_absent") == 3.0
    assert _metric(text, "aiops_prometheus_up") == 1.0
