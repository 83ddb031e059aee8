"""Circuit breaker: after ``breaker_threshold`` actions in a row that did not heal, no action until
``breaker_open_for`` has passed; a human should look. Latched like the budgets.

:class:`CircuitBreaker` counts outcomes (the outcome tracker reports each one) and keeps its state,
like budgets and cooldowns, in :mod:`aiops.state.books`; :class:`BreakerRail` refuses while it is open."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from aiops import metrics
from aiops.engine.rails.base import RailContext, RailName, Refusal
from aiops.model import from_epoch
from aiops.state.books import Books


class CircuitBreaker:
    """Opens after ``threshold`` consecutive not-healed actions; closes after ``open_for``."""

    def __init__(self, books: Books, threshold: int, open_for: timedelta) -> None:
        self.books = books
        self.threshold = threshold
        self.open_for = open_for

    def is_open(self, now: datetime) -> bool:
        opened = self.books.breaker().get("opened_at")
        is_open = opened is not None and now.timestamp() - float(opened) < self.open_for.total_seconds()
        metrics.CIRCUIT_BREAKER_OPEN.set(1 if is_open else 0)
        return is_open

    def record(self, healed: bool, now: datetime) -> bool:
        """Count an outcome; True when this outcome opened the breaker."""
        state = self.books.breaker()
        if healed:
            state["not_healed"] = 0
            self.books.set_breaker(state)
            return False
        state["not_healed"] = int(state.get("not_healed", 0)) + 1
        opened = state["not_healed"] >= self.threshold and not self.is_open(now)
        if opened:
            state["opened_at"] = now.timestamp()
            state["not_healed"] = 0
        self.books.set_breaker(state)
        self.is_open(now)
        return opened

    def opened_until(self) -> datetime | None:
        opened = self.books.breaker().get("opened_at")
        return from_epoch(float(opened)) + self.open_for if opened is not None else None


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

