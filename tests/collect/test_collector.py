from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from aiops.collect.collector import Collector
from aiops.collect.prometheus import PrometheusClient, PrometheusError, RawSeries
from aiops.config import ConfigError, parse_config
from aiops.config.prometheus import PrometheusConfig
from aiops.demo.prometheus import PrometheusServer, free_port

from tests.prometheus_history import GiB, HOURS

ONLY_MEMORY = {"signals": {n: {"enabled": False} for n in parse_config({}).resolved_signals() if n not in (
    "pod_memory_usage_ratio", "model_accuracy", "pod_restarts")}}


def client(url: str, **kw: object) -> PrometheusClient:
    return PrometheusClient(PrometheusConfig(url=url, **kw))  # type: ignore[arg-type]


def test_range_query_returns_step_aligned_arrays(prometheus: PrometheusServer, history_end: datetime) -> None:
    c = client(prometheus.url)
    series = c.query_range("container_memory_working_set_bytes", history_end - timedelta(hours=1), history_end,
                           timedelta(minutes=1))
    assert {s.labels["pod"] for s in series} == {"leaky-0", "steady-0"}
    for s in series:
        assert len(s) == 61 and np.all(np.diff(s.timestamps) == 60) and s.timestamps[0] % 60 == 0
    leaky = next(s for s in series if s.labels["pod"] == "leaky-0")
    assert 3 * GiB < leaky.values[-1] < 4 * GiB


def test_chunking_is_invisible(prometheus: PrometheusServer, history_end: datetime) -> None:
    start = history_end - timedelta(hours=HOURS)
    whole = client(prometheus.url).query_range("model_accuracy", start, history_end, timedelta(minutes=1))
    chunked = client(prometheus.url, max_points_per_query=50).query_range(
        "model_accuracy", start, history_end, timedelta(minutes=1))
    assert len(whole) == len(chunked) == 1
    np.testing.assert_array_equal(whole[0].timestamps, chunked[0].timestamps)
    np.testing.assert_array_equal(whole[0].values, chunked[0].values)
    # The stored NaN samples come back as NaN, not as an error.
    assert np.isnan(whole[0].values).any()


def test_bad_query_is_a_permanent_error(prometheus: PrometheusServer, history_end: datetime) -> None:
    with pytest.raises(PrometheusError) as info:
        client(prometheus.url).query_range("sum(", history_end - timedelta(minutes=5), history_end, timedelta(minutes=1))
    assert info.value.temporary is False and "400" in str(info.value)


def test_unreachable_prometheus_is_temporary() -> None:
    c = client(f"http://127.0.0.1:{free_port()}", timeout="2s", retries=0)
    with pytest.raises(PrometheusError) as info:
        c.query("up")
    assert info.value.temporary and "cannot connect" in str(info.value)


class _Scripted(BaseHTTPRequestHandler):
    status = 500
    body = b'{"status":"error","errorType":"internal","error":"boom"}'

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("H", (_Scripted,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


def test_http_errors_are_classified(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    c = client(url, retries=0)
    with pytest.raises(PrometheusError) as info:
        c.query("up")
    assert info.value.temporary and "HTTP 500" in str(info.value) and "boom" in str(info.value)
    handler.status = 422
    handler.body = json.dumps({"status": "error", "errorType": "execution", "error": "many-to-many"}).encode()
    with pytest.raises(PrometheusError) as info:
        c.query("up")
    assert not info.value.temporary and "many-to-many" in str(info.value)
    handler.status, handler.body = 200, b"<html>proxy login</html>"
    with pytest.raises(PrometheusError, match="not JSON"):
        c.query("up")
    handler.body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}).encode()
    with pytest.raises(PrometheusError, match="scalar"):
        c.query("1")


def test_collector_is_incremental_and_bounded(prometheus: PrometheusServer, history_end: datetime) -> None:
    cfg = parse_config({"prometheus": {"url": prometheus.url, "lookback": "2h"}, **ONLY_MEMORY})
    collector = Collector(cfg)
    frame, errors = collector.collect(history_end - timedelta(minutes=30))
    assert errors == [] and frame.missing_signals == ()
    ratio = {s.entity.name: s for s in frame.of("pod_memory_usage_ratio")}
    assert set(ratio) == {"leaky-0", "steady-0"}
    assert ratio["leaky-0"].entity.namespace == "ml" and ratio["leaky-0"].entity.attr("container") == "server"
    first_points = len(ratio["leaky-0"])
    assert first_points == 121  # 2 h at 1 min, both ends included

    calls: list[tuple[datetime, datetime]] = []
    original = collector.client.range_chunks

    def spy(query: str, start: datetime, end: datetime, step: timedelta) -> Iterator[Any]:
        calls.append((start, end))
        return original(query, start, end, step)

    collector.client.range_chunks = spy  # type: ignore[method-assign]
    frame, errors = collector.collect(history_end)
    assert errors == [] and calls
    # Only the new half hour (plus a two-step overlap) was asked for, not the whole lookback.
    assert all(end - start <= timedelta(minutes=33) for start, end in calls)
    leaky = next(s for s in frame.of("pod_memory_usage_ratio") if s.entity.name == "leaky-0")
    assert len(leaky) == 121 and leaky.timestamps[-1] == history_end.timestamp()
    assert np.all(np.diff(leaky.timestamps) == 60)  # merged without duplicates or holes


def test_samples_that_land_late_are_read_again_for_as_long_as_they_may_be_late(
    prometheus: PrometheusServer, history_end: datetime
) -> None:
    # Behind remote write (Thanos receive, Mimir) samples land minutes after their timestamp: an
    # evaluation read a minute after its time misses them, and two steps of overlap never read it again.
    cfg = parse_config({"prometheus": {"url": prometheus.url, "lookback": "2h", "late_samples": "10m"}, **ONLY_MEMORY})
    collector = Collector(cfg)
    collector.collect(history_end - timedelta(minutes=30))
    starts: list[datetime] = []
    original = collector.client.range_chunks

    def spy(query: str, start: datetime, end: datetime, step: timedelta) -> Iterator[Any]:
        starts.append(start)
        return original(query, start, end, step)

    collector.client.range_chunks = spy  # type: ignore[method-assign]
    frame, errors = collector.collect(history_end)
    assert errors == [] and starts
    assert min(starts) == history_end - timedelta(minutes=40)
    leaky = next(s for s in frame.of("pod_memory_usage_ratio") if s.entity.name == "leaky-0")
    assert len(leaky) == 121 and np.all(np.diff(leaky.timestamps) == 60)


def test_late_samples_must_fit_in_the_lookback() -> None:
    with pytest.raises(ConfigError, match="late_samples"):
        parse_config({"prometheus": {"lookback": "1h", "late_samples": "2h"}})


def test_collector_reports_failed_signals_as_missing(prometheus: PrometheusServer, history_end: datetime) -> None:
    cfg = parse_config({"prometheus": {"url": prometheus.url}, **ONLY_MEMORY,
                        "signals": {**ONLY_MEMORY["signals"], "pod_restarts": {"query": "rate(("}}})
    frame, errors = Collector(cfg).collect(history_end)
    assert frame.missing_signals == ("pod_restarts",)
    assert len(errors) == 1 and "pod_restarts" in errors[0].message and not errors[0].temporary
    assert frame.of("pod_restarts") == [] and frame.of("pod_memory_usage_ratio")


def test_bearer_token_is_sent_and_never_logged(
    scripted: tuple[str, type[_Scripted]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = scripted
    seen: list[str] = []

    def do_get(self: _Scripted) -> None:
        seen.append(self.headers.get("Authorization", ""))
        _Scripted.do_GET(self)

    handler.do_GET = do_get  # type: ignore[method-assign]
    handler.status = 401
    handler.body = b'{"status":"error","errorType":"unauthorized","error":"bad token"}'
    monkeypatch.setenv("PROM_BEARER", "tkn-123456")
    cfg = parse_config({"prometheus": {"url": url, "bearer_token": {"env": "PROM_BEARER"}, "retries": 0}})
    with pytest.raises(PrometheusError) as info:
        PrometheusClient(cfg.prometheus).query("up")
    assert seen == ["Bearer tkn-123456"]
    assert not info.value.temporary and "credentials" in str(info.value)
    assert "tkn-123456" not in str(info.value)


def test_empty_result_is_not_an_error(prometheus: PrometheusServer, history_end: datetime) -> None:
    assert client(prometheus.url).query_range(
        "metric_that_does_not_exist", history_end - timedelta(minutes=5), history_end, timedelta(minutes=1)) == []


def test_series_that_stop_reporting_are_vanished_not_current(prometheus: PrometheusServer, history_end: datetime) -> None:
    cfg = parse_config({"prometheus": {"url": prometheus.url, "lookback": "2h"}, **ONLY_MEMORY})
    collector = Collector(cfg)
    # 20 minutes past the end of the data: every series has stopped (Prometheus marks them stale after 5m).
    frame, errors = collector.collect(history_end + timedelta(minutes=20))
    assert frame.series == () and {s.entity.name for s in frame.vanished} >= {"leaky-0", "steady-0"}
    # Seeing nothing fresh at all is an error of its own (the cycle is degraded), said once.
    [blind] = errors
    assert "scraping looks broken" in blind.message and not blind.temporary
    # Each signal that had series is absent now, with the time it was last seen (a range query
    # carries the last sample forward for Prometheus's 5-minute lookback).
    assert set(frame.absent_signals) == {"pod_memory_usage_ratio", "model_accuracy", "pod_restarts"}
    assert 0 <= frame.absent_signals["pod_memory_usage_ratio"] - history_end.timestamp() <= 300


def test_a_sparse_signal_that_empties_is_not_absent(prometheus: PrometheusServer, history_end: datetime) -> None:
    """A signal whose series exist only while a state holds (a crash loop, an OOMKill, a pod on its
    way up, a pod on a GPU) empties when the state ends: that is no missing data, and telling the
    on-call to "check its exporter" for a day after every crash loop is noise."""
    signals = {**ONLY_MEMORY["signals"], "pod_restarts": {"sparse": True}}
    collector = Collector(parse_config({"prometheus": {"url": prometheus.url, "lookback": "2h"}, "signals": signals}))
    frame, _ = collector.collect(history_end + timedelta(minutes=20))
    assert set(frame.absent_signals) == {"pod_memory_usage_ratio", "model_accuracy"}
    sparse = {name for name, sig in parse_config({}).resolved_signals().items() if sig.sparse}
    assert sparse == {"pod_oom_killed", "pod_crashlooping", "pod_starting", "pod_finished", "gpu_pods"}


def test_a_signal_stays_absent_after_its_series_leave_the_window(
    prometheus: PrometheusServer, history_end: datetime
) -> None:
    cfg = parse_config({"prometheus": {"url": prometheus.url, "lookback": "1h"}, **ONLY_MEMORY})
    collector = Collector(cfg)
    frame, _ = collector.collect(history_end)
    assert frame.of("pod_memory_usage_ratio") and frame.absent_signals == {}
    # Three hours later nothing is left in the 1 h window, but the signal is still known to be gone.
    frame, errors = collector.collect(history_end + timedelta(hours=3))
    assert frame.series == () and frame.vanished == ()
    assert frame.absent_signals["pod_memory_usage_ratio"] == history_end.timestamp()
    assert len(errors) == 1 and "none of the 3 signals returned a series" in errors[0].message


def test_one_unreachable_prometheus_is_one_error_not_one_per_signal() -> None:
    cfg = parse_config({"prometheus": {"url": f"http://127.0.0.1:{free_port()}", "retries": 0, "timeout": "2s"}})
    frame, errors = Collector(cfg).collect(datetime.now(UTC))
    [error] = errors
    assert error.message.startswith(f"all {len(cfg.resolved_signals())} signals: cannot connect") and error.temporary
    assert len(frame.missing_signals) == len(cfg.resolved_signals()) and frame.absent_signals == {}


def test_window_matches_a_naive_recomputation_over_many_cycles() -> None:
    from aiops.collect.window import RollingWindow

    rng = np.random.default_rng(3)
    lookback, step = 3600.0, 60.0
    w = RollingWindow(lookback)
    truth: dict[float, float] = {}
    now = 10_000 * step
    start = now - lookback
    ts = np.arange(start, now + 1, step)
    vals = rng.random(ts.size)
    truth.update(zip(ts.tolist(), vals.tolist(), strict=True))
    w.merge("s", start, [RawSeries({"a": "1"}, ts, vals)])
    held_views = []
    for _ in range(300):
        now += step
        fetched_from = now - 2 * step  # the collector's overlap: the last points are refetched
        ts = np.arange(fetched_from, now + 1, step)
        vals = rng.random(ts.size)
        truth.update(zip(ts.tolist(), vals.tolist(), strict=True))
        w.merge("s", fetched_from, [RawSeries({"a": "1"}, ts, vals)])
        w.trim(now)
        buf = w.items("s")[0]
        expected_ts = np.array(sorted(t for t in truth if t >= now - lookback))
        np.testing.assert_array_equal(buf.timestamps, expected_ts)
        np.testing.assert_array_equal(buf.values, [truth[t] for t in expected_ts])
        held_views.append((buf.timestamps.copy(), buf.timestamps))
    # Reallocation never moved data under a view handed out earlier (beyond the refetched tail).
    first_copy, first_view = held_views[0]
    np.testing.assert_array_equal(first_copy[:-2], first_view[:-2])


def test_a_scope_keeps_a_multi_cluster_backend_to_this_cluster(tmp_path) -> None:  # noqa: ANN001
    """Thanos, Mimir or a federating Prometheus serve several clusters; their series differ only by
    an external label. The catalog's max by (namespace, pod) would merge same-named pods."""
    end = 1_780_000_000
    lines = []
    for name, kind, value in (("container_memory_working_set_bytes", "gauge", {"eu": 3.5, "us": 1.0}),
                              ("kube_pod_container_resource_limits", "gauge", {"eu": 4.0, "us": 4.0})):
        lines.append(f"# TYPE {name} {kind}")
        for cluster, gib in value.items():
            extra = ',resource="memory",unit="byte"' if "limits" in name else ""
            for t in range(end - 3600, end + 1, 60):
                lines.append(f'{name}{{cluster="{cluster}",namespace="shop",pod="api-0",container="api"{extra}}} '
                             f"{gib * GiB} {t}")
    (tmp_path / "h.om").write_text("\n".join(lines) + "\n# EOF\n")
    only = {"signals": {n: {"enabled": False} for n in parse_config({}).resolved_signals()
                        if n != "pod_memory_usage_ratio"}}
    at = datetime.fromtimestamp(end, UTC)
    with PrometheusServer(tmp_path / "data", openmetrics=tmp_path / "h.om") as prom:
        ratios = {}
        for scope in ({}, {"cluster": "us"}, {"cluster": "eu"}):
            cfg = parse_config({"prometheus": {"url": prom.url, "lookback": "30m", "scope": scope}, **only})
            frame, errors = Collector(cfg).collect(at)
            assert errors == []
            [s] = frame.of("pod_memory_usage_ratio")
            ratios[scope.get("cluster", "")] = float(s.values[-1])
    assert ratios == {"": 0.875, "us": 0.25, "eu": 0.875}  # unscoped: us's pod read at eu's 88 %


def test_a_daemon_clock_ahead_of_prometheus_reads_up_to_prometheus_time(live_prometheus: PrometheusServer) -> None:
    """The node's clock runs 12 minutes ahead of Prometheus's. Every series looked stale against
    the daemon's clock (newest point 12 minutes "ago": the daemon called itself blind), and each
    next fetch started from the daemon's time, so the slots Prometheus had filled by repeating its
    last sample were never asked again. The collector reads Prometheus's clock from its answers'
    Date header and holds to it."""
    cfg = parse_config({"prometheus": {"url": live_prometheus.url, "lookback": "1h"}, **ONLY_MEMORY})
    skew = timedelta(minutes=12)
    collector = Collector(cfg, clock=lambda: time.time() + skew.total_seconds())  # the node's clock
    real = datetime.now(UTC)
    starts: list[datetime] = []
    original = collector.client.range_chunks  # type: ignore[attr-defined]

    def spy(query: str, start: datetime, end: datetime, step: timedelta):  # noqa: ANN202
        starts.append(start)
        return original(query, start, end, step)

    frame, errors = collector.collect(real + skew)
    assert errors == [], errors
    assert {s.entity.name for s in frame.of("pod_memory_usage_ratio")} == {"leaky-0", "steady-0"}
    assert not frame.vanished
    assert 715 <= collector.ahead_of_prometheus <= 725
    collector.client.range_chunks = spy  # type: ignore[attr-defined]
    frame, errors = collector.collect(real + skew + timedelta(minutes=1))
    assert errors == [] and {s.entity.name for s in frame.of("pod_memory_usage_ratio")} == {"leaky-0", "steady-0"}
    # The refetch starts two steps before what Prometheus had, not before the daemon's clock.
    assert starts and max(starts) <= real + timedelta(minutes=1)
