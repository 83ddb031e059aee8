"""The daemon's Alertmanager webhook (POST /api/v1/alertmanager): bad requests change nothing,
the size limit holds, and under a bounded local load every valid alert is stored exactly once."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from aiops.config import parse_config
from aiops.daemon import Daemon, webhook_for
from aiops.engine.pipeline import Pipeline
from aiops.server import WEBHOOK_PATH

pytestmark = pytest.mark.reliability

TOKEN = "reliability-webhook-token-7f3a"
MAX_BODY = 16_384


@dataclass
class Endpoint:
    url: str
    daemon: Daemon

    def stored(self) -> list[str]:
        rows = self.daemon.pipeline.store.query("SELECT fingerprint FROM notify_inbox ORDER BY fingerprint")
        return [r["fingerprint"] for r in rows]


@pytest.fixture
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    monkeypatch.setenv("RELIABILITY_WEBHOOK_TOKEN", TOKEN)
    cfg = parse_config({
        # Nothing listens there: the scheduler never starts, only the HTTP server is exercised.
        "prometheus": {"url": "http://127.0.0.1:9"},
        "server": {"host": "127.0.0.1", "port": 0, "webhook_token": {"env": "RELIABILITY_WEBHOOK_TOKEN"},
                   "max_body_bytes": MAX_BODY},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
    })
    pipeline = Pipeline.from_config(cfg)
    daemon = Daemon(cfg, pipeline, webhook=webhook_for(cfg, pipeline))
    daemon.server.start()
    try:
        yield Endpoint(f"http://127.0.0.1:{daemon.server.port}{WEBHOOK_PATH}", daemon)
    finally:
        daemon.server.stop()
        pipeline.close()


def payload(fingerprint: str = "fp-1", **overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "version": "4", "status": "firing", "receiver": "aiops", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "ml",
                                                   "pod": f"pod-{fingerprint}", "severity": "warning"},
                    "annotations": {"summary": "crash looping"}, "startsAt": "2026-11-25T08:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}],
    }
    body.update(overrides)
    return json.dumps(body).encode()


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (payload(), {}, 401, "missing bearer token"),
        (payload(), {"Authorization": f"Basic {TOKEN}"}, 401, "missing bearer token"),
        (payload(), {"Authorization": "Bearer not-the-token"}, 403, "wrong bearer token"),
        (payload(), {"Authorization": f"Bearer {TOKEN}x"}, 403, "wrong bearer token"),
        (b"{not json", AUTH, 400, "not valid JSON"),
        (b"\xff\xfe\x00garbage", AUTH, 400, "not valid JSON"),
        (b"[1, 2]", AUTH, 400, "JSON object"),
        (b"", AUTH, 400, "not valid JSON"),
        (payload(version="3"), AUTH, 400, "version '3'"),
        (payload(version=4), AUTH, 400, "version 4"),
        (payload(alerts=[{"status": "firing", "labels": {}}]), AUTH, 400, "alerts.0.labels"),
        (payload(alerts="nope"), AUTH, 400, "alerts"),
        (payload(summary="x" * (MAX_BODY + 1)), AUTH, 413, f"larger than {MAX_BODY}"),
    ],
    ids=["no-auth", "basic-auth", "wrong-token", "token-prefix", "malformed", "binary", "array", "empty",
         "version-3", "version-int", "empty-labels", "alerts-not-list", "oversized"],
)
def test_bad_requests_get_4xx_and_change_nothing(
    endpoint: Endpoint, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    answer = requests.post(endpoint.url, data=body, headers=headers, timeout=10)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert TOKEN not in answer.text
    assert endpoint.stored() == []
    # The server is still serving, and a valid request right after is stored.
    ok = requests.post(endpoint.url, data=payload("after"), headers=AUTH, timeout=10)
    assert ok.status_code == 200 and endpoint.stored() == ["after"]


def read_reply(sock: socket.socket) -> str:
    """The whole answer: the server closes the connection after refusing (headers and body may come apart)."""
    chunks = []
    for _ in range(100):  # bounded: a reply is a few hundred bytes
        chunk = sock.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
        text = b"".join(chunks)
        head, sep, body = text.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if sep and length is not None and len(body) >= length:
            break
    return b"".join(chunks).decode(errors="replace")


def test_oversized_declared_body_is_refused_before_it_is_read(endpoint: Endpoint) -> None:
    """A client announcing 1 GiB gets 413 at once; the server never waits for (or buffers) the body."""
    host, port = endpoint.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = (f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {2**30}\r\n\r\n")
        sock.sendall(head.encode() + b'{"version": "4"')
        t0 = time.monotonic()
        reply = read_reply(sock)
        assert time.monotonic() - t0 < 5
    assert reply.startswith("HTTP/1.1 413") and f"larger than {MAX_BODY}" in reply
    assert endpoint.stored() == []
    # Bad Content-Length headers are refused too, not trusted.
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n".encode())
        assert read_reply(sock).split(" ", 2)[1] == "400"
    assert requests.post(endpoint.url, data=payload("still-up"), headers=AUTH, timeout=10).status_code == 200


def test_other_methods_and_paths_do_not_reach_the_inbox(endpoint: Endpoint) -> None:
    base = endpoint.url.removesuffix(WEBHOOK_PATH)
    assert requests.post(f"{base}/api/v1/alerts", data=payload(), headers=AUTH, timeout=10).status_code == 404
    assert requests.get(endpoint.url, headers=AUTH, timeout=10).status_code == 404
    assert endpoint.stored() == []


# --- bounded load -------------------------------------------------------------------------------
REQUESTS = 2_000
WORKERS = 16
INVALID_EVERY = 10  # every 10th request carries a wrong token and must be refused


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@pytest.mark.slow
def test_two_thousand_requests_over_loopback_each_valid_alert_stored_exactly_once(endpoint: Endpoint) -> None:
    local = threading.local()

    def send(i: int) -> tuple[int, int, float]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        token = "wrong" if i % INVALID_EVERY == 0 else TOKEN
        t0 = time.perf_counter()
        answer = session.post(endpoint.url, data=payload(f"fp-{i:05d}"),
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return i, answer.status_code, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:  # a bounded pool and a fixed count: no open-ended loop
        results = list(pool.map(send, range(REQUESTS)))
    elapsed = time.perf_counter() - t0

    valid = {f"fp-{i:05d}" for i in range(REQUESTS) if i % INVALID_EVERY}
    statuses = {i: s for i, s, _ in results}
    assert all(s == (403 if i % INVALID_EVERY == 0 else 200) for i, s in statuses.items())
    stored = endpoint.stored()
    assert len(stored) == len(set(stored)) == len(valid) and set(stored) == valid  # exactly once, none lost

    latencies = [d * 1000 for _, _, d in results]
    figures = {
        "requests": REQUESTS, "workers": WORKERS, "seconds": round(elapsed, 2),
        "rps": round(REQUESTS / elapsed), "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1), "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1), "mean_ms": round(statistics.fmean(latencies), 1),
    }
    print(f"\nwebhook load: {json.dumps(figures)}")
    assert elapsed < 90, figures  # generous: 2 shared cores; the figures above are the real measure


@pytest.mark.slow
def test_a_locked_state_file_gets_503_so_alertmanager_retries_and_nothing_is_lost(endpoint: Endpoint) -> None:
    import sqlite3

    holder = sqlite3.connect(endpoint.daemon.pipeline.store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. an operator's sqlite3 shell holding a write lock
    try:
        refused = requests.post(endpoint.url, data=payload("during-lock"), headers=AUTH, timeout=30)
        health = requests.get(endpoint.url.removesuffix(WEBHOOK_PATH) + "/metrics", timeout=5)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert refused.status_code == 503 and "retry" in refused.json()["error"]
    assert health.status_code == 200  # the server kept serving meanwhile
    # Alertmanager resends the same group: stored once.
    for _ in range(2):
        assert requests.post(endpoint.url, data=payload("during-lock"), headers=AUTH, timeout=10).status_code == 200
    assert endpoint.stored() == ["during-lock"]
