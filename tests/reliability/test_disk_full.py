"""A full disk: SQLite's own SQLITE_FULL (the database capped with PRAGMA max_page_count, the same
error a full volume gives) is reported as "disk full", never hidden behind a failed ROLLBACK; the
webhook answers 503 so Alertmanager retries, /readyz flips with the failed write, and both recover
once a write succeeds again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from aiops.config import parse_config
from aiops.daemon import Daemon, webhook_for
from aiops.engine.pipeline import Pipeline
from aiops.metrics import REGISTRY
from aiops.model import utcnow
from aiops.server import WEBHOOK_PATH
from aiops.state import StateError, StateFullError, Store

pytestmark = pytest.mark.reliability

TOKEN = "disk-full-token"
CAP = 2**20


def test_store_reports_disk_full_and_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", max_bytes=CAP)
    store.ensure_schema("CREATE TABLE IF NOT EXISTS blob (x TEXT)")
    with pytest.raises(StateFullError) as caught:
        for _ in range(100):  # 100 x 64 KiB > the 1 MiB cap: bounded
            with store.transaction() as conn:
                conn.execute("INSERT INTO blob VALUES (?)", ("x" * 65536,))
    message = str(caught.value)
    assert message.startswith("disk full:") and "no transaction is active" not in message
    assert caught.value.temporary and isinstance(caught.value, StateError)
    assert store.full and REGISTRY.get_sample_value("aiops_state_disk_full") == 1
    with store.transaction() as conn:  # freeing space (here: rows) heals it
        conn.execute("DELETE FROM blob")
    store.put("k", 1)
    assert not store.full and REGISTRY.get_sample_value("aiops_state_disk_full") == 0
    store.close()


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.setenv("DISK_FULL_TOKEN", TOKEN)
    cfg = parse_config({
        "prometheus": {"url": "http://127.0.0.1:9"},
        "server": {"host": "127.0.0.1", "port": 0, "webhook_token": {"env": "DISK_FULL_TOKEN"}},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite"), "max_bytes": CAP},
    })
    pipeline = Pipeline.from_config(cfg)
    d = Daemon(cfg, pipeline, webhook=webhook_for(cfg, pipeline))
    d.server.start()
    try:
        yield d
    finally:
        d.server.stop()
        pipeline.close()


def alert(i: int) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "fingerprint": f"fp-{i}",
        "labels": {"alertname": "Big", "pod": f"p-{i}"}, "annotations": {"summary": "s" * 200_000}}]}).encode()


def test_webhook_answers_503_disk_full_and_readyz_flips_at_once(daemon: Daemon) -> None:
    base = f"http://127.0.0.1:{daemon.server.port}"
    health = daemon.pipeline.health  # as after a successful cycle
    health.last_success_at, health.prometheus_ok = utcnow(), True
    assert requests.get(base + "/readyz", timeout=5).status_code == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answers = []
    for i in range(20):  # 20 x 200 KB > the 1 MiB cap: bounded
        answer = requests.post(base + WEBHOOK_PATH, data=alert(i), headers=auth, timeout=10)
        answers.append(answer.status_code)
        if answer.status_code != 200:
            break
    assert answers[-1] == 503 and set(answers[:-1]) <= {200}
    assert "disk is full" in answer.json()["error"] and "retry" in answer.json()["error"]
    ready = requests.get(base + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["reason"].startswith("disk full")
    assert "aiops_ready 0.0" in requests.get(base + "/metrics", timeout=5).text
    # Space comes back (here: the inbox is emptied); the next write succeeds and readiness returns.
    with daemon.pipeline.store.transaction() as conn:
        conn.execute("DELETE FROM notify_inbox")
    small = alert(99).replace(b"s" * 200_000, b"small")
    assert requests.post(base + WEBHOOK_PATH, data=small, headers=auth, timeout=10).status_code == 200
    assert requests.get(base + "/readyz", timeout=5).status_code == 200
