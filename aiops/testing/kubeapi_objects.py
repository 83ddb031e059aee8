"""Factories for the objects tests seed into the test API server: realistic, minimal manifests.

Each returns a plain dict manifest (apiVersion, kind, metadata, spec, status) as ``kubectl get -o
json`` would show it, so tests read like cluster fixtures::

    KubeApiServer(objects=[make_node("gpu-1"), *make_replica_pods("web", 3, node="gpu-1"), make_pdb("web", min_available=2)])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]


def make_node(
    name: str,
    *,
    ready: bool = True,
    unschedulable: bool = False,
    labels: Mapping[str, str] | None = None,
    gpus: int = 0,
) -> Obj:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    spec: Obj = {"unschedulable": True} if unschedulable else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})},
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.37.0",
                "kubeProxyVersion": "v1.37.0",
                "containerRuntimeVersion": "containerd://2.1.0",
                "kernelVersion": "6.8.0-49-generic",
                "osImage": "Ubuntu 24.04.1 LTS",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "bootID": f"boot-{name}",
                "machineID": f"machine-{name}",
                "systemUUID": f"uuid-{name}",
            },
        },
    }


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    node: str = "",
    labels: Mapping[str, str] | None = None,
    owner: tuple[str, str] | None = None,  # (kind, name) of the controller, e.g. ("ReplicaSet", "web-7d4")
    ready: bool = True,
    phase: str = "Running",
    image: str = "registry.example/app:1.0",
    annotations: Mapping[str, str] | None = None,
    restarts: int = 0,
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        kind, owner_name = owner
        api_version = "v1" if kind == "Node" else "apps/v1"
        meta["ownerReferences"] = [
            {
                "apiVersion": api_version,
                "kind": kind,
                "name": owner_name,
                "uid": f"uid-{kind.lower()}-{owner_name}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec: Obj = {
        "containers": [{"name": "main", "image": image}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": ready,
                    "restartCount": restarts,
                    "image": image,
                    "imageID": f"{image}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{name}",
                    "started": ready,
                    "state": {"running": {}} if ready else {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ],
            "podIP": "10.0.0.1",
        },
    }


def make_replica_pods(
    app: str, count: int, *, namespace: str = "default", node: str = "", nodes: Sequence[str] = (), ready: bool = True
) -> list[Obj]:
    """``count`` pods of a ReplicaSet ``<app>-rs`` labelled ``app=<app>``, spread over ``nodes``."""
    placement = list(nodes) or [node]
    return [
        make_pod(
            f"{app}-{i}",
            namespace=namespace,
            node=placement[i % len(placement)],
            labels={"app": app},
            owner=("ReplicaSet", f"{app}-rs"),
            ready=ready,
        )
        for i in range(count)
    ]


def make_daemonset_pod(name: str, daemonset: str, *, node: str, namespace: str = "kube-system") -> Obj:
    return make_pod(name, namespace=namespace, node=node, labels={"app": daemonset}, owner=("DaemonSet", daemonset))


def make_daemonset(name: str, *, namespace: str = "kube-system") -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"registry.example/{name}:1"}]},
            },
        },
        "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 1},
    }


def make_deployment(
    name: str,
    *,
    namespace: str = "default",
    replicas: int = 2,
    image: str = "registry.example/app:1.0",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    selector = {"app": name}
    meta: Obj = {"name": name, "namespace": namespace, "labels": {**selector, **(labels or {})}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": dict(selector)},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def make_statefulset(
    name: str, *, namespace: str = "default", replicas: int = 2, image: str = "registry.example/app:1.0"
) -> Obj:
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(selector)},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": dict(selector)},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def make_pdb(
    name: str,
    *,
    namespace: str = "default",
    selector: Mapping[str, str] | None = None,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
) -> Obj:
    spec: Obj = {"selector": {"matchLabels": dict(selector or {"app": name})}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def make_hpa(
    name: str,
    *,
    namespace: str = "default",
    target: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 10,
    current: int = 1,
) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target or name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
        "status": {"currentReplicas": current, "desiredReplicas": current},
    }


def make_configmap(name: str, data: Mapping[str, str], *, namespace: str = "default") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def make_argo_application(
    name: str,
    *,
    namespace: str = "argocd",
    repo: str = "https://gitlab.example/ml/models.git",
    path: str = "deploy",
    revision: str = "",
    history: Sequence[str] = (),
    dest_namespace: str = "default",
    automated: bool = True,
) -> Obj:
    """An ``argoproj.io/v1alpha1`` Application; ``history`` lists deployed git revisions, oldest first."""
    spec: Obj = {
        "project": "default",
        "source": {"repoURL": repo, "path": path, "targetRevision": revision or "HEAD"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_namespace},
    }
    if automated:
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    entries = [
        {
            "id": i,
            "revision": rev,
            "deployedAt": f"2026-11-{10 + i:02d}T08:00:00Z",
            "deployStartedAt": f"2026-11-{10 + i:02d}T07:59:00Z",
            "source": {"repoURL": repo, "path": path, "targetRevision": rev},
        }
        for i, rev in enumerate(history)
    ]
    status: Obj = {
        "history": entries,
        "sync": {"status": "Synced", "revision": history[-1] if history else ""},
        "health": {"status": "Healthy"},
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": status,
    }
