"""The Prometheus client's HTTP settings: proxies from the environment, read once at start."""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aiops.testing.tls import loopback_certificate

from aiops.collect.prometheus import PrometheusClient, PrometheusError
from aiops.config import parse_config
from aiops.demo.prometheus import free_port

_VECTOR = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"job": "x"}, "value": [1, "1"]}]}}
).encode()
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET with one sample and records the request target: a proxy receives the
    absolute URL (``http://host:port/path``), a server only the path. Also records each request's
    client port (one per connection) and Authorization header, and POST form bodies."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus answers
    seen: list[str]
    ports: list[int]
    auth: list[str]
    tenants: list[str]
    bodies: list[bytes]

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        self.ports.append(self.client_address[1])
        self.auth.append(self.headers.get("Authorization", ""))
        self.tenants.append(self.headers.get("X-Scope-OrgID", ""))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_VECTOR)))
        self.end_headers()
        self.wfile.write(_VECTOR)

    def do_POST(self) -> None:  # noqa: N802
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[_Recorder], context: ssl.SSLContext | None = None) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True).start()
    yield f"{'https' if context else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _handler() -> type[_Recorder]:
    return type("H", (_Recorder,), {"seen": [], "ports": [], "auth": [], "tenants": [], "bodies": []})


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    handler = _handler()
    for url in _serve(handler):
        yield url, handler.seen


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = _handler()
    for url in _serve(handler):
        yield url, handler


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _client(url: str, **settings: object) -> PrometheusClient:
    return PrometheusClient(
        parse_config({"prometheus": {"url": url, "retries": 0, "timeout": "5s", **settings}}).prometheus
    )


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


def test_requests_reuse_one_kept_alive_connection(server: tuple[str, type[_Recorder]]) -> None:
    """A steady cycle sends a request per signal: each on a connection already open."""
    url, handler = server
    c = _client(url)
    for _ in range(5):
        assert c.query("up")[0].labels == {"job": "x"}
    assert len(handler.seen) == 5 and len(set(handler.ports)) == 1


def test_basic_auth_is_sent_with_every_request(server: tuple[str, type[_Recorder]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, handler = server
    monkeypatch.setenv("PROM_PASSWORD", "s3cret")
    c = _client(url, basic_auth={"username": "aiops", "password": {"env": "PROM_PASSWORD"}})
    c.query("up")
    c.query("up")
    assert handler.auth == ["Basic YWlvcHM6czNjcmV0"] * 2  # base64("aiops:s3cret")


def test_configured_headers_are_sent_with_every_request(server: tuple[str, type[_Recorder]]) -> None:
    url, handler = server
    c = _client(url, headers={"X-Scope-OrgID": "gpu-prod"})
    c.query("up")
    c.query_range("up", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), timedelta(minutes=1))
    assert handler.tenants == ["gpu-prod"] * 2


def test_a_long_query_goes_as_a_form_body(server: tuple[str, type[_Recorder]]) -> None:
    url, handler = server
    long = "up{pod=~\"" + "|".join(f"pod-{i}" for i in range(1000)) + "\"}"
    assert _client(url).query(long)[0].labels == {"job": "x"}
    [body] = handler.bodies
    assert handler.seen == ["/api/v1/query"] and b"query=up%7Bpod%3D~%22pod-0%7Cpod-1%7C" in body


def test_tls_with_the_configured_ca_and_refused_without_it() -> None:
    cert = loopback_certificate()
    handler = _handler()
    for url in _serve(handler, cert.server_context()):
        assert _client(url, tls={"ca_file": str(cert.cert_file)}).query("up")[0].labels == {"job": "x"}
        assert _client(url, tls={"insecure_skip_verify": True}).query("up")
        with pytest.raises(PrometheusError) as info:
            _client(url).query("up")  # the system's CAs do not know this certificate
        assert info.value.temporary and "cannot connect" in str(info.value)
    assert len(handler.seen) == 2


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
def test_a_gzip_answer_is_inflated_into_one_buffer(chunked: bool) -> None:
    """Prometheus gzips its answers (chunked when large). Inflated in one go (the compressed body,
    zlib's output, a bytearray copy of it and a bytes copy of that) a cold chunk's answer briefly
    took 2.6 times its size, in every fetch thread at once; read and inflated in pieces, about once."""
    body = json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"pod": f"pod-{i}"}, "values": [[1767225600 + 60 * k, f"{(i * k) % 997 / 7:.6f}"] for k in range(240)]}
            for i in range(500)
        ]}}, separators=(",", ":"),
    ).encode()
    packed = gzip.compress(body, 1)

    class Gzipped(_Recorder):
        def do_GET(self) -> None:  # noqa: N802
            assert "gzip" in self.headers.get("Accept-Encoding", "")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(packed), 32768):
                    piece = packed[i : i + 32768]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(packed)))
                self.end_headers()
                self.wfile.write(packed)

    for url in _serve(type("G", (Gzipped,), {"seen": [], "ports": [], "auth": [], "tenants": [], "bodies": []})):
        c = _client(url)
        params = {"query": "q", "start": "0", "end": "1", "step": "60"}
        assert c._fetch("/api/v1/query_range", params, "q") == body  # the connection is open from here on
        tracemalloc.start()
        try:
            got = c._fetch("/api/v1/query_range", params, "q")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert got == body
        assert peak < 1.4 * len(body), f"reading a {len(body):,}-byte answer peaked at {peak:,} bytes"
        t0 = datetime.fromtimestamp(1767225600, UTC)
        series = c.query_range("q", t0, t0 + timedelta(minutes=239), timedelta(minutes=1))
        assert len(series) == 500 and all(len(s.values) == 240 for s in series)
