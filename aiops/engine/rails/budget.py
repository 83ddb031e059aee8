"""Budgets: at most so many actions per hour and per day, smaller ones for actions on predictions
and on inbound alerts; each shard spends its share. Latched: the first refusal of an episode is
BLOCKED, repeats are DEFERRED, so people get one message."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal
from aiops.model import Basis


class BudgetRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.BUDGET,)
    admission_only: ClassVar[bool] = True

    def check(self, ctx: RailContext) -> Refusal | None:
        w, basis = ctx.writer, ctx.decision.basis
        shard = w.shard_for(ctx.decision)
        remaining = w.remaining_budget(ctx.now, shard)
        c, lim = w.config, w.limit
        windows: list[tuple[str, str, int, timedelta, str | None]] = [
            ("hour", "hourly", lim(c.max_actions_per_hour, shard), timedelta(hours=1), None),
            ("day", "daily", lim(c.max_actions_per_day, shard), timedelta(days=1), None),
        ]
        if basis == Basis.PREDICTED:
            windows += [
                ("predicted_hour", "hourly prediction", lim(c.max_predicted_actions_per_hour, shard), timedelta(hours=1), Basis.PREDICTED),
                ("predicted_day", "daily prediction", lim(c.max_predicted_actions_per_day, shard), timedelta(days=1), Basis.PREDICTED),
            ]
        if basis == Basis.INBOUND:
            windows += [
                ("inbound_hour", "hourly inbound-alert", lim(c.max_inbound_actions_per_hour, shard), timedelta(hours=1), Basis.INBOUND),
                ("inbound_day", "daily inbound-alert", lim(c.max_inbound_actions_per_day, shard), timedelta(days=1), Basis.INBOUND),
            ]
        of_shard = "" if shard is None else f" (shard {shard}'s share of {w.shards})"
        for window, label, limit, span, only in windows:
            if remaining[window] <= 0:
                oldest = w.books.oldest_action(ctx.now - span, w.dry_run, only, shard)
                frees = f"; the next slot frees at {oldest + span:%H:%M UTC}" if oldest else ""
                repeat = w.books.episode(RailName.BUDGET)
                w.books.set_episode(RailName.BUDGET, True)
                return Refusal(
                    RailName.BUDGET, f"{label} budget of {limit} action(s){of_shard} is used up{frees}", repeat=repeat
                )
        w.books.set_episode(RailName.BUDGET, False)
        return None
