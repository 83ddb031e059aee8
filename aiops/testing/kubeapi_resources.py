"""The resource types the test API server serves, and the discovery documents kubectl reads.

One table drives routing, discovery, RBAC names and error messages, so a resource added here is
served consistently everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    # Subresource name -> (group, version, kind, verbs) as discovery lists them.
    subresources: dict[str, tuple[str, str, str, tuple[str, ...]]] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    # Custom resources reject strategic-merge patches (415), as CRDs do on a real apiserver.
    custom: bool = False

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """``pods`` or ``leases.coordination.k8s.io``: how apiserver messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _sub(
    kind: str, verbs: tuple[str, ...], group: str = "", version: str = ""
) -> tuple[str, str, str, tuple[str, ...]]:
    return group, version, kind, verbs


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        subresources={
            "eviction": _sub("Eviction", ("create",), "policy", "v1"),
            "status": _sub("Pod", ("get", "patch", "update")),
        },
    ),
    ResourceType(
        "",
        "v1",
        "nodes",
        "Node",
        False,
        short_names=("no",),
        subresources={"status": _sub("Node", ("get", "patch", "update"))},
    ),
    ResourceType("", "v1", "namespaces", "Namespace", False, short_names=("ns",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    ResourceType("", "v1", "events", "Event", True, short_names=("ev",)),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        subresources={
            "scale": _sub("Scale", ("get", "patch", "update"), "autoscaling", "v1"),
            "status": _sub("Deployment", ("get", "patch", "update")),
        },
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        short_names=("sts",),
        categories=("all",),
        subresources={
            "scale": _sub("Scale", ("get", "patch", "update"), "autoscaling", "v1"),
            "status": _sub("StatefulSet", ("get", "patch", "update")),
        },
    ),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",), categories=("all",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",), categories=("all",)),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        short_names=("hpa",),
        categories=("all",),
    ),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
    ResourceType(
        "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=("create",)
    ),
    ResourceType(
        "authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, verbs=("create",)
    ),
    ResourceType(
        "argoproj.io", "v1alpha1", "applications", "Application", True, short_names=("app", "apps"), custom=True
    ),
)

# Preferred order of groups in /apis, as kubectl resolves short names in that order.
GROUP_ORDER = (
    "apps",
    "events.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "policy",
    "coordination.k8s.io",
    "argoproj.io",
)


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCES:
        if rt.group == group and rt.version == version and rt.plural == plural:
            return rt
    return None


def by_kind(kind: str, group: str | None = None) -> ResourceType:
    for rt in RESOURCES:
        if rt.kind == kind and (group is None or rt.group == group):
            return rt
    raise KeyError(f"the test API server does not serve kind {kind!r}; add it to kubeapi_resources.RESOURCES")


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group_doc(group: str) -> dict[str, Any]:
    versions = sorted({rt.version for rt in RESOURCES if rt.group == group})
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g) for g in GROUP_ORDER]}


def group(name: str) -> dict[str, Any] | None:
    if name not in GROUP_ORDER:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(name)}


def resource_list(group_version: str) -> dict[str, Any] | None:
    served = [rt for rt in RESOURCES if rt.group_version == group_version]
    if not served:
        return None
    entries: list[dict[str, Any]] = []
    for rt in served:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        entries.append(entry)
        for sub, (g, v, kind, verbs) in rt.subresources.items():
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": list(verbs),
            }
            if g or v:
                sub_entry.update(group=g, version=v)
            entries.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


# --- OpenAPI v3: just enough for kubectl to see that the server validates fields itself ----------
# kubectl (apply, create -f) asks /openapi/v3 whether a kind's PATCH takes ``fieldValidation``;
# when it does, kubectl sends ``fieldValidation=Strict`` instead of validating against schemas.


def _openapi_key(group_version: str) -> str:
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


def openapi_root() -> dict[str, Any]:
    versions = sorted({rt.group_version for rt in RESOURCES})
    return {
        "paths": {
            _openapi_key(gv): {"serverRelativeURL": f"/openapi/v3/{_openapi_key(gv)}?hash=aiops"} for gv in versions
        }
    }


def openapi_group_version(path: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version (``api/v1``, ``apis/apps/v1``), or None."""
    served = [rt for rt in RESOURCES if _openapi_key(rt.group_version) == path]
    if not served:
        return None
    paths: dict[str, Any] = {}
    for rt in served:
        if "patch" not in rt.verbs:
            continue
        prefix = f"/{path}/namespaces/{{namespace}}" if rt.namespaced else f"/{path}"
        params = [
            {"name": n, "in": "query", "schema": {"type": "string"}}
            for n in ("dryRun", "fieldManager", "fieldValidation")
        ]
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
