"""An action's verdict survives the replica that took it.

A rolling update of aiops (or a shard moving) replaces the replica that acted, and its state
file goes with it. Each action it watches is written down (an ``AiopsVerdict`` Event, "pending",
with the decision and the workload of a restarted pod), and so is each verdict it gives: the
replica that comes after judges what was left pending, escalating it if it did not heal, and
judges nothing twice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiops.engine.act import Actor
from aiops.engine.safety import VERDICT_REASON
from aiops.kube.read import LEDGER_VERDICT
from aiops.model import ActionStatus, Entity, Finding
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_pod
from tests.engine.kubecluster import NOW, decision, finding, make_actor, make_config, seed_workload


def _restarted_by_a_replica_since_gone(server: KubeApiServer, tmp_path: Path, *, healed_at: int | None) -> Finding:
    """A replica (state under ``tmp_path/first``) restarts a crash-looping pod of ``web`` at NOW
    and runs five more minutes, the finding clear from ``healed_at`` (None: still there); then
    it is gone with its state file. The finding."""
    [pod, _] = seed_workload(server, "web", ["gpu-1", "gpu-2"])
    looping = finding("pod_crashlooping", Entity("pod", pod, "default"))
    (tmp_path / "first").mkdir()
    first, _ = make_actor(make_config(server, tmp_path / "first", verify_within="30m"))
    [done] = first.act([decision("restart_pod", looping.entity, looping)], findings=[looping], degraded=False, now=NOW)
    assert done.status is ActionStatus.APPLIED, done.detail
    for minutes in range(1, 6):
        sick = healed_at is None or minutes < healed_at
        assert first.act([], findings=[looping] if sick else [], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    return looping


def _second(server: KubeApiServer, tmp_path: Path) -> Actor:
    (tmp_path / "second").mkdir()
    actor, _ = make_actor(make_config(server, tmp_path / "second", verify_within="30m"))
    return actor


def _verdicts(server: KubeApiServer) -> list[str]:
    return sorted(e["metadata"]["annotations"][LEDGER_VERDICT] for e in server.list("Event", "default")
                  if e["reason"] == VERDICT_REASON)


def test_the_replica_that_comes_after_escalates_an_action_that_did_not_heal(
    server: KubeApiServer, tmp_path: Path
) -> None:
    # The replacement pod crash-loops too (same workload): 30 min after the restart it is "not
    # healed", escalated by the replica that did not take the action.
    looping = _restarted_by_a_replica_since_gone(server, tmp_path, healed_at=None)
    rs = next(r["metadata"]["name"] for r in server.list("ReplicaSet", "default", group="apps"))
    server.seed(make_pod("web-7f9c", node="gpu-2", labels={"app": "web"}, owner=("ReplicaSet", rs)))
    replacement = finding("pod_crashlooping", Entity("pod", "web-7f9c", "default"))
    second = _second(server, tmp_path)
    assert second.act([], findings=[replacement], degraded=False, now=NOW + timedelta(minutes=10)) == []
    [failed] = second.act([], findings=[replacement], degraded=False, now=NOW + timedelta(minutes=31))
    assert failed.status is ActionStatus.FAILED and "not healed" in failed.detail, failed.detail
    assert failed.decision_id == _decision_id(server) and looping.key in failed.detail
    assert "within 30m;" in failed.detail  # as people read durations, not "0:30:00"
    assert _verdicts(server) == ["not_healed", "pending"]
    # Judged once: a third replica has nothing left to judge.
    (tmp_path / "third").mkdir()
    third, _ = make_actor(make_config(server, tmp_path / "third", verify_within="30m"))
    for minutes in (35, 70):
        assert third.act([], findings=[replacement], degraded=False, now=NOW + timedelta(minutes=minutes)) == []


def test_an_action_the_gone_replica_saw_heal_is_not_judged_again(server: KubeApiServer, tmp_path: Path) -> None:
    # Healed at 3 (its verdict Event says so); crash-looping again later is a new story, for a new
    # decision: the replica that comes after escalates nothing.
    looping = _restarted_by_a_replica_since_gone(server, tmp_path, healed_at=3)
    assert _verdicts(server) == ["healed", "pending"]
    second = _second(server, tmp_path)
    for minutes in (10, 31, 45):
        assert second.act([], findings=[looping], degraded=False, now=NOW + timedelta(minutes=minutes)) == []


def _decision_id(server: KubeApiServer) -> str:
    [pending] = [e for e in server.list("Event", "default")
                 if e["reason"] == VERDICT_REASON and e["metadata"]["annotations"][LEDGER_VERDICT] == "pending"]
    return str(pending["metadata"]["annotations"]["aiops.io/decision"])


def test_an_open_circuit_breaker_stays_open_for_the_replica_that_comes_after(
    server: KubeApiServer, tmp_path: Path
) -> None:
    # Two restarts in a row did not heal: the breaker opened, "a human should look". A rolling
    # update of aiops right then must not hand the next replica a closed breaker.
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3", "gpu-4"])
    settings = {"breaker_threshold": 2, "verify_within": "10m", "cooldown": "0s", "max_pods_per_workload": 10}
    (tmp_path / "first").mkdir()
    first, _ = make_actor(make_config(server, tmp_path / "first", **settings))
    t = NOW
    for name in names[:2]:
        d = decision("restart_pod", Entity("pod", name, "default"))
        assert first.act([d], findings=[], degraded=False, now=t)[0].status is ActionStatus.APPLIED
        t += timedelta(minutes=11)
        [failed] = first.act([], findings=[d.finding], degraded=False, now=t)
        assert failed.status is ActionStatus.FAILED
    assert "Circuit breaker opened" in failed.detail
    (tmp_path / "second").mkdir()
    second, _ = make_actor(make_config(server, tmp_path / "second", **settings))
    later = t + timedelta(minutes=5)
    [blocked] = second.act([decision("restart_pod", Entity("pod", names[2], "default"))], findings=[], degraded=False,
                           now=later)
    assert (blocked.status, blocked.rail) == (ActionStatus.BLOCKED, "circuit_breaker"), blocked.detail
    assert second.writer.breaker.opened_until() == t + timedelta(hours=6)


def test_each_verdict_counts_once_in_the_breaker(server: KubeApiServer, tmp_path: Path) -> None:
    # One restart did not heal (the breaker opens at two). The next replica counts it; restarted
    # from its state file (a container restart), it reads the same Event again and must not count
    # it twice: the breaker stays closed and the next restart goes ahead.
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    settings = {"breaker_threshold": 2, "verify_within": "10m", "cooldown": "0s", "max_pods_per_workload": 10}
    (tmp_path / "first").mkdir()
    first, _ = make_actor(make_config(server, tmp_path / "first", **settings))
    d = decision("restart_pod", Entity("pod", names[0], "default"))
    assert first.act([d], findings=[], degraded=False, now=NOW)[0].status is ActionStatus.APPLIED
    [failed] = first.act([], findings=[d.finding], degraded=False, now=NOW + timedelta(minutes=11))
    assert failed.status is ActionStatus.FAILED
    (tmp_path / "second").mkdir()
    config = make_config(server, tmp_path / "second", **settings)
    for minutes in (15, 16):  # the second replica, then the same one restarted
        replica, store = make_actor(config)
        assert replica.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
        replica.close()
        store.close()
    replica, _ = make_actor(config)
    [applied] = replica.act([decision("restart_pod", Entity("pod", names[1], "default"))], findings=[],
                            degraded=False, now=NOW + timedelta(minutes=17))
    assert applied.status is ActionStatus.APPLIED, applied.detail
