"""What every rail shares: its name, its refusal, what it is shown, and the protocol it keeps."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from aiops.config.safety import SafetyConfig
from aiops.kube.view import ClusterView, NodeInfo
from aiops.model import Decision, Mutation, Plan
from aiops.state.books import Books

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


class SwitchReading(Protocol):
    def engaged(self) -> str: ...


class BreakerReading(Protocol):
    def is_open(self, now: datetime) -> bool: ...

    def opened_until(self) -> datetime | None: ...


class RailHost(Protocol):
    """What the rails may read and spend through the writer that runs them
    (:class:`aiops.engine.safety.GuardedWriter`): its books, the kill switch, the lease, the
    breaker and the limits. Nothing else of the writer is theirs."""

    @property
    def config(self) -> SafetyConfig: ...
    @property
    def books(self) -> Books: ...
    @property
    def kill_switch(self) -> SwitchReading: ...
    @property
    def breaker(self) -> BreakerReading: ...
    @property
    def leads(self) -> Callable[[Decision], bool]: ...
    @property
    def is_silenced(self) -> Callable[[Mapping[str, str]], bool] | None: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def shards(self) -> int: ...
    @property
    def cordoned_now(self) -> set[str]: ...

    def sync_ledger(self) -> Refusal | None: ...

    def nodes_now(self, view: ClusterView) -> Sequence[NodeInfo]: ...

    def limit(self, total: int, shard: int | None) -> int: ...

    def remaining_budget(self, now: datetime, shard: int | None = None) -> dict[str, int]: ...

    def shard_for(self, decision: Decision) -> int | None: ...

    def allowed_pod_writes(
        self, plan: Plan, view: ClusterView | None, now: datetime
    ) -> tuple[list[Mutation], list[str]]: ...


@dataclass(frozen=True)
class RailContext:
    """One admission question: may ``decision``'s ``plan`` be applied now? ``writer`` gives the
    rails the books, the kill switch, the lease and the limits they read."""

    writer: RailHost
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
