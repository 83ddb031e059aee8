"""The safety rails, one module each, and the one order they run in.

Mode is decided before any rail (observe and suggest never reach them). Then, first refusal wins:
kill switch → leader → protected namespace / opt-out → Alertmanager silence → cooldown → budgets →
blast radius → circuit breaker. Each rail keeps the :class:`Rail` protocol, ``check(ctx) ->
Refusal | None``; the guarded writer (:mod:`aiops.engine.safety`) runs :data:`RAILS` and nothing
else decides admission. Rails marked ``admission_only`` gate *starting* an action and are not
asked again while one already admitted continues.
"""

from __future__ import annotations

from aiops.engine.rails.base import TRUE_VALUES, Rail, RailContext, RailName, Refusal
from aiops.engine.rails.blast_radius import BlastRadiusRail
from aiops.engine.rails.breaker import BreakerRail
from aiops.engine.rails.budget import BudgetRail
from aiops.engine.rails.cooldown import CooldownRail
from aiops.engine.rails.kill_switch import KillSwitchRail
from aiops.engine.rails.leader import LeaderRail
from aiops.engine.rails.scope import ScopeRail, scope_refusal
from aiops.engine.rails.silence import SilenceRail

RAILS: tuple[Rail, ...] = (
    KillSwitchRail(),
    LeaderRail(),
    ScopeRail(),
    SilenceRail(),
    CooldownRail(),
    BudgetRail(),
    BlastRadiusRail(),
    BreakerRail(),
)


def first_refusal(ctx: RailContext, rails: tuple[Rail, ...] = RAILS) -> Refusal | None:
    """Run the rails in order; the first refusal wins."""
    for rail in rails:
        if ctx.resuming and rail.admission_only:
            continue
        refusal = rail.check(ctx)
        if refusal is not None:
            return refusal
    return None


__all__ = ["RAILS", "TRUE_VALUES", "Rail", "RailContext", "RailName", "Refusal", "first_refusal", "scope_refusal"]
