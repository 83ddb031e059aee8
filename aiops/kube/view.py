"""ClusterView: an immutable snapshot of the cluster objects remediations plan against.

Remediations are pure functions of (decision, view); they never build a client. The snapshot is
read once per cycle (:func:`aiops.kube.read.read_cluster_view`) or built directly in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from aiops.model import Entity, EntityKind

# Labels that name the model a workload serves, in order of preference.
MODEL_LABELS = ("aiops.io/model", "app.kubernetes.io/name", "model")
# Entity attributes that name the node an entity runs on (dcgm-exporter uses Hostname).
NODE_ATTRIBUTES = ("node", "Hostname", "instance", "kubernetes_node")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
REMEDIATE_LABEL = "aiops.io/remediate"


@dataclass(frozen=True)
class OwnerRef:
    kind: str  # as in ownerReferences: "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", ...
    name: str
    controller: bool = True


@dataclass(frozen=True)
class NodeInfo:
    name: str
    unschedulable: bool = False
    ready: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""

    @property
    def entity(self) -> Entity:
        return Entity(EntityKind.NODE, self.name)


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    node: str = ""
    phase: str = "Running"
    ready: bool = True
    terminating: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()
    uid: str = ""

    @property
    def controller(self) -> OwnerRef | None:
        return next((o for o in self.owners if o.controller), None)

    @property
    def is_daemonset(self) -> bool:
        c = self.controller
        return c is not None and c.kind == "DaemonSet"

    @property
    def is_mirror(self) -> bool:
        return MIRROR_ANNOTATION in self.annotations

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def entity(self) -> Entity:
        return Entity(EntityKind.POD, self.name, self.namespace, (("node", self.node),) if self.node else ())


@dataclass(frozen=True)
class WorkloadInfo:
    kind: EntityKind  # DEPLOYMENT, STATEFULSET or REPLICASET: the kinds read.py lists (no DaemonSets)
    name: str
    namespace: str
    replicas: int = 1
    ready_replicas: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()
    uid: str = ""
    # A paused Deployment does not roll out: a rollback or restart on it would never complete.
    paused: bool = False

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def entity(self) -> Entity:
        return Entity(self.kind, self.name, self.namespace)

    @property
    def unavailable(self) -> int:
        return max(0, self.replicas - self.ready_replicas)


@dataclass(frozen=True)
class HpaInfo:
    name: str
    namespace: str
    target_kind: str  # "deployment" / "statefulset"
    target_name: str
    min_replicas: int
    max_replicas: int
    current_replicas: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def entity(self) -> Entity:
        return Entity(EntityKind.HPA, self.name, self.namespace)


@dataclass(frozen=True)
class PdbInfo:
    name: str
    namespace: str
    match_labels: Mapping[str, str]
    disruptions_allowed: int

    def selects(self, pod: PodInfo) -> bool:
        return pod.namespace == self.namespace and bool(self.match_labels) and all(
            pod.labels.get(k) == v for k, v in self.match_labels.items()
        )


@dataclass(frozen=True)
class ClusterView:
    taken_at: datetime
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)
    pods: tuple[PodInfo, ...] = ()
    workloads: Mapping[str, WorkloadInfo] = field(default_factory=dict)  # by WorkloadInfo.key
    hpas: tuple[HpaInfo, ...] = ()
    pdbs: tuple[PdbInfo, ...] = ()
    # Rollout history and Argo CD Applications, for model rollback (see the section at the end).
    revisions: tuple[RevisionInfo, ...] = ()
    applications: tuple[ArgoAppInfo, ...] = ()

    # -- lookups ---------------------------------------------------------------------------
    def node(self, name: str) -> NodeInfo | None:
        return self.nodes.get(name)

    # Indexes built on first use: a view of a large cluster is queried per pod while planning.
    @cached_property
    def _pods_by_key(self) -> dict[tuple[str, str], PodInfo]:
        return {(p.namespace, p.name): p for p in self.pods}

    @cached_property
    def _pods_by_node(self) -> dict[str, list[PodInfo]]:
        out: dict[str, list[PodInfo]] = {}
        for p in self.pods:
            out.setdefault(p.node, []).append(p)
        return out

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return self._pods_by_key.get((namespace, name))

    def pods_on(self, node: str) -> list[PodInfo]:
        return list(self._pods_by_node.get(node, ()))

    def uid_of(self, entity: Entity) -> str:
        """The object's uid, for Events that `kubectl describe` shows ("" when unknown)."""
        if entity.kind == EntityKind.NODE:
            node = self.node(entity.name)
            return node.uid if node else ""
        if entity.kind == EntityKind.POD:
            pod = self.pod(entity.namespace, entity.name)
            return pod.uid if pod else ""
        workload = self.workload(entity.kind, entity.namespace, entity.name)
        return workload.uid if workload else ""

    def workload(self, kind: str, namespace: str, name: str) -> WorkloadInfo | None:
        return self.workloads.get(f"{kind}/{namespace}/{name}")

    def owner_of(self, pod: PodInfo) -> WorkloadInfo | None:
        """The workload that manages a pod: a ReplicaSet resolves to its Deployment."""
        ref = pod.controller
        if ref is None:
            return None
        owner = self.workload(ref.kind.lower(), pod.namespace, ref.name)
        if owner is not None and owner.kind == EntityKind.REPLICASET:
            parent = next((o for o in owner.owners if o.controller and o.kind == "Deployment"), None)
            if parent is not None:
                return self.workload(EntityKind.DEPLOYMENT, pod.namespace, parent.name) or owner
        return owner

    def hpa_for(self, workload: WorkloadInfo) -> HpaInfo | None:
        return next(
            (
                h
                for h in self.hpas
                if h.namespace == workload.namespace and h.target_kind == workload.kind and h.target_name == workload.name
            ),
            None,
        )

    def pdbs_for(self, pod: PodInfo) -> list[PdbInfo]:
        return [b for b in self.pdbs if b.selects(pod)]

    @property
    def cordoned(self) -> list[str]:
        return sorted(n.name for n in self.nodes.values() if n.unschedulable)

    # -- resolving decision targets ----------------------------------------------------------
    def node_for(self, entity: Entity) -> NodeInfo | None:
        """The node an entity is or runs on (a GPU's Hostname, a pod's spec.nodeName)."""
        if entity.kind == EntityKind.NODE:
            return self.node(entity.name)
        for attr in NODE_ATTRIBUTES:
            value = entity.attr(attr).split(":")[0]
            if value and value in self.nodes:
                return self.nodes[value]
        if entity.kind == EntityKind.POD:
            pod = self.pod(entity.namespace, entity.name)
            if pod is not None and pod.node:
                return self.node(pod.node)
        return None

    def owner_for(self, entity: Entity) -> WorkloadInfo | None:
        """The Deployment/StatefulSet behind an entity (a pod, a model, a workload, an HPA)."""
        if entity.kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
            return self.workload(entity.kind, entity.namespace, entity.name)
        if entity.kind == EntityKind.POD:
            pod = self.pod(entity.namespace, entity.name)
            return self.owner_of(pod) if pod is not None else None
        if entity.kind == EntityKind.HPA:
            hpa = next((h for h in self.hpas if h.namespace == entity.namespace and h.name == entity.name), None)
            return self.workload(hpa.target_kind, hpa.namespace, hpa.target_name) if hpa else None
        if entity.kind == EntityKind.MODEL:
            candidates = [
                w for w in self.workloads.values()
                if w.kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET) and (not entity.namespace or w.namespace == entity.namespace)
            ]
            for label in MODEL_LABELS:
                found = sorted((w for w in candidates if w.labels.get(label) == entity.name), key=lambda w: w.key)
                if found:
                    return found[0]
            return next((w for w in sorted(candidates, key=lambda w: w.key) if w.name == entity.name), None)
        return None

    def resolve(self, entity: Entity, how: str) -> Entity | None:
        """The decision target for a policy rule's ``target`` ("entity", "node", "owner")."""
        if how == "node":
            node = self.node_for(entity)
            return node.entity if node else None
        if how == "owner":
            owner = self.owner_for(entity)
            return owner.entity if owner else None
        return entity

    def remediate_marks(self, entity: Entity) -> tuple[str, ...]:
        """Every aiops.io/remediate value on the entity, as label or annotation, and on the
        workload that owns it (a mark on a Deployment covers its pods)."""
        objects: list[Any]
        if entity.kind == EntityKind.NODE:
            objects = [self.node(entity.name)]
        elif entity.kind == EntityKind.POD:
            pod = self.pod(entity.namespace, entity.name)
            objects = [pod, self.owner_of(pod)] if pod else []
        elif entity.kind == EntityKind.HPA:
            objects = [self.owner_for(entity)]
        else:
            objects = [self.workload(entity.kind, entity.namespace, entity.name)]
        return tuple(
            str(marks[REMEDIATE_LABEL])
            for obj in objects if obj is not None
            for marks in (obj.labels, getattr(obj, "annotations", {}))
            if REMEDIATE_LABEL in marks
        )

    def labels_of(self, entity: Entity) -> Mapping[str, str]:
        """The labels that decide opt-out/opt-in for an entity."""
        if entity.kind == EntityKind.NODE:
            node = self.node(entity.name)
            return node.labels if node else {}
        if entity.kind == EntityKind.POD:
            # A pod inherits its workload's labels here, so that aiops.io/remediate on a
            # Deployment covers its pods; the pod's own label wins.
            pod = self.pod(entity.namespace, entity.name)
            if pod is None:
                return {}
            owner = self.owner_of(pod)
            return {**(owner.labels if owner else {}), **pod.labels}
        if entity.kind == EntityKind.HPA:
            owner = self.owner_for(entity)
            return owner.labels if owner else {}
        workload = self.workload(entity.kind, entity.namespace, entity.name)
        return workload.labels if workload else {}


# --- Rollout history and Argo CD Applications (model rollback; remediations/rollback_model.py) ---
# Built from raw API objects by the two ``from_object`` constructors, so the reader only lists
# ReplicaSets (already read) and ``argoproj.io/v1alpha1`` Applications (absent CRD: none).

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH = "pod-template-hash"
ARGO_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE_LABEL = "app.kubernetes.io/instance"


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of a Deployment, as ``kubectl rollout history`` lists it: a ReplicaSet."""

    deployment: str
    namespace: str
    revision: int
    replicaset: str
    # The ReplicaSet's pod template without its pod-template-hash label: what an undo restores.
    template: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    change_cause: str = ""
    replicas: int = 0  # the ReplicaSet's desired and ready pods: a rollout is complete when the
    ready_replicas: int = 0  # newest revision has all of them ready and older ones have none

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(str(c.get("image", "")) for c in (self.template.get("spec") or {}).get("containers") or ())

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RevisionInfo | None:
        """From a ReplicaSet; None when no Deployment controls it or it carries no revision."""
        meta = obj.get("metadata") or {}
        owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller") and o.get("kind") == "Deployment"), None)
        raw = (meta.get("annotations") or {}).get(REVISION_ANNOTATION, "")
        if owner is None or not str(raw).isdigit():
            return None
        template = dict((obj.get("spec") or {}).get("template") or {})
        tmeta = dict(template.get("metadata") or {})
        labels = {k: v for k, v in (tmeta.get("labels") or {}).items() if k != POD_TEMPLATE_HASH}
        if labels:
            tmeta["labels"] = labels
        else:
            tmeta.pop("labels", None)
        template["metadata"] = tmeta
        return cls(
            deployment=str(owner.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            revision=int(raw),
            replicaset=str(meta.get("name", "")),
            template=template,
            created_at=str(meta.get("creationTimestamp", "")),
            change_cause=str((meta.get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION, "")),
            replicas=int((obj.get("spec") or {}).get("replicas") or 0),
            ready_replicas=int((obj.get("status") or {}).get("readyReplicas") or 0),
        )


@dataclass(frozen=True)
class ArgoHistoryEntry:
    id: int
    revision: str  # the git revision synced (first source's, for multi-source applications)
    deployed_at: str = ""
    revisions: tuple[str, ...] = ()  # multi-source applications: one per source


@dataclass(frozen=True)
class ArgoAppInfo:
    """An Argo CD ``Application``: what it deploys where, whether it self-syncs, what it synced."""

    name: str
    namespace: str
    dest_namespace: str = ""
    auto_sync: bool = False
    target_revision: str = ""
    synced_revision: str = ""
    history: tuple[ArgoHistoryEntry, ...] = ()
    # An operation (sync/rollback) requested or running: Argo CD refuses another meanwhile.
    operation_pending: bool = False
    operation_phase: str = ""  # status.operationState.phase: Running, Succeeded, Failed, Error
    operation_message: str = ""
    # The revision the last (or current) operation syncs, and when it finished (RFC 3339): tell a
    # sync that ended after a rollback from one recorded before it.
    operation_revision: str = ""
    operation_finished_at: str = ""
    health: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def entity(self) -> Entity:
        return Entity(EntityKind.APPLICATION, self.name, self.namespace)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ArgoAppInfo:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        source: Mapping[str, Any] = spec.get("source") or next(iter(spec.get("sources") or ()), {}) or {}
        op_state = status.get("operationState") or {}
        history = tuple(
            ArgoHistoryEntry(
                id=int(h.get("id", i)),
                revision=str(h.get("revision") or next(iter(h.get("revisions") or ()), "")),
                deployed_at=str(h.get("deployedAt", "")),
                revisions=tuple(str(r) for r in h.get("revisions") or ()),
            )
            for i, h in enumerate(status.get("history") or ())
        )
        sync = status.get("sync") or {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            dest_namespace=str((spec.get("destination") or {}).get("namespace", "")),
            auto_sync=(spec.get("syncPolicy") or {}).get("automated") is not None,
            target_revision=str(source.get("targetRevision", "")),
            synced_revision=str(sync.get("revision") or next(iter(sync.get("revisions") or ()), "")),
            history=history,
            operation_pending=obj.get("operation") is not None or op_state.get("phase") in ("Running", "Terminating"),
            operation_phase=str(op_state.get("phase", "")),
            operation_message=str(op_state.get("message", "")),
            operation_revision=str(
                ((obj.get("operation") or op_state.get("operation") or {}).get("sync") or {}).get("revision")
                or (op_state.get("syncResult") or {}).get("revision")
                or ""
            ),
            operation_finished_at=str(op_state.get("finishedAt") or ""),
            health=str((status.get("health") or {}).get("status", "")),
            annotations=dict(meta.get("annotations") or {}),
        )


def revisions_of(view: ClusterView, deployment: WorkloadInfo) -> list[RevisionInfo]:
    """The Deployment's revisions, oldest first."""
    return sorted(
        (r for r in view.revisions if r.namespace == deployment.namespace and r.deployment == deployment.name),
        key=lambda r: r.revision,
    )


def argo_app_name(workload: WorkloadInfo) -> tuple[str, str] | None:
    """(application namespace or "", name) from Argo CD's tracking annotation or instance label.

    The annotation (``<app>:<group>/<kind>:<ns>/<name>``, ``<app-ns>_<app>`` for apps in any
    namespace) is authoritative; the instance label is shared with Helm, so it only counts when an
    Application of that name exists (see :func:`application_for`).
    """
    tracking = workload.annotations.get(ARGO_TRACKING_ANNOTATION, "")
    if tracking:
        app = tracking.split(":", 1)[0]
        ns, _, name = app.rpartition("_")
        return ns, name
    label = workload.labels.get(ARGO_INSTANCE_LABEL, "")
    return ("", label) if label else None


def application_for(view: ClusterView, workload: WorkloadInfo) -> tuple[bool, ArgoAppInfo | None]:
    """(managed by Argo CD?, its Application if visible) for a Deployment/StatefulSet."""
    ref = argo_app_name(workload)
    if ref is None:
        return False, None
    ns, name = ref
    apps = [a for a in view.applications if a.name == name and (not ns or a.namespace == ns)]
    by_tracking = ARGO_TRACKING_ANNOTATION in workload.annotations
    if not by_tracking:  # instance label: Argo's only if such an Application deploys here
        apps = [a for a in apps if not a.dest_namespace or a.dest_namespace == workload.namespace]
        return (bool(apps), apps[0] if apps else None)
    return True, (apps[0] if apps else None)
