"""Build: graded findings and action results become notifications, one per finding.

Findings at or above ``policy.notify_min_severity`` become one notification each (key =
``Finding.key``), carrying the action results that target the same entity (or its node). Results
that match no finding become notifications of their own (an applied, blocked or failed action is
always worth telling).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiops.model import ActionResult, ActionStatus, Entity, EntityKind, Finding, Notification, NotificationKind, Severity
from aiops.notify import formatting as fmt

# Results that tell nothing beyond their finding, when no finding carries them.
_QUIET = {ActionStatus.OBSERVED}
_RESULT_SEVERITY = {
    ActionStatus.FAILED: Severity.CRITICAL,
    ActionStatus.APPLIED: Severity.WARNING,
    ActionStatus.BLOCKED: Severity.WARNING,
    ActionStatus.DEFERRED: Severity.WARNING,
    ActionStatus.DRY_RUN: Severity.WARNING,
    ActionStatus.SUGGESTED: Severity.WARNING,
    ActionStatus.SKIPPED: Severity.INFO,
}


def entity_labels(entity: Entity) -> dict[str, str]:
    labels = {"kind": entity.kind.value, "name": entity.name}
    if entity.namespace:
        labels["namespace"] = entity.namespace
    labels[entity.kind.value] = entity.name
    for attr in ("node", "container", "gpu", "model"):
        if entity.attr(attr) and attr not in labels:
            labels[attr] = entity.attr(attr)
    return labels


def finding_title(f: Finding) -> str:
    if f.confirmed:
        what = "failure observed"
    elif f.lead_time is not None:
        what = f"failure predicted in {fmt.duration(f.lead_time)}"
    else:
        what = f"anomaly, score {f.score:.2f}"
    return f"{f.entity}: {f.signal}, {what}"


def _related(result: ActionResult, finding: Finding) -> bool:
    t, e = result.target, finding.entity
    if getattr(finding, "cause", None) == t:  # root-cause correlation sent the action to the cause
        return True
    return t == e or (t.kind == EntityKind.NODE and e.attr("node") == t.name) or (e.kind == EntityKind.NODE and t.attr("node") == e.name) or (
        t.name == e.name and t.namespace == e.namespace
    )


def build_notifications(
    findings: Sequence[Finding], results: Sequence[ActionResult], *, cycle_id: str, min_severity: Severity,
    degraded: bool = False,
) -> list[Notification]:
    told = [f for f in findings if (f.severity or Severity.INFO).rank >= min_severity.rank]
    told.sort(key=lambda f: (-(f.severity or Severity.INFO).rank, -f.score))
    attached: dict[str, list[ActionResult]] = {f.id: [] for f in told}
    loose: list[ActionResult] = []
    for r in results:
        owner = next((f for f in told if _related(r, f)), None)
        if owner is not None:
            attached[owner.id].append(r)
        elif r.status not in _QUIET:
            loose.append(r)
    note = "partial data this cycle (a stage degraded); nothing is resolved or acted on from it" if degraded else ""
    out: list[Notification] = []
    for f in told:
        labels = {"severity": (f.severity or Severity.INFO).value, "detector": f.detector, "signal": f.signal,
                  **entity_labels(f.entity)}
        rs = tuple(attached[f.id])
        if rs:
            labels["action"] = ",".join(sorted({r.action for r in rs}))
        out.append(Notification(
            key=f.key, severity=f.severity or Severity.INFO, title=finding_title(f), summary=note, entity=f.entity,
            findings=(f,), results=rs, cycle_id=cycle_id, labels=labels,
        ))
    for r in loose:
        sev = _RESULT_SEVERITY.get(r.status, Severity.WARNING)
        if sev.rank < min_severity.rank:
            continue
        labels = {"severity": sev.value, "action": r.action, "status": r.status.value, **entity_labels(r.target)}
        out.append(Notification(
            key=f"action:{r.action}:{r.target.key}:{r.status.value}", severity=sev,
            title=f"{r.target}: {r.action} {r.status.value}", summary=note, entity=r.target,
            results=(r,), cycle_id=cycle_id, labels=labels, kind=NotificationKind.ACTION,
        ))
    return out
