"""The rails are one ordered list; the writer runs it and nothing else decides admission."""

from __future__ import annotations

from aiops.engine.rails import RAILS, RailName


def test_the_rails_run_in_the_documented_order() -> None:
    order = [name for rail in RAILS for name in rail.names]
    assert order == [
        RailName.KILL_SWITCH,
        RailName.LEADER,
        RailName.PROTECTED_NAMESPACE,
        RailName.OPT_OUT,
        RailName.SILENCED,
        RailName.COOLDOWN,
        RailName.BUDGET,  # the cooldown rail refuses as "budget" when the shared ledger cannot be read
        RailName.BUDGET,
        RailName.BLAST_RADIUS,
        RailName.CIRCUIT_BREAKER,
    ]
    assert {name for rail in RAILS for name in rail.names} == set(RailName)


def test_only_cooldown_and_budget_gate_starting_an_action() -> None:
    assert {type(r).__name__ for r in RAILS if r.admission_only} == {"CooldownRail", "BudgetRail"}
