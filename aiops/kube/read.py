"""Read a :class:`ClusterView` and the daemon's control ConfigMap through the official client.

Lists are read as raw JSON (``_preload_content=False``): the view needs a few fields per object,
and skipping model deserialisation keeps a 10k-pod list cheap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client as k8s

from aiops.kube.errors import KubeApiError, classify, is_not_found
from aiops.model import Basis, EntityKind, Rung
from aiops.kube.view import (
    ArgoAppInfo,
    ClusterView,
    HpaInfo,
    NodeInfo,
    OwnerRef,
    PdbInfo,
    PodInfo,
    RevisionInfo,
    WorkloadInfo,
)

log = logging.getLogger(__name__)


def _items(
    call: Callable[..., Any], operation: str, timeout: tuple[float, float], **kwargs: Any
) -> list[dict[str, Any]]:
    try:
        resp = call(_preload_content=False, _request_timeout=timeout, **kwargs)
        data = json.loads(resp.data)
    except Exception as exc:  # sorted into temporary/permanent; anything else propagates
        raise classify(exc, operation) from None
    return list(data.get("items") or [])


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _owners(obj: Mapping[str, Any]) -> tuple[OwnerRef, ...]:
    return tuple(
        OwnerRef(str(o.get("kind", "")), str(o.get("name", "")), bool(o.get("controller", False)))
        for o in _meta(obj).get("ownerReferences") or []
    )


def _pod(obj: Mapping[str, Any]) -> PodInfo:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return PodInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        node=spec.get("nodeName") or "",
        phase=status.get("phase") or "Pending",
        ready=conditions.get("Ready") == "True",
        terminating=bool(meta.get("deletionTimestamp")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        owners=_owners(obj),
        uid=meta.get("uid") or "",
    )


def _node(obj: Mapping[str, Any]) -> NodeInfo:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return NodeInfo(
        name=meta.get("name", ""),
        unschedulable=bool(spec.get("unschedulable", False)),
        ready=conditions.get("Ready", "True") == "True",
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        uid=meta.get("uid") or "",
    )


def _workload(kind: EntityKind, obj: Mapping[str, Any]) -> WorkloadInfo:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    replicas, ready = spec.get("replicas", 1), status.get("readyReplicas", 0)
    return WorkloadInfo(
        kind=kind,
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        replicas=int(replicas if replicas is not None else 1),
        ready_replicas=int(ready or 0),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        owners=_owners(obj),
        uid=meta.get("uid") or "",
        paused=bool(spec.get("paused", False)),
    )


def _hpa(obj: Mapping[str, Any]) -> HpaInfo:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return HpaInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        target_kind=str(ref.get("kind", "")).lower(),
        target_name=str(ref.get("name", "")),
        min_replicas=int(spec.get("minReplicas") or 1),
        max_replicas=int(spec.get("maxReplicas") or 1),
        current_replicas=int(status.get("currentReplicas") or 0),
        annotations=dict(meta.get("annotations") or {}),
    )


def _pdb(obj: Mapping[str, Any]) -> PdbInfo:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    return PdbInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        match_labels=dict((spec.get("selector") or {}).get("matchLabels") or {}),
        disruptions_allowed=int(status.get("disruptionsAllowed") or 0),
    )


def read_nodes(api: k8s.ApiClient, *, timeout: tuple[float, float]) -> list[NodeInfo]:
    """Every node as it is now. Raises :class:`KubeApiError`."""
    return [_node(o) for o in _items(k8s.CoreV1Api(api).list_node, "list nodes", timeout)]


def read_cluster_view(
    api: k8s.ApiClient, *, now: datetime, timeout: tuple[float, float], namespaces: Sequence[str] = ()
) -> ClusterView:
    """One consistent-enough snapshot: nodes, pods, workloads, HPAs and PDBs.

    Raises :class:`KubeApiError` when any list fails: a partial view must not drive an action.
    """
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    autoscaling, policy = k8s.AutoscalingV2Api(api), k8s.PolicyV1Api(api)

    def each(all_ns: Callable[..., Any], namespaced: Callable[..., Any], what: str) -> list[dict[str, Any]]:
        if not namespaces:
            return _items(all_ns, f"list {what}", timeout)
        out: list[dict[str, Any]] = []
        for ns in namespaces:
            out.extend(_items(namespaced, f"list {what} in {ns}", timeout, namespace=ns))
        return out

    nodes = {n.name: n for n in read_nodes(api, timeout=timeout)}
    pods = tuple(_pod(o) for o in each(core.list_pod_for_all_namespaces, core.list_namespaced_pod, "pods"))
    workloads: dict[str, WorkloadInfo] = {}
    revisions: list[RevisionInfo] = []
    for kind, all_ns, namespaced in (
        (EntityKind.DEPLOYMENT, apps.list_deployment_for_all_namespaces, apps.list_namespaced_deployment),
        (EntityKind.STATEFULSET, apps.list_stateful_set_for_all_namespaces, apps.list_namespaced_stateful_set),
        # ReplicaSets only to resolve a pod to its Deployment; DaemonSet pods are told by ownerReferences.
        (EntityKind.REPLICASET, apps.list_replica_set_for_all_namespaces, apps.list_namespaced_replica_set),
    ):
        for obj in each(all_ns, namespaced, f"{kind}s"):
            w = _workload(kind, obj)
            workloads[w.key] = w
            if kind == EntityKind.REPLICASET and (rev := RevisionInfo.from_object(obj)) is not None:
                revisions.append(rev)
    hpas = tuple(
        _hpa(o)
        for o in each(
            autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces,
            autoscaling.list_namespaced_horizontal_pod_autoscaler,
            "horizontalpodautoscalers",
        )
    )
    pdbs = tuple(
        _pdb(o)
        for o in each(
            policy.list_pod_disruption_budget_for_all_namespaces,
            policy.list_namespaced_pod_disruption_budget,
            "poddisruptionbudgets",
        )
    )
    return ClusterView(
        taken_at=now,
        nodes=nodes,
        pods=pods,
        workloads=workloads,
        hpas=hpas,
        pdbs=pdbs,
        revisions=tuple(revisions),
        applications=_argo_applications(api, timeout),
    )


def _argo_applications(api: k8s.ApiClient, timeout: tuple[float, float]) -> tuple[ArgoAppInfo, ...]:
    """Argo CD Applications (cluster-wide: they live in Argo CD's namespace, not the workload's).

    Without Argo CD (404: no such resource) there are none. Without the right to list them (403)
    the view says so by holding none, and rollback_model then advises instead of patching a
    Deployment that Argo CD might own.
    """
    custom = k8s.CustomObjectsApi(api)
    try:
        items = _items(
            lambda **kw: custom.list_cluster_custom_object("argoproj.io", "v1alpha1", "applications", **kw),
            "list applications.argoproj.io",
            timeout,
        )
    except KubeApiError as exc:
        if exc.status in (403, 404):
            if exc.status == 403:
                log.warning(
                    "cannot list Argo CD Applications; model rollback will only advise", extra={"error": str(exc)}
                )
            return ()
        raise
    return tuple(ArgoAppInfo.from_object(o) for o in items)


def read_configmap_value(
    api: k8s.ApiClient, namespace: str, name: str, key: str, *, timeout: tuple[float, float]
) -> str | None:
    """The value of one ConfigMap key; None when the ConfigMap or the key does not exist."""
    try:
        resp: Any = k8s.CoreV1Api(api).read_namespaced_config_map(
            name, namespace, _preload_content=False, _request_timeout=timeout
        )
        data = json.loads(resp.data)  # a raw urllib3 response (no model deserialisation)
    except Exception as exc:
        err = classify(exc, f"get configmap {namespace}/{name}")
        if is_not_found(err):
            return None
        raise err from None
    value = (data.get("data") or {}).get(key)
    return None if value is None else str(value)


# Annotations aiops puts on its AiopsRemediation Events: the cluster-side ledger of its actions.
LEDGER_TARGET = "aiops.io/target"
LEDGER_ACTION = "aiops.io/action"
LEDGER_DECISION = "aiops.io/decision"
LEDGER_AT = "aiops.io/at"
LEDGER_SHARD = "aiops.io/shard"  # with sharding: the shard whose budget share the action spent
LEDGER_BASIS = "aiops.io/basis"  # confirmed, predicted or inbound: which budgets it spent (absent: confirmed)
LEDGER_RUNG = "aiops.io/rung"  # the ladder rung that began it (absent: none)
# On its AiopsDisruption Events (one per pod evicted or deleted, with LEDGER_DECISION and LEDGER_AT):
# the per-workload cap (safety.max_pods_per_workload) counts every replica's disruptions.
LEDGER_WORKLOAD = "aiops.io/workload"  # the Entity.key the writer charged: the pod's owner, or the pod
LEDGER_POD = "aiops.io/pod"  # namespace/name
# On its AiopsVerdict Events (with LEDGER_DECISION and LEDGER_AT): pending (written when the action
# is applied, with the decision and its scope), then healed or not_healed.
LEDGER_VERDICT = "aiops.io/verdict"
LEDGER_RECORD = "aiops.io/decision-record"  # the decision, aiops.kube.plan.decision_mark
LEDGER_SCOPE = "aiops.io/scope"  # the workload whose pods the finding may move to (a restarted pod's)


@dataclass(frozen=True)
class LedgerEntry:
    """One action any aiops replica took, read back from its Kubernetes Event."""

    decision_id: str
    action: str
    target: str  # Entity.key
    at: datetime
    shard: int | None = None
    basis: Basis = Basis.CONFIRMED
    rung: Rung | None = None


@dataclass(frozen=True)
class LedgerDisruption:
    """One pod any aiops replica evicted or deleted, read back from its Kubernetes Event."""

    decision_id: str
    workload: str  # Entity.key, as the writer charged it
    pod: str  # namespace/name
    at: datetime


LedgerRecord = LedgerEntry | LedgerDisruption


def _events(
    api: k8s.ApiClient, reason: str, timeout: tuple[float, float], namespaces: Sequence[str]
) -> list[dict[str, Any]]:
    """The Events of one reason in the watched namespaces (all of them when none is named)."""
    core = k8s.CoreV1Api(api)
    selector = f"reason={reason}"
    if not namespaces:
        return _items(core.list_event_for_all_namespaces, "list events", timeout, field_selector=selector)
    items: list[dict[str, Any]] = []
    for ns in sorted({*namespaces, "default"}):  # node events live in "default"
        items += _items(core.list_namespaced_event, f"list events in {ns}", timeout, namespace=ns, field_selector=selector)
    return items


def _ledger_at(notes: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(notes[LEDGER_AT]).replace("Z", "+00:00"))
    except ValueError:
        return None


def read_action_ledger(
    api: k8s.ApiClient,
    *,
    reason: str,
    timeout: tuple[float, float],
    namespaces: Sequence[str] = (),
    disruption_reason: str | None = None,
) -> list[LedgerRecord]:
    """The actions recorded in ``reason`` Events (as long as the cluster keeps events, 1 h by
    default), so that a new leader honours the cooldowns and budgets its predecessor spent; with
    ``disruption_reason``, the pod disruptions recorded in those Events too, for the per-workload
    cap. Events without the annotations a record needs (written by something else) are skipped."""
    reasons = (reason, disruption_reason) if disruption_reason else (reason,)
    items = [obj for why in reasons for obj in _events(api, why, timeout, namespaces)]
    out: list[LedgerRecord] = []
    for obj in items:
        notes = _meta(obj).get("annotations") or {}
        if not all(k in notes for k in (LEDGER_DECISION, LEDGER_AT)) or (at := _ledger_at(notes)) is None:
            continue
        if obj.get("reason") == reason and all(k in notes for k in (LEDGER_TARGET, LEDGER_ACTION)):
            shard, rung = str(notes.get(LEDGER_SHARD, "")), str(notes.get(LEDGER_RUNG, ""))
            basis = str(notes.get(LEDGER_BASIS, ""))
            out.append(
                LedgerEntry(
                    str(notes[LEDGER_DECISION]),
                    str(notes[LEDGER_ACTION]),
                    str(notes[LEDGER_TARGET]),
                    at,
                    int(shard) if shard.isdigit() else None,
                    # An older replica's Event, or one mangled: counted as confirmed, as it was.
                    Basis(basis) if basis in set(Basis) else Basis.CONFIRMED,
                    Rung(int(rung)) if rung.isdigit() and int(rung) in set(Rung) else None,
                )
            )
        elif obj.get("reason") == disruption_reason and all(k in notes for k in (LEDGER_WORKLOAD, LEDGER_POD)):
            out.append(
                LedgerDisruption(str(notes[LEDGER_DECISION]), str(notes[LEDGER_WORKLOAD]), str(notes[LEDGER_POD]), at)
            )
    return out


@dataclass(frozen=True)
class VerdictRecord:
    """One verdict Event: an action watched (``pending``, with the decision as
    :func:`aiops.kube.plan.decision_mark` wrote it) or judged (``healed``, ``not_healed``)."""

    decision_id: str
    verdict: str
    at: datetime
    decision: str | None = None
    scope: str = ""
    action: str = ""
    target: str = ""  # Entity.key


def read_verdicts(
    api: k8s.ApiClient, *, reason: str, timeout: tuple[float, float], namespaces: Sequence[str] = ()
) -> list[VerdictRecord]:
    """The actions any replica watched and the verdicts it gave (``reason`` Events, kept as long as
    the cluster keeps events). Events without the annotations a record needs are skipped."""
    out: list[VerdictRecord] = []
    for obj in _events(api, reason, timeout, namespaces):
        notes = _meta(obj).get("annotations") or {}
        if not all(k in notes for k in (LEDGER_DECISION, LEDGER_VERDICT, LEDGER_AT)) or (at := _ledger_at(notes)) is None:
            continue
        record = notes.get(LEDGER_RECORD)
        out.append(VerdictRecord(str(notes[LEDGER_DECISION]), str(notes[LEDGER_VERDICT]), at,
                                 None if record is None else str(record), str(notes.get(LEDGER_SCOPE, "")),
                                 str(notes.get(LEDGER_ACTION, "")), str(notes.get(LEDGER_TARGET, ""))))
    return out


__all__ = [
    "KubeApiError",
    "LedgerDisruption",
    "LedgerEntry",
    "LedgerRecord",
    "read_action_ledger",
    "read_cluster_view",
    "read_configmap_value",
    "read_verdicts",
    "VerdictRecord",
]
