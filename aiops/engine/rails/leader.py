"""Leader: only the replica that holds the lease writes; the others detect and notify.

Sharded, the lease is the decision's own shard's: holding some other shard is not enough (a
replica that handed this shard back must not write for it while the new holder does)."""

from __future__ import annotations

from typing import ClassVar

from aiops.engine.rails.base import RailContext, RailName, Refusal


class LeaderRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.LEADER,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        if ctx.writer.leads(ctx.decision):
            return None
        shard = ctx.writer.shard_for(ctx.decision)
        if shard is None:
            return Refusal(RailName.LEADER, "this replica does not hold the leader lease; the leader acts")
        return Refusal(
            RailName.LEADER, f"this replica does not hold the lease of shard {shard}; that shard's holder acts"
        )
