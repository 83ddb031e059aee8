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
from tests.engine.kubecluster import NOW, decision, make_actor, make_config, seed_workload


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
