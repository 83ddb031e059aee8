"""What every rail shares: its name, its refusal, what it is shown, and the protocol it keeps."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol

from aiops.kube.view import ClusterView
from aiops.model import Decision, Plan

if TYPE_CHECKING:
    from aiops.engine.safety import GuardedWriter

# What reads as "yes" in a kill switch or an opt-in mark; anything else reads as "no".
TRUE_VALUES = frozenset({"true", "1", "yes", "on"})


class RailName(enum.StrEnum):
    """The ``rail`` of a refusal, as results, /metrics and the audit log name it."""

    KILL_SWITCH = "kill_switch"
    LEADER = "leader"
    PROTECTED_NAMESPACE = "protected_namespace"
    OPT_OUT = "opt_out"
    SILENCED = "silenced"
    COOLDOWN = "cooldown"
    BUDGET = "budget"
    BLAST_RADIUS = "blast_radius"
    CIRCUIT_BREAKER = "circuit_breaker"


@dataclass(frozen=True)
class Refusal:
    rail: RailName
    detail: str
    # Latched rails report BLOCKED once per episode, then DEFERRED.
    repeat: bool = False


@dataclass(frozen=True)
class RailContext:
    """One admission question: may ``decision``'s ``plan`` be applied now? ``writer`` gives the
    rails the books, the kill switch, the lease and the limits they read."""

    writer: GuardedWriter
    decision: Decision
    plan: Plan
    view: ClusterView | None
    now: datetime
    # Continuing an action already admitted (in flight, or an undo paid for by its action):
    # rails that only gate *starting* one (``admission_only``) do not ask again.
    resuming: bool = False


class Rail(Protocol):
    """One safety rail: ``check`` returns why the plan may not be applied, or None."""

    names: ClassVar[tuple[RailName, ...]]  # the refusals it can give
    admission_only: ClassVar[bool]

    def check(self, ctx: RailContext) -> Refusal | None: ...
