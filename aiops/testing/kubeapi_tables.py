"""Server-side printing: ``meta.k8s.io/v1`` Table responses, which ``kubectl get`` asks for.

Columns follow the apiserver's printers for the kinds the tests look at; other kinds get the
default NAME / AGE table, as custom resources without printer columns do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiops.testing.kubeapi_resources import ResourceType
from aiops.testing.kubeapi_selectors import selector_to_string

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_age(created: str | None, now: datetime | None = None) -> str:
    """``duration.HumanDuration`` from k8s.io/apimachinery."""
    if not created:
        return "<unknown>"
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _name(o: Obj) -> str:
    name: str = o["metadata"]["name"]
    return name


def _age(o: Obj) -> str:
    return human_age(o["metadata"].get("creationTimestamp"))


def _pod_status(o: Obj) -> str:
    if o["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = o.get("status", {})
    for cs in status.get("containerStatuses", ()):
        waiting = cs.get("state", {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("reason") or status.get("phase", "Unknown"))


def _pod_ready(o: Obj) -> str:
    statuses = o.get("status", {}).get("containerStatuses", ())
    total = len(o.get("spec", {}).get("containers", ()))
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(o: Obj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in o.get("status", {}).get("containerStatuses", ()))


def _node_status(o: Obj) -> str:
    ready = next((c for c in o.get("status", {}).get("conditions", ()) if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    return f"{state},SchedulingDisabled" if o.get("spec", {}).get("unschedulable") else state


def _node_roles(o: Obj) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in o["metadata"].get("labels", {}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _status(o: Obj, key: str, default: Any = 0) -> Any:
    return o.get("status", {}).get(key, default)


def _spec(o: Obj, key: str, default: Any = "") -> Any:
    return o.get("spec", {}).get(key, default)


def _images(o: Obj) -> str:
    return ",".join(
        c.get("image", "") for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", ())
    )


def _selector(o: Obj) -> str:
    return selector_to_string(o.get("spec", {}).get("selector") or {}) or "<none>"


COLUMNS: dict[str, Sequence[Column]] = {
    "Pod": (
        ("Name", "string", 0, _name),
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, lambda o: str(_restarts(o))),
        ("Age", "string", 0, _age),
        ("IP", "string", 1, lambda o: _status(o, "podIP", "<none>")),
        ("Node", "string", 1, lambda o: _spec(o, "nodeName", "<none>")),
    ),
    "Node": (
        ("Name", "string", 0, _name),
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        ("Age", "string", 0, _age),
        ("Version", "string", 0, lambda o: o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")),
    ),
    "Namespace": (
        ("Name", "string", 0, _name),
        ("Status", "string", 0, lambda o: _status(o, "phase", "Active")),
        ("Age", "string", 0, _age),
    ),
    "Deployment": (
        ("Name", "string", 0, _name),
        ("Ready", "string", 0, lambda o: f"{_status(o, 'readyReplicas')}/{_spec(o, 'replicas', 1)}"),
        ("Up-to-date", "integer", 0, lambda o: _status(o, "updatedReplicas")),
        ("Available", "integer", 0, lambda o: _status(o, "availableReplicas")),
        ("Age", "string", 0, _age),
        ("Images", "string", 1, _images),
        ("Selector", "string", 1, _selector),
    ),
    "ReplicaSet": (
        ("Name", "string", 0, _name),
        ("Desired", "integer", 0, lambda o: _spec(o, "replicas", 1)),
        ("Current", "integer", 0, lambda o: _status(o, "replicas")),
        ("Ready", "integer", 0, lambda o: _status(o, "readyReplicas")),
        ("Age", "string", 0, _age),
        ("Images", "string", 1, _images),
    ),
    "StatefulSet": (
        ("Name", "string", 0, _name),
        ("Ready", "string", 0, lambda o: f"{_status(o, 'readyReplicas')}/{_spec(o, 'replicas', 1)}"),
        ("Age", "string", 0, _age),
    ),
    "PodDisruptionBudget": (
        ("Name", "string", 0, _name),
        ("Min Available", "string", 0, lambda o: str(_spec(o, "minAvailable", "N/A"))),
        ("Max Unavailable", "string", 0, lambda o: str(_spec(o, "maxUnavailable", "N/A"))),
        ("Allowed Disruptions", "integer", 0, lambda o: _status(o, "disruptionsAllowed")),
        ("Age", "string", 0, _age),
    ),
    "HorizontalPodAutoscaler": (
        ("Name", "string", 0, _name),
        (
            "Reference",
            "string",
            0,
            lambda o: (
                f"{_spec(o, 'scaleTargetRef', {}).get('kind', '')}/{_spec(o, 'scaleTargetRef', {}).get('name', '')}"
            ),
        ),
        ("MinPods", "string", 0, lambda o: str(_spec(o, "minReplicas", 1))),
        ("MaxPods", "integer", 0, lambda o: _spec(o, "maxReplicas", 0)),
        ("Replicas", "integer", 0, lambda o: _status(o, "currentReplicas")),
        ("Age", "string", 0, _age),
    ),
    "Lease": (
        ("Name", "string", 0, _name),
        ("Holder", "string", 0, lambda o: _spec(o, "holderIdentity", "")),
        ("Age", "string", 0, _age),
    ),
    "Event": (
        (
            "Last Seen",
            "string",
            0,
            lambda o: human_age(o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")),
        ),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        (
            "Object",
            "string",
            0,
            lambda o: (
                f"{(o.get('involvedObject') or o.get('regarding') or {}).get('kind', '').lower()}/{(o.get('involvedObject') or o.get('regarding') or {}).get('name', '')}"
            ),
        ),
        ("Message", "string", 0, lambda o: o.get("message") or o.get("note", "")),
    ),
}
_DEFAULT: Sequence[Column] = (("Name", "string", 0, _name), ("Age", "string", 0, _age))


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def to_table(rt: ResourceType, items: Sequence[Obj], resource_version: str, include_object: str = "Metadata") -> Obj:
    columns = COLUMNS.get(rt.kind, _DEFAULT)
    rows = []
    for item in items:
        if include_object == "Object":
            embedded: Obj = item
        elif include_object == "None":
            embedded = {}
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]}
        rows.append({"cells": [cell(item) for *_, cell in columns], "object": embedded})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": p}
            for n, t, p, _ in columns
        ],
        "rows": rows,
    }
