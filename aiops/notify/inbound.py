"""Alertmanager in: alerts received on the webhook, kept in the Store, offered to detect as findings.

Users map their existing alert rules to remediations through policy: an alert becomes a finding
with ``detector="alertmanager"``, ``signal=<alertname>`` and an entity taken from the
``namespace``/``pod``/``node`` labels. Only rules that name ``detector: alertmanager`` explicitly
act on it (a ``"*"`` never matches inbound alerts), for example
``{detector: alertmanager, signal: KubePodCrashLooping, action: restart_pod, require_confirmed: true}``.

Alertmanager's API takes alerts from anyone, so each alert is checked against Prometheus every
cycle (:mod:`aiops.notify.verify`): only one that Prometheus really fires becomes a *confirmed*
finding, built from Prometheus's labels. A refused alert becomes no finding; the refusal is written
to the audit log once (when the verdict changes) and counted in ``aiops_inbound_alerts_refused``.
A resolved alert drops out; so does a firing one Alertmanager has not repeated for
``stale_after`` (Alertmanager re-sends firing groups every repeat_interval, 4h by default).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiops import metrics
from aiops.model import Entity, EntityKind, Evidence, Finding
from aiops.notify.alertmanager import INBOUND_DETECTOR, SOURCE_LABEL, SOURCE_VALUE
from aiops.notify.verify import AlertVerifier, Verdict
from aiops.state import Store
from aiops.state.audit import AuditLog

log = logging.getLogger(__name__)

_SCHEMA = """CREATE TABLE IF NOT EXISTS notify_inbox (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at REAL,
    ends_at REAL,
    generator_url TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    verdict TEXT NOT NULL DEFAULT ''
)"""

_SCORE = {"critical": 1.0, "page": 1.0, "error": 0.9, "warning": 0.8, "info": 0.5, "none": 0.5}


class InboundAlert(BaseModel):
    """One alert of an Alertmanager webhook payload (version 4)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    def key(self) -> str:
        if self.fingerprint:
            return self.fingerprint
        return hashlib.sha256(json.dumps(sorted(self.labels.items())).encode()).hexdigest()[:16]


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[InboundAlert]


def _epoch(t: datetime | None) -> float | None:
    # Alertmanager writes 0001-01-01T00:00:00Z for "not set".
    if t is None or t.year < 1971:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def entity_from_labels(labels: Mapping[str, str]) -> Entity:
    attributes = tuple(sorted((k, v) for k, v in labels.items() if k not in ("alertname",)))
    ns = labels.get("namespace", "")
    if labels.get("pod"):
        return Entity(EntityKind.POD, labels["pod"], ns, attributes)
    for kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
        if labels.get(kind):
            return Entity(kind, labels[kind], ns, attributes)
    if labels.get("node"):
        return Entity(EntityKind.NODE, labels["node"], "", attributes)
    if ns:
        return Entity(EntityKind.NAMESPACE, ns, "", attributes)
    return Entity(EntityKind.CLUSTER, labels.get("cluster", "cluster"), "", attributes)


class AlertInbox:
    """The received alerts. ``verifier`` checks them against Prometheus; without one (tests, tools
    that only read the inbox) findings are never *confirmed*, so no inbound rule can act on them."""

    def __init__(
        self,
        store: Store,
        *,
        stale_after: timedelta = timedelta(hours=6),
        verifier: AlertVerifier | None = None,
        audit: AuditLog | None = None,
        max_alerts: int = 10_000,
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self.max_alerts = max_alerts
        self.verifier = verifier
        self.audit = audit
        store.ensure_schema(_SCHEMA)
        columns = {r["name"] for r in store.query("PRAGMA table_info(notify_inbox)")}
        if "verdict" not in columns:  # a state file from before inbound verification
            with store.transaction() as conn:
                conn.execute("ALTER TABLE notify_inbox ADD COLUMN verdict TEXT NOT NULL DEFAULT ''")

    def add(self, alerts: Sequence[InboundAlert | Mapping[str, Any]], now: datetime | None = None) -> int:
        """Store alerts durably in one transaction; returns how many were kept (our own are skipped)."""
        parsed = [a if isinstance(a, InboundAlert) else InboundAlert.model_validate(a) for a in alerts]
        received = (now or datetime.now(UTC)).timestamp()
        kept = 0
        with self.store.transaction() as conn:
            for a in parsed:
                if a.labels.get(SOURCE_LABEL) == SOURCE_VALUE:
                    continue  # our own pushed alert routed back: acting on it would be a loop
                conn.execute(
                    "INSERT INTO notify_inbox (fingerprint, status, labels, annotations, starts_at, ends_at, generator_url, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO UPDATE SET status = excluded.status, "
                    "labels = excluded.labels, annotations = excluded.annotations, starts_at = excluded.starts_at, "
                    "ends_at = excluded.ends_at, generator_url = excluded.generator_url, received_at = excluded.received_at",
                    (a.key(), a.status, json.dumps(a.labels, sort_keys=True), json.dumps(a.annotations, sort_keys=True),
                     _epoch(a.startsAt), _epoch(a.endsAt), a.generatorURL, received),
                )
                kept += 1
            # Resolved alerts are kept a day for inspection, then dropped.
            conn.execute("DELETE FROM notify_inbox WHERE status = 'resolved' AND received_at < ?", (received - 86400,))
            # A flood of distinct alerts must not grow the state without bound: the oldest go first.
            over = conn.execute("SELECT COUNT(*) FROM notify_inbox").fetchone()[0] - self.max_alerts
            if over > 0:
                conn.execute(
                    "DELETE FROM notify_inbox WHERE fingerprint IN "
                    "(SELECT fingerprint FROM notify_inbox ORDER BY received_at, fingerprint LIMIT ?)", (over,))
        if over > 0:
            metrics.INBOUND_DROPPED.inc(over)
            log.warning("alert inbox full: dropped the %d oldest alert(s) to keep %d", over, self.max_alerts)
        return kept

    def findings(self, now: datetime) -> list[Finding]:
        t = now.timestamp()
        rows = self.store.query(
            "SELECT * FROM notify_inbox WHERE status = 'firing' AND received_at >= ? AND (ends_at IS NULL OR ends_at > ?) "
            "ORDER BY fingerprint",
            (t - self.stale_after.total_seconds(), t),
        )
        received = [json.loads(row["labels"]) for row in rows]
        verdicts = self.verifier.check(received, now) if self.verifier is not None else [None] * len(rows)
        out = []
        for row, labels, verdict in zip(rows, received, verdicts, strict=True):
            if verdict is not None:
                self._remember(row, labels, verdict, now)
                if not verdict.verified:
                    continue
                labels = {**dict(verdict.labels), "alertname": labels.get("alertname", "")}
            annotations: dict[str, str] = json.loads(row["annotations"])
            name = labels.get("alertname", "alert")
            summary = annotations.get("summary") or annotations.get("description") or annotations.get("message") or name
            facts: dict[str, Any] = {"fingerprint": row["fingerprint"], "labels": labels,
                                     "verified": verdict is not None}
            if labels.get("severity"):
                facts["alert_severity"] = labels["severity"]
            if row["starts_at"]:
                facts["firing_since"] = datetime.fromtimestamp(row["starts_at"], UTC).isoformat()
            if row["generator_url"]:
                facts["generator_url"] = row["generator_url"]
            out.append(
                Finding(
                    id=f"am-{row['fingerprint'][:9]}",
                    detector=INBOUND_DETECTOR,
                    signal=name,
                    entity=entity_from_labels(labels),
                    score=_SCORE.get(labels.get("severity", "").lower(), 0.8),
                    observed_at=now,
                    evidence=Evidence(summary=summary, facts=facts),
                    # Confirmed only when Prometheus vouched for it: inbound rules act on nothing else.
                    confirmed=verdict is not None,
                )
            )
        return out

    def _remember(self, row: Any, labels: dict[str, str], verdict: Verdict, now: datetime) -> None:
        """Keep the verdict; a change to *refused* is logged, counted and audited once."""
        state = "verified" if verdict.verified else verdict.reason
        if row["verdict"] == state:
            return
        with self.store.transaction() as conn:
            conn.execute("UPDATE notify_inbox SET verdict = ? WHERE fingerprint = ?", (state, row["fingerprint"]))
        if verdict.verified:
            return
        metrics.INBOUND_REFUSED.labels(verdict.reason).inc()
        name = labels.get("alertname", "alert")
        log.warning("refused an inbound alert: %s", verdict.detail,
                    extra={"alertname": name, "fingerprint": row["fingerprint"], "reason": verdict.reason})
        if self.audit is not None:
            self.audit.note(
                "inbound_refused", ref=row["fingerprint"], entity=entity_from_labels(labels).key,
                status=verdict.reason, summary=f"refused inbound alert {name}: {verdict.detail}",
                detail={"labels": labels}, at=now,
            )
