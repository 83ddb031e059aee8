"""Failures that are states, not forecasts: a crash loop, a node NotReady, an OOMKill, and a
service-level objective breached for a while (each signal's ``objective`` from the config: TTFT
and inter-token latency for an LLM, request latency for a classic model server).

These need no model: the state *is* the failure. They are reported as confirmed findings (the
ladder's top rung, the prediction ledger's confirmation) once the state has held for a minimum
time, so a single scrape glitch is not a failure. Scores and minimum durations are parameters;
which action follows is policy's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aiops.model import Evidence, Finding, Frame, Series, from_epoch
from aiops.plugins import Detector, DetectorParams
from detectors._isolation import isolated


@dataclass(frozen=True)
class Condition:
    bad_when: str  # "one": value >= 0.5 is the failure; "zero": value < 0.5 is
    min_seconds: float
    score: float
    what: str
    # A state that may be old news (the *last* termination was an OOMKill) is only a confirmed
    # failure when it began inside the window; if it held for the whole window it is reported low.
    must_start_in_window: bool = False
    # Such an event is news this long after it began; later it is reported low too (the pod has
    # run since: kube-state-metrics keeps the reason until the next termination, and a confirmed
    # finding for the whole lookback paged again at every repeat interval).
    new_for_seconds: float | None = None


CONDITIONS: dict[str, Condition] = {
    "pod_crashlooping": Condition("one", 300, 0.95, "in CrashLoopBackOff"),
    "node_ready": Condition("zero", 120, 1.0, "NotReady"),
    "pod_oom_killed": Condition("one", 0, 0.9, "OOM-killed (last termination reason)", must_start_in_window=True,
                                new_for_seconds=3600),
}


class ConditionParams(DetectorParams):
    """The parameters of :class:`ConditionDetector`."""

    # Condition signal -> how long it must hold, in seconds (default: each condition's own).
    min_seconds: dict[str, float] | None = None
    # Signal -> objective; objectives come from the signals (``signals.<name>.objective`` in the
    # config), this overrides them per signal.
    objectives: dict[str, float] | None = None
    # How long above its objective is a breach.
    objective_seconds: float = 300.0


class ConditionDetector(Detector):
    name: ClassVar[str] = "conditions"
    Params = ConditionParams
    params: ConditionParams
    default_signals: ClassVar[tuple[str, ...]] = tuple(CONDITIONS)

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        super().__init__(signals, **params)
        p = self.params
        self.objectives = dict(p.objectives or {})
        self.objective_seconds = float(p.objective_seconds)
        self._all_objectives = signals is None
        if signals is None:
            self.signals = (*self.default_signals, *self.objectives)
        unknown = set(p.min_seconds or {}) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"min_seconds for unknown conditions: {', '.join(sorted(unknown))}")
        self.min_seconds = {k: c.min_seconds for k, c in CONDITIONS.items()} | dict(p.min_seconds or {})

    def detect(self, frame: Frame) -> list[Finding]:
        out: list[Finding] = []
        objectives = {n: i.objective for n, i in frame.signals.items() if i.objective is not None} | self.objectives
        signals = list(self.signals)
        if self._all_objectives:
            signals += [n for n in objectives if n not in signals]
        for signal in signals:
            if signal in objectives:
                out += [
                    f for s in frame.of(signal)
                    if (f := isolated(self.name, s, self._objective, frame, s, objectives[signal])) is not None
                ]
            cond = CONDITIONS.get(signal)
            if cond is None:
                continue
            for s in frame.of(signal):
                f = isolated(self.name, s, self._check, frame, s, cond, self.min_seconds[signal])
                if f is not None and f.score >= self.report_floor:
                    out.append(f)
        return out

    def _check(self, frame: Frame, s: Series, cond: Condition, min_seconds: float) -> Finding | None:
        ok = ~np.isnan(s.values)
        if not ok.any():
            return None
        t, y = s.timestamps[ok], s.values[ok]
        bad = y >= 0.5 if cond.bad_when == "one" else y < 0.5
        if not bad[-1]:
            return None
        # The start of the current run of bad points.
        good_idx = np.flatnonzero(~bad)
        start = int(good_idx[-1]) + 1 if good_idx.size else 0
        since = float(t[start])
        held = float(t[-1]) - since
        if held < min_seconds:
            return None
        # It began within the window: after a good point, or where the series itself begins well
        # after the window does (kube-state-metrics reports a sparse condition only while it holds).
        began_in_window = good_idx.size > 0 or frame.began_inside(since)
        news = began_in_window and (cond.new_for_seconds is None or held <= cond.new_for_seconds)
        confirmed = news or not cond.must_start_in_window
        score = cond.score if confirmed else 0.5
        when = f"since {from_epoch(since):%H:%M UTC}" if began_in_window else "for the whole window"
        return Finding(
            detector=self.name,
            signal=s.signal,
            entity=s.entity,
            score=score,
            observed_at=frame.now,
            confirmed=confirmed,
            evidence=Evidence(
                f"{s.entity.kind} {s.entity.name} is {cond.what} {when}",
                recent=tuple(float(v) for v in s.values[-24:]),
                facts={"since": from_epoch(since).isoformat(), "held_seconds": held},
            ),
        )

    def _objective(self, frame: Frame, s: Series, objective: float) -> Finding | None:
        """Above its objective for ``objective_seconds``: a breach now (scale-up territory)."""
        ok = ~np.isnan(s.values)
        if not ok.any():
            return None
        t, y = s.timestamps[ok], s.values[ok]
        if y[-1] <= objective:
            return None
        below = np.flatnonzero(y <= objective)
        start = int(below[-1]) + 1 if below.size else 0
        held = float(t[-1] - t[start])
        if held < self.objective_seconds:
            return None
        ratio = float(np.median(y[start:]) / objective) if objective > 0 else 2.0
        # 0.9 at the objective, 1.0 at twice it: how far past the line, not whether.
        score = min(1.0, 0.9 + 0.1 * (ratio - 1.0))
        unit = frame.signals[s.signal].unit if s.signal in frame.signals else ""
        return Finding(
            detector=self.name,
            signal=s.signal,
            entity=s.entity,
            score=score,
            observed_at=frame.now,
            confirmed=True,
            evidence=Evidence(
                f"{s.signal} at {y[-1]:.4g} {unit} above its objective of {objective:g} {unit} "
                f"since {from_epoch(t[start]):%H:%M UTC} ({held / 60:.0f} min)",
                recent=tuple(float(v) for v in s.values[-24:]),
                facts={"objective": objective, "since": from_epoch(t[start]).isoformat(), "held_seconds": held},
            ),
        )
