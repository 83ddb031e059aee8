"""Circuit breaker: after ``breaker_threshold`` actions in a row that did not heal, no action until
``breaker_open_for`` has passed; a human should look. Latched like the budgets."""

from __future__ import annotations

from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal


class BreakerRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.CIRCUIT_BREAKER,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        w = ctx.writer
        if not w.breaker.is_open(ctx.now):
            w.books.set_episode(RailName.CIRCUIT_BREAKER, False)
            return None
        reopens = w.breaker.opened_until()
        repeat = w.books.episode(RailName.CIRCUIT_BREAKER)
        w.books.set_episode(RailName.CIRCUIT_BREAKER, True)
        return Refusal(
            RailName.CIRCUIT_BREAKER,
            f"circuit breaker open: {w.config.breaker_threshold} actions in a row did not heal; "
            f"no actions until {reopens:%Y-%m-%d %H:%M UTC} — a human should look at what is going on",
            repeat=repeat,
        )
