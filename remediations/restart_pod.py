"""Restart a pod: delete it (its controller makes a new one) or roll its Deployment/StatefulSet.

``strategy`` (per policy rule): "delete" (default) removes the one pod with a grace period;
"rollout" sets the ``kubectl.kubernetes.io/restartedAt`` template annotation, exactly what
``kubectl rollout restart`` does. Never both.

"delete" removes a Ready pod through the Eviction API, so its PodDisruptionBudget holds: a Ready
single replica of a model server under ``minAvailable: 1`` is not taken down on a predicted OOM.
A 429 from the budget is retried on later cycles, never forced, and escalated to a human after
``safety.evacuation_timeout`` (the guarded writer does this for every eviction). A pod that is not
Ready (crash-looping, stuck) serves nothing, so it is deleted directly: with the default
``unhealthyPodEvictionPolicy`` (IfHealthyBudget) its eviction is refused for as long as the budget
is short of healthy pods, which a crash loop of the only replica makes forever, and a crash loop
must still be restartable.

Only a pod whose controller replaces it is restarted: a ReplicaSet (a Deployment's), StatefulSet,
DaemonSet or ReplicationController (:func:`aiops.engine.facts.controller_replaces`, an allow-list).
A pod of a Job, an Argo Workflow, a Kubeflow PyTorchJob/MPIJob or a RayCluster would lose its work
(the step or the job fails), and a bare pod would be gone for good: nothing is planned and the
owner is named for a human. The planner decides this from the pod's real ``ownerReferences`` in the
cluster read; policy's owner guard (kube_pod_info, a deny-list) is only the early, cheap filter and
cannot tell when kube-state-metrics does not list the pod.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field

from aiops.engine.facts import controller_replaces
from aiops.kube.plan import RESTARTED_AT, infeasible
from aiops.kube.view import ClusterView
from aiops.model import Decision, Entity, EntityKind, Mutation, Plan, Resource, Verb
from aiops.plugins import PluginParams, Remediation

class RestartPodParams(PluginParams):
    strategy: Literal["delete", "rollout"] = "delete"
    grace_period_seconds: int = Field(default=30, ge=0)


class RestartPod(Remediation):
    name: ClassVar[str] = "restart_pod"
    Params = RestartPodParams

    params: RestartPodParams

    def plan(self, decision: Decision, view: ClusterView | None) -> Plan:
        params: dict[str, Any] = dict(decision.params)
        strategy = str(params.get("strategy", self.params.strategy))
        grace = int(params.get("grace_period_seconds", self.params.grace_period_seconds))
        target = decision.target
        if target.kind != EntityKind.POD:
            return infeasible(self.name, target, f"restart_pod needs a pod target, got a {target.kind}")
        ns, name = target.namespace, target.name
        if strategy == "rollout":
            return self._rollout(decision, view)
        if strategy != "delete":
            return infeasible(self.name, target, f"unknown strategy {strategy!r} (use delete or rollout)")
        command = f"kubectl delete pod {name} -n {ns} --grace-period={grace}"
        ready = True  # without the cluster state (only ever suggested), assume it serves
        if view is not None:
            pod = view.pod(ns, name)
            if pod is None:
                return infeasible(self.name, target, "the pod no longer exists", command)
            ready = pod.ready
            owner = pod.controller
            if owner is None:
                return infeasible(
                    self.name, target, "the pod has no controller, so deleting it would not bring it back", command
                )
            if not controller_replaces(owner.kind):
                return infeasible(
                    self.name,
                    target,
                    f"pod {ns}/{name} is owned by {owner.kind}/{owner.name}, which does not replace a deleted pod: "
                    f"deleting it would fail that {owner.kind}'s work; not restarted",
                    command,
                )
        if ready:
            return _evict(self.name, target, grace)
        return Plan(
            self.name,
            target,
            (
                Mutation(
                    Verb.DELETE,
                    Resource.PODS,
                    name,
                    ns,
                    {"gracePeriodSeconds": grace},
                    f"delete pod {ns}/{name} (grace {grace}s)",
                ),
            ),
            f"delete pod {ns}/{name} (not Ready: it serves nothing) with a {grace}s grace period "
            "so its controller replaces it",
            command=command,
        )

    def _rollout(self, decision: Decision, view: ClusterView | None) -> Plan:
        target = decision.target
        if view is None:
            return infeasible(self.name, target, "a rolling restart needs the cluster state to find the pod's owner")
        owner = view.owner_for(target)
        if owner is None or owner.kind not in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
            return infeasible(self.name, target, "the pod is not managed by a Deployment or StatefulSet")
        stamp = view.taken_at.isoformat().replace("+00:00", "Z")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        resource = Resource.DEPLOYMENTS if owner.kind == EntityKind.DEPLOYMENT else Resource.STATEFULSETS
        return Plan(
            self.name,
            owner.entity,
            (
                Mutation(
                    Verb.PATCH, resource, owner.name, owner.namespace, body, f"rollout restart {owner.kind}/{owner.name}"
                ),
            ),
            f"rolling restart of {owner.kind} {owner.namespace}/{owner.name} (owner of pod {target.name})",
            command=f"kubectl rollout restart {owner.kind}/{owner.name} -n {owner.namespace}",
        )


def _evict(action: str, target: Entity, grace: int) -> Plan:
    """A Ready pod goes through the Eviction API: the server enforces its PodDisruptionBudget."""
    ns, name = target.namespace, target.name
    eviction = json.dumps(
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
            "deleteOptions": {"gracePeriodSeconds": grace},
        },
        separators=(",", ":"),
    )
    return Plan(
        action,
        target,
        (
            Mutation(
                Verb.EVICT,
                Resource.PODS,
                name,
                ns,
                {"gracePeriodSeconds": grace},
                f"evict pod {ns}/{name} (grace {grace}s)",
            ),
        ),
        f"evict pod {ns}/{name} with a {grace}s grace period (its PodDisruptionBudget permitting) "
        "so its controller replaces it",
        # kubectl has no evict command; this posts the same Eviction (a 429 means the budget says wait).
        command=f"echo '{eviction}' | kubectl create --raw /api/v1/namespaces/{ns}/pods/{name}/eviction -f -",
    )
