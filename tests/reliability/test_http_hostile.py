"""The daemon's HTTP server under hostile clients on loopback: idle sockets, slowloris headers and
unauthenticated bodies. /healthz and /metrics must keep answering (a liveness probe that times out
restarts the daemon), nothing may hold a thread, and every hostile connection is closed by the
server within its read timeout. Bounded: 1,000 connections, a few seconds."""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from aiops.config import parse_config
from aiops.daemon import server_tls
from aiops.notify.inbound import AlertInbox
from aiops.notify.webhook import make_handler
from aiops.server import WEBHOOK_PATH, DaemonServer
from aiops.state import Store

pytestmark = pytest.mark.reliability

TOKEN = "hostile-test-token"
READ_TIMEOUT = 2.0
HOSTILE = 1_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DaemonServer]:
    store = Store(tmp_path / "s.sqlite")
    srv = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), read_timeout=READ_TIMEOUT,
                       webhook=make_handler(AlertInbox(store), SecretStr(TOKEN), 1 << 20)).start()
    try:
        yield srv
    finally:
        srv.stop()
        store.close()


def closed_by_server(s: socket.socket) -> bool:
    for _ in range(64):  # an answer sent before closing is read past; bounded
        try:
            if s.recv(65536) == b"":
                return True
        except BlockingIOError:
            return False
        except OSError:
            return True
    return False


@pytest.mark.slow
def test_probes_answer_under_a_thousand_hostile_connections_which_are_all_closed(server: DaemonServer) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 3 * HOSTILE:
        pytest.skip(f"needs {3 * HOSTILE} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 3 * HOSTILE), hard))
    threads_before = threading.active_count()
    socks: list[socket.socket] = []
    try:
        for i in range(HOSTILE):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 3 == 1:  # slowloris: a request line, then headers that never end
                s.sendall(b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nX-a: ")
            elif i % 3 == 2:  # an unauthenticated 1 MiB body announced, and its first 64 KiB sent
                s.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 20}\r\n\r\n".encode())
                try:
                    s.settimeout(0.05)
                    s.sendall(b"x" * 65536)
                except OSError:
                    pass  # refused from its headers and closed: the server did not read on
            s.setblocking(False)
            socks.append(s)
        assert threading.active_count() - threads_before <= 4  # no thread per connection
        base = f"http://127.0.0.1:{server.port}"
        latencies = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert requests.get(base + "/healthz", timeout=2).status_code == 200
            latencies.append(time.perf_counter() - t0)
        assert requests.get(base + "/metrics", timeout=2).status_code == 200
        print(f"\n/healthz under {HOSTILE} hostile connections: "
              f"{json.dumps({'p50_ms': round(sorted(latencies)[10] * 1000, 1), 'max_ms': round(max(latencies) * 1000, 1)})}")
        assert max(latencies) < 1.0
        # Past the read timeout every hostile connection has been closed by the server.
        deadline = time.monotonic() + 3 * READ_TIMEOUT + 5
        open_ = list(socks)
        while open_ and time.monotonic() < deadline:
            for s in socks[1::3]:  # keep the slowloris ones dribbling
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(0.5)
            open_ = [s for s in open_ if not closed_by_server(s)]
        assert open_ == []
    finally:
        for s in socks:
            s.close()


def test_unauthenticated_webhook_is_answered_from_its_headers_before_any_body(server: DaemonServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 20}\r\n\r\n".encode())
        reply = s.recv(4096).decode()  # no body byte was sent: the answer cannot have waited for it
    assert reply.startswith("HTTP/1.1 401") and "missing bearer token" in reply
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
                  f"Content-Length: {1 << 20}\r\n\r\n".encode())
        assert s.recv(4096).decode().startswith("HTTP/1.1 403")


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_a_body_that_never_arrives_is_given_up_after_the_read_timeout(server: DaemonServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=3 * READ_TIMEOUT) as s:
        s.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Length: 1000\r\n\r\n{".encode())
        t0 = time.monotonic()
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 408") and READ_TIMEOUT - 0.5 < time.monotonic() - t0 < 2 * READ_TIMEOUT + 1


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_connections_over_the_limit_are_closed_at_once_and_probes_recover() -> None:
    srv = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), read_timeout=1.0, max_connections=16).start()
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(16)]
        try:
            extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            assert extra.recv(16) == b""  # closed unread
            extra.close()
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the closed idle sockets free their slots
            try:
                if requests.get(f"http://127.0.0.1:{srv.port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError("/healthz did not recover after the idle connections went away")
    finally:
        srv.stop()


def test_optional_tls_listener(tmp_path: Path) -> None:
    from aiops.testing.tls import loopback_certificate

    cert = loopback_certificate()
    cfg = parse_config({"server": {"tls": {"cert_file": str(cert.cert_file), "key_file": str(cert.key_file)}}})
    srv = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), tls=server_tls(cfg)).start()
    try:
        assert srv.scheme == "https"
        answer = requests.get(f"https://127.0.0.1:{srv.port}/healthz", verify=str(cert.cert_file), timeout=5)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{srv.port}/healthz", timeout=5)
    finally:
        srv.stop()
    bad = parse_config({"server": {"tls": {"cert_file": str(tmp_path / "none.pem"), "key_file": str(tmp_path / "k")}}})
    with pytest.raises(Exception, match="server.tls"):
        server_tls(bad)


def _tls_server(read_timeout: float, max_connections: int = 4096) -> DaemonServer:
    from aiops.testing.tls import loopback_certificate

    cert = loopback_certificate()
    return DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), read_timeout=read_timeout,
                        max_connections=max_connections, tls=cert.server_context()).start()


def test_with_tls_a_client_that_never_says_hello_is_closed_after_the_read_timeout() -> None:
    """The header deadline holds from the TCP connect, handshake included: a client that never sends
    its ClientHello is not kept for asyncio's 60 s handshake default."""
    srv = _tls_server(read_timeout=1.0)
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(20)]
    try:
        time.sleep(3.0)
        for s in socks:
            s.setblocking(False)
        assert all(closed_by_server(s) for s in socks)
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_with_tls_connections_still_in_their_handshake_count_against_the_limit() -> None:
    """Silent TLS clients hold the limit's slots as plain ones do: a client that completes its
    handshake is then closed unserved. (An over-limit TLS connection is closed at its handshake's
    deadline rather than at once: until the handshake is done asyncio gives aiohttp nothing.)"""
    from aiops.testing.tls import loopback_certificate

    cert = loopback_certificate()
    srv = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), read_timeout=30.0, max_connections=16,
                       tls=cert.server_context()).start()
    url = f"https://127.0.0.1:{srv.port}/healthz"
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(16)]
        try:
            time.sleep(0.3)
            with pytest.raises(requests.ConnectionError):
                requests.get(url, verify=str(cert.cert_file), timeout=5)
        finally:
            for s in socks:
                s.close()
        time.sleep(0.3)
        assert requests.get(url, verify=str(cert.cert_file), timeout=5).status_code == 200
    finally:
        srv.stop()


def test_webhook_on_its_own_port_is_served_only_there() -> None:
    """So a NetworkPolicy can admit Alertmanager to the webhook and Prometheus to /metrics, apart."""
    srv = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), webhook_port=0,
                       webhook=make_handler(AlertInbox(Store(":memory:")), SecretStr(TOKEN), 1 << 20)).start()
    try:
        assert srv.webhook_port != srv.port
        main, hook = f"http://127.0.0.1:{srv.port}", f"http://127.0.0.1:{srv.webhook_port}"
        assert requests.get(main + "/metrics", timeout=5).status_code == 200
        assert requests.get(hook + "/metrics", timeout=5).status_code == 404
        assert requests.get(hook + "/healthz", timeout=5).status_code == 404
        assert requests.post(main + WEBHOOK_PATH, data=b"{}", timeout=5).status_code == 404
        assert requests.post(hook + WEBHOOK_PATH, data=b"{}", timeout=5).status_code == 401  # reached the webhook
    finally:
        srv.stop()
