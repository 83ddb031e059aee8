"""Advice when no safe automatic action exists: what to look at, why, and the command to run.

Never mutates anything, in any mode. The act stage also falls back to it when another
remediation's plan is infeasible, passing that plan's reason and command along.
"""

from __future__ import annotations

from typing import ClassVar

from aiops.kube.view import ClusterView
from aiops.model import Decision, Entity, EntityKind, Plan
from aiops.plugins import PluginParams, Remediation


def _commands(entity: Entity, signal: str, view: ClusterView | None) -> list[str]:
    ns = f" -n {entity.namespace}" if entity.namespace else ""
    if entity.kind == EntityKind.NODE:
        cmds = [
            f"kubectl describe node {entity.name}",
            f"kubectl get pods -A --field-selector spec.nodeName={entity.name}",
        ]
        if "filesystem" in signal or "disk" in signal:
            cmds.append(f"kubectl debug node/{entity.name} -it --image=busybox -- df -h /host")
        else:
            cmds.append(f"kubectl drain {entity.name} --ignore-daemonsets --delete-emptydir-data")
        return cmds
    if entity.kind == EntityKind.POD:
        return [f"kubectl describe pod {entity.name}{ns}", f"kubectl logs {entity.name}{ns} --previous"]
    if entity.kind == EntityKind.GPU:
        node = entity.attr("Hostname") or entity.attr("node")
        return [f"kubectl describe node {node}", f"kubectl drain {node} --ignore-daemonsets"] if node else []
    if entity.kind == EntityKind.MODEL:
        owner = view.owner_for(entity) if view is not None else None
        if owner is not None:
            ref = f"{owner.kind}/{owner.name} -n {owner.namespace}"
            return [f"kubectl rollout history {ref}", f"kubectl rollout undo {ref}"]
        return [f"kubectl get deployments{ns} -l aiops.io/model={entity.name}"]
    if entity.kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
        return [
            f"kubectl rollout status {entity.kind}/{entity.name}{ns}",
            f"kubectl rollout history {entity.kind}/{entity.name}{ns}",
        ]
    return [f"kubectl get {entity.kind} {entity.name}{ns}"]


class AdviseParams(PluginParams):
    # What to suggest, why, and the one command to run (default: commands for the target's kind).
    # The act stage fills in the command when another remediation's plan is infeasible.
    suggestion: str | None = None
    why: str | None = None
    command: str | None = None


class Advise(Remediation):
    name: ClassVar[str] = "advise"
    Params = AdviseParams

    def plan(self, decision: Decision, view: ClusterView | None) -> Plan:
        finding = decision.finding
        params = dict(decision.params)
        commands = (
            [str(params["command"])] if params.get("command") else _commands(decision.target, finding.signal, view)
        )
        # One owner per sentence: the finding's evidence is shown with the finding and the commands
        # in the plan's command field, so the summary says only what to check (and a reason given
        # in the rule's params, which nothing else shows).
        what = str(params.get("suggestion") or f"check {decision.target.key} ({finding.signal}, from {finding.detector})")
        why = params.get("why")
        summary = f"{what.rstrip('. ')}: {str(why).rstrip('. ')}" if why else what.rstrip(". ")
        return Plan(self.name, decision.target, (), summary, command="\n".join(commands))
