"""Blast radius: at most a fraction of the nodes cordoned (a smaller one on predictions), at most
``max_pods_per_workload`` pods of one workload disrupted within ``workload_window``.

The cordoned nodes are counted as the API server has them at admission, not as the act stage's
view had them: sharded, another replica may cordon a node of its shard in the meantime, and each
replica counting from its own view let both pass a cap with room for one. The workload's
disruptions are counted from the action ledger, every replica's. Sharded, both counts and the
writes they admit happen under a cluster-wide guard Lease (``GuardedWriter.execute``), which
re-reads the ledger: without it, two replicas whose counts both came before either's write each
passed a cap once."""

from __future__ import annotations

import math
from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal
from aiops.kube.errors import KubeApiError
from aiops.model import Basis


class BlastRadiusRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.BLAST_RADIUS,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        w, plan, view = ctx.writer, ctx.plan, ctx.view
        fraction, knob = w.config.max_cordoned_fraction, "max_cordoned_fraction"
        if ctx.decision.basis == Basis.PREDICTED:
            fraction = min(fraction, w.config.max_predicted_cordoned_fraction)
            knob = "max_predicted_cordoned_fraction (the failure is predicted, not confirmed)"
        cordons = [m for m in plan.mutations if m.cordons]
        if cordons and view is not None:
            try:
                nodes = w.nodes_now(view)
            except KubeApiError as exc:
                return Refusal(RailName.BLAST_RADIUS, f"cannot read the nodes to count the cordoned ones: {exc}")
            total = len(nodes)
            allowed = max(1, math.floor(fraction * total))
            cordoned = {n.name for n in nodes if n.unschedulable}
            after = len(cordoned | w.cordoned_now | {m.name for m in cordons})
            if after > allowed:
                return Refusal(
                    RailName.BLAST_RADIUS,
                    f"cordoning {', '.join(m.name for m in cordons)} would leave {after} of {total} nodes cordoned "
                    f"(at most {allowed} allowed by {knob}={fraction})",
                )
        pod_writes = [m for m in plan.mutations if m.resource == "pods"]
        if pod_writes and len(pod_writes) == len(plan.mutations) and not w.allowed_pod_writes(plan, view, ctx.now)[0]:
            return Refusal(
                RailName.BLAST_RADIUS,
                f"{w.config.max_pods_per_workload} pod(s) of this workload were already disrupted within "
                f"{w.config.workload_window}",
            )
        return None
