"""restart_pod against the test API server: only pods a controller replaces are restarted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aiops.config.policy import PolicyConfig
from aiops.engine.decide import Policy
from aiops.engine.facts import ClusterFacts
from aiops.model import ActionStatus, Entity, Evidence, Finding, Mode
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_pod
from tests.engine.kubecluster import NOW, decision, logged, make_actor, make_config, seed_workload


def _oom(pod: str) -> Finding:
    """A predicted OOM (memory at 96 % of its limit, 20 minutes away)."""
    return Finding(
        "exhaustion", "pod_memory_usage_ratio", Entity("pod", pod, "default"), 0.97, NOW,
        Evidence("memory at 96 % of its limit"), predicted_failure_at=NOW + timedelta(minutes=20),
    )


@pytest.mark.parametrize(
    ("kind", "owner"), [("Job", "train"), ("Workflow", "wf-1"), ("PyTorchJob", "llama-ft"), ("RayCluster", "ray")]
)
def test_a_pod_its_controller_would_not_replace_is_never_deleted(
    server: KubeApiServer, tmp_path: Path, kind: str, owner: str
) -> None:
    # The planner reads the real ownerReferences: no deny-list of batch kinds, no kube_pod_info needed.
    server.seed(make_pod("step-0", node="gpu-1", owner=(kind, owner)))
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="0s"))
    [result] = actor.act(
        [decision("restart_pod", Entity("pod", "step-0", "default"))], findings=[], degraded=False, now=NOW
    )
    assert result.status is ActionStatus.SUGGESTED, result.detail
    assert f"owned by {kind}/{owner}" in result.detail and "not restarted" in result.detail
    assert not server.requests_matching(writes_only=True, resource="pods")
    assert server.exists("Pod", "step-0")


def test_a_job_pod_unknown_to_kube_state_metrics_is_not_deleted(server: KubeApiServer, tmp_path: Path) -> None:
    # kube_pod_info does not list the pod (kube-state-metrics down, a new pod): policy's owner
    # guard cannot tell, so the decision reaches the planner, which reads the owner from the cluster.
    server.seed(make_pod("train-abc12", node="gpu-1", owner=("Job", "train")))
    seed_workload(server, "web", ["gpu-2"])
    findings = [_oom("train-abc12"), _oom("web-0")]
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide(findings, now=NOW, facts=ClusterFacts())
    assert {d.target.name for d in decisions if d.action == "restart_pod"} == {"train-abc12", "web-0"}
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="0s"))
    results = {r.target.name: r for r in actor.act(decisions, findings=findings, degraded=False, now=NOW)}
    assert results["train-abc12"].status is ActionStatus.SUGGESTED, results["train-abc12"].detail
    assert "owned by Job/train" in results["train-abc12"].detail
    assert server.exists("Pod", "train-abc12")
    # A Deployment's pod is still restarted: its ReplicaSet makes a new one.
    assert results["web-0"].status is ActionStatus.APPLIED, results["web-0"].detail
    assert not server.exists("Pod", "web-0")


def _rs(server: KubeApiServer, app: str) -> str:
    return next(r["metadata"]["name"] for r in server.list("ReplicaSet", "default", group="apps")
                if r["metadata"]["name"].startswith(app + "-"))


def test_a_ready_pod_is_restarted_through_the_eviction_api(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="0s"))
    [result] = actor.act(
        [decision("restart_pod", Entity("pod", "web-0", "default"), grace_period_seconds=5)],
        findings=[], degraded=False, now=NOW,
    )
    assert result.status is ActionStatus.APPLIED, result.detail
    [evicted] = logged(server, 1, method="POST", subresource="eviction")
    assert (evicted.name, evicted.status) == ("web-0", 201)
    assert evicted.body["deleteOptions"]["gracePeriodSeconds"] == 5
    assert not server.requests_matching(method="DELETE", resource="pods")
    assert not server.exists("Pod", "web-0")


def test_a_ready_pod_its_budget_protects_waits_and_is_never_forced(server: KubeApiServer, tmp_path: Path) -> None:
    # A single Ready model server, PDB minAvailable 1 (disruptionsAllowed 0), predicted to OOM.
    seed_workload(server, "llm", ["gpu-2"], min_available=1)
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="0s", evacuation_timeout="1h"))
    d = decision("restart_pod", Entity("pod", "llm-0", "default"), _oom("llm-0"), basis="predicted")
    first = actor.act([d], findings=[d.finding], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.DEFERRED and "disruption budget" in first.detail, first.detail
    assert [r.status for r in logged(server, 1, method="POST", subresource="eviction")] == [429]
    assert actor.errors == []  # a PDB refusal is normal operation, not a degraded cycle
    # Retried on later cycles (in flight), never forced; escalated to a human after the timeout.
    again = actor.act([], findings=[d.finding], degraded=False, now=NOW + timedelta(minutes=20))[0]
    assert again.status is ActionStatus.DEFERRED and "disruption budget" in again.detail
    given_up = actor.act([], findings=[d.finding], degraded=False, now=NOW + timedelta(minutes=61))[0]
    assert given_up.status is ActionStatus.FAILED and "never forced" in given_up.detail
    assert not server.requests_matching(method="DELETE", resource="pods")
    assert server.exists("Pod", "llm-0")


def test_a_budget_blocked_restart_goes_through_once_the_budget_allows(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "llm", ["gpu-2"], min_available=1)
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="0s"))
    d = decision("restart_pod", Entity("pod", "llm-0", "default"), _oom("llm-0"), basis="predicted")
    assert actor.act([d], findings=[d.finding], degraded=False, now=NOW)[0].status is ActionStatus.DEFERRED
    # A second Ready replica: the budget now allows one disruption.
    server.seed(make_pod("llm-1", node="gpu-3", labels={"app": "llm"}, owner=("ReplicaSet", _rs(server, "llm"))))
    done = actor.act([], findings=[d.finding], degraded=False, now=NOW + timedelta(minutes=1))[0]
    assert done.status is ActionStatus.APPLIED, done.detail
    assert not server.exists("Pod", "llm-0") and server.exists("Pod", "llm-1")
    assert not server.requests_matching(method="DELETE", resource="pods")


def test_a_crash_looping_pod_is_deleted_even_when_its_budget_is_spent(server: KubeApiServer, tmp_path: Path) -> None:
    # Not Ready, it serves nothing; with the default unhealthyPodEvictionPolicy an eviction could be
    # refused for as long as the budget is short, and the crash loop must still be restartable.
    seed_workload(server, "llm", [], min_available=1)
    rs = _rs(server, "llm")
    server.seed(make_pod("llm-0", node="gpu-2", labels={"app": "llm"}, owner=("ReplicaSet", rs), ready=False))
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="0s"))
    [result] = actor.act(
        [decision("restart_pod", Entity("pod", "llm-0", "default"))], findings=[], degraded=False, now=NOW
    )
    assert result.status is ActionStatus.APPLIED, result.detail
    assert [r.name for r in logged(server, 1, method="DELETE", resource="pods")] == ["llm-0"]
    assert not server.requests_matching(method="POST", subresource="eviction")
    assert not server.exists("Pod", "llm-0")
