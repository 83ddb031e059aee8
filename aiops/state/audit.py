"""The append-only audit log: every cycle, decision, action and notification, and each finding
when it appears, changes severity or resolves.

Answers "what did the daemon do to X, when, and why" (``aiops history``). Rows are small; they are
pruned after the configured retention and, oldest first, whenever the database nears
``state.max_bytes``, so the file stays bounded whatever the cluster throws at it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from aiops import metrics
from aiops.model import CycleReport
from aiops.state import Store
from aiops.state.codec import plain

log = logging.getLogger(__name__)

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
CREATE TABLE IF NOT EXISTS audit_open_findings (
    key TEXT PRIMARY KEY, ref TEXT NOT NULL, entity TEXT NOT NULL, severity TEXT NOT NULL
) WITHOUT ROWID;
"""

# Past this share of state.max_bytes the oldest audit rows are pruned, down to PRUNE_TO.
PRUNE_AT, PRUNE_TO = 0.8, 0.7


def to_json(value: Any) -> str:
    return json.dumps(plain(value), separators=(",", ":"))


class AuditLog:
    def __init__(self, store: Store, retention: timedelta = timedelta(days=30)) -> None:
        self.store = store
        self.retention = retention
        store.ensure_schema(SCHEMA)

    def record(self, report: CycleReport) -> None:
        """One cycle's rows. A finding is written when it is new, when its severity changes and
        when it resolves (not on a degraded cycle, whose picture is partial), not every cycle: a
        finding that persists costs nothing per cycle."""
        at = (report.finished_at or report.started_at).timestamp()
        rows: list[tuple[Any, ...]] = []
        opened: dict[str, tuple[str, str, str]] = {}
        known = {r["key"]: r for r in self.store.query("SELECT * FROM audit_open_findings")}
        for f in report.findings:
            severity = str(f.severity or "info")
            opened[f.key] = (f.id, f.entity.key, severity)
            before = known.get(f.key)
            if before is not None and before["severity"] == severity:
                continue
            rows.append(
                (report.cycle_id, at, "finding", f.id, f.entity.key, severity, f.evidence.summary,
                 to_json({"detector": f.detector, "signal": f.signal, "score": f.score,
                          "predicted_failure_at": f.predicted_failure_at, "confirmed": f.confirmed,
                          "change": "new" if before is None else f"severity {before['severity']} -> {severity}",
                          "facts": f.evidence.facts}))
            )
        resolved = [] if report.degraded else [r for key, r in known.items() if key not in opened]
        for row in resolved:
            detector, _, rest = str(row["key"]).partition(":")
            signal = rest.partition(":")[0]
            rows.append((report.cycle_id, at, "finding", row["ref"], row["entity"], "resolved",
                         f"resolved: {signal} on {row['entity']} ({detector}) no longer found",
                         to_json({"change": "resolved", "key": row["key"]})))
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
            conn.executemany("DELETE FROM audit_open_findings WHERE key = ?", [(r["key"],) for r in resolved])
            conn.executemany(
                "INSERT INTO audit_open_findings (key, ref, entity, severity) VALUES (?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET ref = excluded.ref, severity = excluded.severity",
                [(key, *v) for key, v in opened.items()
                 if key not in known or known[key]["severity"] != v[2]],
            )
            cutoff = at - self.retention.total_seconds()
            conn.execute("DELETE FROM audit_events WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM audit_cycles WHERE started_at < ?", (cutoff,))
        self.bound()

    def bound(self) -> int:
        """Keep the database under state.max_bytes: past PRUNE_AT of it, delete the oldest audit rows
        (events, then cycles with no events left) until under PRUNE_TO. Returns rows deleted."""
        limit = self.store.max_bytes
        used = self.store.used_bytes()
        metrics.STATE_BYTES.set(used)
        if used <= PRUNE_AT * limit:
            return 0
        deleted = 0
        for _ in range(50):  # bounded: each round deletes a tenth of the events
            with self.store.transaction() as conn:
                total = conn.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
                if not total:
                    break
                cur = conn.execute(
                    "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events ORDER BY id LIMIT ?)",
                    (max(1, total // 10),),
                )
                deleted += cur.rowcount
                conn.execute("DELETE FROM audit_cycles WHERE started_at < (SELECT COALESCE(MIN(at), 9e18) FROM audit_events)")
            used = self.store.used_bytes()
            if used <= PRUNE_TO * limit:
                break
        metrics.STATE_PRUNED.inc(deleted)
        metrics.STATE_BYTES.set(used)
        log.warning("state database near state.max_bytes: pruned the %d oldest audit rows", deleted,
                    extra={"used_bytes": used, "max_bytes": limit})
        return deleted

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
