"""The plugin contracts as checks a third-party plugin can run, as scikit-learn's ``check_estimator``.

::

    from aiops.testing import check_detector, check_remediation

    def test_my_detector_keeps_the_contract():
        check_detector(QueueStall())

Each check raises :class:`ContractError` (an ``AssertionError``) naming the rule that was broken
and how; it returns nothing when the plugin keeps every rule. The built-in plugins are held to the
same checks by aiops's own tests. What is checked:

Detector
    ``detect`` returns a list of :class:`~aiops.model.Finding` with scores in [0, 1], observed no
    later than ``frame.now``, predicted failures after the observation, about entities of the
    frame; it is deterministic and leaves the frame's arrays as they were; it survives an empty
    frame and series that are flat, NaN, infinite, huge or one point long. It declares its
    parameters (``Params``, every keyword its constructor takes), its constructor accepts their
    defaults and refuses unknown ones. A detector that also scores whole series (:class:`SeriesScorer`) gives
    one score in [0, 1] per point, and a score never changes when later points change.
Remediation
    It declares its parameters (``Params``) and its constructor accepts their defaults and refuses
    unknown ones; ``plan`` returns a :class:`~aiops.model.Plan` for its own action, pure (the same
    plan twice), without raising, with or without a cluster view, for a restore too; an infeasible
    plan says why and plans no write.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from aiops.kube.view import ClusterView
from aiops.model import Decision, Entity, EntityKind, Evidence, Finding, Frame, Mode, Plan, Series, SignalInfo
from aiops.plugins import Detector, DetectorParams, PluginParams, Remediation, SeriesScorer, detect_findings

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STEP = 60.0


class ContractError(AssertionError):
    """A plugin broke its contract; the message names the rule."""


def _require(ok: bool, plugin: object, rule: str) -> None:
    if not ok:
        raise ContractError(f"{type(plugin).__name__}: {rule}")


# -- detectors ---------------------------------------------------------------------------------
def sample_frame(
    signals: Sequence[str], values: Callable[[int, int], np.ndarray] | None = None, *, points: int = 240
) -> Frame:
    """A frame with two series per signal (two pods), ``points`` one-minute points up to ``NOW``.

    ``values(series_index, n)`` gives each series' values; the default is a noisy, accelerating
    rise towards the capacity (1.0), which wakes forecasters and baselines alike.
    """
    rng = np.random.default_rng(0)

    def default(i: int, n: int) -> np.ndarray:
        return 0.3 + 0.6 * np.linspace(0.0, 1.0, n) ** 2 + 0.01 * rng.standard_normal(n) + 0.05 * i

    make = values or default
    t = NOW.timestamp() - STEP * np.arange(points)[::-1]
    series, infos = [], {}
    for name in signals:
        infos[name] = SignalInfo(name, EntityKind.POD, capacity=1.0, bad_direction="up")
        for i in range(2):
            labels = {"namespace": "ml", "pod": f"web-{i}", "signal": name}
            entity = Entity(EntityKind.POD, f"web-{i}", "ml")
            series.append(Series(name, labels, t.copy(), np.asarray(make(i, points), dtype=np.float64), entity))
    return Frame(NOW, tuple(series), infos, STEP)


def _awkward_frames(signals: Sequence[str]) -> dict[str, Frame]:
    return {
        "an empty frame": Frame(NOW, (), {n: SignalInfo(n, EntityKind.POD) for n in signals}, STEP),
        "flat series": sample_frame(signals, lambda i, n: np.full(n, 0.5)),
        "all-NaN series": sample_frame(signals, lambda i, n: np.full(n, np.nan)),
        "series with inf": sample_frame(signals, lambda i, n: np.where(np.arange(n) % 7 == 0, np.inf, 0.5)),
        "huge values": sample_frame(signals, lambda i, n: np.full(n, 1e300) * (1 + 1e-16 * np.arange(n))),
        "one-point series": sample_frame(signals, points=1),
    }


def _check_findings(detector: Detector, frame: Frame, findings: Sequence[Finding], what: str) -> None:
    entities = {s.entity for s in frame.series} | {s.entity for s in frame.vanished}
    for f in findings:
        _require(0.0 <= f.score <= 1.0, detector, f"a score must be in [0, 1], got {f.score} on {what}")
        _require(f.observed_at <= frame.now, detector,
                 f"a finding must not be observed after frame.now ({f.observed_at} > {frame.now}) on {what}")
        if f.predicted_failure_at is not None:
            _require(f.predicted_failure_at >= f.observed_at, detector,
                     f"a predicted failure must come after its observation on {what}")
        _require(f.entity in entities or not entities, detector,
                 f"a finding must be about an entity of the frame, got {f.entity.key} on {what}")


def check_detector(detector: Detector, frame: Frame | None = None) -> None:
    """Check ``detector`` against the detector contract; ``frame`` overrides the sample frame."""
    _require(bool(detector.name), detector, "a detector needs a non-empty class attribute `name`")
    signals = tuple(detector.signals) or ("sample_signal",)
    frame = frame or sample_frame(signals)
    before = [(s.timestamps.copy(), s.values.copy()) for s in frame.series]
    try:
        first = detect_findings(detector, frame)
    except TypeError as exc:
        raise ContractError(f"{type(detector).__name__}: {exc}") from None
    _check_findings(detector, frame, first, "the sample frame")
    for s, (t, v) in zip(frame.series, before, strict=True):
        _require(np.array_equal(s.timestamps, t) and np.array_equal(s.values, v, equal_nan=True), detector,
                 "detect must not change the frame's arrays")
    again = detect_findings(copy.deepcopy(detector), frame)
    _require([(f.key, f.score) for f in again] == [(f.key, f.score) for f in first], detector,
             "detect must be deterministic: the same frame gave different findings")
    for what, awkward in _awkward_frames(signals).items():
        try:
            findings = detect_findings(copy.deepcopy(detector), awkward)
        except Exception as exc:  # the contract is exactly that nothing escapes
            raise ContractError(f"{type(detector).__name__}: detect raised on {what}: {exc!r}") from exc
        _check_findings(detector, awkward, findings, what)
    _check_declared_params(type(detector), detector)
    if isinstance(detector, SeriesScorer):
        check_series_scorer(detector)


def _check_declared_params(cls: type[Detector], detector: Detector) -> None:
    """``Params`` declares every parameter the config may give: what ``check-config`` validates
    is what the constructor takes."""
    _require(isinstance(cls.Params, type) and issubclass(cls.Params, DetectorParams), detector,
             "Params must be a DetectorParams model declaring every parameter the config may give")
    taken = {
        name for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "signals") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    undeclared = sorted(taken - set(cls.Params.model_fields))
    _require(not undeclared, detector,
             f"Params must declare every constructor parameter; not declared: {', '.join(undeclared)}")
    try:
        cls(**cls.Params().model_dump())
    except Exception as exc:
        raise ContractError(f"{cls.__name__}: the constructor must accept its declared defaults: {exc}") from exc
    _require(_refuses_unknown(cls), detector, "the constructor must refuse unknown parameters")


def check_series_scorer(scorer: SeriesScorer) -> None:
    """One score in [0, 1] per point, and no look-ahead: later points never change earlier scores."""
    t = NOW.timestamp() - STEP * np.arange(600)[::-1]
    y = 0.5 + 0.1 * np.sin(np.arange(600) / 30.0) + 0.01 * np.random.default_rng(1).standard_normal(600)
    y[300] += 0.5
    y[[50, 51]] = np.nan
    scores = np.asarray(scorer.score_series(t, y))
    _require(scores.shape == t.shape, scorer, f"score_series must give one score per point, got shape {scores.shape}")
    _require(bool(np.all(np.isfinite(scores)) and scores.min() >= 0.0 and scores.max() <= 1.0), scorer,
             "score_series scores must be finite and in [0, 1]")
    for cut in (100, 350, 599):
        future = y.copy()
        future[cut:] = 5.0
        _require(np.array_equal(np.asarray(scorer.score_series(t, future))[:cut], scores[:cut]), scorer,
                 f"score_series looks ahead: changing points from index {cut} changed earlier scores")
    _require(np.asarray(scorer.score_series(np.zeros(0), np.zeros(0))).shape == (0,), scorer,
             "score_series must accept an empty series")


# -- remediations ------------------------------------------------------------------------------
def sample_decision(action: str, target: Entity | None = None, **params: Any) -> Decision:
    target = target or Entity(EntityKind.POD, "web-1", "ml")
    finding = Finding("sample", "pod_memory_usage_ratio", target, 0.95, NOW, Evidence("sample finding"))
    return Decision(action, target, Mode.AUTO, "contract check", finding, rule="contract", params=params)


def check_remediation(
    remediation: Remediation, decision: Decision | None = None, view: ClusterView | None = None
) -> None:
    """Check ``remediation`` against the remediation contract, planning ``decision`` (a sample on
    a pod by default) with no cluster view and with ``view`` (an empty one by default)."""
    cls = type(remediation)
    _require(bool(remediation.name), remediation, "a remediation needs a non-empty class attribute `name`")
    _require(isinstance(cls.Params, type) and issubclass(cls.Params, PluginParams), remediation,
             "Params must be a PluginParams model declaring every parameter a rule may give")
    try:
        cls(**cls.Params().model_dump())
    except Exception as exc:
        raise ContractError(f"{cls.__name__}: the constructor must accept its declared defaults: {exc}") from exc
    _require(_refuses_unknown(cls), remediation, "the constructor must refuse unknown parameters")
    decision = decision or sample_decision(remediation.name)
    views: dict[str, ClusterView | None] = {"no cluster view": None, "the given view": view or ClusterView(NOW)}
    for what, v in views.items():
        for d in (decision, replace(decision, restore=True)):
            label = f"{what}{' (restore)' if d.restore else ''}"
            try:
                plan = remediation.plan(d, v)
                again = remediation.plan(d, v)
            except Exception as exc:  # planning must say "infeasible", never raise
                raise ContractError(f"{cls.__name__}: plan raised with {label}: {exc!r}") from exc
            _require(isinstance(plan, Plan), remediation, f"plan must return a Plan, got {type(plan).__name__}")
            _require(plan == again, remediation, f"plan must be pure: two calls gave different plans with {label}")
            _require(plan.action == remediation.name, remediation,
                     f"a plan's action must be the remediation's name, got {plan.action!r}")
            if not plan.feasible:
                _require(bool(plan.reason_if_not) and not plan.mutations, remediation,
                         f"an infeasible plan must say why and plan no write ({label})")


def _refuses_unknown(cls: type) -> bool:
    try:
        cls(no_such_parameter_xyz=1)
    except (TypeError, ValueError):
        return True
    return False


__all__ = [
    "ContractError",
    "check_detector",
    "check_remediation",
    "check_series_scorer",
    "sample_decision",
    "sample_frame",
]
