"""Scale a workload ahead of a predicted peak, within bounds, and restore it afterwards.

With an HPA the floor is raised (``minReplicas``) so the autoscaler keeps working above it;
without one the Deployment/StatefulSet's ``replicas`` is set. The value found before the first
change is kept in the ``aiops.io/scale-ahead-original`` annotation on the object itself, so a
restart, or a human, knows what to restore; the decision that scaled it is kept beside it
(``aiops.io/scale-ahead-decision``), so a replica that replaced the one that acted knows when:
once that decision's finding has stayed clear for ``safety.restore_after``.

Direction ("auto" by default) from the triggering finding:

- a forecast (``predicted_failure_at`` set: demand past the servers' proven capacity, a latency
  objective or GPU utilisation about to be crossed) scales up ahead of the peak;
- a serving objective breached (the finding's ``objective`` fact: TTFT, inter-token latency, each
  against its own objective) scales up while the newest value is above it;
- otherwise the seed thresholds: a latency signal without an objective above
  ``latency_high_seconds``, or GPU utilisation above ``gpu_util_high`` → up; GPU utilisation below
  ``gpu_util_low`` for ``low_for_points`` consecutive points → down (never below the original
  value, nor ``min_replicas``).

The default rules' signals (``serving_*``, ``inference_request_rate*``) carry no "latency" in their
names: read by name alone, they crossed "no scaling threshold" and no replica was ever added.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from aiops.kube.plan import ORIGINAL_REPLICAS, SCALE_AHEAD_DECISION, infeasible, decision_mark
from aiops.kube.view import ClusterView, HpaInfo, WorkloadInfo
from aiops.model import Decision, EntityKind, Mutation, Plan, Resource, Verb
from aiops.plugins import PluginParams, Remediation

class ScaleAheadParams(PluginParams):
    direction: Literal["auto", "up", "down"] = "auto"
    step: int = Field(default=1, ge=1)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    latency_high_seconds: float = Field(default=0.1, gt=0)
    gpu_util_high: float = 80.0
    gpu_util_low: float = 20.0
    low_for_points: int = Field(default=10, ge=1)

    @field_validator("max_replicas")
    @classmethod
    def _at_least_min_replicas(cls, most: int | None, info: ValidationInfo) -> int | None:
        least = info.data.get("min_replicas")
        if most is not None and least is not None and most < least:
            raise ValueError(f"max_replicas must be at least min_replicas ({least})")
        return most


class ScaleAhead(Remediation):
    name: ClassVar[str] = "scale_ahead"
    Params = ScaleAheadParams
    undo_without_verdict: ClassVar[bool] = True

    params: ScaleAheadParams

    def direction_for(self, decision: Decision) -> str:
        """ "up", "down" or "" (the finding crosses no threshold)."""
        wanted = str(decision.params.get("direction", self.params.direction))
        if wanted != "auto":
            return wanted
        finding = decision.finding
        if finding.predicted_failure_at is not None:
            return "up"  # a forecast that a limit will be crossed: scale before the peak
        recent: Sequence[float] = finding.evidence.recent
        finite = [v for v in recent if math.isfinite(v)]  # a scrape gap ends a series with NaN
        last = finite[-1] if finite else finding.evidence.facts.get("value")
        if not isinstance(last, int | float) or not math.isfinite(last):
            return ""
        objective = finding.evidence.facts.get("objective")
        if isinstance(objective, int | float):
            return "up" if float(last) > float(objective) else ""
        if "latency" in finding.signal:
            return "up" if float(last) > self.params.latency_high_seconds else ""
        if finding.signal.startswith("gpu_util"):
            if float(last) > self.params.gpu_util_high:
                return "up"
            tail = list(recent[-self.params.low_for_points :])
            if len(tail) >= self.params.low_for_points and all(v < self.params.gpu_util_low for v in tail):
                return "down"
        return ""

    def plan(self, decision: Decision, view: ClusterView | None) -> Plan:
        target = decision.target
        if view is None:
            return infeasible(self.name, target, "scaling needs the cluster state to find the workload")
        workload = view.owner_for(target)
        if workload is None or workload.kind not in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
            return infeasible(self.name, target, f"no Deployment or StatefulSet found for {target.key}")
        params: dict[str, Any] = dict(decision.params)
        step = int(params.get("step", self.params.step))
        hpa = view.hpa_for(workload)
        if decision.restore:
            return self._restore(workload, hpa)
        direction = self.direction_for(decision)
        if direction not in ("up", "down"):
            return infeasible(self.name, target, f"{decision.finding.signal} crosses no scaling threshold")
        current = hpa.min_replicas if hpa else workload.replicas
        annotations = hpa.annotations if hpa else workload.annotations
        original = int(annotations.get(ORIGINAL_REPLICAS, current))
        if direction == "up":
            ceiling = int(
                params.get("max_replicas", self.params.max_replicas or (hpa.max_replicas if hpa else 2 * max(1, original)))
            )
            if hpa is not None:
                ceiling = min(ceiling, hpa.max_replicas)
            base = max(current, hpa.current_replicas) if hpa else current
            new = min(ceiling, base + step)
        else:
            floor = max(
                int(params.get("min_replicas", self.params.min_replicas)), original if ORIGINAL_REPLICAS in annotations else 0
            )
            new = max(floor, current - step)
        if new == current:
            bound = "its ceiling" if direction == "up" else "its floor"
            return infeasible(self.name, workload.entity, f"{_what(workload, hpa)} is already at {bound} ({current})")
        return self._set(
            workload, hpa, new, original, f"scale {direction} {_what(workload, hpa)} from {current} to {new}", decision
        )

    def _restore(self, workload: WorkloadInfo, hpa: HpaInfo | None) -> Plan:
        annotations = hpa.annotations if hpa else workload.annotations
        if ORIGINAL_REPLICAS not in annotations:
            return Plan(
                self.name, workload.entity, (), f"{_what(workload, hpa)} was not scaled by aiops; nothing to restore",
                undo=True,
            )
        original = int(annotations[ORIGINAL_REPLICAS])
        return replace(self._set(workload, hpa, original, None, f"restore {_what(workload, hpa)} to {original}"), undo=True)

    def _set(
        self, workload: WorkloadInfo, hpa: HpaInfo | None, value: int, original: int | None, summary: str,
        decision: Decision | None = None,
    ) -> Plan:
        # The annotations are removed (None in a merge patch) when restoring to the original.
        note = {
            ORIGINAL_REPLICAS: str(original) if original is not None else None,
            SCALE_AHEAD_DECISION: decision_mark(decision) if original is not None and decision is not None else None,
        }
        if hpa is not None:
            body = {"metadata": {"annotations": note}, "spec": {"minReplicas": value}}
            mutation = Mutation(Verb.PATCH, Resource.HORIZONTALPODAUTOSCALERS, hpa.name, hpa.namespace, body, summary)
            command = f'kubectl patch hpa {hpa.name} -n {hpa.namespace} -p \'{{"spec":{{"minReplicas":{value}}}}}\''
            target = hpa.entity
        else:
            body = {"metadata": {"annotations": note}, "spec": {"replicas": value}}
            resource = Resource.DEPLOYMENTS if workload.kind == EntityKind.DEPLOYMENT else Resource.STATEFULSETS
            mutation = Mutation(Verb.PATCH, resource, workload.name, workload.namespace, body, summary)
            command = f"kubectl scale {workload.kind}/{workload.name} -n {workload.namespace} --replicas={value}"
            target = workload.entity
        return Plan(self.name, target, (mutation,), summary, command=command)


def _what(workload: WorkloadInfo, hpa: HpaInfo | None) -> str:
    if hpa is not None:
        return f"HPA {hpa.namespace}/{hpa.name} minReplicas"
    return f"{workload.kind} {workload.namespace}/{workload.name} replicas"
