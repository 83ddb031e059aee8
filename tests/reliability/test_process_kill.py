"""SIGKILL the daemon mid-evacuation and mid-delivery, restart it: no duplicate action or message,
state intact. A corrupt or locked state file stops the daemon with a clear error, never a reset."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops.state.books import Books
from aiops.state import Store
from aiops.testing.dingtalk import DingTalkReceiver
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_node, make_pod
from aiops.demo.prometheus import PrometheusServer
from aiops.testing.smtp import SmtpServer
from tests.prometheus_history import write_history
from tests.reliability.daemon_process import (
    node_failing_rules,
    WEBHOOK_TOKEN,
    DaemonProcess,
    applied_writes,
    daemon_config,
    evictions,
    wait_for,
)
from tests.engine.kubecluster import CLUSTER_ROLE, seed_workload

# Starts daemons or real servers (tens of seconds each): `-m "not slow"` leaves it out of the inner loop.
pytestmark = [pytest.mark.reliability, pytest.mark.slow]

@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    root = tmp_path_factory.mktemp("prom-process")
    write_history(root / "h.om", datetime.now(UTC).replace(second=0, microsecond=0))
    rules = node_failing_rules(root / "rules.json")
    with PrometheusServer(root / "data", openmetrics=root / "h.om", rule_files=[rules],
                          evaluation_interval="1s") as prom:
        yield prom


@pytest.fixture
def kube() -> Iterator[KubeApiServer]:
    with KubeApiServer([make_node(f"gpu-{i}", gpus=8) for i in range(1, 5)], cluster_role=CLUSTER_ROLE) as srv:
        yield srv


def robot_channel(robot: DingTalkReceiver, read_timeout: str = "2s") -> dict:
    return {"plugin": "dingtalk", "params": {"url": robot.url, "access_token": {"env": "RELIABILITY_HOOK_TOKEN"},
                                             "connect_timeout": "1s", "read_timeout": read_timeout}}


def texts(robot: DingTalkReceiver) -> list[str]:
    return [m["markdown"]["text"] if "markdown" in m else m["text"]["content"] for m in robot.messages]


def test_sigkill_mid_evacuation_then_restart_finishes_it_without_doing_anything_twice(
    kube: KubeApiServer, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    seed_workload(kube, "web", ["gpu-1", "gpu-2"], min_available=2)  # the PDB holds web-0: a multi-cycle evacuation
    seed_workload(kube, "llm", ["gpu-1", "gpu-3"])
    with DingTalkReceiver(access_token=WEBHOOK_TOKEN) as robot:
        cfg = daemon_config(tmp_path, kube, prometheus.url, channels={"robot": robot_channel(robot)})
        daemon = DaemonProcess(cfg, tmp_path).start()
        try:
            daemon.post_alert("gpu-1")
            # Cordoned, llm-0 evicted, web-0 refused by its PDB (429): the evacuation is half done.
            assert wait_for(lambda: len(evictions(kube, "web-0")) >= 1, 30), daemon.output()[-3000:]
            assert kube.get("Node", "gpu-1", "")["spec"].get("unschedulable") is True
            assert not kube.exists("Pod", "llm-0")
            assert all(r.status == 429 for r in evictions(kube, "web-0"))
            assert wait_for(lambda: any("gpu-1" in t for t in texts(robot)), 15), "the deferral is told"
            daemon.kill()
            killed_at = time.monotonic()
            told_before = texts(robot)

            # While it is down the PDB frees up (a replacement is ready); the restarted daemon resumes.
            kube.seed(make_pod("web-9", node="gpu-3", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
            daemon.start()
            assert wait_for(lambda: not kube.exists("Pod", "web-0"), 30), daemon.output()[-3000:]
            resumed_in = time.monotonic() - killed_at
            time.sleep(3)  # a few more 1 s cycles: nothing may be repeated
            assert daemon.stop() == 0, daemon.output()[-3000:]
        finally:
            if daemon.proc and daemon.proc.poll() is None:
                daemon.proc.kill()
        told_after = texts(robot)[len(told_before):]

    done = Counter(applied_writes(kube, "nodes", "pods"))
    assert done == Counter({("PATCH", "nodes", "", "gpu-1"): 1, ("POST", "pods", "eviction", "llm-0"): 1,
                            ("POST", "pods", "eviction", "web-0"): 1}), done
    # The budget spent once across the kill, and the evacuation no longer in flight.
    store = Store(tmp_path / "state.sqlite")
    books = Books(store)
    assert books.count_actions(datetime.now(UTC) - timedelta(days=1), dry_run=False) == 1
    assert books.last_action_on("node/gpu-1", False) is not None  # its cooldown holds
    assert books.inflight(False) == []
    store.close()
    reasons = Counter(
        r.body.get("reason") for r in kube.requests_matching(method="POST", resource="events")
        if 200 <= r.status < 300 and not r.dry_run and isinstance(r.body, dict)
    )
    # The ledger Event(s) of one evacuation, not one per run, and one disruption Event per pod
    # evicted (the per-workload cap's ledger), none written twice across the kill.
    assert 1 <= reasons["AiopsRemediation"] <= 2 and reasons["AiopsDisruption"] == 2, reasons
    # Nothing told twice: the leaky pod's finding was told before the kill and not again after it.
    assert sum("leaky-0" in t for t in told_before + told_after) == 1
    assert len(set(told_before + told_after)) == len(told_before + told_after)
    assert any("gpu-1" in t for t in told_after), "the finished evacuation is told"
    print(f"\nresumed and finished the evacuation {resumed_in:.1f}s after the SIGKILL (incl. restart)")
    log = daemon.output()
    assert "Traceback" not in log


def test_sigkill_mid_delivery_sends_nothing_twice(
    kube: KubeApiServer, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    with DingTalkReceiver(access_token=WEBHOOK_TOKEN) as robot, SmtpServer() as smtp:
        robot.delay_next(4.0)  # the first DingTalk request hangs: the daemon is killed while it waits
        channels = {
            "robot": robot_channel(robot, read_timeout="10s"),
            "mail": {"plugin": "email", "params": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                                                  "from": "aiops@example.com", "to": ["oncall@example.com"],
                                                  "timeout": "2s"}},
        }
        cfg = daemon_config(tmp_path, kube, prometheus.url, channels=channels)
        daemon = DaemonProcess(cfg, tmp_path).start()
        try:
            # The outbox marks a batch "sending" in its own transaction before the transport call.
            assert wait_for(lambda: outbox_states(tmp_path / "state.sqlite", "robot") == ["sending"], 20)
            # ...and the request has reached DingTalk, which holds it: killed sooner (between the
            # mark and the send, as the full CI run once did on a loaded machine), nothing is sent.
            assert wait_for(lambda: robot.arrived == 1, 20)
            assert robot.requests == []  # DingTalk is still holding the request
            daemon.kill()
            assert wait_for(lambda: len(robot.requests) == 1, 10)  # DingTalk did take it, after the kill
            daemon.start()
            assert wait_for(lambda: len(smtp.received) >= 1, 20), daemon.output()[-3000:]
            time.sleep(4)  # several cycles and flushes after the restart
            assert daemon.stop() == 0, daemon.output()[-3000:]
        finally:
            if daemon.proc and daemon.proc.poll() is None:
                daemon.proc.kill()
        told = texts(robot)
        mails = [m["Message-ID"] for m in smtp.messages]
    # DingTalk cannot de-duplicate, so an interrupted send is recorded as "outcome unknown" and
    # never resent; e-mail is resent under the same Message-ID, which mail systems de-duplicate.
    assert sum("leaky-0" in t for t in told) == 1, told
    assert len(set(mails)) == 1, mails
    outbox = subprocess.run([sys.executable, "-m", "aiops", "notify", "--config", str(tmp_path / "daemon.yaml"),
                             "--outbox"], check=False, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "RELIABILITY_HOOK_TOKEN": WEBHOOK_TOKEN})
    assert "unknown" in (outbox.stdout + outbox.stderr), outbox.stdout + outbox.stderr
    assert applied_writes(kube, "nodes", "pods") == []  # no alert, no action


def outbox_states(state: Path, channel: str) -> list[str]:
    """States of the channel's outbox rows, read as another process would (read-only, no lock kept)."""
    try:
        with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)) as db:
            return [r[0] for r in db.execute("SELECT state FROM notify_outbox WHERE channel = ?", (channel,))]
    except sqlite3.OperationalError:  # not created yet
        return []


def _run_once_against(state: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(f"prometheus: {{url: 'http://127.0.0.1:9'}}\nserver: {{host: 127.0.0.1, port: 0}}\n"
                   f"state: {{path: '{state}'}}\nnotify: {{channels: {{}}}}\n")
    return subprocess.run([sys.executable, "-m", "aiops", "run", "--config", str(cfg)],
                          check=False, capture_output=True, text=True, timeout=60)


def test_corrupt_state_file_is_a_clear_error_and_is_left_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"SQLite format 3\x00" + b"\x13\x37" * 4000)  # a damaged header and pages
    before = state.read_bytes()
    run = _run_once_against(state, tmp_path)
    assert run.returncode == 2, run.stderr
    assert "state database" in run.stderr and "move it aside" in run.stderr
    assert "Traceback" not in run.stderr
    assert state.read_bytes() == before  # never silently reset


def test_locked_state_file_is_a_clear_error_and_nothing_is_lost(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    Store(state).put("cooldown:node/gpu-1", {"until": 123})  # a previous run's state
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        t0 = time.monotonic()
        run = _run_once_against(state, tmp_path)
        waited = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.returncode == 2, run.stderr
    assert "locked by another process" in run.stderr and "Traceback" not in run.stderr
    assert waited < 30
    assert Store(state).get("cooldown:node/gpu-1") == {"until": 123}
