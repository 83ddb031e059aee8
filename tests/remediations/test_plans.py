"""Remediation plans are pure functions of (decision, ClusterView): what they would write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aiops.kube.plan import (
    CORDON_DECISION,
    CORDONED_BY,
    ORIGINAL_REPLICAS,
    RESTARTED_AT,
    SCALE_AHEAD_DECISION,
    StagedPlan,
    decision_mark,
)
from aiops.kube.view import ClusterView, HpaInfo, NodeInfo, OwnerRef, PodInfo, WorkloadInfo
from aiops.model import Entity, Evidence, Finding, Severity
from aiops.state.codec import decision_from_json
from remediations.advise import Advise
from remediations.evacuate_node import EvacuateNode
from remediations.restart_pod import RestartPod
from remediations.scale_ahead import ScaleAhead
from tests.engine.kubecluster import NOW, decision, finding


def _view(
    *, hpa: HpaInfo | None = None, web_ready: int = 3, node_cordoned: bool = False, annotations: dict | None = None
) -> ClusterView:
    rs = WorkloadInfo("replicaset", "web-abc", "ml", 3, web_ready, owners=(OwnerRef("Deployment", "web"),))
    web = WorkloadInfo(
        "deployment", "web", "ml", 3, web_ready, labels={"aiops.io/model": "llama"}, annotations=annotations or {}
    )
    pods = (
        PodInfo("web-1", "ml", "n1", labels={"app": "web"}, owners=(OwnerRef("ReplicaSet", "web-abc"),)),
        PodInfo("web-2", "ml", "n1", labels={"app": "web"}, owners=(OwnerRef("ReplicaSet", "web-abc"),)),
        PodInfo("web-3", "ml", "n2", labels={"app": "web"}, owners=(OwnerRef("ReplicaSet", "web-abc"),)),
        PodInfo("dcgm-1", "gpu-operator", "n1", owners=(OwnerRef("DaemonSet", "dcgm"),)),
        PodInfo("kube-apiserver-n1", "kube-system", "n1", annotations={"kubernetes.io/config.mirror": "x"}),
        PodInfo("job-done", "ml", "n1", phase="Succeeded", owners=(OwnerRef("Job", "j"),)),
        PodInfo("bare", "ml", "n1"),
        PodInfo("leaving", "ml", "n1", terminating=True, owners=(OwnerRef("ReplicaSet", "web-abc"),)),
    )
    nodes = {"n1": NodeInfo("n1", unschedulable=node_cordoned), "n2": NodeInfo("n2")}
    return ClusterView(NOW, nodes, pods, {w.key: w for w in (rs, web)}, (hpa,) if hpa else ())


def test_restart_evicts_a_ready_pod_and_deletes_one_that_is_not() -> None:
    plan = RestartPod().plan(decision("restart_pod", Entity("pod", "web-1", "ml"), grace_period_seconds=5), _view())
    [m] = plan.mutations
    # Ready: through the Eviction API, so its PodDisruptionBudget holds.
    assert (m.verb, m.resource, m.name, m.namespace, m.body) == ("evict", "pods", "web-1", "ml", {"gracePeriodSeconds": 5})
    assert "kubectl create --raw /api/v1/namespaces/ml/pods/web-1/eviction" in plan.command
    # Not Ready (crash-looping): it serves nothing, and a budget could refuse its eviction forever.
    crashing = PodInfo("web-9", "ml", "n1", ready=False, owners=(OwnerRef("ReplicaSet", "web-abc"),))
    view = _view()
    view = ClusterView(NOW, view.nodes, (*view.pods, crashing), view.workloads)
    plan = RestartPod().plan(decision("restart_pod", Entity("pod", "web-9", "ml"), grace_period_seconds=5), view)
    [m] = plan.mutations
    assert (m.verb, m.resource, m.name, m.namespace, m.body) == ("delete", "pods", "web-9", "ml", {"gracePeriodSeconds": 5})
    assert plan.command == "kubectl delete pod web-9 -n ml --grace-period=5"


def test_restart_rollout_patches_the_deployment_template_never_deletes() -> None:
    plan = RestartPod(strategy="rollout").plan(decision("restart_pod", Entity("pod", "web-1", "ml")), _view())
    [m] = plan.mutations
    assert (m.verb, m.resource, m.name) == ("patch", "deployments", "web")
    assert m.body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-11-25T09:00:00Z"
    assert plan.target == Entity("deployment", "web", "ml")
    assert plan.command == "kubectl rollout restart deployment/web -n ml"


def test_restart_refuses_a_pod_without_controller() -> None:
    plan = RestartPod().plan(decision("restart_pod", Entity("pod", "bare", "ml")), _view())
    assert not plan.feasible and not plan.mutations and "no controller" in plan.reason_if_not


def test_evacuate_follows_kubectl_drain_filters_and_max_unavailable() -> None:
    d = decision("evacuate_node", Entity("node", "n1"))
    plan = EvacuateNode().plan(d, _view())
    assert isinstance(plan, StagedPlan)
    cordon, *evictions = plan.mutations
    # Marked as aiops's, with the decision: a replica that did not cordon it can undo it.
    assert cordon.body == {
        "spec": {"unschedulable": True}, "metadata": {"annotations": {CORDONED_BY: "aiops", CORDON_DECISION: decision_mark(d)}}
    }
    assert decision_from_json(decision_mark(d)).finding.key == d.finding.key
    # One web pod at a time (max_unavailable_per_workload=1); DaemonSet, mirror, finished,
    # terminating and bare pods are not evicted.
    assert [(m.verb, m.name) for m in evictions] == [("evict", "web-1")]
    assert any("web-2" in w for w in plan.waiting) and any("leaving" in w for w in plan.waiting)
    assert "bare" in plan.summary and "dcgm" not in plan.summary


def test_evacuate_waits_while_the_workload_is_short_of_replicas() -> None:
    plan = EvacuateNode().plan(decision("evacuate_node", Entity("node", "n1")), _view(web_ready=2, node_cordoned=True))
    assert plan.mutations == ()  # already cordoned; web is one replica down
    assert len(plan.waiting) == 3


def test_uncordon_only_a_node_aiops_cordoned() -> None:
    d = decision("evacuate_node", Entity("node", "n1"), restore=True)
    human = EvacuateNode().plan(d, _view(node_cordoned=True))
    assert not human.feasible and "someone else" in human.reason_if_not
    view = _view(node_cordoned=True)
    view = ClusterView(
        NOW, {**view.nodes, "n1": NodeInfo("n1", True, annotations={CORDONED_BY: "aiops"})}, view.pods, view.workloads
    )
    uncordon = EvacuateNode().plan(d, view)
    [m] = uncordon.mutations
    assert m.body == {
        "spec": {"unschedulable": False}, "metadata": {"annotations": {CORDONED_BY: None, CORDON_DECISION: None}}
    }
    assert uncordon.undo  # paid for by the evacuation (the writer charges no rail for it)


def _latency(value: float):
    model = Entity("model", "llama", "ml")
    return model, finding("inference_latency_p99", model, recent=(0.05, 0.08, value))


def test_scale_ahead_raises_hpa_min_within_bounds_and_remembers_the_original() -> None:
    hpa = HpaInfo("web", "ml", "deployment", "web", min_replicas=2, max_replicas=4, current_replicas=3)
    model, f = _latency(0.25)
    d = decision("scale_ahead", model, f)
    plan = ScaleAhead(step=2).plan(d, _view(hpa=hpa))
    [m] = plan.mutations
    assert (m.resource, m.name) == ("horizontalpodautoscalers", "web")
    marked = m.body["metadata"]["annotations"].pop(SCALE_AHEAD_DECISION)
    assert m.body == {
        "metadata": {"annotations": {ORIGINAL_REPLICAS: "2"}},
        "spec": {"minReplicas": 4},
    }  # 3 + 2, capped at 4
    # The decision that scaled it, for a replica that did not take it: what restoring reads.
    carried = decision_from_json(marked)
    assert (carried.id, carried.action, carried.target, carried.finding.key) == (d.id, d.action, d.target, f.key)
    assert carried.finding.severity == f.severity and carried.finding.evidence.summary == f.evidence.summary
    at_max = HpaInfo("web", "ml", "deployment", "web", 4, 4, 4, annotations={ORIGINAL_REPLICAS: "2"})
    assert not ScaleAhead().plan(decision("scale_ahead", model, f), _view(hpa=at_max)).feasible


def test_scale_ahead_without_hpa_scales_the_deployment_and_restores_it() -> None:
    model, f = _latency(0.25)
    [m] = ScaleAhead().plan(decision("scale_ahead", model, f), _view()).mutations
    assert (m.resource, m.body["spec"]) == ("deployments", {"replicas": 4})
    scaled = _view(annotations={ORIGINAL_REPLICAS: "3"})
    restore = ScaleAhead().plan(decision("scale_ahead", model, f, restore=True), scaled)
    [undo] = restore.mutations
    assert undo.body == {
        "metadata": {"annotations": {ORIGINAL_REPLICAS: None, SCALE_AHEAD_DECISION: None}}, "spec": {"replicas": 3}
    }
    assert restore.undo and not ScaleAhead().plan(decision("scale_ahead", model, f), scaled).undo


@pytest.mark.parametrize(
    "signal,recent,direction",
    [
        ("inference_latency_p99", (0.09,), ""),
        ("inference_latency_p99", (0.11,), "up"),
        ("gpu_utilization", (50.0, 85.0), "up"),
        ("gpu_utilization", (15.0,) * 10, "down"),
        ("gpu_utilization", (15.0,) * 9 + (25.0,), ""),
        ("gpu_utilization", (15.0,) * 5, ""),  # not low for 10 minutes yet
    ],
)
def test_scale_ahead_seed_thresholds(signal: str, recent: tuple[float, ...], direction: str) -> None:
    entity = Entity("model", "llama", "ml")
    assert (
        ScaleAhead().direction_for(decision("scale_ahead", entity, finding(signal, entity, recent=recent))) == direction
    )


def test_scale_down_never_below_the_original() -> None:
    entity = Entity("model", "llama", "ml")
    low = finding("gpu_utilization", entity, recent=(10.0,) * 10)
    hpa = HpaInfo("web", "ml", "deployment", "web", 3, 8, 3, annotations={ORIGINAL_REPLICAS: "3"})
    assert not ScaleAhead().plan(decision("scale_ahead", entity, low), _view(hpa=hpa)).feasible
    hpa = HpaInfo("web", "ml", "deployment", "web", 5, 8, 5, annotations={ORIGINAL_REPLICAS: "3"})
    [m] = ScaleAhead().plan(decision("scale_ahead", entity, low), _view(hpa=hpa)).mutations
    assert m.body["spec"] == {"minReplicas": 4}


def test_advise_gives_a_command_and_never_writes() -> None:
    node = Entity("node", "n1")
    plan = Advise().plan(decision("advise", node, finding("node_filesystem_usage_ratio", node)), _view())
    assert (
        plan.mutations == ()
        and "kubectl debug node/n1" in plan.command
        and "node_filesystem_usage_ratio" in plan.summary
    )
    model = Entity("model", "llama", "ml")
    plan = Advise().plan(decision("advise", model, finding("model_accuracy", model)), _view())
    assert "kubectl rollout undo deployment/web -n ml" in plan.command


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="grace\n  Extra inputs are not permitted"):
        RestartPod(grace=3)
    with pytest.raises(ValueError, match="strategy"):
        RestartPod(strategy="both")


def test_a_pod_inherits_its_workloads_opt_out_label() -> None:
    view = _view()
    web = view.workloads["deployment/ml/web"]
    labelled = {
        **view.workloads,
        web.key: WorkloadInfo("deployment", "web", "ml", 3, 3, labels={"aiops.io/remediate": "false"}),
    }
    view = ClusterView(NOW, view.nodes, view.pods, labelled)
    assert view.labels_of(Entity("pod", "web-1", "ml"))["aiops.io/remediate"] == "false"
    assert view.labels_of(Entity("pod", "bare", "ml")) == {}


def _objective_breach(signal: str, objective: float, recent: tuple[float, ...]) -> Finding:
    """What detectors/conditions.py reports for a serving latency objective (TTFT, inter-token)."""
    return Finding("conditions", signal, Entity("model", "llama", "ml"), 0.97, NOW,
                   Evidence(f"{signal} p99 above its objective {objective}", recent=recent,
                            facts={"objective": objective, "held_seconds": 300.0}),
                   severity=Severity.CRITICAL, confirmed=True)


@pytest.mark.parametrize(
    "f,direction",
    [
        # The default rules' triggers: scale_ahead answered them all with "crosses no scaling
        # threshold" and never added a replica (the signal names hold no "latency").
        (_objective_breach("serving_ttft_p99", 2.0, (1.0, 3.0, 5.0)), "up"),
        (_objective_breach("serving_itl_p99", 0.1, (0.2, 0.3, 0.4)), "up"),
        # Against its own objective, not a fixed 100 ms: 1.5 s of TTFT meets a 2 s objective.
        (_objective_breach("serving_ttft_p99", 2.0, (1.2, 1.5)), ""),
        (Finding("headroom", "inference_request_rate", Entity("model", "llama", "ml"), 0.95, NOW,
                 Evidence("past the proven capacity in ~20m", recent=(80.0, 95.0, 110.0)), severity=Severity.CRITICAL,
                 predicted_failure_at=NOW + timedelta(minutes=20)), "up"),
    ],
)
def test_scale_ahead_answers_the_default_rules_triggers(f: Finding, direction: str) -> None:
    assert ScaleAhead().direction_for(decision("scale_ahead", f.entity, f)) == direction
