"""State stays bounded whatever arrives: the alert inbox is capped (oldest dropped, counted), the
audit log writes a finding when it changes (not every cycle), and the database prunes its oldest
audit rows to stay under state.max_bytes instead of filling its volume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops.metrics import REGISTRY
from aiops.model import CycleReport, Entity, Evidence, Finding, Severity, StageError
from aiops.notify.inbound import AlertInbox
from aiops.state import Store
from aiops.state.audit import AuditLog

pytestmark = pytest.mark.reliability

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_inbox_keeps_the_newest_alerts_and_counts_what_it_dropped(tmp_path: Path) -> None:
    inbox = AlertInbox(Store(tmp_path / "s.sqlite"), max_alerts=100)
    before = counter("aiops_inbound_alerts_dropped_total")
    for batch in range(5):  # 250 distinct alerts, 50 a delivery, a second apart
        inbox.add([{"status": "firing", "labels": {"alertname": "Flood", "pod": f"p-{i}"}, "fingerprint": f"f{i:04d}"}
                   for i in range(batch * 50, batch * 50 + 50)], now=T0 + timedelta(seconds=batch))
    kept = [r["fingerprint"] for r in inbox.store.query("SELECT fingerprint FROM notify_inbox ORDER BY fingerprint")]
    assert kept == [f"f{i:04d}" for i in range(150, 250)]
    assert counter("aiops_inbound_alerts_dropped_total") == before + 150


def finding(i: int, severity: Severity = Severity.WARNING) -> Finding:
    return Finding("seasonal", "gpu_utilization", Entity("gpu", f"g{i}"), 0.8, T0, Evidence(f"gpu g{i} odd"),
                   severity=severity)


def cycle(audit: AuditLog, n: int, findings: list[Finding], degraded: bool = False) -> list[dict[str, object]]:
    at = T0 + timedelta(minutes=n)
    audit.record(CycleReport(cycle_id=f"c{n}", started_at=at, finished_at=at, findings=findings,
                             errors=[StageError("collect", "Prometheus down")] if degraded else []))
    return audit.events(kind="finding", cycle_id=f"c{n}")


def test_findings_are_audited_on_change_not_every_cycle(tmp_path: Path) -> None:
    audit = AuditLog(Store(tmp_path / "s.sqlite"))
    assert len(cycle(audit, 0, [finding(1), finding(2)])) == 2  # new
    assert cycle(audit, 1, [finding(1), finding(2)]) == []  # unchanged: nothing written
    [changed] = cycle(audit, 2, [finding(1, Severity.CRITICAL), finding(2)])
    assert (changed["entity"], changed["status"]) == ("gpu/g1", "critical")
    assert cycle(audit, 3, [finding(1, Severity.CRITICAL)], degraded=True) == []  # partial picture: g2 not resolved
    [gone] = cycle(audit, 4, [finding(1, Severity.CRITICAL)])
    assert (gone["entity"], gone["status"]) == ("gpu/g2", "resolved") and gone["summary"].startswith("resolved:")
    assert len(cycle(audit, 5, [finding(1, Severity.CRITICAL), finding(2)])) == 1  # back again: new


def test_database_prunes_oldest_audit_rows_to_stay_under_max_bytes(tmp_path: Path) -> None:
    cap = 2**20
    store = Store(tmp_path / "s.sqlite", max_bytes=cap)
    audit = AuditLog(store)
    before = counter("aiops_state_pruned_rows_total")
    for n in range(60):  # 60 cycles of 100 new findings with long summaries: ~2.5x the cap
        audit.record(CycleReport(
            cycle_id=f"c{n}", started_at=T0 + timedelta(minutes=n), finished_at=T0 + timedelta(minutes=n),
            findings=[replace_summary(finding(n * 1000 + i), "x" * 300) for i in range(100)]))
    assert store.used_bytes() <= cap and not store.full
    assert counter("aiops_state_pruned_rows_total") > before
    assert REGISTRY.get_sample_value("aiops_state_bytes") == store.used_bytes()
    assert audit.events(kind="finding", cycle_id="c0") == [] and audit.events(kind="finding", cycle_id="c59")


def replace_summary(f: Finding, summary: str) -> Finding:
    from dataclasses import replace

    return replace(f, evidence=Evidence(summary))
