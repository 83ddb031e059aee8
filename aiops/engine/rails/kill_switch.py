"""Kill switch: a ConfigMap key or a file that stops every write (an unreadable one stops them too)."""

from __future__ import annotations

from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal


class KillSwitchRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.KILL_SWITCH,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        reason = ctx.writer.kill_switch.engaged()
        return Refusal(RailName.KILL_SWITCH, reason) if reason else None
