"""scale_ahead and restart_pod (rollout) against the test API server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiops.kube.plan import ORIGINAL_REPLICAS, RESTARTED_AT
from aiops.model import ActionStatus, Entity
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
