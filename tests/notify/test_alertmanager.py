"""Alertmanager in and out against the real Debian ``prometheus-alertmanager`` on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from pydantic import SecretStr

from aiops.collect.prometheus import RawSeries
from aiops.config.policy import PolicyConfig, PolicyRule
from aiops.engine.decide import Policy
from aiops.model import Entity, Mode, Severity
from aiops.notify.alertmanager import (
    AlertmanagerClient,
    AlertmanagerNotifier,
    alert_labels,
    silence_labels,
)
from aiops.notify.inbound import AlertInbox
from aiops.notify.verify import AlertVerifier
from aiops.notify.build import build_notifications
from aiops.notify.webhook import handle_alertmanager
from aiops.plugins import DeliveryStatus
from aiops.state import Store
from aiops.demo.prometheus import free_port

from .conftest import (
    at_once,
    WEBHOOK_TOKEN,
    AuthAlertmanager,
    Recorder,
    WebhookServer,
    finding,
    pod,
)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthAlertmanager, WebhookServer]]:
    path: Path = tmp_path_factory.mktemp("am")
    store = Store(path / "state.sqlite")
    hook = WebhookServer(AlertInbox(store))
    am = AuthAlertmanager(path / "alertmanager", webhook_url=hook.url)
    with am:
        yield am, hook
    hook.close()
    store.close()


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met within the timeout")


def notification(name: str, **kw: Any):
    [n] = build_notifications([finding(pod(name), now=datetime.now(UTC), **kw)], [], cycle_id="cyc-am",
                              min_severity=Severity.WARNING)
    return replace(n, labels={**n.labels, "__link_grafana__": "https://grafana.example/d/pods?var-pod=" + name})


def am_alerts(am: AuthAlertmanager, pod_name: str) -> list[dict[str, Any]]:
    alerts = requests.get(f"{am.url}/api/v2/alerts", timeout=5).json()
    return [a for a in alerts if a["labels"].get("pod") == pod_name]


def test_pushed_findings_appear_in_alertmanager_and_resolve(rig: tuple[AuthAlertmanager, WebhookServer]) -> None:
    am, _ = rig
    channel = AlertmanagerNotifier(url=am.url)
    n = notification("push-0")
    d = channel.send([n])
    assert d.status is DeliveryStatus.DELIVERED, d.detail
    [alert] = am_alerts(am, "push-0")
    assert alert["labels"] == {
        "alertname": "AiopsPodMemoryUsageRatio", "severity": "critical", "detector": "exhaustion",
        "signal": "pod_memory_usage_ratio", "kind": "pod", "namespace": "ml", "pod": "push-0", "node": "gpu-node-1",
        "container": "server", "source": "aiops",
    }
    ann = alert["annotations"]
    assert ann["summary"].startswith("[CRITICAL] pod/ml/push-0") and ann["lead_time"] == "2520s"
    assert "rising" in ann["evidence"] and "0.71 → 0.91" in ann["recent"]
    assert alert["generatorURL"] == "https://grafana.example/d/pods?var-pod=push-0"
    ends = datetime.fromisoformat(alert["endsAt"])
    assert timedelta(minutes=4) < ends - datetime.now(UTC) <= timedelta(minutes=5)  # resolves itself if we die

    assert channel.send([replace(n, resolved=True)]).status is DeliveryStatus.DELIVERED
    wait_for(lambda: not am_alerts(am, "push-0"))


def test_silence_created_in_alertmanager_stops_the_action(rig: tuple[AuthAlertmanager, WebhookServer]) -> None:
    am, _ = rig
    client = AlertmanagerClient(am.url, silence_cache_seconds=0)
    f = finding(pod("silenced-0"))
    other = finding(pod("loud-0"))
    assert not client.is_silenced(alert_labels(f))
    sid = client.create_silence({"namespace": "ml", "pod": "silenced-0"}, duration=timedelta(minutes=10), comment="maintenance")
    try:
        assert client.is_silenced(alert_labels(f))
        assert not client.is_silenced(alert_labels(other))
        # Alertmanager agrees: the pushed alert for that pod is suppressed.
        AlertmanagerNotifier(url=am.url).send([notification("silenced-0")])
        [alert] = wait_for(lambda: [a for a in am_alerts(am, "silenced-0") if a["status"]["state"] == "suppressed"])
        assert sid in alert["status"]["silencedBy"]
    finally:
        client.delete_silence(sid)
    assert not client.is_silenced(alert_labels(f))


def test_regex_and_negative_matchers_follow_alertmanager(rig: tuple[AuthAlertmanager, WebhookServer]) -> None:
    am, _ = rig
    now = datetime.now(UTC)
    body = {"matchers": [{"name": "pod", "value": "rx-.*", "isRegex": True, "isEqual": True},
                         {"name": "namespace", "value": "prod", "isRegex": False, "isEqual": False}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat(), "createdBy": "t", "comment": "t"}
    sid = requests.post(f"{am.url}/api/v2/silences", json=body, timeout=5).json()["silenceID"]
    client = AlertmanagerClient(am.url, silence_cache_seconds=0)
    try:
        assert client.is_silenced({"pod": "rx-1", "namespace": "ml"})
        assert not client.is_silenced({"pod": "rx-1", "namespace": "prod"})
        assert not client.is_silenced({"pod": "xrx-1", "namespace": "ml"})  # anchored, as in Alertmanager
    finally:
        client.delete_silence(sid)


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_alertmanager_webhook_delivers_alerts_that_policy_can_act_on(rig: tuple[AuthAlertmanager, WebhookServer]) -> None:
    am, hook = rig
    crash = {"labels": {"alertname": "KubePodCrashLooping", "severity": "critical", "namespace": "ml", "pod": "crashy-0",
                        "container": "server"},
             "annotations": {"summary": "Pod ml/crashy-0 is crash looping."}}
    requests.post(f"{am.url}/api/v2/alerts", json=[crash], timeout=5).raise_for_status()
    # Our own pushed alerts come back through the same receiver and must be ignored (no loop).
    AlertmanagerNotifier(url=am.url).send([notification("echo-0")])

    def crash_findings() -> list[Any]:
        return [f for f in hook.inbox.findings(datetime.now(UTC)) if f.signal == "KubePodCrashLooping"]

    [unchecked] = wait_for(crash_findings)
    assert all(status == 200 for status, _ in hook.calls)
    wait_for(lambda: any(labels.get("pod") == "echo-0" for labels in hook.delivered_labels))
    assert not [x for x in hook.inbox.findings(datetime.now(UTC)) if x.entity.name == "echo-0"]
    rule = PolicyRule(name="crashloop-from-am", detector="alertmanager", signal="KubePodCrashLooping", entity_kind="pod",
                      require_confirmed=True, action="restart_pod")
    policy = Policy(PolicyConfig(rules=[rule]), Mode.SUGGEST)
    # Nobody checked it against Prometheus: not confirmed, and no rule acts on it.
    assert not unchecked.confirmed and policy.decide([unchecked])[1] == []

    # Prometheus fires it (its ALERTS series, without Alertmanager's extra labels): confirmed.
    firing = RawSeries({"__name__": "ALERTS", "alertname": "KubePodCrashLooping", "alertstate": "firing",
                        "namespace": "ml", "pod": "crashy-0", "container": "server", "severity": "critical"},
                       np.array([0.0]), np.array([1.0]))
    checked = AlertInbox(hook.inbox.store, verifier=AlertVerifier(lambda query, at: [firing]))
    [f] = [x for x in checked.findings(datetime.now(UTC)) if x.signal == "KubePodCrashLooping"]
    assert f.detector == "alertmanager" and f.confirmed and f.score == 1.0
    assert (f.entity.kind, f.entity.namespace, f.entity.name, f.entity.attr("container")) == ("pod", "ml", "crashy-0", "server")
    assert f.evidence.summary == "Pod ml/crashy-0 is crash looping."
    _, decisions = policy.decide([f])
    assert [(d.action, d.target.name) for d in decisions] == [("restart_pod", "crashy-0")]

    ended = {**crash, "endsAt": datetime.now(UTC).isoformat()}
    requests.post(f"{am.url}/api/v2/alerts", json=[ended], timeout=5).raise_for_status()
    wait_for(lambda: not crash_findings())


def test_alertmanager_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    d = AlertmanagerNotifier(url=url, timeout="1s").send([notification("down-0")])
    assert d.status is DeliveryStatus.RETRY and "cannot reach Alertmanager" in d.detail
    assert AlertmanagerClient(url, timeout=1).is_silenced({"pod": "x"}) is True  # fail closed: no action
    with pytest.raises(Exception, match="cannot reach Alertmanager"):
        AlertmanagerClient(url, timeout=1, fail_closed=False).is_silenced({"pod": "x"})


# --- the webhook handler: rejected requests change nothing ------------------------------------------
def payload(**overrides: Any) -> bytes:
    body = {"version": "4", "status": "firing", "receiver": "aiops", "groupKey": "{}:{}", "alerts": [
        {"status": "firing", "labels": {"alertname": "KubeNodeNotReady", "node": "n1", "severity": "warning"},
         "annotations": {}, "startsAt": "2026-11-25T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"}]}
    body.update(overrides)
    return json.dumps(body).encode()


AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@pytest.mark.parametrize(
    ("body", "headers", "token", "status", "says"),
    [
        (payload(), AUTH, None, 404, "server.webhook_token"),
        (payload(), {}, WEBHOOK_TOKEN, 401, "missing bearer token"),
        (payload(), {"authorization": "Basic abc"}, WEBHOOK_TOKEN, 401, "missing bearer token"),
        (payload(), {"Authorization": "Bearer nope"}, WEBHOOK_TOKEN, 403, "wrong bearer token"),
        (b"x" * 5000, AUTH, WEBHOOK_TOKEN, 413, "larger than 4096"),
        (b"{not json", AUTH, WEBHOOK_TOKEN, 400, "not valid JSON"),
        (b"[]", AUTH, WEBHOOK_TOKEN, 400, "JSON object"),
        (payload(version="3"), AUTH, WEBHOOK_TOKEN, 400, "version '3'"),
        (payload(alerts=[{"status": "firing", "labels": {}}]), AUTH, WEBHOOK_TOKEN, 400, "alerts.0.labels"),
        (payload(alerts=[{"status": "burning", "labels": {"a": "b"}}]), AUTH, WEBHOOK_TOKEN, 400, "alerts.0.status"),
    ],
)
def test_webhook_rejects_bad_requests_without_storing(store: Store, body: bytes, headers: dict[str, str],
                                                      token: str | None, status: int, says: str) -> None:
    inbox = AlertInbox(store)
    code, answer = handle_alertmanager(body, headers, inbox, SecretStr(token) if token else None, 4096)
    assert code == status and says in answer["error"]
    assert store.query("SELECT COUNT(*) AS n FROM notify_inbox")[0]["n"] == 0


def test_webhook_accepts_version_4_and_stores_durably(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    code, answer = handle_alertmanager(payload(), AUTH, AlertInbox(store), SecretStr(WEBHOOK_TOKEN), 4096)
    assert (code, answer) == (200, {"status": "ok", "received": 1, "stored": 1})
    store.close()
    reopened = AlertInbox(Store(tmp_path / "s.sqlite"))  # survives a restart
    now = datetime.now(UTC)  # the handler stamps arrival with the wall clock
    [f] = reopened.findings(now)
    assert (f.signal, f.entity.kind, f.entity.name, f.score) == ("KubeNodeNotReady", "node", "n1", 0.8)
    assert reopened.findings(now + timedelta(hours=7)) == []  # Alertmanager stopped repeating it: stale


def test_silencing_the_original_alert_stops_its_remediation(rig: tuple[AuthAlertmanager, WebhookServer], store: Store) -> None:
    am, _ = rig
    inbox = AlertInbox(store)
    inbox.add([{"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "loop-0"}}])
    [f] = inbox.findings(datetime.now(UTC))
    node = Entity("node", "gpu-node-7")
    client = AlertmanagerClient(am.url, silence_cache_seconds=0)
    assert not client.is_silenced(silence_labels(f, f.entity))
    sid = client.create_silence({"alertname": "KubePodCrashLooping", "pod": "loop-0"})
    try:
        assert client.is_silenced(silence_labels(f, f.entity))
    finally:
        client.delete_silence(sid)
    # A silence on a node stops an action on that node even when a pod finding triggered it.
    sid = client.create_silence({"node": "gpu-node-7"})
    try:
        assert client.is_silenced(silence_labels(finding(pod("p", node="other")), node))
        assert not client.is_silenced(silence_labels(finding(pod("p", node="other")), Entity("node", "gpu-node-8")))
    finally:
        client.delete_silence(sid)


def test_wiring_helpers_for_the_daemon(rig: tuple[AuthAlertmanager, WebhookServer], store: Store) -> None:
    am, _ = rig
    from aiops.config import parse_config
    from aiops.notify.alertmanager import AlertmanagerError, silence_checker
    from aiops.notify.webhook import make_handler

    assert silence_checker(parse_config({}).notify) is None
    check = silence_checker(parse_config({"notify": {"channels": {"am": {"plugin": "alertmanager", "params": {"url": am.url}}}}}).notify)
    assert check is not None and check({"pod": "nobody"}) is False
    down = silence_checker(parse_config({"notify": {"channels": {"am": {"plugin": "alertmanager", "params": {
        "url": f"http://127.0.0.1:{free_port()}"}}}}}).notify)
    assert down is not None
    with pytest.raises(AlertmanagerError, match="cannot reach Alertmanager"):
        down({"pod": "x"})  # the writer turns this into a refusal that says why

    handler = make_handler(AlertInbox(store), SecretStr(WEBHOOK_TOKEN), 4096)
    assert handler(payload(), AUTH)[0] == 200
    assert handler(payload(), {})[0] == 401


def test_stage_keeps_alerts_fresh_and_resolves_them_when_the_finding_clears(
    rig: tuple[AuthAlertmanager, WebhookServer], store: Store
) -> None:
    from aiops.config import parse_config
    from aiops.notify.stage import NotifyStage

    am, _ = rig
    cfg = parse_config({"notify": {"channels": {"am": {"plugin": "console"}, "chat": {"plugin": "console"}},
                                   "routes": at_once("am", "chat")}})
    chat = Recorder()
    stage = NotifyStage(cfg, store, {"am": AlertmanagerNotifier(url=am.url), "chat": chat})
    start = datetime.now(UTC)
    f = finding(pod("fresh-0"), now=start)
    for minute in range(3):  # three cycles a minute apart: Alertmanager hears each, chat only the first
        stage.notify([replace(f, observed_at=start + timedelta(minutes=minute))], [], cycle_id=f"c{minute}",
                     now=start + timedelta(minutes=minute), degraded=False)
    assert [len(b) for b in chat.batches] == [1]
    assert stage.last_reports["am"].delivered == 1 and len(stage.outbox.rows("am", "delivered")) == 3
    [alert] = am_alerts(am, "fresh-0")
    assert alert["status"]["state"] == "active"
    stage.notify([], [], cycle_id="c3", now=start + timedelta(minutes=3), degraded=False)
    wait_for(lambda: not am_alerts(am, "fresh-0"))
    assert [len(b) for b in chat.batches] == [1, 1] and chat.sent[1].resolved
    stage.close()


def test_every_active_alert_is_posted_every_cycle_past_two_hundred(store: Store) -> None:
    """A large incident: 300 active findings. Alertmanager takes a list per POST, so the channel
    carries many alerts a send; with the outbox's digest size (10) one flush posted 200 and the same
    100 were never posted at all."""
    from aiops.config import parse_config
    from aiops.notify.stage import NotifyStage

    notifier = AlertmanagerNotifier(url="http://127.0.0.1:9")
    posts: list[list[str]] = []
    notifier.client.post_alerts = lambda alerts: posts.append([a["labels"]["pod"] for a in alerts])  # type: ignore[method-assign]
    stage = NotifyStage(parse_config({"notify": {"channels": {"am": {"plugin": "console"}}}}), store, {"am": notifier})
    findings = [finding(pod(f"p{i:03d}")) for i in range(300)]
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    for minute in range(3):
        posts.clear()
        stage.notify(findings, [], cycle_id=f"c{minute}", now=start + timedelta(minutes=minute), degraded=False)
        assert sorted(p for post in posts for p in post) == [f"p{i:03d}" for i in range(300)]
        assert len(posts) <= 3 and stage.last_reports["am"].pending == 0
    stage.close()


def test_real_webhook_reaches_the_daemon_server_next_to_metrics(tmp_path: Path, store: Store) -> None:
    from aiops.notify.webhook import make_handler
    from aiops.server import WEBHOOK_PATH, DaemonServer

    inbox = AlertInbox(store)
    server = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"),
                          webhook=make_handler(inbox, SecretStr(WEBHOOK_TOKEN), 1_048_576)).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with AuthAlertmanager(tmp_path / "am", webhook_url=base + WEBHOOK_PATH) as am:
            alert = {"labels": {"alertname": "KubeNodeNotReady", "node": "gpu-node-4", "severity": "critical"}}
            requests.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
            [f] = wait_for(lambda: inbox.findings(datetime.now(UTC)))
        assert (f.signal, f.entity.kind, f.entity.name, f.confirmed) == ("KubeNodeNotReady", "node", "gpu-node-4", False)
        assert requests.post(base + WEBHOOK_PATH, data=payload(), timeout=5).status_code == 401
        assert requests.get(base + "/metrics", timeout=5).status_code == 200
    finally:
        server.stop()


def _posting_stage(store: Store, **route: Any) -> tuple[Any, list[list[dict[str, Any]]], Recorder]:
    from aiops.config import parse_config
    from aiops.notify.stage import NotifyStage

    notifier = AlertmanagerNotifier(url="http://127.0.0.1:9")
    posts: list[list[dict[str, Any]]] = []
    notifier.client.post_alerts = lambda alerts: posts.append(list(alerts))  # type: ignore[method-assign]
    chat = Recorder()
    cfg = parse_config({"notify": {"channels": {"am": {"plugin": "console"}, "chat": {"plugin": "console"}},
                                   "routes": [{"name": "all", "channels": ["am", "chat"], **route}]}})
    return NotifyStage(cfg, store, {"am": notifier, "chat": chat}), posts, chat


def _firing(post: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(pod, severity) of each alert in a post that Alertmanager keeps firing past now."""
    now = datetime.now(UTC)
    return [(a["labels"]["pod"], a["labels"]["severity"]) for a in post if datetime.fromisoformat(a["endsAt"]) > now]


def test_a_condition_held_after_it_went_away_stays_firing_in_alertmanager(store: Store) -> None:
    """resolve_after (5m) holds a condition that went away before it is cleared. Alertmanager ends
    an alert not re-posted within its resolve_timeout (5m): without a re-post while held, it
    resolved there a minute before the daemon's "cleared", and a condition back in that minute
    fired anew there (a second page through Alertmanager's routes) while chat heard nothing."""
    stage, posts, chat = _posting_stage(store, resolve_after="5m")
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    f = finding(pod("held-0"))
    stage.notify([f], [], cycle_id="c0", now=start, degraded=False)
    per_minute = []
    for minute in range(1, 7):  # gone from minute 1; held until minute 5, cleared then
        posts.clear()
        stage.notify([], [], cycle_id=f"c{minute}", now=start + timedelta(minutes=minute), degraded=False)
        per_minute.append([a for post in posts for a in _firing(post)])
    assert per_minute[:4] == [[("held-0", "critical")]] * 4, per_minute
    assert per_minute[4:] == [[], []]  # cleared at minute 5 (endsAt now), not held longer by the re-posts
    assert [n.resolved for n in chat.sent] == [False, True]  # chat: one message, one "cleared"
    stage.close()


def test_a_dip_and_an_unmeasured_entity_keep_the_told_alert_firing(store: Store) -> None:
    """A critical that reads a warning for a few cycles is the same episode (held), and so is a
    condition about an entity nothing measures now: Alertmanager keeps the critical firing."""
    stage, posts, _ = _posting_stage(store, resolve_after="5m")
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    dipping, dark = pod("dip-0"), pod("dark-0")
    stage.notify([finding(dipping), finding(dark)], [], cycle_id="c0", now=start, degraded=False)
    for minute in range(1, 9):
        posts.clear()
        stage.notify([finding(dipping, severity=Severity.WARNING, score=0.8)] if minute < 4 else [finding(dipping)],
                     [], cycle_id=f"c{minute}", now=start + timedelta(minutes=minute), degraded=False,
                     unseen=[dark.key])
        assert sorted(a for post in posts for a in _firing(post)) == [("dark-0", "critical"), ("dip-0", "critical")]
    stage.close()


def test_degraded_cycles_keep_what_alertmanager_was_told_firing(store: Store) -> None:
    """A degraded cycle resolves nothing (a partial picture), so Alertmanager must not resolve it either."""
    stage, posts, _ = _posting_stage(store, resolve_after="0s")
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    stage.notify([finding(pod("dim-0"))], [], cycle_id="c0", now=start, degraded=False)
    for minute in range(1, 8):
        posts.clear()
        stage.notify([], [], cycle_id=f"c{minute}", now=start + timedelta(minutes=minute), degraded=True)
        assert [a for post in posts for a in _firing(post)] == [("dim-0", "critical")]
    stage.close()
