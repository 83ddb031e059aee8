"""Evacuating a node against the test API server: cordon, evictions through the Eviction API,
PDBs respected (429 → later, never forced), resumable across a daemon restart, opt-in uncordon."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from aiops.engine.act import Actor
from aiops.engine.correlate import unseen_entities
from aiops.engine.safety import EVENT_REASON
from aiops.kube.plan import CORDON_DECISION, CORDONED_BY
from aiops.model import ActionStatus, Basis, Decision, Entity, Finding, Rung
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_daemonset_pod, make_pod
from tests.engine.kubecluster import NOW, decision, finding, logged, make_actor, make_config, seed_workload, writes

NODE = Entity("node", "gpu-1")


def _pods_on(server: KubeApiServer, node: str) -> set[str]:
    return {p["metadata"]["name"] for p in server.list("Pod") if p["spec"].get("nodeName") == node}


def test_pdb_blocks_eviction_retry_later_never_force(server: KubeApiServer, tmp_path: Path) -> None:
    # web: 2 pods on gpu-1, 1 elsewhere; the PDB allows one disruption.
    seed_workload(server, "web", ["gpu-1", "gpu-1", "gpu-2"], min_available=2)
    server.seed(make_daemonset_pod("dcgm-exporter-x", "dcgm-exporter", node="gpu-1"))
    actor, _ = make_actor(
        make_config(server, tmp_path, max_pods_per_workload=10),
    )
    d = decision("evacuate_node", NODE, max_unavailable_per_workload=2)
    first = actor.act([d], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.DEFERRED, first.detail
    assert "disruption budget" in first.detail
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    evictions = logged(server, 2, method="POST", subresource="eviction")
    assert sorted(r.status for r in evictions) == [201, 429]
    # Never forced: no pod was deleted directly, and the DaemonSet pod was not touched.
    assert not server.requests_matching(method="DELETE", resource="pods")
    assert "dcgm-exporter-x" in _pods_on(server, "gpu-1")
    assert actor.errors == []  # a PDB refusal is normal operation, not a degraded cycle

    # Next cycle: the replacement is up elsewhere, so the PDB allows the second eviction.
    server.seed(make_pod("web-3", node="gpu-3", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
    second = actor.act([d], findings=[], degraded=False, now=NOW + timedelta(minutes=1))[0]
    # The last eviction went through and nothing is left waiting: done, without a later cycle.
    assert second.status is ActionStatus.APPLIED, second.detail
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=2)) == []
    assert _pods_on(server, "gpu-1") == {"dcgm-exporter-x"}
    assert len(server.requests_matching(method="PATCH", resource="nodes")) == 1  # cordoned once


def test_restart_mid_evacuation_resumes_without_double_actions(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-1", "gpu-2"])
    seed_workload(server, "llm", ["gpu-1", "gpu-3"])
    config = make_config(server, tmp_path, max_pods_per_workload=10, max_actions_per_hour=1)
    actor, store = make_actor(config)
    d = decision("evacuate_node", NODE)  # max one unavailable pod per workload at a time
    first = actor.act([d], findings=[d.finding], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.DEFERRED and "waits until" in first.detail
    done_before = {(r.method, r.name) for r in logged(server, 3, writes_only=True) if r.resource in ("pods", "nodes")}
    assert len(done_before) == 3  # cordon + one pod of each workload
    actor.close()
    store.close()

    # The daemon restarts (new process state, same state file); the replacement pods are ready.
    server.clear_requests()
    for w in server.list("Deployment", "default", group="apps"):
        w["status"]["readyReplicas"] = w["spec"]["replicas"]
        server.put(w)
    actor2, store2 = make_actor(config)
    resumed = actor2.act([d], findings=[d.finding], degraded=False, now=NOW + timedelta(minutes=1))[0]
    assert resumed.status is ActionStatus.APPLIED, resumed.detail
    again = {(r.method, r.name) for r in logged(server, 1, writes_only=True) if r.resource in ("pods", "nodes")}
    assert again == {("POST", "web-1")} or again == {("POST", "web-0")}
    assert not again & done_before  # nothing sent twice
    assert not server.requests_matching(method="PATCH", resource="nodes")  # not re-cordoned
    final = actor2.act([d], findings=[d.finding], degraded=False, now=NOW + timedelta(minutes=2))[0]
    assert final.status is ActionStatus.OBSERVED and "no pods left" in final.detail
    assert _pods_on(server, "gpu-1") == set()
    # The whole evacuation spent one budget unit, although the budget is one per hour.
    assert actor2.writer.books.count_actions(NOW - timedelta(hours=1), dry_run=False) == 1
    store2.close()


def test_uncordon_when_healthy_again_only_when_enabled(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    f = finding("node_ready", NODE)
    d = decision("evacuate_node", NODE, f)
    for enabled, sub in ((True, "on"), (False, "off")):
        server.put({**server.get("Node", "gpu-1"), "spec": {}})
        (tmp_path / sub).mkdir()
        actor, _ = make_actor(
            make_config(server, tmp_path / sub, auto_uncordon=enabled, uncordon_after="30m", cooldown="0s")
        )
        t = NOW
        results = actor.act([d], findings=[f], degraded=False, now=t)
        while results and results[0].status is ActionStatus.DEFERRED:
            t += timedelta(minutes=1)
            results = actor.act([d], findings=[f], degraded=False, now=t)
        assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
        # Healthy: the finding is gone. Still cordoned until it has stayed healthy for 30 minutes.
        for minutes in (1, 2, 20):
            actor.act([], findings=[], degraded=False, now=t + timedelta(minutes=minutes))
            assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
        out = actor.act([], findings=[], degraded=False, now=t + timedelta(minutes=40))
        node = server.get("Node", "gpu-1")
        if enabled:
            assert [r.status for r in out] == [ActionStatus.APPLIED] and "uncordon" in out[0].detail
            assert not node["spec"].get("unschedulable") and "aiops.io/cordoned-by" not in node["metadata"].get(
                "annotations", {}
            )
        else:
            assert out == [] and node["spec"]["unschedulable"] is True


def _evacuated_by_a_replica_since_gone(
    server: KubeApiServer, tmp_path: Path, *, healed_at: int | None, judged_at: int
) -> Finding:
    """A replica with ``auto_uncordon`` (state under ``tmp_path/first``) evacuates gpu-1 on a
    NotReady finding at NOW and runs until ``judged_at`` minutes, the finding clear from
    ``healed_at`` (None: never); then it is gone with its state file. The finding."""
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    f = finding("node_ready", NODE)
    (tmp_path / "first").mkdir()
    first, _ = make_actor(make_config(server, tmp_path / "first", auto_uncordon=True, uncordon_after="30m",
                                      verify_within="30m", cooldown="0s"))
    [done] = first.act([decision("evacuate_node", NODE, f)], findings=[f], degraded=False, now=NOW)
    assert done.status is ActionStatus.APPLIED, done.detail
    sick = healed_at if healed_at is not None else judged_at + 1
    for minutes in sorted({*range(1, min(sick, judged_at + 1)), *range(sick, judged_at + 1)}):
        first.act([], findings=[f] if minutes < sick else [], degraded=False, now=NOW + timedelta(minutes=minutes))
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    return f


def _second(server: KubeApiServer, tmp_path: Path) -> Actor:
    (tmp_path / "second").mkdir()
    actor, _ = make_actor(make_config(server, tmp_path / "second", auto_uncordon=True, uncordon_after="30m",
                                      verify_within="30m", cooldown="0s"))
    return actor


def test_a_replaced_replica_uncordons_what_the_one_before_it_evacuated_and_saw_heal(
    server: KubeApiServer, tmp_path: Path
) -> None:
    # A rolling update of aiops replaces the replica between the heal and the uncordon: the node
    # carries the decision that cordoned it, the verdict Event says it healed, and the new
    # replica uncordons once the finding has stayed clear for uncordon_after.
    _evacuated_by_a_replica_since_gone(server, tmp_path, healed_at=5, judged_at=20)
    second = _second(server, tmp_path)
    # Clear for 30 min as it has seen it itself (from 26, the cycle after it adopted the undo).
    for minutes in (25, 26, 40, 55):
        assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    [undo] = second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=57))
    assert undo.status is ActionStatus.APPLIED and "uncordon" in undo.detail, undo.detail
    node = server.get("Node", "gpu-1")
    assert not node["spec"].get("unschedulable")
    assert not {CORDONED_BY, CORDON_DECISION} & set(node["metadata"].get("annotations") or {})


def test_a_replaced_replica_judges_the_evacuation_the_one_before_it_had_not(
    server: KubeApiServer, tmp_path: Path
) -> None:
    # Replaced within verify_within, before any verdict: the new replica gives it. Still NotReady
    # 30 min after the evacuation: not healed, escalated, and the node is never uncordoned.
    f = _evacuated_by_a_replica_since_gone(server, tmp_path, healed_at=None, judged_at=5)
    second = _second(server, tmp_path)
    assert second.act([], findings=[f], degraded=False, now=NOW + timedelta(minutes=10)) == []
    [failed] = second.act([], findings=[f], degraded=False, now=NOW + timedelta(minutes=31))
    assert failed.status is ActionStatus.FAILED and "not healed" in failed.detail, failed.detail
    for minutes in (40, 80, 120):
        assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True


@pytest.mark.parametrize("verdict", ["not healed", "lost"])
def test_a_cordon_whose_verdict_the_new_replica_cannot_know_is_left_for_a_human(
    server: KubeApiServer, tmp_path: Path, verdict: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Judged by the gone replica: not healed (a human has it), or its verdict Event is gone (the
    # cluster keeps events an hour; events switched off). Either way the node stays cordoned.
    caplog.set_level(logging.INFO)
    if verdict == "not healed":
        _evacuated_by_a_replica_since_gone(server, tmp_path, healed_at=None, judged_at=31)
    else:
        _evacuated_by_a_replica_since_gone(server, tmp_path, healed_at=5, judged_at=20)
        for event in server.list("Event", "default"):  # expired, as the cluster drops them
            server.delete("Event", event["metadata"]["name"], "default")
    second = _second(server, tmp_path)
    told = second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=35))
    for minutes in (70, 120):
        assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    assert [r.target for r in caplog.records if r.getMessage() == "undo left for a human"] == ["node/gpu-1"]
    if verdict == "not healed":
        assert told == []  # its human was told when it did not heal
    else:
        # Nobody was told that the node will stay cordoned: the on-call is, once, with the command.
        [suggestion] = told
        assert suggestion.status is ActionStatus.SUGGESTED and suggestion.target == NODE
        assert "node gpu-1 stays as evacuate_node left it" in suggestion.detail, suggestion.detail
        assert "node_ready" in suggestion.detail
        assert suggestion.plan is not None and suggestion.plan.command == "kubectl uncordon gpu-1"


def test_never_uncordons_a_node_a_human_cordoned(server: KubeApiServer, tmp_path: Path) -> None:
    server.put({**server.get("Node", "gpu-1"), "spec": {"unschedulable": True}})
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(
        make_config(server, tmp_path, auto_uncordon=True, uncordon_after="1m", max_cordoned_fraction=0.5)
    )
    f = finding("node_ready", NODE)
    d = decision("evacuate_node", NODE, f)
    assert actor.act([d], findings=[f], degraded=False, now=NOW)[0].status is ActionStatus.APPLIED  # evicted web-0
    for minutes in (5, 10, 20):
        actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes))
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    assert not server.requests_matching(method="PATCH", resource="nodes")


def test_gpu_finding_resolves_to_its_node(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-2"])
    gpu = Entity("gpu", "GPU-abc", attributes=(("Hostname", "gpu-2"),))
    actor, _ = make_actor(make_config(server, tmp_path))
    result = actor.act(
        [decision("evacuate_node", gpu, finding("gpu_xid", gpu), resolve_target="node")],
        findings=[],
        degraded=False,
        now=NOW,
    )[0]
    assert result.target == Entity("node", "gpu-2")
    assert server.get("Node", "gpu-2")["spec"]["unschedulable"] is True
    # The Event (intent, with the finding) is written first, then the cordon.
    assert [w[:2] for w in writes(server)[:2]] == [("POST", "events"), ("PATCH", "nodes")]
    [event] = [e for e in server.list("Event", "default") if e["reason"] == "AiopsRemediation"]
    assert event["involvedObject"]["kind"] == "Node" and event["involvedObject"]["name"] == "gpu-2"
    assert "gpu_xid" in event["message"]


def test_drain_leaves_protected_opted_out_and_bare_pods_alone(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    seed_workload(server, "dns", ["gpu-1", "gpu-2"], namespace="kube-system")
    seed_workload(server, "db", ["gpu-1", "gpu-2"], labels={"aiops.io/remediate": "false"})
    server.seed(make_pod("debug-shell", node="gpu-1"))  # no controller
    actor, _ = make_actor(make_config(server, tmp_path))
    result = actor.act([decision("evacuate_node", NODE)], findings=[], degraded=False, now=NOW)[0]
    assert result.status is ActionStatus.APPLIED, result.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"web-0"}
    assert _pods_on(server, "gpu-1") == {"dns-0", "db-0", "debug-shell"}
    assert "protected namespace kube-system" in result.detail and "aiops.io/remediate=false" in result.detail
    assert "debug-shell" in result.detail  # named for a human
    # Nothing left that aiops may evict: the evacuation is not kept in flight forever.
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=1)) == []


def test_dry_run_evacuation_changes_nothing(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path, dry_run=True))
    result = actor.act([decision("evacuate_node", NODE)], findings=[], degraded=False, now=NOW)[0]
    assert result.status is ActionStatus.DRY_RUN and "cordon" in result.detail
    sent = server.requests_matching(writes_only=True)
    assert sent and all(r.query.get("dryRun") == ["All"] for r in sent)
    assert not server.get("Node", "gpu-1")["spec"].get("unschedulable")
    assert _pods_on(server, "gpu-1") == {"web-0"}
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=1)) == []  # nothing in flight


def test_evacuation_stuck_on_a_pdb_is_escalated_never_forced(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"], min_available=2)  # the PDB never allows a disruption
    actor, _ = make_actor(make_config(server, tmp_path, evacuation_timeout="1h"))
    d = decision("evacuate_node", NODE)
    for minutes in (0, 20, 40):
        result = actor.act(
            [d] if minutes == 0 else [], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)
        )[0]
        assert result.status is ActionStatus.DEFERRED and "disruption budget" in result.detail
    result = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=61))[0]
    assert result.status is ActionStatus.FAILED and "never forced" in result.detail and "a human" in result.detail
    assert not server.requests_matching(method="DELETE", resource="pods")
    assert _pods_on(server, "gpu-1") == {"web-0"}
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=62)) == []  # given up once


def test_no_uncordon_while_the_kubelet_says_not_ready(server: KubeApiServer, tmp_path: Path) -> None:
    f = finding("gpu_xid", NODE)
    actor, _ = make_actor(make_config(server, tmp_path, auto_uncordon=True, uncordon_after="10m"))
    assert (
        actor.act([decision("evacuate_node", NODE, f)], findings=[f], degraded=False, now=NOW)[0].status
        is ActionStatus.APPLIED
    )
    node = server.get("Node", "gpu-1")
    node["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]
    server.put(node)
    for minutes in (1, 15, 30):  # the GPU finding is gone, but the node is NotReady
        assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    node = server.get("Node", "gpu-1")
    node["status"]["conditions"] = [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
    server.put(node)
    [undo] = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=31))
    assert undo.status is ActionStatus.APPLIED
    assert not server.get("Node", "gpu-1")["spec"].get("unschedulable")


def _set_ready(server: KubeApiServer, app: str, ready: int) -> None:
    server.hold_rollouts()  # the test, not the fake controller, says how many replicas are Ready
    dep = server.get("Deployment", app, group="apps")
    dep["status"] = {**dep.get("status", {}), "readyReplicas": ready, "availableReplicas": ready}
    server.put(dep)


def test_prepare_rung_only_cordons(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "llm", ["gpu-1", "gpu-1"])
    actor, _ = make_actor(make_config(server, tmp_path, max_pods_per_workload=10))
    d = decision("evacuate_node", NODE, cordon_only=True, basis="predicted")
    [result] = actor.act([d], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.APPLIED, result.detail
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    assert "cordon node gpu-1" in result.detail
    # Nothing running was disturbed.
    assert not server.requests_matching(method="POST", subresource="eviction")
    assert _pods_on(server, "gpu-1") == {"llm-0", "llm-1"}


def test_evacuation_never_drops_a_model_below_its_ready_floor(server: KubeApiServer, tmp_path: Path) -> None:
    # A model served by 2 replicas, both on the sick node; the floor is 1 Ready replica.
    seed_workload(server, "llm", ["gpu-1", "gpu-1"])
    actor, _ = make_actor(make_config(server, tmp_path, max_pods_per_workload=10))
    d = decision("evacuate_node", NODE, max_unavailable_per_workload=2, min_ready_replicas=1)
    first = actor.act([d], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.DEFERRED and "keeping at least 1 Ready" in first.detail
    assert len(logged(server, 1, method="POST", subresource="eviction")) == 1  # one, not both
    # The replacement is scheduled but not Ready yet: still one Ready replica left, so wait.
    _set_ready(server, "llm", 1)
    server.clear_requests()
    second = actor.act([d], findings=[], degraded=False, now=NOW + timedelta(minutes=1))[0]
    assert second.status is ActionStatus.DEFERRED
    assert not server.requests_matching(method="POST", subresource="eviction")
    # The replacement is Ready elsewhere: now the second pod may move.
    server.seed(make_pod("llm-2", node="gpu-3", labels={"app": "llm"}, owner=("ReplicaSet", _rs(server, "llm"))))
    _set_ready(server, "llm", 2)
    third = actor.act([d], findings=[], degraded=False, now=NOW + timedelta(minutes=2))[0]
    assert third.status is ActionStatus.APPLIED, third.detail
    assert len(logged(server, 1, method="POST", subresource="eviction")) == 1


def _rs(server: KubeApiServer, app: str) -> str:
    return next(r["metadata"]["name"] for r in server.list("ReplicaSet", "default", group="apps")
                if r["metadata"]["name"].startswith(app + "-"))


def test_a_gpu_that_stopped_reporting_is_not_healed_and_its_node_stays_cordoned(
    server: KubeApiServer, tmp_path: Path
) -> None:
    """After XID 79 the GPU falls off the bus and its dcgm series vanish: the XID finding is gone
    because nothing is measured, not because the GPU healed, and correlate says so
    (``gpu_metrics_missing``). The evacuation must not count as healed, the node must not be
    uncordoned onto the dead GPU, and the breaker must hear of it."""
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    gpu = Entity("gpu", "GPU-abc", attributes=(("Hostname", "gpu-1"),))
    xid = finding("gpu_xid", gpu, detector="gpu_health")
    missing = finding("gpu_metrics_missing", gpu, detector="root_cause", score=0.9)
    missing = replace(missing, evidence=replace(missing.evidence, summary=(
        "GPU GPU-abc on node gpu-1 stopped reporting DCGM_FI_DEV_GPU_TEMP at 09:01 UTC while the node is Ready")))
    actor, store = make_actor(make_config(server, tmp_path, auto_uncordon=True, uncordon_after="30m",
                                          verify_within="30m", max_cordoned_fraction=0.5))
    [applied] = actor.act([decision("evacuate_node", gpu, xid, resolve_target="node")], findings=[xid],
                          degraded=False, now=NOW)
    assert applied.status is ActionStatus.APPLIED
    out = []
    for minutes in (1, 2, 20, 35, 70, 110):
        out += actor.act([], findings=[missing], unseen=unseen_entities([missing]), degraded=False,
                         now=NOW + timedelta(minutes=minutes))
    assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
    assert [r.status for r in out] == [ActionStatus.FAILED]
    assert "not healed" in out[0].detail and "stopped reporting" in out[0].detail
    [row] = store.query("SELECT status FROM action_outcomes")
    assert row["status"] == "not_healed"


def test_a_gpu_that_reports_again_and_is_clear_heals_the_evacuation(server: KubeApiServer, tmp_path: Path) -> None:
    """The same GPU back on the bus (the node rebooted) with no XID: healed, and uncordoned after
    the healthy period, as before."""
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    gpu = Entity("gpu", "GPU-abc", attributes=(("Hostname", "gpu-1"),))
    xid = finding("gpu_xid", gpu, detector="gpu_health")
    missing = finding("gpu_metrics_missing", gpu, detector="root_cause", score=0.9)
    actor, store = make_actor(make_config(server, tmp_path, auto_uncordon=True, uncordon_after="30m",
                                          verify_within="30m", max_cordoned_fraction=0.5))
    actor.act([decision("evacuate_node", gpu, xid, resolve_target="node")], findings=[xid], degraded=False, now=NOW)
    assert actor.act([], findings=[missing], unseen=unseen_entities([missing]), degraded=False,
                     now=NOW + timedelta(minutes=5)) == []
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=10)) == []
    [row] = store.query("SELECT status FROM action_outcomes")
    assert row["status"] == "healed"
    actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=11))
    [undo] = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=45))
    assert undo.status is ActionStatus.APPLIED and not server.get("Node", "gpu-1")["spec"].get("unschedulable")


def test_an_entity_a_detector_skipped_this_cycle_is_not_judged_healed(server: KubeApiServer, tmp_path: Path) -> None:
    """One of the GPU's series raised in its detector (skipped, logged): its finding is absent for
    want of a score. The outcome waits for a cycle that scores it."""
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    gpu = Entity("gpu", "GPU-abc", attributes=(("Hostname", "gpu-1"),))
    xid = finding("gpu_xid", gpu, detector="gpu_health")
    actor, store = make_actor(make_config(server, tmp_path, auto_uncordon=True, uncordon_after="30m",
                                          verify_within="30m", max_cordoned_fraction=0.5))
    actor.act([decision("evacuate_node", gpu, xid, resolve_target="node")], findings=[xid], degraded=False, now=NOW)
    skipped = {gpu.key: "detector gpu_health skipped it this cycle"}
    assert actor.act([], findings=[], unseen=skipped, degraded=False, now=NOW + timedelta(minutes=5)) == []
    [row] = store.query("SELECT status FROM action_outcomes")
    assert row["status"] == "pending"
    [still] = actor.act([], findings=[xid], degraded=False, now=NOW + timedelta(minutes=31))
    assert still.status is ActionStatus.FAILED and "not healed" in still.detail


def test_an_evacuation_that_did_not_heal_is_pruned_like_any_judged_outcome(server: KubeApiServer, tmp_path: Path) -> None:
    """With auto_uncordon an evacuation's outcome waits for its uncordon; one that did not heal is
    never uncordoned (a human has it), so its row must not wait for ever: pruned after the
    retention like every judged outcome."""
    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    f = finding("node_ready", NODE)
    actor, store = make_actor(make_config(server, tmp_path, auto_uncordon=True, uncordon_after="30m",
                                          verify_within="10m", max_cordoned_fraction=0.7, cooldown="0s"))
    assert actor.act([decision("evacuate_node", NODE, f)], findings=[f], degraded=False,
                     now=NOW)[0].status is ActionStatus.APPLIED
    [failed] = actor.act([], findings=[f], degraded=False, now=NOW + timedelta(minutes=11))
    assert failed.status is ActionStatus.FAILED
    assert [r["status"] for r in store.query("SELECT status FROM action_outcomes")] == ["not_healed"]
    actor.act([], findings=[f], degraded=False, now=NOW + timedelta(days=31))
    assert store.query("SELECT status FROM action_outcomes") == []


def test_a_predicted_failure_leaves_pods_no_controller_would_replace(server: KubeApiServer, tmp_path: Path) -> None:
    # The GPU is predicted to fail, not dead: a Job's or a Workflow step's pod evicted now would
    # restart its work from scratch, so it stays, named for a human; the Deployment's pod moves.
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    server.seed(make_pod("train-llama-0", node="gpu-1", owner=("Job", "train-llama")))
    server.seed(make_pod("wf-step-1", node="gpu-1", owner=("Workflow", "wf-1")))
    actor, _ = make_actor(make_config(server, tmp_path))
    forecast = replace(finding("gpu_temperature", NODE), confirmed=False)
    d = decision("evacuate_node", NODE, forecast, basis="predicted")
    result = actor.act([d], findings=[forecast], degraded=False, now=NOW)[0]
    assert result.status is ActionStatus.APPLIED, result.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"web-0"}
    assert _pods_on(server, "gpu-1") == {"train-llama-0", "wf-step-1"}
    assert "train-llama-0" in result.detail and "Job/train-llama" in result.detail
    assert "wf-step-1" in result.detail and "Workflow/wf-1" in result.detail
    assert actor.act([], findings=[forecast], degraded=False, now=NOW + timedelta(minutes=1)) == []  # not in flight


def test_a_confirmed_failure_evicts_job_pods_as_kubectl_drain_does(server: KubeApiServer, tmp_path: Path) -> None:
    # The GPU is dead: the Job's pod cannot run there anyway, so it goes like any other.
    server.seed(make_pod("train-llama-0", node="gpu-1", owner=("Job", "train-llama")))
    actor, _ = make_actor(make_config(server, tmp_path))
    dead = finding("gpu_xid", NODE)
    result = actor.act([decision("evacuate_node", NODE, dead)], findings=[dead], degraded=False, now=NOW)[0]
    assert result.status is ActionStatus.APPLIED, result.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"train-llama-0"}
    assert _pods_on(server, "gpu-1") == set()


def test_a_confirmed_failure_finishes_a_predicted_evacuation_at_once(server: KubeApiServer, tmp_path: Path) -> None:
    # The prediction left the Job's pod for a human. The GPU then dies: the pod is lost there
    # anyway, so the evacuation finishes now, not after the cooldown the prediction's action began.
    # Within the rails: the kube-system Job's pod stays (protected namespace), and the bare pod
    # stays (nothing would recreate it), named for a human.
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    server.seed(make_pod("train-llama-0", node="gpu-1", owner=("Job", "train-llama")))
    server.seed(make_pod("etcd-backup-0", namespace="kube-system", node="gpu-1", owner=("Job", "etcd-backup")))
    server.seed(make_pod("debug-shell", node="gpu-1"))
    actor, _ = make_actor(make_config(server, tmp_path))
    forecast = replace(finding("gpu_temperature", NODE), confirmed=False)
    predicted = actor.act([decision("evacuate_node", NODE, forecast, basis="predicted")], findings=[forecast],
                          degraded=False, now=NOW)[0]
    assert predicted.status is ActionStatus.APPLIED, predicted.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"web-0"}
    server.clear_requests()

    dead = finding("gpu_xid", NODE)
    confirmed = actor.act([decision("evacuate_node", NODE, dead)], findings=[dead], degraded=False,
                          now=NOW + timedelta(minutes=1))[0]
    assert confirmed.status is ActionStatus.APPLIED, confirmed.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"train-llama-0"}
    assert _pods_on(server, "gpu-1") == {"etcd-backup-0", "debug-shell"}
    assert "protected namespace kube-system" in confirmed.detail and "debug-shell" in confirmed.detail
    # One evacuation: its budget unit was spent when the prediction began it.
    assert actor.writer.books.count_actions(NOW - timedelta(hours=1), dry_run=False) == 1


def test_a_confirmed_failure_after_the_prepare_cordon_evacuates_at_once(server: KubeApiServer, tmp_path: Path) -> None:
    # The prepare rung only cordoned; the failure is then confirmed: every pod moves now.
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    server.seed(make_pod("train-llama-0", node="gpu-1", owner=("Job", "train-llama")))
    actor, _ = make_actor(make_config(server, tmp_path))
    forecast = replace(finding("gpu_temperature", NODE), confirmed=False)
    prepared = actor.act([decision("evacuate_node", NODE, forecast, basis="predicted", cordon_only=True)],
                         findings=[forecast], degraded=False, now=NOW)[0]
    assert prepared.status is ActionStatus.APPLIED, prepared.detail
    dead = finding("gpu_xid", NODE)
    confirmed = actor.act([decision("evacuate_node", NODE, dead)], findings=[dead], degraded=False,
                          now=NOW + timedelta(minutes=2))[0]
    assert confirmed.status is ActionStatus.APPLIED, confirmed.detail
    assert {r.name for r in logged(server, 2, method="POST", subresource="eviction")} == {"web-0", "train-llama-0"}
    assert _pods_on(server, "gpu-1") == set()
    # Done: a later confirmed decision within the cooldown has nothing to do and starts nothing.
    again = actor.act([decision("evacuate_node", NODE, dead)], findings=[dead], degraded=False,
                      now=NOW + timedelta(minutes=3))[0]
    assert again.status is ActionStatus.OBSERVED and "no pods left" in again.detail


def test_a_confirmed_failure_widens_a_predicted_evacuation_still_in_flight(
    server: KubeApiServer, tmp_path: Path
) -> None:
    # The predicted evacuation waits for the per-workload cap (web-1) when the failure is
    # confirmed: the Job's pod it left goes in that cycle, the cap still holds web-1 back, and the
    # evacuation carries on as a confirmed one.
    seed_workload(server, "web", ["gpu-1", "gpu-1", "gpu-2"])
    server.seed(make_pod("train-llama-0", node="gpu-1", owner=("Job", "train-llama")))
    actor, _ = make_actor(make_config(server, tmp_path, max_pods_per_workload=1))
    forecast = replace(finding("gpu_temperature", NODE), confirmed=False)
    predicted = actor.act([decision("evacuate_node", NODE, forecast, basis="predicted")], findings=[forecast],
                          degraded=False, now=NOW)[0]
    assert predicted.status is ActionStatus.DEFERRED and "web-1" in predicted.detail, predicted.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"web-0"}
    server.clear_requests()
    dead = finding("gpu_xid", NODE)
    confirmed = actor.act([decision("evacuate_node", NODE, dead)], findings=[dead], degraded=False,
                          now=NOW + timedelta(minutes=1))[0]
    assert confirmed.status is ActionStatus.DEFERRED and "web-1" in confirmed.detail, confirmed.detail
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"train-llama-0"}
    assert _pods_on(server, "gpu-1") == {"web-1"}
    # Carried on as confirmed: later cycles resume the confirmed plan, not the predicted one.
    [flight] = actor.writer.in_flight()
    assert flight.decision.basis is Basis.CONFIRMED and flight.decision.id == confirmed.decision_id


def test_an_evacuation_with_only_pods_out_of_scope_left_is_not_applied_again(server: KubeApiServer, tmp_path: Path) -> None:
    # The node is cordoned and holds only pods aiops may not evict (a protected namespace, an
    # opt-out label): a later evacuation has nothing it may write. It is not "applied" with no
    # writes (an Event, a budget unit and an outcome each cycle), it says there is nothing to do.
    seed_workload(server, "dns", ["gpu-1", "gpu-2"], namespace="kube-system")
    seed_workload(server, "db", ["gpu-1", "gpu-2"], labels={"aiops.io/remediate": "false"})
    actor, store = make_actor(make_config(server, tmp_path, cooldown="1m"))
    first = actor.act([decision("evacuate_node", NODE)], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.APPLIED, first.detail  # the cordon
    events = [e for e in server.list("Event", "default") if e["reason"] == EVENT_REASON]
    actions = store.query("SELECT COUNT(*) AS n FROM safety_actions")[0]["n"]
    again = actor.act([decision("evacuate_node", NODE)], findings=[], degraded=False, now=NOW + timedelta(minutes=5))[0]
    assert again.status is ActionStatus.OBSERVED, again.detail
    assert again.detail.startswith("nothing to do") and "protected namespace kube-system" in again.detail
    assert [e for e in server.list("Event", "default") if e["reason"] == EVENT_REASON] == events  # none for nothing
    assert store.query("SELECT COUNT(*) AS n FROM safety_actions")[0]["n"] == actions  # no budget unit spent
    assert _pods_on(server, "gpu-1") == {"dns-0", "db-0"}


def _rung(d: Decision, rung: Rung) -> Decision:
    return replace(d, rung=rung)


def test_the_act_rung_continues_the_prepare_cordon_within_the_cooldown(server: KubeApiServer, tmp_path: Path) -> None:
    # The ladder climbs one rung a cycle: a failure predicted within act_within cordons (prepare)
    # and, the next cycle, evacuates (act). The act rung continues the prepared action: the
    # cordon's cooldown (30 min) must not hold the evacuation until the failure has come.
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    server.seed(make_pod("train-llama-0", node="gpu-1", owner=("Job", "train-llama")))
    actor, store = make_actor(make_config(server, tmp_path))
    forecast = replace(finding("gpu_temperature", NODE), confirmed=False)
    prepare = _rung(decision("evacuate_node", NODE, forecast, basis="predicted", cordon_only=True), Rung.PREPARE)
    prepared = actor.act([prepare], findings=[forecast], degraded=False, now=NOW)[0]
    assert prepared.status is ActionStatus.APPLIED, prepared.detail
    act = _rung(decision("evacuate_node", NODE, forecast, basis="predicted"), Rung.ACT)
    acted = actor.act([act], findings=[forecast], degraded=False, now=NOW + timedelta(minutes=1))[0]
    assert acted.status is ActionStatus.APPLIED, acted.detail
    # A prediction still: the Job's pod is left for a human; one budget unit for the whole ladder.
    assert {r.name for r in logged(server, 1, method="POST", subresource="eviction")} == {"web-0"}
    assert _pods_on(server, "gpu-1") == {"train-llama-0"}
    assert store.query("SELECT COUNT(*) AS n FROM safety_actions")[0]["n"] == 1


def test_the_act_rung_does_not_continue_a_preparation_that_was_undone(server: KubeApiServer, tmp_path: Path) -> None:
    # The prediction was judged false and its cordon rolled back; a new one within the cooldown
    # is a new action, and the cooldown holds it.
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path))
    forecast = replace(finding("gpu_temperature", NODE), confirmed=False)
    prepare = _rung(decision("evacuate_node", NODE, forecast, basis="predicted", cordon_only=True), Rung.PREPARE)
    assert actor.act([prepare], findings=[forecast], degraded=False, now=NOW)[0].status is ActionStatus.APPLIED
    node = server.get("Node", "gpu-1")
    node["spec"]["unschedulable"] = False
    server.put(node)  # the rollback (or a person) uncordoned it
    act = _rung(decision("evacuate_node", NODE, forecast, basis="predicted"), Rung.ACT)
    again = actor.act([act], findings=[forecast], degraded=False, now=NOW + timedelta(minutes=10))[0]
    assert (again.status, again.rail) == (ActionStatus.BLOCKED, "cooldown"), again.detail
    assert _pods_on(server, "gpu-1") == {"web-0"}
