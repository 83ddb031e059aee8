"""Cooldown: one action per target within ``safety.cooldown``, counted across replicas (the
actions other replicas recorded as Events are merged into the books first)."""

from __future__ import annotations

from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal


class CooldownRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.COOLDOWN, RailName.BUDGET)
    admission_only: ClassVar[bool] = True

    def check(self, ctx: RailContext) -> Refusal | None:
        w = ctx.writer
        refusal = w.sync_ledger()
        if refusal is not None:
            return refusal
        last = w.books.last_action_on(ctx.plan.target.key, w.dry_run)
        if last is not None and ctx.now - last < w.config.cooldown:
            until = (last + w.config.cooldown).strftime("%H:%M UTC")
            return Refusal(
                RailName.COOLDOWN, f"{ctx.plan.target.key} was acted on at {last:%H:%M UTC}; cooling down until {until}"
            )
        return None
