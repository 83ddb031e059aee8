"""State growth per cycle: audit bytes when N findings persist across cycles, and the inbox under a
flood of distinct alerts.

    python bench/state_growth.py --findings 20000 --cycles 5 --alerts 50000

Audit: N steady inbound-like findings (one changes severity each cycle), recorded C cycles through
``AuditLog.record``; prints the database bytes in use after each cycle and the mean per cycle.
Inbox: A distinct alerts posted in batches of 500 through ``AlertInbox.add``; prints the rows kept.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiops.model import CycleReport, Entity, Evidence, Finding, Severity
from aiops.notify.inbound import AlertInbox
from aiops.state import Store
from aiops.state.audit import AuditLog

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def findings(n: int, cycle: int, now: datetime) -> list[Finding]:
    out = []
    for i in range(n):
        severity = Severity.CRITICAL if i == cycle else Severity.WARNING
        out.append(Finding("alertmanager", "KubePodCrashLooping", Entity("pod", f"p-{i}", "ml"), 0.8, now,
                           Evidence(f"Pod ml/p-{i} is crash looping", facts={"fingerprint": f"{i:016x}"}),
                           confirmed=True, severity=severity))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "audit.sqlite")
        audit = AuditLog(store)
        sizes = [store.used_bytes()]
        for c in range(args.cycles):
            now = T0 + timedelta(minutes=c)
            audit.record(CycleReport(cycle_id=f"c{c}", started_at=now, finished_at=now,
                                     findings=findings(args.findings, c, now)))
            sizes.append(store.used_bytes())
        growth = [b - a for a, b in zip(sizes, sizes[1:], strict=False)]
        store.close()
        store = Store(Path(tmp) / "inbox.sqlite")
        inbox = AlertInbox(store)
        for start in range(0, args.alerts, 500):
            inbox.add([{"status": "firing", "labels": {"alertname": "Flood", "pod": f"p-{i}"}, "fingerprint": f"f{i}"}
                       for i in range(start, min(args.alerts, start + 500))], now=T0)
        kept = store.query("SELECT COUNT(*) AS n FROM notify_inbox")[0]["n"]
        store.close()
    print(json.dumps({
        "findings": args.findings, "cycles": args.cycles,
        "audit_bytes_first_cycle": growth[0], "audit_bytes_per_later_cycle": round(sum(growth[1:]) / max(1, len(growth) - 1)),
        "audit_bytes_total": sizes[-1] - sizes[0],
        "alerts_posted": args.alerts, "inbox_rows_kept": kept,
    }))


if __name__ == "__main__":
    main()
