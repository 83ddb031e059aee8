"""The typed records that flow through one cycle.

collect -> :class:`Frame` -> detect -> :class:`Finding` -> decide -> :class:`Decision`
-> act -> :class:`ActionResult` -> notify -> :class:`Notification` -> record (:class:`CycleReport`).

Records are immutable; a stage that refines a record (policy grading a finding) makes a new one
with :func:`dataclasses.replace`. Times are timezone-aware UTC datetimes in records and float
epoch seconds inside numeric arrays.
"""

from __future__ import annotations

import enum
import functools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Mode(enum.StrEnum):
    """How far the daemon may go. Ordered: observe < suggest < auto."""

    OBSERVE = "observe"  # detect and notify findings; decisions are recorded, not proposed
    SUGGEST = "suggest"  # notify with the action and the command a human would run
    AUTO = "auto"  # act through the guarded writer

    @property
    def rank(self) -> int:
        return {"observe": 0, "suggest": 1, "auto": 2}[self.value]


class EntityKind(enum.StrEnum):
    """What an :class:`Entity` is: a closed set, so a typo is an error where it is made.

    Signals name the kinds their labels identify (``SIGNAL_KINDS``); the others come from the
    cluster (a pod's owner, an Argo CD Application, an HPA's scale target) and from the engine
    (a whole signal gone quiet). A string value is accepted wherever an Entity is built (a config,
    a stored row); an unknown one is a ValueError naming the known kinds.
    """

    CLUSTER = "cluster"
    NAMESPACE = "namespace"
    NODE = "node"
    POD = "pod"
    CONTAINER = "container"
    GPU = "gpu"
    DEPLOYMENT = "deployment"
    STATEFULSET = "statefulset"
    REPLICASET = "replicaset"  # a pod's owner when no Deployment owns the ReplicaSet
    HPA = "hpa"
    MODEL = "model"
    SERVICE = "service"
    APPLICATION = "application"  # an Argo CD Application (rollback_model's GitOps path)
    # An HPA's scale target of a kind aiops reads but never acts on (an Argo Rollout, a
    # LeaderWorkerSet): named in advice only.
    WORKLOAD = "workload"
    SIGNAL = "signal"  # a whole signal gone quiet (the engine's absent-signal finding)

    @classmethod
    def parse(cls, value: str) -> EntityKind:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"entity kind {value!r} is not one of: {', '.join(cls)}") from None


# The kinds a signal's labels can identify (config ``signals.<name>.entity``).
SIGNAL_KINDS = frozenset({
    EntityKind.CLUSTER, EntityKind.NAMESPACE, EntityKind.NODE, EntityKind.POD, EntityKind.CONTAINER,
    EntityKind.GPU, EntityKind.DEPLOYMENT, EntityKind.STATEFULSET, EntityKind.HPA, EntityKind.MODEL,
    EntityKind.SERVICE,
})


@dataclass(frozen=True, order=True)
class Entity:
    """What a finding is about and what an action targets.

    ``kind`` is an :class:`EntityKind` (its string value is accepted and converted).
    ``namespace`` is empty for cluster-scoped kinds.
    """

    kind: EntityKind
    name: str
    namespace: str = ""
    attributes: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if type(self.kind) is not EntityKind:  # a string from a config, a stored row or a test
            object.__setattr__(self, "kind", EntityKind.parse(self.kind))

    # Both remembered on the entity (not fields: equality, ordering and replace ignore them). The
    # collector keeps one Entity per series across cycles, and the facts, correlation and detectors
    # ask every cycle for the key and attributes of thousands of them.
    @functools.cached_property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @functools.cached_property
    def _attributes(self) -> dict[str, str]:
        return dict(self.attributes)

    def attr(self, name: str, default: str = "") -> str:
        return self._attributes.get(name, default)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Series:
    """One time series of one signal, sorted by time, float64 arrays of equal length.

    From the collector the timestamps are the signal's step grid, from the series' first point to
    its last; a step without a sample is NaN, as is a sample Prometheus reported as NaN or +/-Inf.
    """

    signal: str
    labels: Mapping[str, str]
    timestamps: np.ndarray
    values: np.ndarray
    entity: Entity
    # The sorted label pairs, when the maker already has them (the collector's window is keyed by
    # them): detectors ask for ``key`` of every series every cycle.
    label_key: tuple[tuple[str, str], ...] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        if self.label_key is not None:
            return self.signal, self.label_key
        return series_key(self.signal, self.labels)

    @property
    def last_timestamp(self) -> float | None:
        return float(self.timestamps[-1]) if len(self) else None


def series_key(signal: str, labels: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return signal, tuple(sorted(labels.items()))


@dataclass(frozen=True)
class FailurePoint:
    """Where a resource really fails, which is often before it is full.

    The kubelet evicts at ``nodefs.available < 10 %`` (90 % used), a container is OOMKilled at its
    limit, vLLM starts preempting requests just below a full KV cache. ``value`` is in the signal's
    own unit; ``name`` says what happens there ("DiskPressure (kubelet eviction)"). ``match``
    restricts the point to series whose labels fully match these regular expressions (the image
    filesystem's mountpoint); the first point of a signal that matches a series applies to it.
    """

    value: float
    name: str
    match: tuple[tuple[str, str], ...] = ()

    def applies_to(self, labels: Mapping[str, str]) -> bool:
        return all(re.fullmatch(pattern, labels.get(label, "")) is not None for label, pattern in self.match)


@dataclass(frozen=True)
class SignalInfo:
    """What detectors may know about a signal (from the catalog/config), without PromQL."""

    name: str
    entity_kind: EntityKind
    unit: str = ""
    # The hard wall of a resource signal in its own unit (1.0 for a usage ratio); exhaustion
    # forecasters predict when it is reached. None for signals without one.
    capacity: float | None = None
    # Its service-level objective in its own unit (a p99 latency), when it has one (config).
    objective: float | None = None
    # Which direction is bad for this signal: "up", "down" or "both".
    bad_direction: str = "both"
    description: str = ""
    # Where the resource fails in operation (kubelet eviction, OOMKill, preemption, an objective);
    # forecasters aim at it. None of them matching a series means: it fails when full (capacity).
    failure_points: tuple[FailurePoint, ...] = ()
    # Its series exist only while a state holds (a pod crash-looping, a pod attached to a GPU): a
    # series that ends is that state ending, not the exporter going quiet.
    sparse: bool = False

    def __post_init__(self) -> None:
        if type(self.entity_kind) is not EntityKind:
            object.__setattr__(self, "entity_kind", EntityKind.parse(self.entity_kind))

    def failure_point(self, labels: Mapping[str, str]) -> FailurePoint | None:
        """The failure point of the series with these labels (None: at capacity, if any)."""
        return next((p for p in self.failure_points if p.applies_to(labels)), None)


@dataclass(frozen=True)
class Frame:
    """Everything collected this cycle: a rolling window per series, plus collection gaps.

    ``missing_signals`` names signals whose query failed this cycle, so that detectors and
    policy can tell "no data" from "healthy". ``series`` holds only series with recent points.
    """

    now: datetime
    series: tuple[Series, ...]
    signals: Mapping[str, SignalInfo]
    step_seconds: float
    missing_signals: tuple[str, ...] = ()
    # Series that stopped reporting (no point in the last few steps) while their signal answered:
    # kept out of ``series`` so nothing acts on stale values, but visible (a vanished GPU is news).
    vanished: tuple[Series, ...] = ()
    # Signals that answered, had series before and have none with a recent point now (Prometheus's
    # ``absent()`` case: the exporter died or scraping broke), with the epoch second last seen.
    absent_signals: Mapping[str, float] = field(default_factory=dict)

    def of(self, signal: str) -> list[Series]:
        return list(self._by_signal.get(signal, ()))

    def grouped(self, signals: Iterable[str]) -> dict[str, list[Series]]:
        """The series of ``signals`` by signal, for the signals that have any, in the order of
        their first series in the frame (a list each, the frame's order; the caller's to keep).
        Read off the grouping made once a frame: each detector asks for its signals every cycle,
        and a pass over all the frame's series each time was a few thousand steps."""
        wanted = set(signals)
        return {signal: list(group) for signal, group in self._by_signal.items() if signal in wanted}

    @functools.cached_property
    def _by_signal(self) -> dict[str, list[Series]]:
        # Detectors and policy ask for a signal's series a dozen times a cycle: group them once.
        out: dict[str, list[Series]] = {}
        for s in self.series:
            out.setdefault(s.signal, []).append(s)
        return out

    @functools.cached_property
    def start(self) -> float:
        """Where the frame's window begins: its earliest point (epoch seconds; 0 when empty)."""
        return min((float(s.timestamps[0]) for s in self.series if len(s)), default=0.0)

    def began_inside(self, t: float) -> bool:
        """Whether something first seen at ``t`` began inside the window: well after its start (two
        steps of slack for series whose first point is a scrape late). A sparse signal's series
        exists only while its condition holds, so one that begins inside began with it; a sticky
        gauge already at its value at the start is a level seen before, not an event."""
        return t > self.start + 2 * self.step_seconds

    def by_entity(self) -> dict[Entity, list[Series]]:
        out: dict[Entity, list[Series]] = {}
        for s in self.series:
            out.setdefault(s.entity, []).append(s)
        return out

    def __iter__(self) -> Iterator[Series]:
        return iter(self.series)

    def __len__(self) -> int:
        return len(self.series)

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series)


@dataclass(frozen=True)
class Evidence:
    """Why a finding was raised, in words and numbers an on-call engineer can check."""

    summary: str
    # Recent values of the series, oldest first, for compact rendering (sparkline, table).
    recent: tuple[float, ...] = ()
    # Named numbers: the baseline, the slope, feature contributions, the threshold crossed.
    facts: Mapping[str, Any] = field(default_factory=dict)
    # Related series/entities (cross-signal correlation).
    related: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A scored observation about one entity. Higher score = more anomalous, in [0, 1]."""

    detector: str
    signal: str
    entity: Entity
    score: float
    observed_at: datetime
    evidence: Evidence
    predicted_failure_at: datetime | None = None
    # (earliest, latest) of the prediction interval of the failure time.
    failure_interval: tuple[datetime, datetime] | None = None
    # True when the failure is already observed (OOMKilled, NotReady, XID 79), not predicted.
    confirmed: bool = False
    # Set by policy (decide); detectors leave it None.
    severity: Severity | None = None
    # Set by root-cause correlation when another entity explains this finding (a model's accuracy
    # drop caused by its node's failing GPU): people are told, the action goes to the cause.
    cause: Entity | None = None
    id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0 or self.score != self.score:
            raise ValueError(f"finding score must be within [0, 1], got {self.score!r} from {self.detector}")

    @property
    def lead_time(self) -> timedelta | None:
        if self.predicted_failure_at is None:
            return None
        return self.predicted_failure_at - self.observed_at

    @property
    def key(self) -> str:
        """Stable identity across cycles, for de-duplication and resolution."""
        return f"{self.detector}:{self.signal}:{self.entity.key}"


# The remediation every decision can fall back to: tell a human, change nothing.
ADVISE = "advise"


class Basis(enum.StrEnum):
    """What a decision rests on. Actions on predictions and on inbound alerts draw from their own,
    smaller budgets besides the global one."""

    CONFIRMED = "confirmed"  # the failure is observed (OOMKilled, NotReady, XID 79)
    PREDICTED = "predicted"  # a forecast or a warning sign
    INBOUND = "inbound"  # an Alertmanager alert received on the webhook


class Rung(enum.IntEnum):
    """The ladder a prediction climbs, one rung per cycle: notify -> prepare -> act."""

    NOTIFY = 1
    PREPARE = 2
    ACT = 3


class Resolve(enum.StrEnum):
    """A target that the act stage finds in the cluster state (the finding names a pod or a model)."""

    NODE = "node"  # the node the entity runs on
    OWNER = "owner"  # the Deployment/StatefulSet that owns it


def most_cautious(*modes: Mode) -> Mode:
    """observe < suggest < auto: the lowest wins."""
    return min(modes, key=lambda m: m.rank)


@dataclass(frozen=True)
class Decision:
    """What policy wants done about a finding, and how far the daemon may go with it.

    ``params`` holds the remediation's own parameters only (what its ``Params`` model declares);
    what the engine needs to know travels in typed fields.
    """

    action: str  # a remediation plugin name ("restart_pod", "evacuate_node", "advise", ...)
    target: Entity
    mode: Mode
    reason: str
    finding: Finding
    rule: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    basis: Basis = Basis.CONFIRMED
    # The ladder rung this decision is on, and how people see it ("step 2 of 3: preparing; ...");
    # None and "" for rules without a ladder.
    rung: Rung | None = None
    step: str = ""
    # Undo what this action did earlier (uncordon, restore replicas); paid for by the action itself.
    restore: bool = False
    # The target is to be found in the cluster state first (None: ``target`` is the real object).
    resolve: Resolve | None = None
    id: str = field(default_factory=new_id)

    @property
    def severity(self) -> Severity:
        return self.finding.severity or Severity.INFO


class Verb(enum.StrEnum):
    """How a mutation writes."""

    CREATE = "create"
    DELETE = "delete"
    EVICT = "evict"  # the Eviction API: PodDisruptionBudgets are enforced by the server
    PATCH = "patch"


class Resource(enum.StrEnum):
    """What a mutation writes (the API's plural resource name)."""

    PODS = "pods"
    NODES = "nodes"
    DEPLOYMENTS = "deployments"
    STATEFULSETS = "statefulsets"
    HORIZONTALPODAUTOSCALERS = "horizontalpodautoscalers"
    EVENTS = "events"
    APPLICATIONS = "applications"  # Argo CD

    @property
    def entity_kind(self) -> EntityKind | None:
        """The kind of the object written (None for an Event, which is about another object)."""
        return _RESOURCE_KIND.get(self)


_RESOURCE_KIND = {
    Resource.PODS: EntityKind.POD,
    Resource.NODES: EntityKind.NODE,
    Resource.DEPLOYMENTS: EntityKind.DEPLOYMENT,
    Resource.STATEFULSETS: EntityKind.STATEFULSET,
    Resource.HORIZONTALPODAUTOSCALERS: EntityKind.HPA,
    Resource.APPLICATIONS: EntityKind.APPLICATION,
}


@dataclass(frozen=True)
class Mutation:
    """One intended write to the cluster, as planned by a remediation. Printable and pure.

    ``verb`` and ``resource`` may be given as their string values; an unknown one is a
    ValueError when the plan is made, not when the writer meets it.
    """

    verb: Verb
    resource: Resource
    name: str
    namespace: str = ""
    body: Mapping[str, Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        for attr, kind in (("verb", Verb), ("resource", Resource)):
            value = getattr(self, attr)
            try:
                object.__setattr__(self, attr, kind(value))
            except ValueError:
                known = ", ".join(k.value for k in kind)
                raise ValueError(f"mutation {attr} {value!r} is not one of: {known}") from None

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return self.description or f"{self.verb} {self.resource} {where}"

    @property
    def cordons(self) -> bool:
        """Whether this write cordons a node (the cluster-wide cordon cap counts it)."""
        return self.resource is Resource.NODES and (self.body or {}).get("spec", {}).get("unschedulable") is True


@dataclass(frozen=True)
class Plan:
    """The output of ``Remediation.plan``: the mutations, and the command a human would run."""

    action: str
    target: Entity
    mutations: tuple[Mutation, ...]
    summary: str
    command: str = ""  # kubectl equivalent, shown in suggest mode and in advice
    feasible: bool = True
    reason_if_not: str = ""
    # It undoes what this action did earlier (uncordon, restore replicas), as a restore decision
    # asks: paid for by that action, so the rails do not charge it again. A remediation without
    # an undo plans its action for a restore decision too, and the writer then refuses it.
    undo: bool = False


class ActionStatus(enum.StrEnum):
    OBSERVED = "observed"  # mode observe: nothing proposed
    SUGGESTED = "suggested"  # mode suggest: proposed to a human
    DRY_RUN = "dry_run"  # would have applied; the writer did not write
    APPLIED = "applied"
    BLOCKED = "blocked"  # a safety rail refused (see ``rail``)
    DEFERRED = "deferred"  # temporary refusal (PDB 429, in progress): try again later
    FAILED = "failed"
    SKIPPED = "skipped"  # the cycle was degraded: no action on a partial picture


@dataclass(frozen=True)
class ActionResult:
    decision_id: str
    action: str
    target: Entity
    status: ActionStatus
    detail: str
    plan: Plan | None = None
    rail: str = ""  # which safety rail blocked it, when status is BLOCKED
    at: datetime = field(default_factory=utcnow)


class NotificationKind(enum.StrEnum):
    """What a message is about. Only a finding is a *condition* that later resolves; the others
    are events told once."""

    FINDING = "finding"
    ACTION = "action"  # an action's outcome with no finding told beside it
    STORM = "storm"  # many findings at once, one message per channel
    DIGEST = "digest"  # the advisor's weekly digest
    TEST = "test"  # `aiops notify --test`

    @property
    def resolvable(self) -> bool:
        return self is NotificationKind.FINDING


@dataclass(frozen=True)
class Notification:
    """One message for people, routed by severity/labels to channels by the notify stage."""

    key: str  # de-duplication key (stable across cycles)
    severity: Severity
    title: str
    summary: str
    entity: Entity | None = None
    findings: tuple[Finding, ...] = ()
    results: tuple[ActionResult, ...] = ()
    resolved: bool = False
    cycle_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    test: bool = False
    kind: NotificationKind = NotificationKind.FINDING
    id: str = field(default_factory=new_id)

    @property
    def condition_keys(self) -> frozenset[str]:
        """The conditions it speaks for (de-dup ledger keys): its own key, or for a storm summary
        those of the findings it grouped."""
        if self.kind is NotificationKind.STORM and self.findings:
            return frozenset(f.key for f in self.findings)
        return frozenset((self.key,))


@dataclass(frozen=True)
class StageError:
    stage: str
    message: str
    temporary: bool = True


@dataclass
class CycleReport:
    """What one cycle saw and did. Built up stage by stage by the pipeline, then recorded."""

    cycle_id: str
    started_at: datetime
    finished_at: datetime | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    series_count: int = 0
    points: int = 0
    findings: list[Finding] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    errors: list[StageError] = field(default_factory=list)
    # Entities a detector skipped this cycle (one series raised), by key, with which detector.
    unjudged: dict[str, str] = field(default_factory=dict)
    mode: Mode = Mode.OBSERVE
    dry_run: bool = True

    @property
    def degraded(self) -> bool:
        return bool(self.errors)

    @property
    def duration_seconds(self) -> float:
        if self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()
