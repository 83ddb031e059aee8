"""The Prometheus client's HTTP settings: proxies from the environment, read once at start."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aiops.collect.prometheus import PrometheusClient, PrometheusError
from aiops.config import parse_config
from aiops.demo.prometheus import free_port

_VECTOR = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"job": "x"}, "value": [1, "1"]}]}}
).encode()
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET with one sample and records the request target: a proxy receives the
    absolute URL (``http://host:port/path``), a server only the path."""

    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_VECTOR)))
        self.end_headers()
        self.wfile.write(_VECTOR)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Recorder,), {"seen": seen}))
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _client(url: str) -> PrometheusClient:
    return PrometheusClient(parse_config({"prometheus": {"url": url, "retries": 0, "timeout": "5s"}}).prometheus)


def test_http_proxy_from_the_environment_is_used(
    recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = recorder
    monkeypatch.setenv("HTTP_PROXY", proxy)
    # A name only the proxy can reach: a direct connection would fail.
    c = _client("http://prometheus.invalid:9090")
    assert c.query("up")[0].labels == {"job": "x"}
    assert seen and seen[0].startswith("http://prometheus.invalid:9090/api/v1/query?")


def test_proxy_settings_are_read_once_at_start(
    recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not re-read per request (that was a fifth of a steady cycle's fetch CPU): the client keeps
    what the environment said when it was built."""
    proxy, seen = recorder
    monkeypatch.setenv("HTTP_PROXY", proxy)
    c = _client("http://prometheus.invalid:9090")
    monkeypatch.delenv("HTTP_PROXY")
    c.query("up")
    c.query("up")
    assert len(seen) == 2 and all(p.startswith("http://prometheus.invalid:9090/") for p in seen)


def test_no_proxy_bypasses_the_proxy(recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = recorder
    # The proxy itself does not exist: a request sent to it could not be answered.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert _client(url).query("up")
    assert seen == [seen[0]] and seen[0].startswith("/api/v1/query?")


def test_an_unreachable_proxy_is_a_temporary_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PrometheusError) as info:
        _client("http://prometheus.invalid:9090").query("up")
    assert info.value.temporary
