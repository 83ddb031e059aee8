"""The append-only audit log: every cycle, finding, decision, action and notification.

Answers "what did the daemon do to X, when, and why" (``aiops history``). Rows are small and
pruned after the configured retention so the file stays bounded.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiops.model import CycleReport
from aiops.state import Store
from aiops.state.codec import plain

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_cycles (
    cycle_id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, degraded INTEGER NOT NULL,
    mode TEXT NOT NULL, dry_run INTEGER NOT NULL, series INTEGER NOT NULL, points INTEGER NOT NULL,
    stage_seconds TEXT NOT NULL, errors TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, cycle_id TEXT NOT NULL, at REAL NOT NULL,
    kind TEXT NOT NULL, ref TEXT NOT NULL, entity TEXT NOT NULL, status TEXT NOT NULL,
    summary TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_entity ON audit_events (entity, at);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at);
"""


def to_json(value: Any) -> str:
    return json.dumps(plain(value), separators=(",", ":"))


class AuditLog:
    def __init__(self, store: Store, retention: timedelta = timedelta(days=30)) -> None:
        self.store = store
        self.retention = retention
        store.ensure_schema(SCHEMA)

    def record(self, report: CycleReport) -> None:
        at = (report.finished_at or report.started_at).timestamp()
        rows: list[tuple[Any, ...]] = []
        for f in report.findings:
            rows.append(
                (report.cycle_id, at, "finding", f.id, f.entity.key, (f.severity or "info"), f.evidence.summary,
                 to_json({"detector": f.detector, "signal": f.signal, "score": f.score,
                          "predicted_failure_at": f.predicted_failure_at, "confirmed": f.confirmed,
                          "facts": f.evidence.facts}))
            )
        for d in report.decisions:
            rows.append(
                (report.cycle_id, at, "decision", d.id, d.target.key, d.mode.value, d.reason,
                 to_json({"action": d.action, "rule": d.rule, "finding": d.finding.id, "params": d.params,
                          "basis": d.basis, "rung": d.rung, "restore": d.restore}))
            )
        for r in report.results:
            rows.append(
                (report.cycle_id, at, "action", r.decision_id, r.target.key, r.status.value,
                 f"{r.action}: {r.detail}",
                 to_json({"action": r.action, "rail": r.rail,
                          "mutations": [m.describe() for m in r.plan.mutations] if r.plan else [],
                          "command": r.plan.command if r.plan else ""}))
            )
        for n in report.notifications:
            rows.append(
                (report.cycle_id, at, "notification", n.id, n.entity.key if n.entity else "", n.severity.value,
                 n.title, to_json({"key": n.key, "resolved": n.resolved}))
            )
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO audit_cycles VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    report.cycle_id,
                    report.started_at.timestamp(),
                    report.finished_at.timestamp() if report.finished_at else None,
                    int(report.degraded),
                    report.mode.value,
                    int(report.dry_run),
                    report.series_count,
                    report.points,
                    to_json(report.stage_seconds),
                    to_json([{"stage": e.stage, "message": e.message, "temporary": e.temporary} for e in report.errors]),
                ),
            )
            conn.executemany(
                "INSERT INTO audit_events (cycle_id, at, kind, ref, entity, status, summary, detail) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            cutoff = at - self.retention.total_seconds()
            conn.execute("DELETE FROM audit_events WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM audit_cycles WHERE started_at < ?", (cutoff,))

    def note(
        self, kind: str, *, ref: str, entity: str, status: str, summary: str, detail: Any, at: datetime,
        cycle_id: str = "",
    ) -> None:
        """One event outside a cycle's report (e.g. an inbound alert refused while checking it)."""
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO audit_events (cycle_id, at, kind, ref, entity, status, summary, detail) VALUES (?,?,?,?,?,?,?,?)",
                (cycle_id, at.timestamp(), kind, ref, entity, status, summary, to_json(detail)),
            )

    def cycles(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM audit_cycles ORDER BY started_at DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def events(
        self,
        *,
        kind: str | None = None,
        entity: str | None = None,
        cycle_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit_events WHERE 1=1"
        params: list[Any] = []
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        if entity:
            sql += " AND entity LIKE ?"
            params.append(f"%{entity}%")
        if cycle_id:
            sql += " AND cycle_id = ?"
            params.append(cycle_id)
        if since is not None:
            sql += " AND at >= ?"
            params.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [dict(r) for r in self.store.query(sql, tuple(params))]
