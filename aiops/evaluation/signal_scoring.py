"""Score a recorded series the way the daemon scores a series of a catalog signal.

A file or an ad-hoc query carries no signal family, so on its own a backtest cannot know that a
ratio climbing to 0.99 is memory against an OOMKill (the forecaster's job) rather than a KPI (the
seasonal baseline's). Given the signal (``--signal``) or a hard limit (``--capacity``), this module
applies what the daemon applies: the ensemble's routing, the signal's capacity, bad direction and
failure point, and the series' labels (which pick a failure point, e.g. the image filesystem's).
The member then scores the series with ``score_signal``, the same code its ``detect`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from aiops import plugins
from aiops.evaluation.errors import ReplayError
from aiops.model import Entity, EntityKind, Frame, Series, SignalInfo

ADHOC_SIGNAL = "adhoc"


@runtime_checkable
class Routing(Protocol):
    """A detector that hands each signal to one of its ``members`` (the ensemble)."""

    @property
    def members(self) -> Mapping[str, plugins.Detector]: ...

    def route(self, frame: Frame) -> Mapping[str, Sequence[str]]: ...


@runtime_checkable
class SignalScoring(Protocol):
    """A detector that scores one series as its ``detect`` scores series of a catalog signal."""

    name: str

    def score_signal(
        self, timestamps: np.ndarray, values: np.ndarray, info: SignalInfo, labels: Mapping[str, str]
    ) -> np.ndarray: ...


def adhoc_signal(capacity: float, base: SignalInfo | None = None) -> SignalInfo:
    """A signal with a hard limit: the catalog signal ``base`` with its capacity replaced, or an ad-hoc one."""
    if not capacity > 0:
        raise ReplayError(f"--capacity must be positive, got {capacity!r}", hint="give the series' hard limit in its own unit (1 for a ratio)")
    if base is not None:
        # The capacity replaces the wall: without --signal's own failure points it is where the series fails.
        return replace(base, capacity=capacity)
    return SignalInfo(ADHOC_SIGNAL, EntityKind.CLUSTER, capacity=capacity, bad_direction="up", description="an ad-hoc series with a hard limit")


def member_for(detector: plugins.Detector, info: SignalInfo) -> plugins.Detector:
    """The detector that scores ``info`` in the daemon: the ensemble's routed member, else ``detector`` itself."""
    if not isinstance(detector, Routing):
        return detector
    probe = Series(info.name, {}, np.zeros(1), np.zeros(1), Entity(info.entity_kind, "probe"))
    frame = Frame(datetime.now(UTC), (probe,), {info.name: info}, 60.0)
    routed = [name for name, signals in detector.route(frame).items() if info.name in signals]
    if not routed:
        raise plugins.PluginError(
            f"the {detector.name!r} detector does not score signal {info.name!r}; "
            "give it a capacity (--capacity) or pick a detector that scores it (--detector)"
        )
    return detector.members[routed[0]]


class SignalScorer:
    """Scores single series as the daemon's ``detector`` scores series of signal ``info``."""

    def __init__(self, detector: plugins.Detector, info: SignalInfo, labels: Mapping[str, str] | None = None) -> None:
        member = member_for(detector, info)
        if not isinstance(member, SignalScoring):
            raise plugins.PluginError(
                f"detector {member.name!r} cannot replay a single series of a signal (it has no score_signal)"
            )
        self.member: SignalScoring = member
        self.info = info
        self.labels = dict(labels or {})

    @property
    def name(self) -> str:
        return self.member.name

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.asarray(self.member.score_signal(timestamps, values, self.info, self.labels), dtype=np.float64)


def signal_scorer_factory(
    name: str, params: Mapping[str, Any], info: SignalInfo
) -> Callable[..., SignalScorer]:
    """``make(labels)``: a fresh detector ``name`` scoring series of ``info`` with those labels."""

    def make(labels: Mapping[str, str] | None = None) -> SignalScorer:
        detector = plugins.instantiate(plugins.DETECTORS, name, dict(params))
        return SignalScorer(detector, info, labels)

    return make
