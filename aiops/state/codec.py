"""The one codec for records kept in the state file: entities, findings, decisions, results and
notifications <-> JSON.

The outbox keeps notifications across restarts, the books keep in-flight actions and the outcome
tracker keeps applied decisions: all through these functions, with one time format (ISO 8601 with
its offset). Everything a message shows survives the round trip. A plan keeps its summary and
command but not its mutations: a notification never applies anything, it only tells what was
planned. Rows written by earlier versions still load (see :func:`decision_from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from aiops.model import (
    ActionResult,
    ActionStatus,
    Basis,
    Decision,
    Entity,
    Evidence,
    Finding,
    Mode,
    Notification,
    NotificationKind,
    Plan,
    Resolve,
    Rung,
    Severity,
    from_epoch,
)

_HAS_CAUSE = "cause" in {f.name for f in dataclasses.fields(Finding)}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _required_time(value: str) -> datetime:
    """A time the record cannot lack: a stored row without it is refused here, not later."""
    return datetime.fromisoformat(value)


def _number(value: float) -> float | None:
    # JSON has no NaN or Infinity (the codec's dumps refuse them): a gap in the recent values stays
    # a gap, and an overflowed number is not one either.
    return None if value is None or not math.isfinite(value) else float(value)


def plain(value: Any) -> Any:
    """Free-form values (evidence facts, params, audit details) as JSON holds them: enums by value,
    times in the one format, NaN and infinities as null, numpy scalars as numbers, records as mappings, the rest
    as text."""
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, datetime):
        return _time(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


def entity_to_dict(entity: Entity) -> dict[str, Any]:
    return {"kind": entity.kind.value, "name": entity.name, "namespace": entity.namespace, "attributes": list(entity.attributes)}


def entity_from_dict(data: dict[str, Any]) -> Entity:
    return Entity(
        kind=data["kind"],
        name=data["name"],
        namespace=data.get("namespace", ""),
        attributes=tuple((str(k), str(v)) for k, v in data.get("attributes", ())),
    )


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "detector": f.detector,
        "signal": f.signal,
        "entity": entity_to_dict(f.entity),
        "score": f.score,
        "observed_at": _time(f.observed_at),
        "evidence": {
            "summary": f.evidence.summary,
            "recent": [_number(v) for v in f.evidence.recent],
            "facts": plain(dict(f.evidence.facts)),
            "related": list(f.evidence.related),
        },
        "predicted_failure_at": _time(f.predicted_failure_at),
        "failure_interval": [_time(t) for t in f.failure_interval] if f.failure_interval else None,
        "confirmed": f.confirmed,
        "severity": f.severity.value if f.severity else None,
        "cause": entity_to_dict(cause) if (cause := getattr(f, "cause", None)) is not None else None,
    }


def finding_from_dict(d: dict[str, Any]) -> Finding:
    ev = d["evidence"]
    interval = d.get("failure_interval")
    # Root-cause correlation (Finding.cause) is newer than some outbox rows: carried when known.
    extra: dict[str, Any] = {}
    if d.get("cause") and _HAS_CAUSE:
        extra["cause"] = entity_from_dict(d["cause"])
    return Finding(
        id=d["id"],
        detector=d["detector"],
        signal=d["signal"],
        entity=entity_from_dict(d["entity"]),
        score=float(d["score"]),
        observed_at=_required_time(d["observed_at"]),
        evidence=Evidence(
            summary=ev["summary"],
            recent=tuple(float("nan") if v is None else float(v) for v in ev.get("recent", ())),
            facts=ev.get("facts", {}),
            related=tuple(ev.get("related", ())),
        ),
        predicted_failure_at=_parse_time(d.get("predicted_failure_at")),
        failure_interval=(_required_time(interval[0]), _required_time(interval[1])) if interval else None,
        confirmed=bool(d.get("confirmed", False)),
        severity=Severity(d["severity"]) if d.get("severity") else None,
        **extra,
    )


def result_to_dict(r: ActionResult) -> dict[str, Any]:
    plan = None
    if r.plan is not None:
        plan = {
            "action": r.plan.action,
            "target": entity_to_dict(r.plan.target),
            "summary": r.plan.summary,
            "command": r.plan.command,
            "feasible": r.plan.feasible,
            "reason_if_not": r.plan.reason_if_not,
        }
    return {
        "decision_id": r.decision_id,
        "action": r.action,
        "target": entity_to_dict(r.target),
        "status": r.status.value,
        "detail": r.detail,
        "plan": plan,
        "rail": r.rail,
        "at": _time(r.at),
    }


def result_from_dict(d: dict[str, Any]) -> ActionResult:
    p = d.get("plan")
    plan = None
    if p is not None:
        plan = Plan(
            action=p["action"],
            target=entity_from_dict(p["target"]),
            mutations=(),
            summary=p["summary"],
            command=p.get("command", ""),
            feasible=p.get("feasible", True),
            reason_if_not=p.get("reason_if_not", ""),
        )
    return ActionResult(
        decision_id=d["decision_id"],
        action=d["action"],
        target=entity_from_dict(d["target"]),
        status=ActionStatus(d["status"]),
        detail=d["detail"],
        plan=plan,
        rail=d.get("rail", ""),
        at=_required_time(d["at"]),
    )


def decision_to_dict(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "action": d.action,
        "target": entity_to_dict(d.target),
        "mode": d.mode.value,
        "reason": d.reason,
        "rule": d.rule,
        "params": plain(dict(d.params)),
        "basis": d.basis.value,
        "rung": int(d.rung) if d.rung is not None else None,
        "step": d.step,
        "restore": d.restore,
        "resolve": d.resolve.value if d.resolve is not None else None,
        "finding": finding_to_dict(d.finding),
    }


# Before Decision had typed fields, policy kept them in ``params``: rows written then still load.
_LEGACY_PARAMS = ("basis", "rung", "restore", "resolve_target")
_LEGACY_RUNGS = {"notify": Rung.NOTIFY, "prepare": Rung.PREPARE, "act": Rung.ACT}


def decision_from_dict(d: dict[str, Any]) -> Decision:
    params = dict(d.get("params", {}))
    legacy = {k: params.pop(k) for k in _LEGACY_PARAMS if k in params}
    rung = d.get("rung")
    if rung is None and legacy.get("rung") in _LEGACY_RUNGS:
        rung = _LEGACY_RUNGS[legacy["rung"]]
    resolve = d.get("resolve", legacy.get("resolve_target"))
    f = d["finding"]
    return Decision(
        action=d["action"],
        target=entity_from_dict(d["target"]),
        mode=Mode(d["mode"]),
        reason=d["reason"],
        finding=finding_from_dict(f) if "evidence" in f else _legacy_finding(f),
        rule=d.get("rule", ""),
        params=params,
        basis=Basis(d.get("basis", legacy.get("basis", Basis.CONFIRMED))),
        rung=Rung(rung) if rung is not None else None,
        step=d.get("step", ""),
        restore=bool(d.get("restore", legacy.get("restore", False))),
        resolve=Resolve(resolve) if resolve else None,
        id=d["id"],
    )


def _legacy_finding(f: dict[str, Any]) -> Finding:
    """A decision's finding as the outcome tracker wrote it before this codec: epoch seconds, the
    evidence's summary and recent values only."""
    return Finding(
        detector=f["detector"],
        signal=f["signal"],
        entity=entity_from_dict(f["entity"]),
        score=float(f["score"]),
        observed_at=from_epoch(f["observed_at"]),
        evidence=Evidence(f["summary"], recent=tuple(f.get("recent", ()))),
        confirmed=bool(f.get("confirmed")),
        severity=Severity(f["severity"]) if f.get("severity") else None,
        id=f["id"],
    )


def decision_to_json(d: Decision) -> str:
    return json.dumps(decision_to_dict(d), ensure_ascii=False, allow_nan=False)


def decision_from_json(text: str) -> Decision:
    return decision_from_dict(json.loads(text))


def notification_to_json(n: Notification) -> str:
    return json.dumps(
        {
            "id": n.id,
            "key": n.key,
            "severity": n.severity.value,
            "title": n.title,
            "summary": n.summary,
            "entity": entity_to_dict(n.entity) if n.entity else None,
            "findings": [finding_to_dict(f) for f in n.findings],
            "results": [result_to_dict(r) for r in n.results],
            "resolved": n.resolved,
            "cycle_id": n.cycle_id,
            "labels": dict(n.labels),
            "test": n.test,
            "kind": n.kind.value,
        },
        ensure_ascii=False,
        allow_nan=False,
    )


def notification_from_json(text: str) -> Notification:
    d = json.loads(text)
    return Notification(
        id=d["id"],
        key=d["key"],
        severity=Severity(d["severity"]),
        title=d["title"],
        summary=d["summary"],
        entity=entity_from_dict(d["entity"]) if d.get("entity") else None,
        findings=tuple(finding_from_dict(f) for f in d.get("findings", ())),
        results=tuple(result_from_dict(r) for r in d.get("results", ())),
        resolved=bool(d.get("resolved", False)),
        cycle_id=d.get("cycle_id", ""),
        labels=dict(d.get("labels", {})),
        test=bool(d.get("test", False)),
        kind=NotificationKind(d["kind"]) if "kind" in d else _legacy_kind(d["key"], bool(d.get("test"))),
    )


# Outbox rows from before Notification.kind told the kind by a key prefix.
_LEGACY_PREFIXES = {"action:": NotificationKind.ACTION, "storm:": NotificationKind.STORM,
                    "advisor:": NotificationKind.DIGEST}


def _legacy_kind(key: str, test: bool) -> NotificationKind:
    if test:
        return NotificationKind.TEST
    return next((kind for prefix, kind in _LEGACY_PREFIXES.items() if key.startswith(prefix)), NotificationKind.FINDING)
