"""Alertmanager silences: a silence a human set on the alert, or on the node/pod, stops the
remediation too. When Alertmanager cannot answer, nothing is done."""

from __future__ import annotations

from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal
from aiops.notify.alertmanager import silence_labels


class SilenceRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.SILENCED,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        is_silenced = ctx.writer.is_silenced
        if is_silenced is None:
            return None
        # The same labels the alert for this finding carries (plus the target).
        labels = silence_labels(ctx.decision.finding, ctx.plan.target)
        try:
            silenced = is_silenced(labels)
        except Exception as exc:  # the silence check is a rail: when it cannot answer, do not act
            return Refusal(RailName.SILENCED, f"cannot check Alertmanager silences ({exc}); not acting until it answers")
        if silenced:
            return Refusal(RailName.SILENCED, f"an Alertmanager silence matches {ctx.plan.target.key}")
        return None
