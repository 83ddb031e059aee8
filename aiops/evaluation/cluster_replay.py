"""Run the whole daemon over Prometheus history, cycle by cycle, with a simulated clock.

``aiops backtest`` answers "what would this detector have flagged"; this answers "what would the
daemon have done": the real :class:`~aiops.engine.pipeline.Pipeline` (catalog, ensemble,
correlation, policy, ladder, rails, notification de-dup) runs ``run_cycle(now)`` once per step
between two instants. It can never touch a cluster or a person: dry-run is forced, Kubernetes is
off, the state lives in a throwaway directory, and every channel delivers into a JSON-lines file.

Each query is fetched once for the whole replayed range (chunked as usual) and every cycle's
collect is answered from that copy, cut exactly as Prometheus would cut a range query evaluated
at that instant; so the collector, its rolling window and the detectors see what they would have
seen live, at one HTTP round trip per signal instead of one per signal per cycle.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aiops.collect.collector import Collector
from aiops.collect.decode import Block, RawSeries
from aiops.collect.prometheus import PrometheusClient, PrometheusError
from aiops.config import AiopsConfig
from aiops.engine.pipeline import Pipeline
from aiops.model import ADVISE, ActionStatus, CycleReport, EntityKind, Mode, Notification, Severity
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store

__all__ = [
    "Cycle", "Episode", "Event", "HistoryClient", "FileSink", "Rejected", "ReplayRun", "Timeline", "replay_config", "run_replay",
]

# What a replayed action would have done: the statuses of a decision the writer let through.
ACTED = frozenset({ActionStatus.DRY_RUN, ActionStatus.APPLIED})
# Refusals: a rail said no, or the action had to wait or failed.
REFUSED = frozenset({ActionStatus.BLOCKED, ActionStatus.DEFERRED, ActionStatus.FAILED, ActionStatus.SKIPPED})


class HistoryClient:
    """The collector's Prometheus client during a replay: one bulk range query per PromQL
    expression over ``[start, end]``, then each cycle's ``query_range`` is a slice of it."""

    def __init__(self, client: PrometheusClient, start: datetime, end: datetime, step: timedelta) -> None:
        self.client = client
        self.start, self.end, self.step = start, end, step
        self._cache: dict[str, list[RawSeries] | PrometheusError] = {}
        self._lock = threading.Lock()

    def prefetch(self, queries: Sequence[str], progress: Callable[[str], None] | None = None) -> None:
        for q in queries:
            self._fetch(q)
            if progress is not None:
                progress(q)

    def _fetch(self, query: str) -> list[RawSeries] | PrometheusError:
        with self._lock:
            if query not in self._cache:
                try:
                    self._cache[query] = self.client.query_range(query, self.start, self.end, self.step)
                except PrometheusError as exc:  # replayed as that signal's failure in every cycle
                    self._cache[query] = exc
            return self._cache[query]

    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        if step != self.step or start < self.start or end > self.end:
            # Not a cycle's query (a detector learning the days before the first one, at its own
            # step or at the cycles'): asked of Prometheus as it is, once.
            return self.client.query_range(query, start, end, step)
        cached = self._fetch(query)
        if isinstance(cached, PrometheusError):
            raise cached
        step_s = step.total_seconds()
        # The same grid the live client evaluates on: step-aligned instants within [start, end].
        t0 = np.ceil(start.timestamp() / step_s) * step_s
        t1 = np.floor(end.timestamp() / step_s) * step_s
        out = []
        for raw in cached:
            lo, hi = np.searchsorted(raw.timestamps, [t0, t1], side="left")
            if hi < len(raw.timestamps) and raw.timestamps[hi] == t1:
                hi += 1
            if hi > lo:  # Prometheus leaves out a series with no point in the range
                out.append(RawSeries(raw.labels, raw.timestamps[lo:hi], raw.values[lo:hi]))
        return out

    def range_chunks(self, query: str, start: datetime, end: datetime, step: timedelta) -> Iterator[Block]:
        """The collector's interface: the cut of the cached answer, as one block."""
        yield Block.from_series(self.query_range(query, start, end, step))

    def close(self) -> None:
        self.client.close()


class FileSink(Notifier):
    """Every configured channel during a replay: appends what it would have sent, one JSON line each."""

    name: ClassVar[str] = "replay-file"
    redeliver_after_crash: ClassVar[bool] = True

    def __init__(self, channel: str, path: Path, clock: Callable[[], datetime]) -> None:
        self.channel, self.path, self.clock = channel, path, clock

    def send(self, batch: Sequence[Notification]) -> Delivery:
        with self.path.open("a", encoding="utf-8") as fh:
            for n in batch:
                fh.write(json.dumps(_notification_row(n, self.clock(), self.channel), default=str) + "\n")
        return Delivery(DeliveryStatus.DELIVERED, f"wrote {len(batch)} notification(s) to {self.path.name}")


def replay_config(config: AiopsConfig, state_dir: Path, mode: Mode) -> AiopsConfig:
    """The user's config, made harmless: dry-run, no Kubernetes, no kill-switch file, throwaway state."""
    safety = config.safety.model_copy(
        update={"dry_run": True, "mode": mode, "kill_switch": config.safety.kill_switch.model_copy(update={"file": None})}
    )
    return config.model_copy(
        update={
            "safety": safety,
            "kubernetes": config.kubernetes.model_copy(update={"enabled": False}),
            "state": config.state.model_copy(update={"path": state_dir / "state.sqlite"}),
        }
    )


# --- the timeline ---------------------------------------------------------------------------
@dataclass
class Episode:
    """Something that held over consecutive cycles: a finding (by key) or a decision (action, target)."""

    kind: str  # "finding" | "decision"
    key: str
    first_at: datetime
    last_at: datetime
    cycles: int = 1
    severity: str = ""
    max_score: float = 0.0
    detector: str = ""
    signal: str = ""
    entity: str = ""
    related: tuple[str, ...] = ()  # entity keys an incident may name (the node of a GPU or a pod)
    rule: str = ""
    action: str = ""
    mode: str = ""
    summary: str = ""
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def duration(self) -> timedelta:
        return self.last_at - self.first_at

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v not in ("", (), {}, None)}
        d["first_at"], d["last_at"] = self.first_at.isoformat(), self.last_at.isoformat()
        d["duration_min"] = round(self.duration.total_seconds() / 60, 1)
        d["related"] = list(self.related)
        return d


@dataclass
class Event:
    at: datetime
    kind: str  # "refusal" | "notification" | "action"
    what: str
    entity: str
    detail: str
    severity: str = ""
    related: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat(), "related": list(self.related)}


@dataclass(frozen=True)
class Cycle:
    """What one replayed cycle saw and did: the per-cycle counts the report sums and plots."""

    at: datetime
    series: int
    findings: int  # warning or worse
    decisions: int
    actions: int  # decisions other than advice
    notifications: int
    degraded: bool
    wall_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat()}


def related_keys(entity: Any, finding: Any = None) -> tuple[str, ...]:
    """The entity's key plus what it belongs to: the node it runs on (an incident on a node matches
    its GPUs' findings), the model a serving pod serves, and what correlation related it to."""
    keys = [entity.key]
    for attr in ("node", "Hostname", "instance", "kubernetes_node"):
        value = entity.attr(attr)
        if value:
            keys.append(f"node/{value.split(':')[0]}")
            break
    model = entity.attr("model_name") or entity.attr("model")
    if model and entity.kind == EntityKind.POD:
        keys.append(f"model/{entity.namespace}/{model}" if entity.namespace else f"model/{model}")
    if finding is not None:
        keys += [k for k in finding.evidence.related if "/" in k]
    return tuple(dict.fromkeys(keys))


class Timeline:
    """Folds cycle reports into episodes and events; small whatever the number of cycles."""

    def __init__(self, every: timedelta) -> None:
        self.every = every
        self.gap = every * 2.5  # a finding missing for one cycle continues its episode
        self.findings: list[Episode] = []
        self.decisions: list[Episode] = []
        self.events: list[Event] = []
        self._open_f: dict[str, Episode] = {}
        self._open_d: dict[str, Episode] = {}
        self.cycles: list[Cycle] = []
        self.info_findings = 0

    def add(self, now: datetime, report: CycleReport, wall_seconds: float) -> None:
        warned = [f for f in report.findings if (f.severity or Severity.INFO).rank >= Severity.WARNING.rank]
        self.info_findings += len(report.findings) - len(warned)
        for f in warned:
            ep = self._continue(self._open_f, self.findings, f.key, now)
            if ep is None:
                ep = Episode(
                    "finding", f.key, now, now, detector=f.detector, signal=f.signal, entity=f.entity.key,
                    related=related_keys(f.entity, f), summary=f.evidence.summary,
                )
                self._open_f[f.key] = ep
                self.findings.append(ep)
            ep.max_score = max(ep.max_score, f.score)
            if not ep.severity or Severity(f.severity or "info").rank > Severity(ep.severity).rank:
                ep.severity = str(f.severity)
        status_of = {r.decision_id: r for r in report.results}
        for d in report.decisions:
            key = f"{d.action}:{d.target.key}"
            ep = self._continue(self._open_d, self.decisions, key, now)
            if ep is None:
                ep = Episode(
                    "decision", key, now, now, detector=d.finding.detector, signal=d.finding.signal,
                    entity=d.target.key,
                    related=tuple(dict.fromkeys((*related_keys(d.target), *related_keys(d.finding.entity, d.finding)))),
                    rule=d.rule, action=d.action, mode=str(d.mode), summary=d.reason,
                )
                self._open_d[key] = ep
                self.decisions.append(ep)
            ep.severity = str(d.severity)
            r = status_of.get(d.id)
            if r is not None:
                ep.statuses[str(r.status)] = ep.statuses.get(str(r.status), 0) + 1
        for r in report.results:
            if r.status in REFUSED:
                what = f"{r.action} refused by {r.rail}" if r.rail else f"{r.action} {r.status}"
                self.events.append(Event(now, "refusal", what, r.target.key, r.detail))
        for n in report.notifications:
            related = tuple(dict.fromkeys(k for f in n.findings for k in related_keys(f.entity, f)))
            self.events.append(Event(now, "notification", "resolved" if n.resolved else "firing",
                                     str(n.entity or n.key), n.title, str(n.severity), related))
        self.cycles.append(Cycle(
            at=now, series=report.series_count, findings=len(warned),
            decisions=len(report.decisions), actions=sum(1 for d in report.decisions if d.action != ADVISE),
            notifications=len(report.notifications), degraded=report.degraded,
            wall_seconds=round(wall_seconds, 4),
        ))

    def _continue(self, open_: dict[str, Episode], _all: list[Episode], key: str, now: datetime) -> Episode | None:
        ep = open_.get(key)
        if ep is None or now - ep.last_at > self.gap:
            return None
        ep.last_at = now
        ep.cycles += 1
        return ep


def _notification_row(n: Notification, at: datetime, channel: str) -> dict[str, Any]:
    return {
        "at": at.isoformat(), "channel": channel, "key": n.key, "severity": str(n.severity),
        "resolved": n.resolved, "title": n.title, "summary": n.summary,
        "entity": str(n.entity) if n.entity else "",
        "actions": [f"{r.action}={r.status}" for r in n.results],
    }


def cycle_times(start: datetime, end: datetime, every: timedelta) -> Iterator[datetime]:
    t = start
    while t <= end:
        yield t
        t += every


@dataclass(frozen=True)
class Rejected:
    """Samples of one signal the collector dropped as impossible over the replay, for one reason
    (:mod:`aiops.collect.plausible`): what the log says once per series, which the replay silences."""

    signal: str
    reason: str  # out_of_range or sentinel
    samples: int  # each sample once, as aiops_samples_rejected_total counts them
    series: tuple[str, ...]  # the first series of the signal named, at most five

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "reason": self.reason, "samples": self.samples, "series": list(self.series)}


def _rejected_by(collector: Collector) -> tuple[Rejected, ...]:
    return tuple(
        Rejected(name, reason, n, tuple(screen.named))
        for name, screen in sorted(collector.screens.items())
        for reason, n in sorted(screen.dropped.items())
    )


@dataclass
class ReplayRun:
    timeline: Timeline
    started: datetime
    ended: datetime
    every: timedelta
    cycles: int
    wall_seconds: float
    config: AiopsConfig
    notifications_path: Path
    rejected: tuple[Rejected, ...] = ()


def run_replay(
    config: AiopsConfig,
    start: datetime,
    end: datetime,
    every: timedelta,
    out_dir: Path,
    *,
    mode: Mode = Mode.AUTO,
    client: PrometheusClient | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ReplayRun:
    """Replay ``[start, end]`` every ``every``; writes ``notifications.jsonl`` into ``out_dir``."""
    import time

    out_dir.mkdir(parents=True, exist_ok=True)
    sink_path = out_dir / "notifications.jsonl"
    sink_path.write_text("", encoding="utf-8")
    state_dir = Path(tempfile.mkdtemp(prefix="aiops-replay-"))
    cfg = replay_config(config, state_dir, mode)
    step = cfg.prometheus.step
    history = HistoryClient(client or PrometheusClient(cfg.prometheus), start - cfg.prometheus.lookback, end, step)
    clock: list[datetime] = [start]
    store = Store(cfg.state.path)
    pipeline: Pipeline | None = None
    try:
        collector = Collector(cfg, client=history)
        queries = sorted({s.query for s in collector.signals.values()})
        total = len(list(cycle_times(start, end, every)))
        if progress is not None:
            fetched = iter(range(1, len(queries) + 1))
            history.prefetch(queries, lambda q: progress(next(fetched), len(queries), "fetching history"))
        sinks = {name: FileSink(name, sink_path, lambda: clock[0]) for name in cfg.notify.channels}
        pipeline = Pipeline.from_config(cfg, store, collector=collector, notifiers=sinks, live=False)
        timeline = Timeline(every)
        t_begin = time.perf_counter()
        # As the daemon at its first cycle: the days before it that Prometheus holds.
        pipeline.learn_history(start)
        for i, now in enumerate(cycle_times(start, end, every)):
            clock[0] = now
            t0 = time.perf_counter()
            report = pipeline.run_cycle(now)
            timeline.add(now, report, time.perf_counter() - t0)
            if progress is not None:
                progress(i + 1, total, now.strftime("%Y-%m-%d %H:%M"))
        return ReplayRun(timeline, start, end, every, total, time.perf_counter() - t_begin, cfg, sink_path,
                         _rejected_by(collector))
    finally:
        if pipeline is not None:
            pipeline.close()
        else:
            history.close()
        store.close()
        shutil.rmtree(state_dir, ignore_errors=True)
