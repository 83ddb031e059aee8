"""The real Prometheus launcher and the demo history it serves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.demo.prometheus import (
    BackfillError,
    MissingBinary,
    PrometheusServer,
    ServerStartError,
    backfill,
    find_binary,
)
from aiops.demo.synth import (
    Scenario,
    start_demo_prometheus,
    node_exporter_instance,
    write_openmetrics,
)

pytestmark = pytest.mark.timeout(60)

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def query(url: str, promql: str, at: float) -> list[dict]:
    resp = requests.get(f"{url}/api/v1/query", params={"query": promql, "time": at}, timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]["result"]


@pytest.mark.parametrize(
    ("name", "package"),
    [("prometheus", "prometheus"), ("promtool", "prometheus"), ("prometheus-alertmanager", "prometheus-alertmanager")],
)
def test_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch, name: str, package: str) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingBinary, match=f"apt-get install {package}`"):
        find_binary(name)


def test_backfilled_samples_are_served_at_their_timestamps(tmp_path: Path) -> None:
    sc = Scenario(seed=5, duration=timedelta(hours=1), end=END)
    result = write_openmetrics(sc, tmp_path / "h.om")
    with PrometheusServer(openmetrics=result.path) as prom:
        # The value in the file at 11:30 is what Prometheus answers at 11:30.
        at = END.timestamp() - 1800
        line = next(
            ln
            for ln in result.path.read_text().splitlines()
            if ln.startswith(f'node_memory_MemAvailable_bytes{{instance="{node_exporter_instance(0)}"')
            and ln.endswith(f" {int(at)}")
        )
        (sample,) = query(prom.url, f'node_memory_MemAvailable_bytes{{instance="{node_exporter_instance(0)}"}}', at)
        assert float(sample["value"][1]) == float(line.split()[-2])
        count = query(prom.url, "count({__name__=~'.+'})", END.timestamp())
        assert int(count[0]["value"][1]) == result.series
        # Nothing before the first sample (beyond the 5 min lookback).
        assert query(prom.url, "node_memory_MemTotal_bytes", END.timestamp() - 2 * 3600) == []


def test_restart_and_kill_keep_data_and_port(tmp_path: Path) -> None:
    result = write_openmetrics(Scenario(seed=5, duration=timedelta(minutes=30), end=END), tmp_path / "h.om")
    prom = PrometheusServer(tmp_path / "prom", openmetrics=result.path).start()
    try:
        url = prom.url
        prom.kill()
        assert not prom.running
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/-/ready", timeout=2)
        prom.start()
        assert prom.url == url and query(url, "node_memory_MemTotal_bytes", END.timestamp())
        prom.restart()
        assert query(url, "node_memory_MemTotal_bytes", END.timestamp())
    finally:
        prom.stop()
    assert (tmp_path / "prom" / "tsdb").is_dir()  # a caller's data dir is kept


def test_temporary_data_dir_is_removed_on_stop() -> None:
    with PrometheusServer() as prom:
        data_dir = prom.data_dir
        assert data_dir is not None and data_dir.is_dir()
        assert requests.get(prom.url + "/api/v1/status/config", timeout=5).ok
    assert not data_dir.exists()


def test_start_failure_reports_the_log_tail() -> None:
    with pytest.raises(ServerStartError, match="exited with code .*Last log lines"):
        PrometheusServer(extra_args=["--storage.tsdb.retention.time=banana"]).start()


def test_backfill_of_a_file_without_eof_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.om"
    bad.write_text("# TYPE x gauge\nx 1 1700000000\n")
    with pytest.raises(BackfillError, match="# EOF"):
        backfill(bad, tmp_path / "tsdb")


@pytest.mark.slow
def test_demo_serves_every_catalog_signal_and_its_faults(tmp_path: Path) -> None:
    started = time.monotonic()
    prom = start_demo_prometheus(tmp_path, end=END)
    try:
        assert time.monotonic() - started < 15
        at = END.timestamp()
        empty = [name for name, sig in DEFAULT_SIGNALS.items() if not query(prom.url, sig.query, at)]
        # Nothing has been OOM-killed yet (the leak is ahead), no pod is on its way up (the
        # demo's deployments are not scaling) or finished (it runs no Job); the demo serves with vLLM only (TTFT, inter-token and
        # end-to-end histograms, request counters), not Triton or TorchServe.
        other_servers = [name for name in DEFAULT_SIGNALS if name.endswith(("_triton", "_torchserve"))]
        assert sorted(other_servers) == [
            "inference_request_rate_torchserve", "inference_request_rate_triton",
            "serving_request_latency_torchserve", "serving_request_latency_triton",
        ]
        assert sorted(empty) == sorted(["pod_oom_killed", "pod_starting", "pod_finished", *other_servers])
        assert query(prom.url, DEFAULT_SIGNALS["pod_crashlooping"].query, at)[0]["value"][1] == "1"
        assert max(float(s["value"][1]) for s in query(prom.url, DEFAULT_SIGNALS["gpu_xid"].query, at)) == 79
        # dcgm-exporter's pod mapping: which pod is on each GPU (the pod an XID 94 restarts).
        attached = query(prom.url, DEFAULT_SIGNALS["gpu_pods"].query, at)
        assert attached and all(s["metric"]["pod"] and s["metric"]["UUID"] for s in attached)
        p99 = {
            s["metric"]["model_name"]: float(s["value"][1])
            for s in query(prom.url, DEFAULT_SIGNALS["serving_ttft_p99"].query, at)
        }
        assert p99["llama-3-8b"] > 2.0 > p99["qwen2-7b"]
        ratio = max(float(s["value"][1]) for s in query(prom.url, DEFAULT_SIGNALS["pod_memory_usage_ratio"].query, at))
        assert 0.8 < ratio < 1.0
    finally:
        prom.stop()
