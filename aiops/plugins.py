"""Plugin contracts and the entry-point registry.

Built-in detectors, remediations and notifiers register through the same entry point groups as a
user's own (``aiops.detectors``, ``aiops.remediations``, ``aiops.notifiers``), so nothing built in
is privileged. A plugin class is constructed with the ``params`` mapping from the config.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cache
from importlib.metadata import entry_points
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiops.errors import PermanentError
from aiops.model import Decision, Finding, Frame, Notification, Plan, Series, SignalInfo

if TYPE_CHECKING:
    from aiops.kube.view import ClusterView

DETECTORS = "aiops.detectors"
REMEDIATIONS = "aiops.remediations"
NOTIFIERS = "aiops.notifiers"


class PluginError(PermanentError):
    """A plugin could not be found or loaded; the message says which and how to fix it."""


class PluginParams(BaseModel):
    """Base of the parameters a plugin declares: unknown keys are errors, values are validated.

    ``aiops check-config`` validates every policy rule's ``params`` and ``ladder.prepare_params``
    against the remediation's model, so a misspelled key is an error naming it rather than a
    silent fall-back to the default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorParams(PluginParams):
    """The parameters every detector takes; a detector's ``Params`` extends it with its own."""

    # Entities scored below this are not reported (policy grades what is).
    report_floor: float = Field(default=0.5, ge=0.0, le=1.0)


def params_problems(model: type[BaseModel], exc: ValidationError, plugin: str = "") -> list[tuple[str, str]]:
    """(parameter, reason) pairs from a failed validation of ``model``, without the input values
    (a parameter may be a secret)."""
    known = ", ".join(sorted(f.alias or n for n, f in model.model_fields.items())) or "none"
    of = f" of {plugin}" if plugin else ""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown parameter{of}; known: {known}"
        out.append((key, msg))
    return out


def check_params(model: type[BaseModel], params: Mapping[str, Any], plugin: str = "") -> list[tuple[str, str]]:
    """(parameter, problem) pairs for ``params`` validated against ``model``; empty when valid."""
    try:
        model.model_validate(dict(params))
    except ValidationError as exc:
        return params_problems(model, exc, plugin)
    return []


@dataclass(frozen=True)
class Detection:
    """What one run of a detector produced: its findings, and the parts of it that failed.

    A composite detector (the ensemble) whose member raised still returns what the others found;
    ``failures`` names each failed part and why. The pipeline tells people the findings and marks
    the cycle degraded for the failures, so nothing acts on the partial picture.
    """

    findings: list[Finding]
    failures: tuple[str, ...] = ()
    # Entity keys the run skipped (one of their series raised, contained by the detector): they
    # have no finding for want of a score, which the act stage must not take for health.
    skipped: tuple[str, ...] = ()


# The entities skipped during the detector run under way (run_detector), for skipped_entity.
_SKIPPED: ContextVar[list[str] | None] = ContextVar("aiops_skipped_entities", default=None)


def skipped_entity(key: str) -> None:
    """Say that the detector running now skipped this entity this cycle (detectors._isolation).
    Outside :func:`run_detector` (a backtest, a test calling ``detect``) nothing listens."""
    held = _SKIPPED.get()
    if held is not None and key not in held:
        held.append(key)


class Detector(ABC):
    """Fitted on history, then scores new points online without looking ahead.

    ``detect`` receives the cycle's frame (a rolling window per series) and returns findings with
    scores in [0, 1] and, for forecasters, a predicted failure time. A detector is pure: no I/O,
    no clock (use ``frame.now``), no Kubernetes, no notifiers. Thresholds and severities belong to
    policy; a detector reports every entity it scored above ``report_floor`` so that policy sees
    the full picture.
    """

    name: ClassVar[str] = ""
    # Signals consumed when the config names none.
    default_signals: ClassVar[tuple[str, ...]] = ()
    # Signals this detector's findings carry that are not collected (a per-entity feature vector):
    # policy rules may name them.
    derived_signals: ClassVar[tuple[str, ...]] = ()
    # Every parameter the config's ``detectors[].params`` may give; the constructor validates
    # through it, and ``check-config`` names a bad key (see ``params_problems``).
    Params: ClassVar[type[DetectorParams]] = DetectorParams

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        self.params = type(self).Params(**params)  # raises ValidationError naming a bad key
        self.signals = tuple(signals) if signals else self.default_signals
        self.report_floor = self.params.report_floor

    @classmethod
    def params_problems(cls, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(parameter, problem) pairs for a config's ``params``, as ``check-config`` reports them;
        a composite detector adds its parts' (the ensemble's members)."""
        return check_params(cls.Params, params, cls.name)

    def fit(self, frame: Frame) -> Detector:
        """Learn from history. The default learns nothing; stateful detectors override it."""
        return self

    @abstractmethod
    def detect(self, frame: Frame) -> list[Finding]:
        """Score the newest points of each relevant series in ``frame``."""

    def run(self, frame: Frame) -> Detection:
        """:meth:`detect`, with the failures of its parts; composite detectors override it."""
        return Detection(self.detect(frame))


@runtime_checkable
class KeepsState(Protocol):
    """A detector whose state must survive a restart. It stays pure: after each cycle the
    pipeline stores the bodies ``saved_state`` hands over (those changed and not yet stored) and
    acknowledges them with ``state_saved`` (a failed write leaves them for the next cycle); at
    start it gives them back to ``restore_state``, which returns a problem per body it could not
    use (that part starts over)."""

    def saved_state(self) -> dict[str, bytes]: ...

    def state_saved(self, keys: Iterable[str]) -> None: ...

    def restore_state(self, saved: Mapping[str, bytes]) -> list[str]: ...


@dataclass(frozen=True)
class HistoryWanted:
    """What a detector asks of the history Prometheus already holds: ``signals``, over the
    ``seconds`` before the daemon's first frame, at ``step_seconds`` (None: the daemon's own step,
    so that what it learns is what its cycles would have seen)."""

    signals: frozenset[str]
    seconds: float
    step_seconds: float | None


@runtime_checkable
class LearnsFromHistory(Protocol):
    """A detector whose state reaches back further than a frame (days of daily peaks), and which
    can learn it from the history Prometheus holds rather than only from the cycles it runs: a new
    installation, or a new pod (the state file is on an emptyDir), otherwise knows nothing of the
    days before it started. At its first cycle the pipeline fetches what ``history_wanted`` names
    (given the signals the daemon reads) and hands it over, a signal's chunk at a time, to
    ``learn_history``, before the first frame. It stays pure: it fetches nothing itself. Learning
    must be safe on top of state restored from the state file (the same days again change nothing)."""

    def history_wanted(self, signals: Mapping[str, SignalInfo]) -> HistoryWanted | None: ...

    def learn_history(self, series: Sequence[Series]) -> None: ...


@runtime_checkable
class SeriesScorer(Protocol):
    """A detector that also scores one whole series point by point (``aiops backtest``).

    One score in [0, 1] per point; the score at t never depends on points after t, so the backtest
    and the daemon give the same score for the same data.
    """

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray: ...


class Remediation(ABC):
    """Plans a fix for a decision. ``plan`` is pure; the guarded writer applies the mutations."""

    name: ClassVar[str] = ""
    # Every parameter a policy rule may give (``params``, ``ladder.prepare_params``; the constructor
    # takes the same ones as defaults). The default declares none.
    Params: ClassVar[type[PluginParams]] = PluginParams
    # On a prediction its plan holds back part of what a confirmed failure calls for (an evacuation
    # only cordons on the prepare rung, and leaves pods no controller would replace): a confirmed
    # decision then continues the predicted action on the same target instead of waiting out the
    # cooldown that action began. Off for actions that would only be repeated (a restart).
    continued_on_confirmation: ClassVar[bool] = False
    # Whether its undo is safe after the action whose verdict no replica here knows (the one that
    # judged it was replaced, its state file with it): scaling back a workload scaled ahead is (it
    # is scaled again if needed); uncordoning a node that may not have healed is not.
    undo_without_verdict: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = type(self).Params(**params)  # raises ValidationError naming a bad key

    def prepared(self, decision: Decision, view: ClusterView | None) -> bool:
        """Whether what the ladder's prepare rung did on ``decision``'s target still stands (an
        evacuation's cordon): the act rung then continues that action within its cooldown. One
        undone since (a false prediction rolled back) is not continued: the cooldown holds."""
        return False

    @abstractmethod
    def plan(self, decision: Decision, view: ClusterView | None) -> Plan:
        """What would be done, given the cluster state (``None`` when no cluster is reachable)."""


class DeliveryStatus(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # temporary: network, 5xx, throttling; the outbox tries again later
    GIVE_UP = "give_up"  # permanent: bad credentials, invalid recipient; recorded as failed


@dataclass(frozen=True)
class Delivery:
    status: DeliveryStatus
    detail: str = ""
    retry_after_seconds: float | None = None


class Notifier(ABC):
    """Formats and delivers a batch of notifications to one channel.

    ``send`` never raises for a delivery problem: it returns RETRY or GIVE_UP with the reason.
    The outbox owns retries; a notifier owns only formatting and transport. The optional hooks
    below have defaults that suit a plain channel; a notifier overrides the ones it needs.
    """

    name: ClassVar[str] = ""
    # The receiver groups, de-duplicates and silences per alert itself (Alertmanager): the notify
    # stage sends it every alert as it is, and never folds a storm into one message for it.
    groups_itself: ClassVar[bool] = False
    # A batch a crash interrupted between send and mark is sent again on restart. False where a
    # repeat would reach people twice with no way for the receiver to tell (DingTalk's robot).
    redeliver_after_crash: ClassVar[bool] = True
    # The channel's own repeat interval when shorter than the route's (Alertmanager's refresh, so
    # its alerts do not expire); None: the route's.
    repeat_interval: timedelta | None = None
    # Notifications one send may carry when the receiver takes many per request; None: the
    # outbox's ``max_batch`` (a digest people read).
    max_batch: ClassVar[int | None] = None

    @abstractmethod
    def send(self, batch: Sequence[Notification]) -> Delivery: ...

    def send_batch(self, batch: Sequence[Notification], *, batch_id: str | None) -> Delivery:
        """What the outbox calls: ``batch_id`` stays the same on every retry of one batch, for a
        channel that lets the receiver drop a repeat (a mail's Message-ID). The default sends."""
        return self.send(batch)

    def wait_seconds(self) -> float:
        """Seconds until the channel takes another message (its rate limit); the outbox waits
        without spending an attempt. The default: no limit."""
        return 0.0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""


@cache
def available(group: str) -> dict[str, Any]:
    """Name -> entry point of every installed plugin in ``group``."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str) -> type:
    eps = available(group)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise PluginError(
            f"no plugin named {name!r} in entry point group {group!r} (installed: {known}). "
            "Check the spelling in the config, or install the package that provides it "
            "(`pip install -e .` registers the built-ins)."
        )
    try:
        cls: type = eps[name].load()
    except Exception as exc:  # an import error inside a user's plugin must name the plugin
        raise PluginError(f"plugin {name!r} ({eps[name].value}) failed to load: {exc}") from exc
    return cls


def instantiate(group: str, name: str, params: dict[str, Any] | None = None) -> Any:
    cls = load(group, name)
    try:
        return cls(**(params or {}))
    except ValidationError as exc:
        model = getattr(cls, "Params", PluginParams)  # the plugin's declared parameters
        problems = "; ".join(f"{k or '(params)'}: {m}" for k, m in params_problems(model, exc, name))
        raise PluginError(f"plugin {name!r} rejected its parameters: {problems}") from None
    except (TypeError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} rejected its parameters: {exc}") from exc


def detect_findings(detector: Detector, frame: Frame) -> list[Finding]:
    """Run a detector and enforce the contract on what it returns."""
    return run_detector(detector, frame).findings


def run_detector(detector: Detector, frame: Frame) -> Detection:
    """Run a detector, its parts' failures included, and enforce the contract on its findings."""
    token = _SKIPPED.set([])
    try:
        detection = detector.run(frame)
        skipped = _SKIPPED.get() or []
    finally:
        _SKIPPED.reset(token)
    for f in detection.findings:
        if not isinstance(f, Finding):
            raise TypeError(f"detector {detector.name!r} returned {type(f).__name__}, expected Finding")
    if skipped:
        detection = replace(detection, skipped=(*detection.skipped, *skipped))
    return detection
