"""scale_ahead and restart_pod (rollout) against the test API server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aiops.kube.plan import ORIGINAL_REPLICAS, RESTARTED_AT, SCALE_AHEAD_DECISION, decision_mark
from aiops.model import ActionStatus, Entity, Finding
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_hpa
from tests.engine.kubecluster import NOW, decision, finding, make_actor, make_config, seed_workload

MODEL = Entity("model", "llama", "default")


def test_scale_ahead_raises_hpa_floor_then_restores_it(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "llm", ["gpu-1", "gpu-2"], labels={"aiops.io/model": "llama"})
    server.seed(make_hpa("llm", target="llm", min_replicas=2, max_replicas=6, current=2))
    actor, _ = make_actor(make_config(server, tmp_path, restore_after="30m"))
    slow = finding("inference_latency_p99", MODEL, recent=(0.08, 0.14, 0.21))
    [up] = actor.act(
        [decision("scale_ahead", MODEL, slow, resolve_target="owner")], findings=[slow], degraded=False, now=NOW
    )
    assert up.status is ActionStatus.APPLIED, up.detail
    hpa = server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")
    assert hpa["spec"]["minReplicas"] == 3 and hpa["metadata"]["annotations"][ORIGINAL_REPLICAS] == "2"

    # Latency back under 100 ms: healed now, restored only after 30 calm minutes.
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=5)) == []
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=20)) == []
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3
    [restore] = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=36))
    assert restore.status is ActionStatus.APPLIED and "restore" in restore.detail
    hpa = server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")
    assert hpa["spec"]["minReplicas"] == 2 and ORIGINAL_REPLICAS not in hpa["metadata"].get("annotations", {})
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=90)) == []  # restored once


def test_restore_waits_while_the_finding_comes_back(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "llm", ["gpu-1"], labels={"aiops.io/model": "llama"})
    actor, _ = make_actor(make_config(server, tmp_path, restore_after="30m", cooldown="0s"))
    slow = finding("inference_latency_p99", MODEL, recent=(0.3,))
    actor.act([decision("scale_ahead", MODEL, slow, resolve_target="owner")], findings=[slow], degraded=False, now=NOW)
    assert server.get("Deployment", "llm", group="apps")["spec"]["replicas"] == 2  # no HPA: replicas 1 -> 2
    actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=5))  # healed
    actor.act([], findings=[slow], degraded=False, now=NOW + timedelta(minutes=25))  # sick again
    actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=40))
    assert server.get("Deployment", "llm", group="apps")["spec"]["replicas"] == 2
    [restore] = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=75))
    assert restore.status is ActionStatus.APPLIED
    assert server.get("Deployment", "llm", group="apps")["spec"]["replicas"] == 1


def scaled_ahead_by_a_replica_since_gone(server: KubeApiServer, tmp_path: Path) -> Finding:
    """A replica in auto (state under ``tmp_path/first``) scales the llm HPA's floor 2 -> 3 on a
    slow-latency finding, at NOW; the finding, for the replica that comes after it."""
    seed_workload(server, "llm", ["gpu-1", "gpu-2"], labels={"aiops.io/model": "llama"})
    server.seed(make_hpa("llm", target="llm", min_replicas=2, max_replicas=6, current=2))
    (tmp_path / "first").mkdir()
    first, _ = make_actor(make_config(server, tmp_path / "first", restore_after="30m"))
    slow = finding("inference_latency_p99", MODEL, recent=(0.08, 0.14, 0.21))
    [up] = first.act([decision("scale_ahead", MODEL, slow, resolve_target="owner")], findings=[slow], degraded=False, now=NOW)
    assert up.status is ActionStatus.APPLIED, up.detail
    return slow


def test_a_replaced_replica_restores_what_the_one_before_it_scaled_ahead(server: KubeApiServer, tmp_path: Path) -> None:
    # A rolling update of aiops replaces the replica that scaled ahead, and its state file (an
    # emptyDir) goes with it. The workload carries the decision that scaled it: the new replica
    # waits for that decision's finding to stay clear, then restores it, once.
    slow = scaled_ahead_by_a_replica_since_gone(server, tmp_path)
    (tmp_path / "second").mkdir()
    second, _ = make_actor(make_config(server, tmp_path / "second", restore_after="30m"))
    assert second.act([], findings=[slow], degraded=False, now=NOW + timedelta(minutes=5)) == []  # still slow
    assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=10)) == []  # clear from here
    assert second.act([], findings=[slow], degraded=False, now=NOW + timedelta(minutes=20)) == []  # back: wait again
    assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=25)) == []
    assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=50)) == []
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3
    [restore] = second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=56))
    assert restore.status is ActionStatus.APPLIED and "restore" in restore.detail, restore.detail
    hpa = server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")
    assert hpa["spec"]["minReplicas"] == 2
    assert not {ORIGINAL_REPLICAS, SCALE_AHEAD_DECISION} & set(hpa["metadata"].get("annotations") or {})
    assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=90)) == []  # restored once


def test_a_scale_ahead_that_did_not_heal_stays_with_its_human_after_a_replacement(
    server: KubeApiServer, tmp_path: Path
) -> None:
    # Still slow 30 min after the scale-ahead: the first replica escalates it (its verdict Event
    # says not healed) and never restores it; nor does the replica that replaces it.
    seed_workload(server, "llm", ["gpu-1", "gpu-2"], labels={"aiops.io/model": "llama"})
    server.seed(make_hpa("llm", target="llm", min_replicas=2, max_replicas=6, current=2))
    (tmp_path / "first").mkdir()
    first, _ = make_actor(make_config(server, tmp_path / "first", restore_after="30m", verify_within="30m"))
    slow = finding("inference_latency_p99", MODEL, recent=(0.08, 0.14, 0.21))
    first.act([decision("scale_ahead", MODEL, slow, resolve_target="owner")], findings=[slow], degraded=False, now=NOW)
    [failed] = first.act([], findings=[slow], degraded=False, now=NOW + timedelta(minutes=31))
    assert failed.status is ActionStatus.FAILED and "not healed" in failed.detail
    (tmp_path / "second").mkdir()
    second, _ = make_actor(make_config(server, tmp_path / "second", restore_after="30m", verify_within="30m"))
    for minutes in (40, 80, 120):
        assert second.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3


@pytest.mark.parametrize("mark", ["{not json", '{"id": "x"}'])
def test_a_scale_ahead_mark_that_cannot_be_read_is_left_for_a_human(
    server: KubeApiServer, tmp_path: Path, mark: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Mangled by hand, or written by a newer aiops: nothing is restored on a guess, nothing fails.
    seed_workload(server, "llm", ["gpu-1"], labels={"aiops.io/model": "llama"})
    hpa = make_hpa("llm", target="llm", min_replicas=3, max_replicas=6, current=3)
    hpa["metadata"]["annotations"] = {ORIGINAL_REPLICAS: "2", SCALE_AHEAD_DECISION: mark}
    server.seed(hpa)
    actor, _ = make_actor(make_config(server, tmp_path, restore_after="30m"))
    for minutes in (0, 40, 80):
        assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3
    assert [r.target for r in caplog.records if r.getMessage() == "unreadable decision record left alone"] == [
        "hpa/default/llm"
    ]


def test_an_decision_mark_naming_an_action_not_installed_is_left_alone(server: KubeApiServer, tmp_path: Path) -> None:
    # Written by a newer aiops, or by one with a plugin this one lacks: nothing fails, nothing is undone.
    seed_workload(server, "llm", ["gpu-1"], labels={"aiops.io/model": "llama"})
    hpa = make_hpa("llm", target="llm", min_replicas=3, max_replicas=6, current=3)
    alien = decision("scale_sideways", MODEL, finding("inference_latency_p99", MODEL))
    hpa["metadata"]["annotations"] = {ORIGINAL_REPLICAS: "2", SCALE_AHEAD_DECISION: decision_mark(alien)}
    server.seed(hpa)
    actor, _ = make_actor(make_config(server, tmp_path, restore_after="30m"))
    for minutes in (0, 40, 80):
        assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert actor.errors == []
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3


@pytest.mark.parametrize("rehearsal_safety", [{"dry_run": True}, {"mode": "observe"}, {"mode": "suggest"}])
def test_a_replica_that_would_not_write_adopts_no_undo(
    server: KubeApiServer, tmp_path: Path, rehearsal_safety: dict[str, object]
) -> None:
    # A dry run, or aiops switched to observe or suggest (during an incident, say), restores
    # nothing a replica in auto scaled: it would "restore" (or propose it) every cycle. The mark
    # waits for a replica that acts.
    scaled_ahead_by_a_replica_since_gone(server, tmp_path)
    (tmp_path / "rehearsal").mkdir()
    rehearsal, _ = make_actor(make_config(server, tmp_path / "rehearsal", restore_after="30m", **rehearsal_safety))
    for minutes in (5, 40, 80):
        assert rehearsal.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3


def test_rollout_restart_makes_a_new_revision_and_deletes_no_pod(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    before = {r["metadata"]["name"] for r in server.list("ReplicaSet", "default", group="apps")}
    actor, _ = make_actor(make_config(server, tmp_path))
    [result] = actor.act(
        [decision("restart_pod", Entity("pod", "web-0", "default"), strategy="rollout")],
        findings=[],
        degraded=False,
        now=NOW,
    )
    assert result.status is ActionStatus.APPLIED and result.target == Entity("deployment", "web", "default")
    deploy = server.get("Deployment", "web", group="apps")
    assert deploy["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-11-25T09:00:00Z"
    after = {r["metadata"]["name"] for r in server.list("ReplicaSet", "default", group="apps")}
    assert len(after - before) == 1  # the controller rolled a new ReplicaSet, as kubectl rollout restart does
    assert not server.requests_matching(method="DELETE", resource="pods")


def test_infeasible_plan_falls_back_to_advice(server: KubeApiServer, tmp_path: Path) -> None:
    actor, _ = make_actor(make_config(server, tmp_path))
    [result] = actor.act(
        [decision("restart_pod", Entity("pod", "gone", "default"))], findings=[], degraded=False, now=NOW
    )
    assert result.status is ActionStatus.SUGGESTED
    assert "no longer exists" in result.detail
    assert result.plan is not None and "kubectl" in result.plan.command
    assert result.plan is not None and result.plan.action == "advise"
    assert not server.requests_matching(writes_only=True)


def test_opt_in_covers_the_hpa_of_a_labelled_workload(server: KubeApiServer, tmp_path: Path) -> None:
    # The HPA patch is a write on the HPA; opt-in looks for the mark where it looks for an HPA's
    # (its scale target), so a labelled Deployment's HPA is raised, not dropped as unlabelled.
    seed_workload(server, "llm", ["gpu-1", "gpu-2"], labels={"aiops.io/model": "llama", "aiops.io/remediate": "true"})
    server.seed(make_hpa("llm", target="llm", min_replicas=2, max_replicas=6, current=2))
    actor, _ = make_actor(make_config(server, tmp_path, opt_in=True))
    slow = finding("inference_latency_p99", MODEL, recent=(0.08, 0.14, 0.21))
    [up] = actor.act(
        [decision("scale_ahead", MODEL, slow, resolve_target="owner")], findings=[slow], degraded=False, now=NOW
    )
    assert up.status is ActionStatus.APPLIED, up.detail
    assert server.get("HorizontalPodAutoscaler", "llm", group="autoscaling")["spec"]["minReplicas"] == 3
