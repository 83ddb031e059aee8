"""The daemon's own metrics, on one registry served at /metrics.

Names are a public contract: dashboards/ and alert-rules/ query them. Add, never rename.
Label values are bounded sets (stage, detector, action, rail, channel), never entity names,
so cardinality stays small however large the cluster is.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

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
SERIES = Gauge("aiops_series", "Series held in the rolling window.", registry=REGISTRY)
POINTS_FETCHED = Counter("aiops_points_fetched", "Samples fetched from Prometheus.", registry=REGISTRY)
QUERIES = Counter("aiops_prometheus_queries", "Range queries sent to Prometheus, by result.", ["result"], registry=REGISTRY)
PROMETHEUS_UP = Gauge("aiops_prometheus_up", "1 when the last Prometheus query answered.", registry=REGISTRY)
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
READY = Gauge("aiops_ready", "1 while /readyz answers ready.", registry=REGISTRY)
BUDGET_REMAINING = Gauge(
    "aiops_budget_remaining", "Actions left in the safety budget, by window (hour, day).", ["window"], registry=REGISTRY
)
CIRCUIT_BREAKER_OPEN = Gauge(
    "aiops_circuit_breaker_open", "1 while the circuit breaker stops acting after repeated not-healed actions.", registry=REGISTRY
)
