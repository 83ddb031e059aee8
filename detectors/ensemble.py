"""The detector the daemon runs out of the box: each signal family goes to the detector built for it.

* resources with a hard limit (``SignalInfo.capacity``) → :class:`~detectors.exhaustion.ExhaustionForecast`;
* model quality gauges → :class:`~detectors.quality_drift.QualityDrift`;
* GPU health counters → ``gpu_health`` (entity feature vectors → ``multivariate``, opt-in);
* every other univariate signal (latency, traffic, queues, KPIs, restarts) →
  :class:`~detectors.seasonal.SeasonalBaseline`;
* request rates of the serving runtimes, besides → :class:`~detectors.headroom.ServingHeadroom`
  (demand heading past the load the servers have proven: the precursor of a traffic surge).

Members are ordinary plugins, loaded through the entry-point registry with their own parameters,
and their findings keep their own detector name, so policy rules written for ``exhaustion`` or
``gpu_health`` match whether or not the ensemble runs them. When two members score the same
signal of the same entity, the higher score wins and the other's summary is kept as related
evidence: one finding per (signal, entity), not two notifications. A forecast (a predicted failure
time) leads over findings without one, whatever their scores: it says when, which is what policy
acts on (the seasonal baseline rates a surge's request rate as unusual; the headroom forecast says
when it leaves the proven range).

Members load only through the entry-point registry, the built-ins too (one way to load a plugin).
An install made before a built-in member existed lacks its entry point: the ensemble then refuses
to start with a hint to reinstall (``pip install -e .``), rather than run without the member.

In a backtest (``score_series``) a series has no signal family, so the ensemble scores it with its
general-purpose member, the seasonal baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from aiops import plugins
from aiops.model import Evidence, Finding, Frame
from aiops.plugins import Detection, Detector, DetectorParams, PluginError

log = logging.getLogger(__name__)

# Member plugin -> parameters, in routing order. Built-ins by other teams are optional members:
# the ensemble runs without them (and says so in the log) if their module is not installed.
# ``multivariate`` is opt-in (add it to ``members`` or run it as its own detector): in the
# end-to-end test cluster it rated a steady pod critical, and a default must not page for that.
DEFAULT_MEMBERS: dict[str, dict[str, Any]] = {
    "exhaustion": {},
    "quality_drift": {},
    "seasonal": {},
    "gpu_health": {},
    "headroom": {},
}
OPTIONAL_MEMBERS = frozenset({"gpu_health", "multivariate"})
# Catch-alls for signals no member names: by capacity, else the general-purpose baseline.
CAPACITY_MEMBER = "exhaustion"
GENERAL_MEMBER = "seasonal"


class EnsembleParams(DetectorParams):
    """The parameters of :class:`DefaultEnsemble`, documented there."""

    members: dict[str, dict[str, Any]] | None = None


class DefaultEnsemble(Detector):
    """Routes each signal to the detector of its family and merges their findings.

    Parameters
    ----------
    members:
        Plugin name -> parameters of each member (default: :data:`DEFAULT_MEMBERS`). Naming a
        member here makes it required: if it cannot be loaded, construction fails and says why.
    signals:
        Restricts the ensemble to these signals (default: every member's own defaults). A signal
        no member knows goes to ``exhaustion`` when it has a capacity, else to ``seasonal``.
    """

    name: ClassVar[str] = "ensemble"
    Params = EnsembleParams
    params: EnsembleParams

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        super().__init__(signals, **params)
        members = self.params.members
        required = members is not None
        self.members: dict[str, Detector] = {}
        for plugin, member_params in (members if members is not None else DEFAULT_MEMBERS).items():
            if plugin == self.name:
                raise ValueError("the ensemble cannot contain itself; remove 'ensemble' from members")
            kwargs = {"report_floor": self.report_floor, **member_params}
            try:
                self.members[plugin] = _instantiate(plugin, kwargs)
            except PluginError:
                if required or plugin not in OPTIONAL_MEMBERS:
                    raise
                log.warning("ensemble runs without detector %r: it is not installed", plugin)
        self._own_signals = {name: tuple(m.signals) for name, m in self.members.items()}

    @classmethod
    def params_problems(cls, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The ensemble's own parameters, and each member's against that member's ``Params``."""
        problems = super().params_problems(params)
        members = params.get("members")
        if problems or not isinstance(members, Mapping):
            return problems
        for plugin, member_params in members.items():
            try:
                member = plugins.load(plugins.DETECTORS, plugin)
            except PluginError as exc:
                problems.append((f"members.{plugin}", str(exc)))
                continue
            if isinstance(member, type) and issubclass(member, Detector):
                problems += [(".".join(("members", plugin, *filter(None, [key]))), msg)
                             for key, msg in member.params_problems(member_params)]
        return problems

    # ------------------------------------------------------------------ backtest contract
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        general = self.members.get(GENERAL_MEMBER)
        scorer = getattr(general, "score_series", None)
        if scorer is None:
            raise PluginError(
                f"the ensemble has no {GENERAL_MEMBER!r} member to score a single series; add it to members"
            )
        return np.asarray(scorer(timestamps, values), dtype=np.float64)

    # ------------------------------------------------------------------ daemon contract
    def route(self, frame: Frame) -> dict[str, tuple[str, ...]]:
        """Which signals of the frame each member scores this cycle."""
        present = {s.signal for s in frame.series}
        wanted = set(self.signals) if self.signals else None
        routed: dict[str, list[str]] = {name: [] for name in self.members}
        claimed: set[str] = set()
        for name, own in self._own_signals.items():
            for sig in own:
                if wanted is None or sig in wanted:
                    routed[name].append(sig)
                    claimed.add(sig)
        # Signals nobody claims: from the explicit list, or any present signal with a capacity.
        leftovers = (wanted if wanted is not None else present) - claimed
        for sig in sorted(leftovers):
            info = frame.signals.get(sig)
            walled = info is not None and (info.capacity is not None or bool(info.failure_points))
            target = CAPACITY_MEMBER if walled else GENERAL_MEMBER
            if target in routed and (wanted is not None or target == CAPACITY_MEMBER):
                routed[target].append(sig)
        return {name: tuple(sigs) for name, sigs in routed.items() if sigs}

    def detect(self, frame: Frame) -> list[Finding]:
        """Every healthy member's findings, merged (:meth:`run` also says which members failed)."""
        return self.run(frame).findings

    def run(self, frame: Frame) -> Detection:
        """Every member's findings, merged; a member that fails does not stop the others.

        A member that raises is named in ``failures`` with its error, beside the healthy members'
        findings: the pipeline marks the cycle degraded (so nothing acts on a partial picture) and
        still tells people what the healthy members found.
        """
        findings: list[Finding] = []
        failures: list[str] = []
        for name, sigs in self.route(frame).items():
            member = self.members[name]
            # Members are constructed by the ensemble and used only here: routing sets their
            # signals per cycle (a user's signal override can add a capacity signal at any time).
            member.signals = sigs
            try:
                detection = plugins.run_detector(member, frame)
            except Exception as exc:  # contained: one member's bug must not blind the others
                log.exception("ensemble member %r failed; the other members still run", name)
                failures.append(f"member {name!r}: {type(exc).__name__}: {exc}")
                continue
            findings.extend(detection.findings)
            failures.extend(f"member {name!r}: {failure}" for failure in detection.failures)
        return Detection(merge(findings), tuple(failures))


def _instantiate(plugin: str, kwargs: dict[str, Any]) -> Detector:
    """A member from the registry; a built-in member the install does not register says to reinstall."""
    if plugin in DEFAULT_MEMBERS and plugin not in plugins.available(plugins.DETECTORS):
        raise PluginError(
            f"ensemble member {plugin!r} has no entry point in {plugins.DETECTORS!r}: "
            "the installed aiops predates it",
            hint="reinstall aiops so its entry points are registered: `pip install -e .` in the checkout "
            "(or rebuild the image)",
        )
    built: Detector = plugins.instantiate(plugins.DETECTORS, plugin, kwargs)
    return built


def merge(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per (signal, entity): a forecast first, then the highest score; the others as
    related evidence."""
    best: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        best.setdefault((f.signal, f.entity.key), []).append(f)
    out = []
    for group in best.values():
        group.sort(key=lambda f: (f.predicted_failure_at is not None, f.score), reverse=True)
        top = group[0]
        if len(group) > 1:
            others = tuple(f"{f.detector} ({f.score:.2f}): {f.evidence.summary}" for f in group[1:])
            top = replace(
                top,
                evidence=Evidence(
                    top.evidence.summary, top.evidence.recent, top.evidence.facts, top.evidence.related + others
                ),
            )
        out.append(top)
    return out
