"""The daemon's own metrics, on one registry served at /metrics.

Names are a public contract: dashboards/ and alert-rules/ query them. Add, never rename.
Label values are bounded sets (stage, detector, action, rail, channel), never entity names,
so cardinality stays small however large the cluster is.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aiops import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
# What every Prometheus client exposes by default (process_*, python_info, python_gc_*): memory and
# file-descriptor alerts and the Go/Python-agnostic dashboards rely on them.
for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_default)

BUILD_INFO = Info("aiops_build", "The running aiops version (value 1), for joins and upgrade tracking.", registry=REGISTRY)
BUILD_INFO.info({"version": __version__, "python_version": platform.python_version()})

STAGES = ("collect", "detect", "decide", "act", "notify", "record")

CYCLES = Counter("aiops_cycles", "Cycles run, by result (ok, degraded, failed).", ["result"], registry=REGISTRY)
CYCLE_SECONDS = Histogram(
    "aiops_cycle_duration_seconds",
    "Wall time of each pipeline stage and of the whole cycle (stage=total).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "aiops_last_successful_cycle_timestamp_seconds", "Unix time of the last cycle that was not degraded.", registry=REGISTRY
)
STAGE_ERRORS = Counter("aiops_stage_errors", "Stage failures that degraded a cycle.", ["stage"], registry=REGISTRY)
SERIES = Gauge("aiops_series", "Series with a recent point in the last cycle (what detectors saw).", registry=REGISTRY)
SERIES_VANISHED = Gauge(
    "aiops_series_vanished", "Series in the window whose newest point is too old to be current.", registry=REGISTRY
)
SIGNALS_ABSENT = Gauge(
    "aiops_signals_absent", "Signals that had series and have none now (the absent() case).", registry=REGISTRY
)
POINTS_FETCHED = Counter("aiops_points_fetched", "Samples fetched from Prometheus.", registry=REGISTRY)
SAMPLES_REJECTED = Counter(
    "aiops_samples_rejected",
    "Samples dropped as missing because no instrument can read them, by signal and reason: out_of_range (outside "
    "the signal's valid range) or sentinel (a DCGM blank, UINT32_MAX); each sample once, however often a cycle's "
    "overlap reads it. Fix the exporter, or set signals.<name>.valid.",
    ["signal", "reason"],
    registry=REGISTRY,
)
QUERIES = Counter("aiops_prometheus_queries", "Range queries sent to Prometheus, by result.", ["result"], registry=REGISTRY)
PROMETHEUS_UP = Gauge("aiops_prometheus_up", "1 when the last Prometheus query answered.", registry=REGISTRY)
CLOCK_AHEAD = Gauge(
    "aiops_clock_ahead_of_prometheus_seconds",
    "How far the daemon's clock runs ahead of Prometheus's (negative: behind), from the Date header of its answers.",
    registry=REGISTRY,
)
FINDINGS = Counter("aiops_findings", "Findings raised, by detector and severity.", ["detector", "severity"], registry=REGISTRY)
ACTIVE_FINDINGS = Gauge(
    "aiops_active_findings", "Findings in the last cycle, by detector and severity.", ["detector", "severity"], registry=REGISTRY
)
PREDICTED_LEAD = Histogram(
    "aiops_predicted_failure_lead_seconds",
    "Lead time of predicted failures when first raised, by detector.",
    ["detector"],
    buckets=(300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
    registry=REGISTRY,
)
DECISIONS = Counter("aiops_decisions", "Decisions made by policy, by action and mode.", ["action", "mode"], registry=REGISTRY)
ACTIONS = Counter(
    "aiops_actions",
    "Action results, by action and status (applied, dry_run, suggested, blocked, deferred, failed, skipped).",
    ["action", "status"],
    registry=REGISTRY,
)
ACTIONS_BLOCKED = Counter("aiops_actions_blocked", "Actions refused by a safety rail.", ["action", "rail"], registry=REGISTRY)
OUTCOMES = Counter(
    "aiops_action_outcomes", "Whether the triggering signal recovered after an action.", ["action", "outcome"], registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "aiops_notifications", "Notification deliveries by channel and result.", ["channel", "result"], registry=REGISTRY
)
OUTBOX_PENDING = Gauge("aiops_outbox_pending", "Notifications waiting in the outbox, by channel.", ["channel"], registry=REGISTRY)
LEADER = Gauge("aiops_leader", "1 while this replica holds the leader lease and may act.", registry=REGISTRY)


class ReadinessCollector(Collector):
    """``aiops_ready``, computed when /metrics is scraped (as client_python's process collector does).

    A gauge set only when someone called /readyz would be as stale as the last probe; this asks the
    same function /readyz asks, at scrape time. Without a source (``aiops once``) it reports 0.
    """

    def __init__(self) -> None:
        self._source: Callable[[], tuple[bool, str]] | None = None

    def watch(self, source: Callable[[], tuple[bool, str]] | None) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = False
        if self._source is not None:
            try:
                ok = bool(self._source()[0])
            except Exception:  # noqa: BLE001 - a scrape must answer; not knowing is not ready
                ok = False
        yield GaugeMetricFamily("aiops_ready", "1 while /readyz answers ready (computed at scrape time).", value=1 if ok else 0)


READY = ReadinessCollector()
REGISTRY.register(READY)
BUDGET_REMAINING = Gauge(
    "aiops_budget_remaining", "Actions left in the safety budget, by window (hour, day).", ["window"], registry=REGISTRY
)
CIRCUIT_BREAKER_OPEN = Gauge(
    "aiops_circuit_breaker_open", "1 while the circuit breaker stops acting after repeated not-healed actions.", registry=REGISTRY
)
INBOUND_REFUSED = Counter(
    "aiops_inbound_alerts_refused",
    "Inbound Alertmanager alerts refused because Prometheus does not fire them (reason: not_firing_in_prometheus) "
    "or could not be asked (prometheus_unavailable); counted once per alert and verdict.",
    ["reason"],
    registry=REGISTRY,
)
STATE_DISK_FULL = Gauge(
    "aiops_state_disk_full",
    "1 while writes to the state database fail because its disk is full (/readyz is not ready meanwhile).",
    registry=REGISTRY,
)
STATE_BYTES = Gauge(
    "aiops_state_bytes", "Bytes in use in the state database (bounded by state.max_bytes).", registry=REGISTRY
)
STATE_PRUNED = Counter(
    "aiops_state_pruned_rows",
    "Audit rows deleted, oldest first, to keep the state database under state.max_bytes.",
    registry=REGISTRY,
)
INBOUND_DROPPED = Counter(
    "aiops_inbound_alerts_dropped",
    "Inbound alerts dropped, oldest first, because the inbox held server.max_inbox_alerts.",
    registry=REGISTRY,
)
HTTP_CONNECTIONS_REFUSED = Counter(
    "aiops_http_connections_refused",
    "Connections to the daemon's HTTP server closed at once because server.max_connections were open.",
    registry=REGISTRY,
)


def initialise(*, actions: Iterable[str], detectors: Iterable[str], channels: Iterable[str],
               rails: Iterable[str], severities: Iterable[str], modes: Iterable[str],
               statuses: Iterable[str]) -> None:
    """Create every known label combination at 0, so ``increase()`` and ``rate()`` see the first event.

    A counter child that appears only when it first counts has no earlier sample: ``increase()`` over
    its first window is 0, and an alert on the first refusal never fires.
    """
    for result in ("ok", "degraded"):
        CYCLES.labels(result)
    for stage in (*STAGES, "advisor"):
        STAGE_ERRORS.labels(stage)
    for result in ("ok", "error"):
        QUERIES.labels(result)
    actions = tuple(actions)
    for action in actions:
        for rail in rails:
            ACTIONS_BLOCKED.labels(action, rail)
        for status in statuses:
            ACTIONS.labels(action, status)
        for mode in modes:
            DECISIONS.labels(action, mode)
        for outcome in ("healed", "not_healed"):
            OUTCOMES.labels(action, outcome)
    for detector in detectors:
        for severity in severities:
            FINDINGS.labels(detector, severity)
    for channel in channels:
        for result in ("delivered", "failed", "retry", "unknown", "rerouted"):
            NOTIFICATIONS.labels(channel=channel, result=result)
    for reason in ("not_firing_in_prometheus", "prometheus_unavailable"):
        INBOUND_REFUSED.labels(reason)
