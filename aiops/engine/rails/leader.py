"""Leader: only the replica that holds the lease writes; the others detect and notify."""

from __future__ import annotations

from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal


class LeaderRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.LEADER,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        if ctx.writer.is_leader():
            return None
        return Refusal(RailName.LEADER, "this replica does not hold the leader lease; the leader acts")
