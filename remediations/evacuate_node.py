"""Evacuate ("switch") a node: cordon it, then evict its pods through the Eviction API.

Follows ``kubectl drain``: DaemonSet and mirror pods are skipped, finished pods are left alone,
pods without a controller are left for a human (nothing would recreate them). On a *predicted*
failure (the decision's basis is a prediction) pods whose controller does not replace them (a Job,
an Argo Workflow step, a PyTorchJob worker: not in
:data:`~aiops.engine.facts.REPLACED_BY_CONTROLLER`) are left running too and named for a human:
evicting them restarts their work from scratch for a failure that may not come, while the cordon
keeps new work off the node. On a confirmed failure (the GPU is dead) they are evicted as ``kubectl
drain`` would: they cannot run there anyway — also when the failure is confirmed after a predicted
evacuation, which the act stage then continues at once (no cooldown), as it continues the
prepare rung's cordon on the ladder's act rung while the node stays cordoned. Evictions respect
PodDisruptionBudgets on the server side (429 → retried on a later cycle, never forced), and at
most ``max_unavailable_per_workload`` pods of one workload are down at a time: the rest wait for
their replacements, which makes the evacuation a :class:`StagedPlan` spanning several cycles.

With ``restore`` (asked by the act stage once the node has been healthy long enough, when
``safety.auto_uncordon`` is on, or when the prediction behind a cordon turned out false) it
uncordons the node — only if aiops cordoned it. The cordon carries the decision that made it
(``aiops.io/cordon-decision``): a replica that replaced the one that cordoned it (a rolling update
of aiops, a shard moving) takes the undo over, as far as it can know the action's verdict.

With ``cordon_only`` (the *prepare* rung of a predicted failure) it only cordons: nothing new lands
on the node, nothing running is disturbed. Serving-aware: ``min_ready_replicas`` keeps at least
that many Ready replicas of every workload (a model's inference Deployment) while its pods move —
the next pod is evicted only once its replacement is Ready. Pods get their own termination grace
period unless ``grace_period_seconds`` overrides it, so in-flight requests can finish.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from aiops.engine.facts import NO_OWNER, left_by_evacuation
from aiops.kube.plan import CORDON_DECISION, CORDONED_BY, StagedPlan, infeasible, decision_mark
from aiops.kube.view import ClusterView, PodInfo
from aiops.model import Basis, Decision, EntityKind, Mutation, Plan, Resource, Verb
from aiops.plugins import PluginParams, Remediation


class EvacuateNodeParams(PluginParams):
    grace_period_seconds: int | None = Field(default=None, ge=0)
    max_unavailable_per_workload: int = Field(default=1, ge=1)
    min_ready_replicas: int = Field(default=0, ge=0)
    # The prepare rung: cordon only, disturb nothing that runs (per decision, not a default).
    cordon_only: bool = False


class EvacuateNode(Remediation):
    name: ClassVar[str] = "evacuate_node"
    Params = EvacuateNodeParams
    # A confirmed failure finishes what a prediction held back: the cordon-only prepare rung, the
    # pods left for a human (they are lost on the failed node anyway).
    continued_on_confirmation: ClassVar[bool] = True

    params: EvacuateNodeParams

    def prepared(self, decision: Decision, view: ClusterView | None) -> bool:
        node = view.node(decision.target.name) if view is not None and decision.target.kind == EntityKind.NODE else None
        return node is not None and node.unschedulable

    def plan(self, decision: Decision, view: ClusterView | None) -> Plan:
        params: dict[str, Any] = dict(decision.params)
        target = decision.target
        if target.kind != EntityKind.NODE:
            return infeasible(self.name, target, f"could not resolve the node of {target.key}")
        node_name = target.name
        if decision.restore:
            return self._uncordon(decision, view)
        drain = f"kubectl drain {node_name} --ignore-daemonsets --delete-emptydir-data --timeout=10m"
        if view is None:
            return infeasible(self.name, target, "evacuating a node needs the cluster state", drain)
        node = view.node(node_name)
        if node is None:
            return infeasible(self.name, target, f"node {node_name} does not exist", drain)
        grace = params.get("grace_period_seconds", self.params.grace_period_seconds)
        max_unavailable = int(params.get("max_unavailable_per_workload", self.params.max_unavailable_per_workload))
        min_ready = int(params.get("min_ready_replicas", self.params.min_ready_replicas))

        mutations: list[Mutation] = []
        if not node.unschedulable:
            notes = {CORDONED_BY: "aiops", CORDON_DECISION: decision_mark(decision)}
            body = {"spec": {"unschedulable": True}, "metadata": {"annotations": notes}}
            mutations.append(Mutation(Verb.PATCH, Resource.NODES, node_name, body=body, description=f"cordon node {node_name}"))
        if params.get("cordon_only", self.params.cordon_only):
            summary = (f"cordon node {node_name} (prepare: its pods keep running; the evacuation follows only if "
                       "the failure comes closer or is confirmed)") if mutations else f"node {node_name} is already cordoned"
            return Plan(self.name, target, tuple(mutations), summary, command=f"kubectl cordon {node_name}")

        waiting: list[str] = []
        left: list[str] = []
        budget: dict[str, int] = {}
        predicted = decision.basis is Basis.PREDICTED
        for pod in sorted(view.pods_on(node_name), key=lambda p: (p.namespace, p.name)):
            skip = _skip(pod, predicted=predicted)
            if skip is not None:
                if skip.kind is SkipKind.WAIT:
                    waiting.append(f"pod {pod.namespace}/{pod.name} is terminating")
                elif skip.kind is SkipKind.LEAVE:
                    left.append(f"{pod.namespace}/{pod.name} ({skip.reason})")
                continue
            owner = view.owner_of(pod)
            key = owner.key if owner else f"pod/{pod.namespace}/{pod.name}"
            if key not in budget:
                budget[key] = max(0, max_unavailable - (owner.unavailable if owner else 0))
                if owner is not None and min_ready:
                    # The serving floor: never take a workload below min_ready Ready replicas.
                    budget[key] = min(budget[key], max(0, owner.ready_replicas - min_ready))
            if budget[key] <= 0:
                floor = f" (keeping at least {min_ready} Ready)" if min_ready else ""
                waiting.append(f"pod {pod.namespace}/{pod.name} waits until {key} has its replicas back{floor}")
                continue
            budget[key] -= 1
            body = {"gracePeriodSeconds": int(grace)} if grace is not None else {}
            mutations.append(
                Mutation(Verb.EVICT, Resource.PODS, pod.name, pod.namespace, body, f"evict pod {pod.namespace}/{pod.name}")
            )

        evictions = sum(1 for m in mutations if m.verb == Verb.EVICT)
        if not mutations and not waiting:
            extra = f"; left for a human: {', '.join(left)}" if left else ""
            return StagedPlan(
                self.name,
                target,
                (),
                f"node {node_name} is cordoned and has no pods left to evict{extra}",
                command=drain,
            )
        parts = ["cordon" if not node.unschedulable else "keep cordoned", f"evict {evictions} pod(s)"]
        if waiting:
            parts.append(f"{len(waiting)} waiting")
        if left:
            parts.append(f"left for a human: {', '.join(left)}")
        return StagedPlan(
            self.name,
            target,
            tuple(mutations),
            f"evacuate node {node_name}: " + "; ".join(parts),
            command=drain,
            waiting=tuple(waiting),
        )

    def _uncordon(self, decision: Decision, view: ClusterView | None) -> Plan:
        target = decision.target
        command = f"kubectl uncordon {target.name}"
        node = view.node(target.name) if view is not None else None
        if node is None:
            return infeasible(self.name, target, "uncordoning needs the node in the cluster state", command)
        if not node.unschedulable:
            return Plan(self.name, target, (), f"node {target.name} is already schedulable", command=command, undo=True)
        if node.annotations.get(CORDONED_BY) != "aiops":
            return infeasible(self.name, target, "the node was cordoned by someone else; leaving it to them", command)
        if not node.ready:
            # No finding does not mean healthy when the kubelet itself says NotReady: wait.
            return StagedPlan(
                self.name, target, (), f"node {target.name} is not Ready yet", command, waiting=("NotReady",), undo=True
            )
        body = {"spec": {"unschedulable": False}, "metadata": {"annotations": {CORDONED_BY: None, CORDON_DECISION: None}}}
        return Plan(
            self.name,
            target,
            (Mutation(Verb.PATCH, Resource.NODES, target.name, body=body, description=f"uncordon node {target.name}"),),
            f"uncordon node {target.name}: healthy again",
            command=command,
            undo=True,
        )


class SkipKind(enum.Enum):
    IGNORED = "ignored"  # not the evacuation's business (DaemonSet, mirror, finished): not reported
    WAIT = "wait"  # already going (terminating): the evacuation waits for it
    LEAVE = "leave"  # stays on the node, named for a human


@dataclass(frozen=True)
class Skip:
    kind: SkipKind
    reason: str = ""


def _skip(pod: PodInfo, *, predicted: bool) -> Skip | None:
    """Why this pod is not evicted (None: evict it): ``kubectl drain``'s filters, and on a predicted
    failure the pods whose controller would not replace them."""
    if pod.is_mirror or pod.is_daemonset or pod.finished:
        return Skip(SkipKind.IGNORED)
    if pod.terminating:
        return Skip(SkipKind.WAIT)
    owner = pod.controller
    if not left_by_evacuation(owner.kind if owner is not None else NO_OWNER, predicted=predicted):
        return None
    if owner is None:
        return Skip(SkipKind.LEAVE, "no controller; evicting it would delete it for good")
    return Skip(
        SkipKind.LEAVE,
        f"owned by {owner.kind}/{owner.name}, which would not replace it: evicting it would restart "
        "its work on a failure only predicted",
    )
