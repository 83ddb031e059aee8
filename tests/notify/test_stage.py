"""The notify stage end to end with real channels: routing, de-dup, resolution, outbox, outages, restarts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aiops import metrics
from aiops.model import ActionStatus, Severity
from aiops.notify.outbox import FAILED, PENDING, SUPERSEDED
from aiops.notify.stage import NotifyStage
from aiops.state import Store
from aiops.testing.dingtalk import DingTalkReceiver
from aiops.testing.smtp import SmtpServer

from .conftest import NOW, Recorder, at_once, config, finding, pod, result

TOKEN = "stage-token"


def recorder_stage(store: Store, routes: list[dict[str, Any]] | None = None, channels: Sequence[str] = ("a",),
                   **notify: Any) -> tuple[NotifyStage, dict[str, Recorder]]:
    cfg = config({"channels": {c: {"plugin": "console"} for c in channels}, "routes": routes or [], **notify})
    recs = {c: Recorder() for c in channels}
    return NotifyStage(cfg, store, recs, now=NOW), recs


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --- de-duplication, repeat, resolution ---------------------------------------------------------
def test_same_finding_is_not_repeated_within_the_repeat_interval(store: Store) -> None:
    stage, recs = recorder_stage(store, [{"name": "all", "channels": ["a"], "repeat_interval": "1h"}])
    for minute in range(5):
        stage.notify([finding()], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert len(recs["a"].sent) == 1
    stage.notify([finding()], [], cycle_id="later", now=NOW + timedelta(minutes=61), degraded=False)
    assert len(recs["a"].sent) == 2


def test_new_severity_or_action_outcome_is_sent_at_once(store: Store) -> None:
    stage, recs = recorder_stage(store)
    stage.notify([finding(severity=Severity.WARNING, score=0.8)], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([finding()], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    stage.notify([finding()], [result(status=ActionStatus.APPLIED)], cycle_id="c3", now=NOW + timedelta(minutes=2), degraded=False)
    stage.notify([finding()], [result(status=ActionStatus.APPLIED)], cycle_id="c4", now=NOW + timedelta(minutes=3), degraded=False)
    sent = recs["a"].sent
    assert [n.severity for n in sent] == [Severity.WARNING, Severity.CRITICAL, Severity.CRITICAL]
    assert sent[2].results[0].status is ActionStatus.APPLIED


def test_cleared_finding_is_resolved_once_but_never_from_a_degraded_cycle(store: Store) -> None:
    stage, recs = recorder_stage(store, at_once("a"))
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=True)
    assert len(recs["a"].sent) == 1  # a partial picture resolves nothing
    stage.notify([], [], cycle_id="c3", now=NOW + timedelta(minutes=2), degraded=False)
    stage.notify([], [], cycle_id="c4", now=NOW + timedelta(minutes=3), degraded=False)
    sent = recs["a"].sent
    assert len(sent) == 2 and sent[1].resolved and sent[1].key == sent[0].key
    assert "cleared" in sent[1].title and sent[1].cycle_id == "c3"


def test_a_condition_flapping_within_resolve_after_is_one_episode(store: Store) -> None:
    """A score that hovers at its threshold comes and goes each minute or two. Told as cleared at
    once, every return was a new page: on the us-east replay one surge paged five times in 8 minutes
    and a conversion drop told "fires, cleared" three times in 7. Like Prometheus's keep_firing_for,
    a condition is cleared only once it has been absent for the route's ``resolve_after``, and one
    that returns before then is the same episode, told once. The clock of its absence is in the
    ledger, so a restart keeps it."""
    routes = [{"name": "all", "channels": ["a"], "resolve_after": "5m"}]
    stage, recs = recorder_stage(store, routes)
    present = [0, 3, 4, 8]  # minutes it is found; absent 1-2, 5-7, then from 9 on
    for minute in range(9):
        stage.notify([finding()] if minute in present else [], [], cycle_id=f"c{minute}",
                     now=NOW + timedelta(minutes=minute), degraded=False)
    assert len(recs["a"].sent) == 1 and not recs["a"].sent[0].resolved
    stage, recs = recorder_stage(store, routes)  # a restart
    for minute in range(9, 15):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    (cleared,) = recs["a"].sent
    assert cleared.resolved and cleared.cycle_id == "c13"  # 5 minutes after it was last found, at 8


def test_a_condition_about_what_nothing_measures_now_is_not_told_cleared(store: Store) -> None:
    """An XID 79 takes the GPU off the bus and its series with it, the XID gauge too on some
    exporters: its "failure observed" then disappears for want of data, and was told as cleared
    16 minutes after it paged (eu-rough) while the GPU was dead. A condition whose entity nothing
    measures this cycle (``unseen``: the GPU that stopped reporting) is not resolved; once it is
    measured again without the condition, it is."""
    stage, recs = recorder_stage(store, [{"name": "all", "channels": ["a"], "resolve_after": "5m"}])
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    for minute in range(1, 30):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False,
                     unseen={pod().key})
    assert len(recs["a"].sent) == 1
    stage.notify([], [], cycle_id="c30", now=NOW + timedelta(minutes=30), degraded=False)
    assert [(n.cycle_id, n.resolved) for n in recs["a"].sent] == [("c0", False), ("c30", True)]


def test_an_action_outcome_that_goes_away_is_not_news(store: Store) -> None:
    """A surge's forecast paged with its scale-up suggested; when the decision moved to the breach
    it forecast, the forecast's next message carried no action and paged again ("failure predicted
    in 0s", every surge of every replay). An outcome that goes away is not news; a new one is."""
    stage, recs = recorder_stage(store)
    stage.notify([finding()], [result()], cycle_id="c0", now=NOW, degraded=False)
    stage.notify([finding()], [], cycle_id="c1", now=NOW + timedelta(minutes=1), degraded=False)
    stage.notify([finding()], [result(status=ActionStatus.APPLIED)], cycle_id="c2",
                 now=NOW + timedelta(minutes=2), degraded=False)
    assert [n.cycle_id for n in recs["a"].sent] == ["c0", "c2"]


def test_a_critical_that_dips_to_warning_within_resolve_after_is_not_paged_again(store: Store) -> None:
    """A forecast at the edge of critical ("failure in 29m", then "32m", then "21m"): told as a
    warning in the dip and paged again a minute later (ap-autoscale, llama's surge). A dip below
    the severity told is the same episode until it has lasted resolve_after; then the lower
    severity is told, once."""
    stage, recs = recorder_stage(store, [{"name": "all", "channels": ["a"], "resolve_after": "5m"}])
    warning = finding(severity=Severity.WARNING, score=0.8)
    for minute, f in enumerate([finding(), warning, warning, finding(), *[warning] * 8]):
        stage.notify([f], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    # critical at 0; the dip at 1-2 is held; critical again at 3 (the same episode); warning from 4,
    # told once it has lasted 5 minutes past the last critical (at 8).
    assert [(n.cycle_id, n.severity) for n in recs["a"].sent] == [("c0", Severity.CRITICAL), ("c8", Severity.WARNING)]


def test_a_ledger_from_before_resolve_after_counts_the_absence_from_the_last_message(store: Store) -> None:
    """A row written by a release without the column has the migration's default, 0: a condition
    absent since is cleared resolve_after past its last message (nothing newer is known)."""
    old, _ = recorder_stage(store, [{"name": "all", "channels": ["a"], "resolve_after": "5m"}])
    old.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    with store.transaction() as conn:  # as the old release left it: no sighting recorded
        conn.execute("UPDATE notify_ledger SET last_seen_at = 0")
    stage, recs = recorder_stage(store, [{"name": "all", "channels": ["a"], "resolve_after": "5m"}])
    for minute in range(2, 7):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    (cleared,) = recs["a"].sent
    assert cleared.resolved and cleared.cycle_id == "c5"


def test_resolve_after_zero_clears_at_the_first_cycle_without_the_condition(store: Store) -> None:
    stage, recs = recorder_stage(store, [{"name": "all", "channels": ["a"], "resolve_after": "0s"}])
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    stage.notify([], [], cycle_id="c1", now=NOW + timedelta(minutes=1), degraded=False)
    stage.notify([finding()], [], cycle_id="c2", now=NOW + timedelta(minutes=2), degraded=False)
    assert [(n.cycle_id, n.resolved) for n in recs["a"].sent] == [("c0", False), ("c1", True), ("c2", False)]


def test_route_without_send_resolved_stays_quiet(store: Store) -> None:
    stage, recs = recorder_stage(store, [{"name": "r", "channels": ["a"], "send_resolved": False}])
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    assert len(recs["a"].sent) == 1


def test_routes_by_severity_and_labels_first_match_wins(store: Store) -> None:
    routes = [
        {"name": "ml-critical", "channels": ["pager"], "min_severity": "critical", "match": {"namespace": "ml"},
         "continue": True, "mentions": {"mobiles": ["13800000000"]}},
        {"name": "ml", "channels": ["chat"], "match": {"namespace": "ml"}},
        {"name": "rest", "channels": ["mail"]},
    ]
    stage, recs = recorder_stage(store, routes, channels=("pager", "chat", "mail"))
    stage.notify(
        [finding(pod("a", "ml")), finding(pod("b", "ml"), severity=Severity.WARNING, score=0.8), finding(pod("c", "web"))],
        [], cycle_id="c1", now=NOW, degraded=False,
    )
    assert [n.entity.name for n in recs["pager"].sent] == ["a"]
    assert sorted(n.entity.name for n in recs["chat"].sent) == ["a", "b"]
    assert [n.entity.name for n in recs["mail"].sent] == ["c"]
    assert recs["pager"].sent[0].labels["__mention_mobiles__"] == "13800000000"
    assert "__mention_mobiles__" not in recs["chat"].sent[0].labels


def test_one_digest_per_route_and_group_window(store: Store) -> None:
    stage, recs = recorder_stage(store, [{"name": "r", "channels": ["a"], "group_interval": "5m"}])
    stage.notify([finding(pod(f"p{i}")) for i in range(4)], [], cycle_id="c1", now=NOW, degraded=False)
    assert [len(b) for b in recs["a"].batches] == [4]  # one digest for the cycle
    stage.notify([finding(pod(f"p{i}")) for i in range(6)], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    stage.notify([finding(pod(f"p{i}")) for i in range(7)], [], cycle_id="c3", now=NOW + timedelta(minutes=2), degraded=False)
    assert len(recs["a"].batches) == 1  # new findings wait for the window
    stage.flush(NOW + timedelta(minutes=5, seconds=1))
    assert [sorted(n.entity.name for n in b) for b in recs["a"].batches[1:]] == [["p4", "p5", "p6"]]


# --- real channels: outages, retries, restarts ----------------------------------------------------
@dataclass
class Rig:
    robot: DingTalkReceiver
    smtp: SmtpServer
    path: Path

    def config(self, **outbox: Any) -> Any:
        return config({
            "channels": {
                "dingtalk": {"plugin": "dingtalk", "params": {"access_token": {"env": "STAGE_DT_TOKEN"}, "url": self.robot.url,
                                                             "connect_timeout": "1s", "read_timeout": "1s"}},
                "email": {"plugin": "email", "params": {"host": "127.0.0.1", "port": self.smtp.port, "security": "none",
                                                       "from": "aiops@example.com", "to": ["oncall@example.com"], "timeout": "2s"}},
            },
            "outbox": {"backoff_initial": "10s", "backoff_max": "1m", **outbox},
        })

    def stage(self, **outbox: Any) -> NotifyStage:
        return NotifyStage.from_config(self.config(**outbox), Store(self.path))


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("STAGE_DT_TOKEN", TOKEN)
    with DingTalkReceiver(access_token=TOKEN) as robot, SmtpServer() as smtp:
        yield Rig(robot, smtp, tmp_path / "state.sqlite")


def test_one_channel_down_does_not_block_the_other(rig: Rig) -> None:
    rig.robot.stop()
    stage = rig.stage()
    before = sample("aiops_notifications_total", channel="dingtalk", result="retry")
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    assert len(rig.smtp.messages) == 1
    assert stage.last_reports["dingtalk"].pending == 1 and "cannot reach DingTalk" in stage.last_reports["dingtalk"].last_error
    assert sample("aiops_outbox_pending", channel="dingtalk") == 1
    assert sample("aiops_outbox_pending", channel="email") == 0
    assert sample("aiops_notifications_total", channel="dingtalk", result="retry") == before + 1


def test_restart_with_items_in_the_outbox_loses_nothing_and_sends_nothing_twice(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.robot.http_error_next(503, count=2)
    stage = rig.stage()
    stage.notify([finding(pod("a"))], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="c2", now=NOW + timedelta(seconds=30), degraded=False)
    assert rig.robot.messages == [] and stage.outbox.pending("dingtalk") >= 1
    stage.close()
    stage.store.close()

    # A new process on the same state file: the outbox is still there and is delivered once.
    again = rig.stage()
    for minute in range(1, 6):
        again.flush(NOW + timedelta(minutes=minute))
    texts = [m["markdown"]["text"] for m in rig.robot.messages]
    assert sum("pod/ml/a" in t for t in texts) == 1 and sum("pod/ml/b" in t for t in texts) == 1
    assert again.outbox.pending() == 0
    assert len(rig.smtp.messages) == 2  # email had no outage: one mail per cycle


def test_retry_budget_then_failed_and_counted(rig: Rig) -> None:
    rig.robot.http_error_next(500, count=10)
    stage = rig.stage(max_attempts=3)
    before = sample("aiops_notifications_total", channel="dingtalk", result="failed")
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    for minute in range(1, 10):
        stage.flush(NOW + timedelta(minutes=minute))
    [row] = stage.outbox.rows("dingtalk")
    assert row["state"] == FAILED and row["attempts"] == 3 and "retry budget spent" in str(row["last_error"])
    assert sample("aiops_notifications_total", channel="dingtalk", result="failed") == before + 1
    assert len(rig.robot.requests) == 3


def test_permanent_error_fails_at_once(rig: Rig) -> None:
    rig.robot.fail_next(300001, "token is not exist")
    stage = rig.stage()
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    [row] = stage.outbox.rows("dingtalk")
    assert row["state"] == FAILED and "300001" in str(row["last_error"])


def test_throttling_holds_the_channel_and_queues_without_spending_attempts(rig: Rig) -> None:
    rig.robot.fail_next(130101, "send too fast")
    stage = rig.stage()
    stage.notify([finding(pod("a"))], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    assert len(rig.robot.requests) == 1  # nothing more is sent to a throttled robot
    rows = {r["key"].split("/")[-1]: r for r in stage.outbox.rows("dingtalk")}
    assert rows["a"]["state"] == PENDING and rows["a"]["attempts"] == 1
    assert rows["b"]["state"] == PENDING and rows["b"]["attempts"] == 0
    assert len(rig.smtp.messages) == 2


def test_twenty_messages_a_minute_at_most(rig: Rig) -> None:
    stage = rig.stage()
    for i in range(25):  # a storm: each cycle one more finding, so each cycle its own digest
        stage.notify([finding(pod(f"p{j}")) for j in range(i + 1)], [], cycle_id=f"c{i}", now=NOW + timedelta(seconds=i),
                     degraded=False)
    # The bucket refills one token per 3 s of real time; the test runs in about a second.
    assert 20 <= len(rig.robot.requests) <= 21 and all(r.errcode == 0 for r in rig.robot.requests)
    waiting = stage.outbox.rows("dingtalk", PENDING)
    assert waiting and all(r["attempts"] == 0 for r in waiting)  # queued, not failed, no attempt spent
    delivered = stage.outbox.rows("dingtalk", "delivered")
    assert len(waiting) + len(delivered) == 25


def test_an_outage_ends_with_the_latest_state_not_a_replay(rig: Rig) -> None:
    rig.robot.stop()
    stage = rig.stage()
    stage.notify([finding(severity=Severity.WARNING, score=0.8)], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([finding()], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    states = sorted(r["state"] for r in stage.outbox.rows("dingtalk"))
    assert states == [PENDING, SUPERSEDED]


def test_crash_between_send_and_mark(rig: Rig) -> None:
    """DingTalk cannot de-duplicate: the interrupted batch is recorded as unknown, not resent.
    Email is resent with the same Message-ID, which mail systems de-duplicate."""
    stage = rig.stage()
    stage.outbox.enqueue(
        [e for e in _envelopes(stage)], NOW,
    )
    for channel in ("dingtalk", "email"):
        batch = stage.outbox._claim(channel, NOW)
        assert batch is not None
        stage.outbox._send(stage.notifiers[channel], batch)  # delivered ... and the process dies here
    first_id = rig.smtp.messages[0]["Message-ID"]
    stage.store.close()

    before = sample("aiops_notifications_total", channel="dingtalk", result="unknown")
    again = rig.stage()
    again.flush(NOW + timedelta(minutes=1))
    assert len(rig.robot.messages) == 1
    [row] = again.outbox.rows("dingtalk")
    assert row["state"] == FAILED and "outcome unknown" in str(row["last_error"])
    assert sample("aiops_notifications_total", channel="dingtalk", result="unknown") == before + 1
    assert [m["Message-ID"] for m in rig.smtp.messages] == [first_id, first_id]


def _envelopes(stage: NotifyStage) -> list[Any]:
    from aiops.notify.outbox import Envelope
    from aiops.notify.build import build_notifications

    [n] = build_notifications([finding()], [], cycle_id="c", min_severity=Severity.WARNING)
    return [Envelope("dingtalk", "default", n), Envelope("email", "default", n)]


# --- fallback ------------------------------------------------------------------------------------
def fallback_stage(rig: Rig, **route: Any) -> NotifyStage:
    cfg = rig.config().model_dump(by_alias=True)
    cfg["notify"]["channels"]["dingtalk"]["fallback"] = "email"
    cfg["notify"]["routes"] = [{"name": "chat", "channels": ["dingtalk"], **route}]
    return NotifyStage.from_config(config(cfg["notify"]), Store(rig.path))


def test_permanent_dingtalk_error_hands_the_message_to_email(rig: Rig) -> None:
    rig.robot.fail_next(310000, "keywords not in content")
    stage = fallback_stage(rig)
    before = sample("aiops_notifications_total", channel="dingtalk", result="rerouted")
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    [mail] = rig.smtp.messages  # same cycle, through the fallback
    assert "pod/ml/llama-0" in mail["Subject"]
    [row] = stage.outbox.rows("dingtalk")
    assert row["state"] == "rerouted" and "310000" in str(row["last_error"])
    assert sample("aiops_notifications_total", channel="dingtalk", result="rerouted") == before + 1


def test_throttled_robot_hands_waiting_messages_to_email_after_fallback_after(rig: Rig) -> None:
    rig.robot.fail_next(130101, "send too fast")
    stage = fallback_stage(rig)
    stage.notify([finding(pod("a"))], [], cycle_id="c1", now=NOW, degraded=False)
    stage.notify([finding(pod("a"))], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    assert rig.smtp.messages == []  # still within fallback_after (2m)
    stage.notify([finding(pod("a"))], [], cycle_id="c3", now=NOW + timedelta(minutes=2, seconds=1), degraded=False)
    assert len(rig.smtp.messages) == 1 and len(rig.robot.requests) == 1
    assert stage.outbox.pending("dingtalk") == 0  # handed over, so never also sent when the hold ends
    assert {r["state"] for r in stage.outbox.rows("dingtalk")} <= {"rerouted", "superseded"}


@pytest.mark.parametrize("hold", ["group_interval", "storm"])
def test_a_message_held_on_purpose_waits_for_a_healthy_channel_not_for_its_fallback(rig: Rig, hold: str) -> None:
    """A route's group window or a storm window holds messages back; fallback_after counts from
    when a message is due, so a healthy DingTalk gets them when the hold ends and email gets nothing."""
    stage = fallback_stage(rig, group_interval="10m") if hold == "group_interval" else fallback_stage(rig)
    first = [finding(pod(f"p{i}")) for i in range(2 if hold == "group_interval" else 25)]
    stage.notify(first, [], cycle_id="c0", now=NOW, degraded=False)
    assert len(rig.robot.messages) == 1  # a digest, or the storm summary
    for minute in range(1, 17):
        stage.notify([*first, finding(pod("late"))], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute),
                     degraded=False)
    assert rig.smtp.messages == []
    assert sum("pod/ml/late" in m["markdown"]["text"] for m in rig.robot.messages) == 1


def test_settled_rows_are_pruned_delivered_soon_failed_later(store: Store) -> None:
    stage, _ = recorder_stage(store, outbox={"keep_delivered": "15m", "keep_failed": "1d"})
    stage.notify([finding(pod("a"))], [], cycle_id="c1", now=NOW, degraded=False)
    with store.transaction() as conn:  # one row failed long ago, for contrast
        conn.execute("UPDATE notify_outbox SET state = 'failed', notification = '{}' WHERE key LIKE '%/a'")
    stage.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    assert len(stage.outbox.rows(state="delivered")) == 1
    stage.flush(NOW + timedelta(minutes=17))
    assert stage.outbox.rows(state="delivered") == [] and len(stage.outbox.rows(state="failed")) == 1
    stage.flush(NOW + timedelta(days=2))
    assert stage.outbox.rows() == []


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_a_hanging_channel_costs_its_timeout_and_delays_no_other(rig: Rig) -> None:
    import time

    rig.robot.delay_next(3.0, count=5)
    stage = rig.stage()
    t0 = time.monotonic()
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    elapsed = time.monotonic() - t0
    assert len(rig.smtp.messages) == 1
    assert stage.last_reports["dingtalk"].retried == 1 and "timed out" in stage.last_reports["dingtalk"].last_error
    assert elapsed < 2.5  # one read timeout (1s), not one per queued message, and email did not wait for it


def test_a_damaged_outbox_row_fails_alone(store: Store) -> None:
    stage, recs = recorder_stage(store)
    stage.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="c1", now=NOW, degraded=False)
    with store.transaction() as conn:
        conn.execute("INSERT INTO notify_outbox (id, channel, grp, key, severity_rank, notification, state, created_at, "
                     "next_attempt_at, updated_at) VALUES ('x:a', 'a', 'default', 'k', 2, '{broken', 'pending', 0, 0, 0)")
    stage.notify([finding(pod("a")), finding(pod("b")), finding(pod("c"))], [], cycle_id="c2", now=NOW + timedelta(minutes=1),
                 degraded=False)
    assert sorted(n.entity.name for n in recs["a"].sent if n.entity) == ["a", "b", "c"]
    [bad] = stage.outbox.rows(state=FAILED)
    assert bad["id"] == "x:a" and "unreadable payload" in str(bad["last_error"])


def test_only_the_leader_tells_and_a_new_leader_does_not_repeat(store: Store) -> None:
    leader = {"now": False}
    cfg = config({"channels": {"a": {"plugin": "console"}}})
    rec = Recorder()
    stage = NotifyStage(cfg, store, {"a": rec}, now=NOW, is_leader=lambda: leader["now"])
    assert stage.notify([finding(pod("a"))], [], cycle_id="c1", now=NOW, degraded=False) == []
    assert rec.sent == [] and stage.outbox.rows() == []
    leader["now"] = True  # takes over: "a" was told by the old leader, "b" is new
    stage.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    assert [n.entity.name for n in rec.sent if n.entity] == ["b"]


class MemoryLedger:
    """The shared ledger (in the cluster as AiopsNotified Events) as both replicas see it."""

    def __init__(self) -> None:
        self.entries: set[tuple[str, str, str]] = set()

    def delivered(self) -> set[tuple[str, str, str]]:
        return set(self.entries)

    def publish(self, delivered: Any, now: Any) -> None:
        self.entries |= set(delivered)


class Down(Recorder):
    def send(self, batch: Sequence[Any]) -> Any:
        from aiops.plugins import Delivery, DeliveryStatus

        return Delivery(DeliveryStatus.RETRY, "throttled")


def test_a_follower_marks_told_only_what_the_leader_delivered(tmp_path: Path) -> None:
    """The old leader delivers "a" but dies with "b" in its outbox: the new leader sends "b", once."""
    shared = MemoryLedger()
    cfg = config({"channels": {"a": {"plugin": "console"}}})
    old_store, new_store = Store(tmp_path / "old.sqlite"), Store(tmp_path / "new.sqlite")
    old = NotifyStage(cfg, old_store, {"a": Recorder()}, now=NOW, is_leader=lambda: True, shared=shared)
    old.notify([finding(pod("a"))], [], cycle_id="c1", now=NOW, degraded=False)
    old.notifiers["a"] = Down()  # throttled from now on: "b" waits in the old leader's outbox
    old.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="c2", now=NOW + timedelta(minutes=1), degraded=False)
    assert {k.rsplit("/", 1)[-1] for _, k, _ in shared.entries} == {"a"}

    leading = {"now": False}
    rec = Recorder()
    new = NotifyStage(cfg, new_store, {"a": rec}, now=NOW, is_leader=lambda: leading["now"], shared=shared)
    new.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id="f1", now=NOW + timedelta(minutes=1), degraded=False)
    leading["now"] = True  # the old leader died
    for minute in (2, 3):
        new.notify([finding(pod("a")), finding(pod("b"))], [], cycle_id=f"n{minute}",
                   now=NOW + timedelta(minutes=minute), degraded=False)
    assert [n.entity.name for n in rec.sent if n.entity] == ["b"]


class Flaky(Recorder):
    """A channel that answers 503 while ``down``, and records what it is given once it is back."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def send(self, batch: Sequence[Any]) -> Any:
        from aiops.plugins import Delivery, DeliveryStatus

        if self.down:
            return Delivery(DeliveryStatus.RETRY, "HTTP 503")
        return super().send(batch)


def flaky_stage(store: Store) -> tuple[NotifyStage, Flaky]:
    cfg = config({"channels": {"a": {"plugin": "console"}}, "routes": at_once("a"),
                  "outbox": {"max_attempts": 3, "backoff_initial": "10s", "backoff_max": "1m"}})
    rec = Flaky()
    return NotifyStage(cfg, store, {"a": rec}, now=NOW), rec


def test_an_outage_longer_than_the_retry_budget_pages_again_while_the_condition_is_active(store: Store) -> None:
    """The retry budget ran out (the row failed) but the condition still fires: it was never told,
    so it is queued again at the next cycle rather than held back for the repeat interval (4h)."""
    stage, rec = flaky_stage(store)
    for minute in range(12):
        rec.down = minute < 5
        stage.notify([finding()], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert [r["state"] for r in stage.outbox.rows("a", FAILED)] == [FAILED]  # the first row's budget was spent
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, False)]  # told once, when the channel was back


def test_a_condition_never_delivered_is_not_told_as_cleared(store: Store) -> None:
    stage, rec = flaky_stage(store)
    for minute in range(3):  # the budget is spent at the third attempt
        stage.notify([finding()], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert stage.outbox.pending("a") == 0
    rec.down = False
    for minute in range(3, 6):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert rec.sent == []  # nothing was told, so nothing is cleared


def test_a_condition_that_clears_while_its_first_message_waits_is_never_told(store: Store) -> None:
    """The channel is down when a condition fires and it clears before the channel is back: nothing
    of it reached anyone, so the waiting message is dropped and no "cleared" follows (as Alertmanager
    never resolves an alert it did not notify)."""
    stage, rec = flaky_stage(store)
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    assert [r["state"] for r in stage.outbox.rows("a")] == [PENDING]  # one attempt spent, retrying
    stage.notify([], [], cycle_id="c1", now=NOW + timedelta(minutes=1), degraded=False)
    rec.down = False
    for minute in range(2, 6):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert rec.sent == []
    assert [r["state"] for r in stage.outbox.rows("a")] == [SUPERSEDED]
    # The episode is closed: firing again is a new condition, told at once.
    stage.notify([finding()], [], cycle_id="c6", now=NOW + timedelta(minutes=6), degraded=False)
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, False)]


def _warning_told_then_critical_waits_as_it_clears(stage: NotifyStage, rec: Flaky) -> None:
    """A warning is delivered; the critical that follows waits behind an outage; the condition
    clears during it; the channel comes back for three cycles."""
    rec.down = False
    stage.notify([finding(severity=Severity.WARNING, score=0.8)], [], cycle_id="c0", now=NOW, degraded=False)
    rec.down = True
    stage.notify([finding()], [], cycle_id="c1", now=NOW + timedelta(minutes=1), degraded=False)
    stage.notify([], [], cycle_id="c2", now=NOW + timedelta(minutes=2), degraded=False)
    rec.down = False
    for minute in range(3, 6):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)


def test_a_condition_partly_told_is_cleared_even_if_its_latest_state_waits(store: Store) -> None:
    """A warning was delivered, the critical that followed waits behind an outage when it clears:
    the on-call saw the warning, so the resolution is sent (and supersedes the critical)."""
    stage, rec = flaky_stage(store)
    _warning_told_then_critical_waits_as_it_clears(stage, rec)
    assert [(n.severity, n.resolved) for n in rec.sent] == [(Severity.WARNING, False), (Severity.CRITICAL, True)]


class NoRedelivery(Recorder):
    redeliver_after_crash = False  # as DingTalk


def test_a_message_whose_outcome_a_crash_left_unknown_is_cleared(tmp_path: Path) -> None:
    """The process died after sending but before marking: the message may have arrived, so when the
    condition clears it is resolved as if it had."""
    cfg = config({"channels": {"a": {"plugin": "console"}}, "routes": at_once("a")})
    stage = NotifyStage(cfg, Store(tmp_path / "s.sqlite"), {"a": Flaky()}, now=NOW)
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    batch = stage.outbox._claim("a", NOW + timedelta(minutes=1))
    assert batch is not None  # sent ... and the process dies here
    stage.store.close()
    rec = NoRedelivery()
    again = NotifyStage(cfg, Store(tmp_path / "s.sqlite"), {"a": rec}, now=NOW + timedelta(minutes=1))
    again.notify([], [], cycle_id="c1", now=NOW + timedelta(minutes=1), degraded=False)
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, True)]


def test_a_new_leader_clears_what_the_old_leader_told(tmp_path: Path) -> None:
    """A follower's ledger holds only what the leader delivered: after a takeover it is cleared as usual."""
    shared = MemoryLedger()
    cfg = config({"channels": {"a": {"plugin": "console"}}, "routes": at_once("a")})
    old = NotifyStage(cfg, Store(tmp_path / "old.sqlite"), {"a": Recorder()}, now=NOW, is_leader=lambda: True, shared=shared)
    old.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    leading = {"now": False}
    rec = Recorder()
    new = NotifyStage(cfg, Store(tmp_path / "new.sqlite"), {"a": rec}, now=NOW, is_leader=lambda: leading["now"], shared=shared)
    new.notify([finding()], [], cycle_id="f1", now=NOW, degraded=False)
    leading["now"] = True
    new.notify([], [], cycle_id="n2", now=NOW + timedelta(minutes=1), degraded=False)
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, True)]


def test_a_delivered_condition_is_not_repeated_when_a_later_change_fails(store: Store) -> None:
    """Only what was never delivered is due again: a failed change (warning -> critical) leaves the
    delivered warning as told, and the critical is queued again; a delivered state is not repeated."""
    stage, rec = flaky_stage(store)
    rec.down = False
    stage.notify([finding(severity=Severity.WARNING, score=0.8)], [], cycle_id="c0", now=NOW, degraded=False)
    rec.down = True
    for minute in range(1, 4):
        stage.notify([finding()], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    rec.down = False
    for minute in range(4, 8):
        stage.notify([finding()], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert [n.severity for n in rec.sent] == [Severity.WARNING, Severity.CRITICAL]


class Refreshing(Recorder):
    """A channel that wants every active condition re-sent each minute, one by one (as Alertmanager does)."""

    groups_itself = True
    repeat_interval = timedelta(minutes=1)


def test_more_active_conditions_than_one_flush_carries_take_turns(store: Store) -> None:
    """One flush sends at most 20 batches; with more due than that every cycle, the ones waiting
    longest go first, so none is starved by those that won the last flush."""
    cfg = config({"channels": {"a": {"plugin": "console"}}, "outbox": {"max_batch": 2}})
    rec = Refreshing()
    stage = NotifyStage(cfg, store, {"a": rec}, now=NOW)
    findings = [finding(pod(f"p{i:02d}")) for i in range(60)]  # 40 a flush
    told: list[set[str]] = []
    for minute in range(8):
        rec.batches.clear()
        stage.notify(findings, [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
        told.append({n.key for n in rec.sent})
        assert len(told[-1]) == 40
    everyone = {f.key for f in findings}
    assert all(told[i] | told[i + 1] == everyone for i in range(len(told) - 1))


def test_a_cleared_message_outlasting_its_retry_budget_is_queued_again(store: Store) -> None:
    """The condition was told, the channel is down when it clears and stays down past the retry
    budget of the "cleared": like a firing message, the given-up "cleared" is queued again, so the
    on-call who saw it fire hears that it cleared once the channel is back."""
    stage, rec = flaky_stage(store)
    rec.down = False
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    rec.down = True
    for minute in range(1, 5):  # the "cleared" queued at minute 1 spends its 3 attempts
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert [r["state"] for r in stage.outbox.rows("a", FAILED)] == [FAILED]
    rec.down = False
    for minute in range(5, 8):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, False), (finding().key, True)]


def test_a_told_condition_whose_repeat_is_given_up_is_still_cleared(store: Store) -> None:
    """A repeat of a told condition spends its retry budget in an outage: the ledger still knows the
    first message arrived, so when the condition clears the on-call hears it (it was not withdrawn
    as if nobody had seen it)."""
    cfg = config({"channels": {"a": {"plugin": "console"}}, "routes": at_once("a", repeat_interval="5m"),
                  "outbox": {"max_attempts": 2, "backoff_initial": "10s", "backoff_max": "10s"}})
    rec = Flaky()
    stage = NotifyStage(cfg, store, {"a": rec}, now=NOW)
    rec.down = False
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    rec.down = True
    for minute in range(1, 9):  # the repeat at minute 5 is given up at minute 6, queued again at 7
        stage.notify([finding()], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert FAILED in {r["state"] for r in stage.outbox.rows("a")}
    stage.notify([], [], cycle_id="c9", now=NOW + timedelta(minutes=9), degraded=False)
    rec.down = False
    for minute in range(10, 13):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, False), (finding().key, True)]


def test_without_send_resolved_a_waiting_message_of_a_cleared_condition_is_withdrawn(store: Store) -> None:
    """A route that sends no "cleared": a warning was told, the critical that followed waits behind
    an outage when the condition clears. Nothing supersedes the critical there (no "cleared" is
    queued), so it is withdrawn rather than sent about something over."""
    cfg = config({"channels": {"a": {"plugin": "console"}}, "routes": at_once("a", send_resolved=False),
                  "outbox": {"backoff_initial": "10s", "backoff_max": "1m"}})
    rec = Flaky()
    stage = NotifyStage(cfg, store, {"a": rec}, now=NOW)
    _warning_told_then_critical_waits_as_it_clears(stage, rec)
    assert [(n.severity, n.resolved) for n in rec.sent] == [(Severity.WARNING, False)]
    assert {r["state"] for r in stage.outbox.rows("a")} == {"delivered", SUPERSEDED}


def test_a_condition_that_flaps_during_an_outage_is_still_cleared(store: Store) -> None:
    """Told, then the channel goes down; the condition clears, fires again (its new firing message
    supersedes the waiting "cleared") and clears again before the channel is back. The on-call saw
    it fire and never heard it clear: the "cleared" is sent, not withdrawn as if nobody had seen it."""
    stage, rec = flaky_stage(store)
    rec.down = False
    stage.notify([finding()], [], cycle_id="c0", now=NOW, degraded=False)
    rec.down = True
    for minute, findings in ((1, []), (2, [finding()]), (3, [])):
        stage.notify(findings, [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    rec.down = False
    for minute in range(4, 7):
        stage.notify([], [], cycle_id=f"c{minute}", now=NOW + timedelta(minutes=minute), degraded=False)
    assert [(n.key, n.resolved) for n in rec.sent] == [(finding().key, False), (finding().key, True)]
