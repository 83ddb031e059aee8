"""The little of the controller-manager the tests need, run synchronously on each write.

- Deployment controller: a new pod template gets a new ReplicaSet revision; a template equal to an
  older ReplicaSet's (``kubectl rollout undo``) promotes that ReplicaSet to the next revision, as
  ``deployment.kubernetes.io/revision`` accounting does in kube-controller-manager.
- Disruption controller: PodDisruptionBudget status (currentHealthy, desiredHealthy,
  disruptionsAllowed) computed from the pods, and the eviction subresource's decision.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from aiops.testing.kubeapi_resources import ResourceType, by_kind
from aiops.testing.kubeapi_selectors import selector_matches
from aiops.testing.kubeapi_store import ApiError, Obj, ObjectStore, now_rfc3339

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
# Deployment annotations the controller does not copy onto its ReplicaSets.
_NOT_COPIED = {
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "kubectl.kubernetes.io/last-applied-configuration",
}

PODS = by_kind("Pod")
REPLICASETS = by_kind("ReplicaSet")
DEPLOYMENTS = by_kind("Deployment")
PDBS = by_kind("PodDisruptionBudget")


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(_without_hash(template), sort_keys=True).encode()).hexdigest()
    # Same alphabet as the controller's SafeEncodeString (no vowels, no look-alikes).
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    value = int(digest[:16], 16)
    out = []
    for _ in range(10):
        value, rem = divmod(value, len(alphabet))
        out.append(alphabet[rem])
    return "".join(out)


def _without_hash(template: Obj) -> Obj:
    template = copy.deepcopy(template or {})
    labels = template.get("metadata", {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    stripped: Obj = semantic(template)
    return stripped


def semantic(value: Any) -> Any:
    """Drop empty values, as Go's typed structs cannot tell ``resources: {}`` from no resources.

    The controller compares templates with ``apiequality.Semantic.DeepEqual``; kubectl round-trips
    objects through Go types and adds such empty fields, so a plain dict comparison would see a
    ``rollout undo`` template as new.
    """
    if isinstance(value, dict):
        cleaned = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", {}, [])}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def _revision(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def owned_by(obj: Obj, owner: Obj) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"] and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences", ())
    )


class DeploymentController:
    """Keeps ReplicaSets and status of Deployments in step with their pod template.

    ``auto_rollout`` False leaves new ReplicaSets unready, to test "rollout did not complete".
    """

    def __init__(self) -> None:
        self.auto_rollout = True

    def __call__(self, store: ObjectStore, rt: ResourceType, deploy: Obj, old: Obj | None) -> None:
        ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
        template = deploy["spec"].get("template", {})
        replicas = int(deploy["spec"].get("replicas", 1))
        owned, _ = store.list(REPLICASETS, ns, lambda rs: owned_by(rs, deploy))
        if deploy["spec"].get("paused") and owned:
            # A paused Deployment keeps its ReplicaSets: template changes wait for `rollout resume`.
            status = copy.deepcopy(deploy.get("status") or {})
            if status.get("observedGeneration") != deploy["metadata"].get("generation", 1):
                status["observedGeneration"] = deploy["metadata"].get("generation", 1)
                store.replace_unchecked(rt, ns, name, {**deploy, "status": status})
            return
        max_rev = max((_revision(rs) for rs in owned), default=0)
        current = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == _without_hash(template)), None)
        if current is None:
            current = store.create(REPLICASETS, ns, self._new_replicaset(deploy, max_rev + 1, replicas))
        elif _revision(current) != max_rev or current["spec"].get("replicas") != replicas:
            current = self._promote(store, current, deploy, max_rev, replicas)
        elif self.auto_rollout and current.get("status") != self._rs_status(replicas):
            current["status"] = self._rs_status(replicas)  # a held rollout finishing
            current = store.replace_unchecked(REPLICASETS, ns, current["metadata"]["name"], current)
        for rs in owned:
            if rs["metadata"]["uid"] != current["metadata"]["uid"] and rs["spec"].get("replicas", 0) != 0:
                rs["spec"]["replicas"] = 0
                rs["status"] = {"replicas": 0, "observedGeneration": rs["metadata"].get("generation", 1)}
                store.replace_unchecked(REPLICASETS, ns, rs["metadata"]["name"], rs)
        # Old revisions beyond spec.revisionHistoryLimit (default 10) are deleted, oldest first.
        limit = int(deploy["spec"].get("revisionHistoryLimit", 10))
        old_sets = sorted((rs for rs in owned if rs["metadata"]["uid"] != current["metadata"]["uid"]), key=_revision)
        for rs in old_sets[: max(0, len(old_sets) - limit)]:
            store.delete(REPLICASETS, ns, rs["metadata"]["name"])
        desired = copy.deepcopy(deploy)
        desired["metadata"].setdefault("annotations", {})[REVISION] = current["metadata"]["annotations"][REVISION]
        desired["status"] = self._status(desired, replicas, old)
        if desired != deploy:
            store.replace_unchecked(rt, ns, name, desired)

    def _new_replicaset(self, deploy: Obj, revision: int, replicas: int) -> Obj:
        template = copy.deepcopy(deploy["spec"].get("template", {}))
        pod_hash = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(deploy["spec"].get("selector", {}))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        annotations = {k: v for k, v in deploy["metadata"].get("annotations", {}).items() if k not in _NOT_COPIED}
        annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + 1)})
        return {
            "metadata": {
                "name": f"{deploy['metadata']['name']}-{pod_hash}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": deploy["metadata"]["name"],
                        "uid": deploy["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": self._rs_status(replicas),
        }

    def _promote(self, store: ObjectStore, rs: Obj, deploy: Obj, max_rev: int, replicas: int) -> Obj:
        annotations = rs["metadata"].setdefault("annotations", {})
        old_rev = _revision(rs)
        if old_rev != max_rev:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(old_rev)])
            annotations[REVISION] = str(max_rev + 1)
            # The controller copies the Deployment's annotations (change-cause) onto the new revision.
            annotations.update(
                {k: v for k, v in deploy["metadata"].get("annotations", {}).items() if k not in _NOT_COPIED}
            )
        annotations[DESIRED_REPLICAS] = str(replicas)
        rs["spec"]["replicas"] = replicas
        rs["status"] = self._rs_status(replicas)
        return store.replace_unchecked(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    def _rs_status(self, replicas: int) -> Obj:
        ready = replicas if self.auto_rollout else 0
        return {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": 1,
        }

    def _status(self, deploy: Obj, replicas: int, old: Obj | None) -> Obj:
        generation = deploy["metadata"].get("generation", 1)
        status = copy.deepcopy(deploy.get("status") or {})
        status["observedGeneration"] = generation
        status["replicas"] = replicas
        if self.auto_rollout:
            status.update(updatedReplicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
            status.pop("unavailableReplicas", None)
            progressing = ("True", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed.")
        else:
            template_changed = old is not None and old["spec"].get("template") != deploy["spec"].get("template")
            if template_changed or "updatedReplicas" not in status:
                status["updatedReplicas"] = 0
            status.setdefault("readyReplicas", 0)
            status.setdefault("availableReplicas", 0)
            status["unavailableReplicas"] = max(0, replicas - int(status["availableReplicas"]))
            progressing = ("True", "ReplicaSetUpdated", "ReplicaSet is progressing.")
        available = status.get("availableReplicas", 0) >= replicas
        stamp = now_rfc3339()
        previous = {c["type"]: c for c in status.get("conditions", ())}
        status["conditions"] = [
            _condition(
                previous.get("Available"),
                "Available",
                "True" if available else "False",
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
                stamp,
            ),
            _condition(previous.get("Progressing"), "Progressing", *progressing, stamp),
        ]
        return status


def _condition(previous: Obj | None, kind: str, status: str, reason: str, message: str, stamp: str) -> Obj:
    if previous and (previous.get("status"), previous.get("reason"), previous.get("message")) == (
        status,
        reason,
        message,
    ):
        return previous
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


def statefulset_status(store: ObjectStore, rt: ResourceType, sts: Obj, old: Obj | None) -> None:
    """StatefulSets roll out instantly; status and revisions follow the template."""
    replicas = int(sts["spec"].get("replicas", 1))
    revision = f"{sts['metadata']['name']}-{template_hash(sts['spec'].get('template', {}))}"
    status = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": replicas,
        "readyReplicas": replicas,
        "currentReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    }
    if sts.get("status") != status:
        sts["status"] = status
        store.replace_unchecked(rt, sts["metadata"]["namespace"], sts["metadata"]["name"], sts)


# --- disruption budgets and the eviction subresource -------------------------------------------


def pod_ready(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", ())
    )


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        fraction = int(value[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value)


def pdb_status(store: ObjectStore, pdb: Obj) -> Obj:
    """The status the disruption controller would write, from the pods the PDB selects now.

    ``expectedPods`` is the number of selected pods for an integer ``minAvailable``, else the
    scale of their controllers, as in kube-controller-manager.
    """
    ns = pdb["metadata"]["namespace"]
    selector = pdb["spec"].get("selector")
    pods, _ = store.list(PODS, ns, lambda p: selector_matches(selector, p["metadata"].get("labels", {})))
    spec = pdb["spec"]
    integer_min = "minAvailable" in spec and not str(spec["minAvailable"]).endswith("%")
    expected = len(pods) if integer_min else _expected_scale(store, ns, pods)
    healthy = sum(1 for p in pods if pod_ready(p))
    if "maxUnavailable" in spec:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected, round_up=True))
    elif "minAvailable" in spec:
        desired = _scaled(spec["minAvailable"], expected, round_up=True)
    else:
        desired = expected
    allowed = max(0, healthy - desired)
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": "True" if allowed > 0 else "False",
                "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 1),
                "lastTransitionTime": pdb["metadata"].get("creationTimestamp", now_rfc3339()),
            }
        ],
    }


_SCALED_KINDS = {"ReplicaSet", "StatefulSet", "Deployment"}


def _expected_scale(store: ObjectStore, namespace: str, pods: list[Obj]) -> int:
    """Sum of the replicas of the pods' controllers, as the disruption controller counts for
    percentages and maxUnavailable: an evicted pod still counts until its controller scales down.
    A pod whose controller the server does not hold counts as one."""
    total, seen = 0, set()
    for pod in pods:
        ref = next((r for r in pod["metadata"].get("ownerReferences", ()) if r.get("controller")), None)
        if ref is None or ref.get("kind") not in _SCALED_KINDS:
            total += 1
            continue
        key = (ref["kind"], ref["name"])
        if key in seen:
            continue
        try:
            owner = store.get(by_kind(ref["kind"]), namespace, ref["name"])
        except ApiError:
            total += 1
            continue
        seen.add(key)
        total += int(owner.get("spec", {}).get("replicas", 1))
    return total


def with_pdb_status(store: ObjectStore, pdb: Obj) -> Obj:
    pdb["status"] = pdb_status(store, pdb)
    return pdb


def evict(
    store: ObjectStore, namespace: str, name: str, eviction: Obj, *, dry_run: bool, graceful: bool = False
) -> Obj:
    """The eviction subresource: delete the pod if its PodDisruptionBudget allows, else 429.

    Returns the 201 Status body. Raises :class:`ApiError` (404 missing pod, 429 budget exhausted,
    500 several PDBs) with the apiserver's messages.
    """
    body_name = (eviction.get("metadata") or {}).get("name")
    if body_name and body_name != name:
        raise ApiError.bad_request("name in URL does not match name in Eviction object")
    options = eviction.get("deleteOptions") or {}
    dry_run = dry_run or "All" in (options.get("dryRun") or ())
    with store.lock:
        pod = store.get(PODS, namespace, name)
        phase = pod.get("status", {}).get("phase", "")
        # Terminal and pending pods are not counted by budgets: evicting them never needs one.
        if phase not in {"Succeeded", "Failed", "Pending"} and not pod["metadata"].get("deletionTimestamp"):
            labels = pod["metadata"].get("labels", {})
            pdbs, _ = store.list(PDBS, namespace, lambda b: selector_matches(b["spec"].get("selector"), labels))
            if len(pdbs) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                )
            if pdbs:
                pdb = pdbs[0]
                status = pdb_status(store, pdb)
                blocked = status["disruptionsAllowed"] <= 0
                if not pod_ready(pod):  # an unhealthy pod may go when the budget is met (IfHealthyBudget)
                    always = pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                    blocked = not always and status["currentHealthy"] < status["desiredHealthy"]
                if blocked:
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget {pdb['metadata']['name']} needs {status['desiredHealthy']} healthy pods and has {status['currentHealthy']} currently",
                                }
                            ]
                        },
                    )
        delete_pod(store, namespace, name, options, dry_run=dry_run, graceful=graceful)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def delete_pod(store: ObjectStore, namespace: str, name: str, options: Obj, *, dry_run: bool, graceful: bool) -> Obj:
    """DELETE of a pod. With ``graceful``, a scheduled pod given a grace period is only marked
    (``deletionTimestamp``: Terminating) until :func:`finish_terminations`, as the kubelet would."""
    with store.lock:
        pod = store.get(PODS, namespace, name)
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        meta = pod["metadata"]
        if not graceful or int(grace) <= 0 or not pod.get("spec", {}).get("nodeName"):
            return store.delete(PODS, namespace, name, dry_run=dry_run, preconditions=options.get("preconditions"))
        if meta.get("deletionTimestamp") and int(meta.get("deletionGracePeriodSeconds", grace)) <= int(grace):
            return pod  # already terminating with a grace period no longer than this one
        stamp = datetime.now(UTC) + timedelta(seconds=int(grace))
        meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["deletionGracePeriodSeconds"] = int(grace)
        return store.replace_unchecked(PODS, namespace, name, pod, dry_run=dry_run, allow_deletion_mark=True)


def finish_terminations(store: ObjectStore) -> list[str]:
    """Remove every Terminating pod (the kubelet confirming the kill); returns ``ns/name`` of each."""
    done = []
    for pod in store.list(PODS, "", lambda p: bool(p["metadata"].get("deletionTimestamp")))[0]:
        store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        done.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
    return done
