"""Protected namespaces and the ``aiops.io/remediate`` opt-out (or opt-in) mark.

The same check also scopes a plan's writes: a drain never touches kube-system pods or opted-out
pods (:meth:`aiops.engine.safety.GuardedWriter.scope`).
"""

from __future__ import annotations

from typing import ClassVar

from aiops.config.safety import SafetyConfig
from aiops.engine.rails.base import TRUE_VALUES, RailContext, RailName, Refusal
from aiops.kube.view import REMEDIATE_LABEL, ClusterView
from aiops.model import Entity


def scope_refusal(config: SafetyConfig, target: Entity, view: ClusterView | None) -> Refusal | None:
    if target.namespace and config.is_protected(target.namespace):
        return Refusal(RailName.PROTECTED_NAMESPACE, f"{target.key} is in protected namespace {target.namespace}")
    marks = view.remediate_marks(target) if view is not None else ()
    # Fail closed: any value that is not plainly "true" (False, "0", "no", a typo) opts out.
    refused = [v for v in marks if v.strip().lower() not in TRUE_VALUES]
    if refused:
        return Refusal(RailName.OPT_OUT, f"{target.key} opted out: {REMEDIATE_LABEL}={refused[0]} "
                                         "(label or annotation; any value but true opts out)")
    if config.opt_in and not marks:
        return Refusal(RailName.OPT_OUT, f"opt-in mode: {target.key} is not labelled {REMEDIATE_LABEL}=true")
    return None


class ScopeRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.PROTECTED_NAMESPACE, RailName.OPT_OUT)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        return scope_refusal(ctx.writer.config, ctx.plan.target, ctx.view)
