"""One cycle: collect -> detect -> decide -> act -> notify -> record.

Each stage gets the records of the stage before it and nothing else. A stage that fails is
caught here, logged, counted and recorded as a :class:`StageError`; the cycle is then *degraded*
and the act stage refuses to act on the partial picture. Cycles never overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aiops import metrics, plugins
from aiops.collect.collector import Collector
from aiops.collect.prometheus import PrometheusClient
from aiops.collect.shard_query import HeldShards
from aiops.config import AiopsConfig
from aiops.engine.absent import absent_findings
from aiops.engine.act import Actor
from aiops.engine.correlate import correlate, unseen_entities
from aiops.engine.decide import Policy
from aiops.engine.facts import ClusterFacts
from aiops.engine.ladder import LadderState
from aiops.engine.predictions import PredictionLedger
from aiops.kube.client import request_timeout
from aiops.kube.notified import ClusterNotifyLedger
from aiops.engine.shards import SHARED_SIGNALS, ShardLeases
from aiops.model import CycleReport, Finding, Frame, Severity, StageError, new_id, utcnow
from aiops.notify.channels import build_notifiers
from aiops.notify.stage import NotifyStage
from aiops.plugins import Detector, Notifier
from aiops.state import Store
from aiops.state.audit import AuditLog
from aiops.state.detector_state import DetectorStateBook

log = logging.getLogger(__name__)
# Detector state no longer saved is pruned this often (a DELETE over a small table).
STATE_PRUNE_EVERY = timedelta(hours=1)


def build_detectors(config: AiopsConfig) -> list[tuple[str, Detector]]:
    detectors = []
    for d in config.detectors:
        if not d.enabled:
            continue
        params = dict(d.params)
        if d.signals is not None:
            params["signals"] = d.signals
        detectors.append((d.instance_name, plugins.instantiate(plugins.DETECTORS, d.plugin, params)))
    return detectors


def _initialise_metrics(config: AiopsConfig) -> None:
    """Every known label combination starts at 0 on /metrics (see :func:`aiops.metrics.initialise`)."""
    from aiops.engine.rails import RailName
    from aiops.model import ActionStatus, Mode
    from aiops.notify.alertmanager import INBOUND_DETECTOR

    metrics.initialise(
        actions={*plugins.available(plugins.REMEDIATIONS), *(r.action for r in config.policy.rules)},
        detectors={*plugins.available(plugins.DETECTORS), *(d.instance_name for d in config.detectors), INBOUND_DETECTOR},
        channels=config.notify.channels,
        rails=[r.value for r in RailName],
        severities=[s.value for s in Severity],
        modes=[m.value for m in Mode],
        statuses=[s.value for s in ActionStatus],
    )


@dataclass
class Health:
    """What /healthz and /readyz report."""

    last_cycle_at: datetime | None = None
    last_success_at: datetime | None = None
    prometheus_ok: bool = False
    # Prometheus answered but no series had a recent point: the daemon sees nothing, so is not ready.
    blind: bool = False
    cycles: int = 0
    last_errors: list[StageError] = field(default_factory=list)


def _shared_notify_ledger(config: AiopsConfig, actor: Actor) -> ClusterNotifyLedger | None:
    """With leader election, the leader publishes its deliveries in the cluster (aiops.kube.notified)."""
    election = config.kubernetes.leader_election
    if actor.api is None or not election.enabled:
        return None
    return ClusterNotifyLedger(
        actor.api, election.namespace or config.kubernetes.own_namespace, lease_name=election.lease_name,
        reporter=getattr(actor.elector, "identity", "aiops"), timeout=request_timeout(config.kubernetes))


class FindingSource(Protocol):
    """Findings that come from no series (the Alertmanager webhook's inbox), added every cycle."""

    def findings(self, now: datetime) -> list[Finding]: ...


class Pipeline:
    def __init__(
        self,
        config: AiopsConfig,
        *,
        collector: Collector,
        detectors: Sequence[tuple[str, Detector]],
        policy: Policy,
        actor: Actor,
        notifier: NotifyStage,
        audit: AuditLog,
        store: Store,
        ledger: PredictionLedger | None = None,
        extra_findings: Sequence[FindingSource] = (),
    ) -> None:
        self.config = config
        self.collector = collector
        self.detectors = list(detectors)
        self.policy = policy
        self.actor = actor
        self.notifier = notifier
        self.audit = audit
        self.store = store
        self.ledger = ledger
        # Sources of findings that do not come from series (Alertmanager webhook inbox).
        self.extra_findings: list[FindingSource] = list(extra_findings)
        self.health = Health()
        self.last_report: CycleReport | None = None
        self._lock = threading.Lock()
        self._active_keys: set[str] = set()
        # Sharded (sharding.shards > 1): this replica sees, decides and acts for its shards only.
        elector = getattr(actor, "elector", None)
        self.shards = elector if isinstance(elector, ShardLeases) else None
        # Detectors whose state outlives a restart (the multivariate references, the headroom
        # forecast's daily bins): given back now, saved in the record stage of each cycle.
        self.detector_state = DetectorStateBook(store)
        self._state_pruned_at: datetime | None = None
        for name, detector in self._keeping_state():
            for problem in detector.restore_state(self.detector_state.load(name)):
                log.warning("detector %s: saved state not used, learning again: %s", name, problem)

    def _keeping_state(self) -> Iterator[tuple[str, plugins.KeepsState]]:
        """(name, detector) of each detector, or ensemble member (``name.member``), that keeps state."""
        for name, part in self._parts():
            if isinstance(part, plugins.KeepsState):
                yield name, part

    def _parts(self) -> Iterator[tuple[str, object]]:
        """(name, detector) of each detector and each ensemble member (``name.member``)."""
        for name, detector in self.detectors:
            yield name, detector
            for member, part in (getattr(detector, "members", None) or {}).items():
                yield f"{name}.{member}", part

    def learn_history(self, now: datetime | None = None) -> None:
        """Before the first cycle: hand each detector that asks (:class:`~aiops.plugins.LearnsFromHistory`)
        the days before the first frame that Prometheus already holds, so that a new installation
        or a new pod compares today's daily climbs with the days before it started, as a daemon
        that ran all along does. The first frame begins ``lookback`` before ``now``; the days end
        there. A failure costs only those days (the detector learns them from the cycles it runs,
        as it did before): logged, never raised, never a degraded cycle."""
        now = now or utcnow()
        end = now - self.collector.lookback
        for name, part in self._parts():
            if not isinstance(part, plugins.LearnsFromHistory):
                continue
            try:
                wanted = part.history_wanted(self.collector.infos)
                if wanted is None:
                    continue
                started, points = time.monotonic(), 0
                start = end - timedelta(seconds=wanted.seconds)
                step = timedelta(seconds=wanted.step_seconds) if wanted.step_seconds else self.collector.step
                for chunk in self.collector.history(wanted.signals, start, end, step):
                    part.learn_history(chunk)
                    points += sum(len(s) for s in chunk)
            except Exception as exc:  # contained on purpose: the days are learnt from the cycles instead
                log.warning(
                    "detector %s did not learn the days before its first cycle from Prometheus; it learns them "
                    "from the cycles it runs: %s", name, exc, extra={"detector": name},
                )
                continue
            log.info(
                "detector %s learnt %s from %s to %s from Prometheus (%d points) in %.1fs",
                name, ", ".join(sorted(wanted.signals)), start.isoformat(), end.isoformat(), points,
                time.monotonic() - started, extra={"detector": name},
            )

    @classmethod
    def from_config(
        cls,
        config: AiopsConfig,
        store: Store | None = None,
        *,
        collector: Collector | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
        live: bool = True,
    ) -> Pipeline:
        """The daemon's pipeline. ``aiops replay`` passes its own ``collector`` (history) and
        ``notifiers`` (a file), and ``live=False``: no Alertmanager silences and no webhook inbox,
        which belong to the present, not to the replayed past."""
        from aiops.notify.alertmanager import silence_checker
        from aiops.notify.inbound import AlertInbox
        from aiops.notify.verify import AlertVerifier

        store = store or Store(config.state.path, max_bytes=config.state.max_bytes)
        _initialise_metrics(config)
        collector = collector or Collector(config)
        audit = AuditLog(store, config.state.audit_retention)
        ledger = PredictionLedger(store, config.state.audit_retention)
        # A silenced target is not remediated: the writer asks Alertmanager, when one is configured.
        actor = Actor.from_config(config, store, is_silenced=silence_checker(config.notify) if live else None)
        # Alerts received on the Alertmanager webhook become findings of the next cycle, confirmed
        # (and so actionable) only when Prometheus really fires them: that takes an instant query
        # of the Prometheus collected from, which a recorded history cannot answer.
        source, inbox = collector.client, []
        if live and isinstance(source, PrometheusClient):
            inbox.append(AlertInbox(store, verifier=AlertVerifier(source.query, config.prometheus.scope), audit=audit,
                                    max_alerts=config.server.max_inbox_alerts))
        # Only the leader talks to people; followers keep detecting.
        notifier = NotifyStage(
            config, store, build_notifiers(config.notify) if notifiers is None else notifiers,
            is_leader=lambda: actor.is_leader, shared=_shared_notify_ledger(config, actor) if live else None,
        )
        return cls(
            config,
            collector=collector,
            detectors=build_detectors(config),
            policy=Policy(config.policy, config.safety.mode, ladder=LadderState(store), ledger=ledger,
                          protected_namespaces=config.safety.protected_patterns),
            ledger=ledger,
            actor=actor,
            notifier=notifier,
            audit=audit,
            store=store,
            extra_findings=inbox,
        )

    # -- the cycle --------------------------------------------------------------------------
    def run_cycle(self, now: datetime | None = None) -> CycleReport:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("a cycle is already running; cycles never overlap")
        try:
            return self._run(now or utcnow())
        finally:
            self._lock.release()

    @contextmanager
    def _stage(self, report: CycleReport, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:  # a stage failure degrades the cycle; it never crashes the daemon
            log.exception("stage %s failed", stage, extra={"cycle_id": report.cycle_id, "stage": stage})
            report.errors.append(StageError(stage, f"{type(exc).__name__}: {exc}", temporary=True))
            metrics.STAGE_ERRORS.labels(stage).inc()
        finally:
            elapsed = time.perf_counter() - t0
            report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + elapsed
            metrics.CYCLE_SECONDS.labels(stage).observe(elapsed)

    def _run(self, now: datetime) -> CycleReport:
        report = CycleReport(
            cycle_id=new_id(), started_at=utcnow(), mode=self.config.safety.mode, dry_run=self.config.safety.dry_run
        )
        frame: Frame | None = None
        findings: list[Finding] = []
        unseen: dict[str, str] = {}

        held = self.shards.held() if self.shards is not None else frozenset()
        with self._stage(report, "collect"):
            if self.shards is not None:
                # Fetch only our shards' series (a superset), then keep exactly what we own.
                frame, errors = self.collector.collect(now, HeldShards(self.shards.shards, held, SHARED_SIGNALS))
                frame = self.shards.restrict(frame, held)
            else:
                frame, errors = self.collector.collect(now)
            report.errors.extend(errors)
            if errors:
                metrics.STAGE_ERRORS.labels("collect").inc(len(errors))
            report.series_count, report.points = len(frame), frame.points
        self.health.prometheus_ok = frame is not None and not any(
            e.stage == "collect" and e.temporary for e in report.errors
        )
        self.health.blind = frame is not None and not frame.series and len(frame.missing_signals) < len(self.collector.signals)

        with self._stage(report, "detect"):
            if frame is not None:
                findings = self._detect(frame, now, report)
                if self.shards is not None:  # webhook alerts about other shards' entities too
                    findings = self.shards.keep(findings, held)

        with self._stage(report, "decide"):
            # Predictions are checked before deciding: a false one rolls its preparation back now.
            # Not on a degraded cycle: missing data must not expire predictions as false positives.
            # What nothing is measured on this cycle (a GPU off the bus, what a detector skipped):
            # composed once, for the ledger and the act stage.
            unseen = unseen_entities(findings, report.unjudged, frame=frame)
            closed = (
                self.ledger.observe(findings, now, unseen=unseen.keys())
                if self.ledger is not None and not report.degraded
                else []
            )
            facts = ClusterFacts.from_frame(frame) if frame is not None else None
            graded, decisions = self.policy.decide(findings, now=now, closed=closed, facts=facts)
            report.findings, report.decisions = graded, decisions

        with self._stage(report, "act"):
            if self.shards is not None:
                # A shard lost since the cycle began is the new holder's to act on (its renew
                # deadline passed, so someone may hold it already).
                still = self.shards.held()
                report.decisions = [
                    d for d in report.decisions if self.shards.owns(d.finding.entity, still)
                ]
            report.results = self.actor.act(
                report.decisions, findings=report.findings, unseen=unseen, degraded=report.degraded, now=now,
            )
            # Kubernetes API failures while acting (5xx, timeouts) degrade the cycle too.
            report.errors.extend(self.actor.errors)

        with self._stage(report, "notify"):
            report.notifications = self.notifier.notify(
                report.findings, report.results, cycle_id=report.cycle_id, now=now, degraded=report.degraded,
                unseen=unseen.keys(),
            )

        report.finished_at = utcnow()
        with self._stage(report, "record"):
            self.audit.record(report)
            if self.ledger is not None:
                self.ledger.mark_acted(report.results, report.decisions)
            for name, detector in self._keeping_state():
                bodies = detector.saved_state()
                self.detector_state.save(name, bodies, now.timestamp())
                detector.state_saved(bodies)  # only once written: a full disk retries next cycle
            if self._state_pruned_at is None or now - self._state_pruned_at >= STATE_PRUNE_EVERY:
                self.detector_state.prune((now - self.config.state.detector_state_retention).timestamp())
                self._state_pruned_at = now
        report.finished_at = utcnow()
        self._export(report)
        return report

    def _detect(self, frame: Frame, now: datetime, report: CycleReport) -> list[Finding]:
        findings: list[Finding] = []
        for name, detector in self.detectors:
            try:
                detection = plugins.run_detector(detector, frame)
            except Exception as exc:  # one broken detector must not hide the others' findings
                log.exception("detector %s failed", name, extra={"cycle_id": report.cycle_id})
                report.errors.append(StageError("detect", f"detector {name}: {type(exc).__name__}: {exc}"))
                metrics.STAGE_ERRORS.labels("detect").inc()
                continue
            # A composite detector (the ensemble) hands over what its healthy members found, and
            # names the members that failed: told to people, the cycle degraded, nothing acted on.
            findings.extend(detection.findings)
            for key in detection.skipped:
                report.unjudged.setdefault(key, f"detector {name} skipped it this cycle (one of its series raised)")
            for failure in detection.failures:
                report.errors.append(StageError("detect", f"detector {name}: {failure}"))
                metrics.STAGE_ERRORS.labels("detect").inc()
        findings.extend(absent_findings(frame))
        for source in self.extra_findings:
            findings.extend(source.findings(now))
        return correlate(findings, frame, self.config.policy.root_cause)

    def _export(self, report: CycleReport) -> None:
        total = report.duration_seconds
        metrics.CYCLE_SECONDS.labels("total").observe(total)
        result = "degraded" if report.degraded else "ok"
        metrics.CYCLES.labels(result).inc()
        self.health.cycles += 1
        self.health.last_cycle_at = report.finished_at
        self.health.last_errors = list(report.errors)
        if not report.degraded:
            self.health.last_success_at = report.finished_at
            metrics.LAST_SUCCESS.set(report.finished_at.timestamp() if report.finished_at else time.time())
        metrics.ACTIVE_FINDINGS.clear()
        active: dict[tuple[str, str], int] = {}
        keys = set()
        for f in report.findings:
            sev = (f.severity.value if f.severity else "info")
            active[(f.detector, sev)] = active.get((f.detector, sev), 0) + 1
            keys.add(f.key)
            if f.key not in self._active_keys:
                metrics.FINDINGS.labels(f.detector, sev).inc()
                if f.lead_time is not None and f.lead_time.total_seconds() > 0:
                    metrics.PREDICTED_LEAD.labels(f.detector).observe(f.lead_time.total_seconds())
        self._active_keys = keys
        for (det, sev), n in active.items():
            metrics.ACTIVE_FINDINGS.labels(det, sev).set(n)
        metrics.LEADER.set(1 if self.actor.is_leader else 0)
        for d in report.decisions:
            metrics.DECISIONS.labels(d.action, d.mode.value).inc()
        for r in report.results:
            metrics.ACTIONS.labels(r.action, r.status.value).inc()
            if r.rail:
                metrics.ACTIONS_BLOCKED.labels(r.action, r.rail).inc()
        self.last_report = report

    def ready(self, max_age_seconds: float | None = None) -> tuple[bool, str]:
        """Ready after a successful cycle, while Prometheus answers and results are fresh."""
        h = self.health
        if self.store.full:  # flips with the failed write, not at the next cycle
            return False, self.store.full
        if h.blind:
            return False, "the last cycle saw no fresh series: Prometheus answers, but nothing recent is scraped"
        if h.last_success_at is None:
            return False, "no successful cycle yet"
        if not h.prometheus_ok:
            return False, "Prometheus did not answer the last cycle"
        limit = max_age_seconds or 3 * self.config.schedule.interval.total_seconds() + 60
        age = (utcnow() - h.last_success_at).total_seconds()
        if age > limit:
            return False, f"last successful cycle was {age:.0f}s ago"
        return True, "ok"

    def start(self) -> None:
        self.actor.start()

    def close(self) -> None:
        for closer in (self.actor.close, self.notifier.close, self.collector.close):
            try:
                closer()
            except Exception:  # closing must finish even if one part is broken
                log.exception("error while closing")
