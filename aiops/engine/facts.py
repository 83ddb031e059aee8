"""Cluster facts that policy needs beyond findings, read from the cycle's frame.

Who owns a pod decides whether a restart is safe (a Job's pod loses its batch work, a bare pod is
never replaced); whether a node is already cordoned and drained decides whether it needs an
evacuation; when it was last cordoned says whether a sticky XID is news. A node the cluster-autoscaler
removes (tainted ``ToBeDeletedByClusterAutoscaler``, drained and deleted by it) counts as cordoned:
the signal's query reads that taint too, so one fact answers both. A pod that finished (Succeeded,
as a completed Job's pod listed until its TTL, or Failed) is not one an evacuation must move; its
owner still counts for what is restarted. All of it comes from kube-state-metrics series in the
frame (``pod_info``, ``pod_finished``, ``node_unschedulable``), so the daemon and ``aiops replay``
decide alike, with or without access to the Kubernetes API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from aiops.config.policy import NO_OWNER as NO_OWNER  # "<none>": a pod without a controller
from aiops.config.safety import namespace_protected
from aiops.config.signals import AUTOSCALER_REMOVAL_TAINT
from aiops.model import Entity, EntityKind, Frame, Series, from_epoch

# Controllers that replace a pod that is deleted; anything else (a Job, an Argo Workflow, a
# Kubeflow PyTorchJob/MPIJob, a RayCluster, a bare pod) is not replaced, or loses the pod's work.
# An allow-list: a kind not named here is never assumed to bring a pod back.
REPLACED_BY_CONTROLLER = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController"})
# Pods an evacuation is not about, as with kubectl drain: a DaemonSet's, and static pods, whose
# mirror is created by their Node (kube_pod_info's created_by_kind "Node").
NOT_EVACUATED = frozenset({"DaemonSet", "Node"})
# A pod Pending or not Ready for longer than this is stuck, not a scale-up on its way.
STARTING_SECONDS = 15 * 60.0
# A pod that just became Ready is not in the serving latency yet: the catalog's latency signals
# are 5-minute rates, so its capacity shows there this long after.
SETTLING_SECONDS = 5 * 60.0
# The catalog's pod_restarts counts the restarts of the last 15 minutes (increase over [15m]).
RESTARTS_WINDOW_SECONDS = 15 * 60.0


def controller_replaces(kind: str | None) -> bool:
    """Whether a pod whose controller is of this kind (``ownerReferences`` or kube_pod_info's
    ``created_by_kind``) gets a new one when it is deleted or evicted; None (no controller) does not.
    The one home of the rule, for the remediations that delete or evict pods and for these facts."""
    return kind in REPLACED_BY_CONTROLLER


def left_by_evacuation(kind: str | None, *, predicted: bool) -> bool:
    """Whether an evacuation leaves a pod whose controller is of this kind (``NO_OWNER``: none) on
    its node, named for a human: a bare pod always (nothing would recreate it), and on a predicted
    failure one whose controller would not replace it (its work would restart for a failure that
    may not come). None (owner unknown) is not known to be left. The one home of the rule, for
    ``evacuate_node`` and for :meth:`ClusterFacts.drained`."""
    if kind is None:
        return False
    return kind == NO_OWNER or (predicted and not controller_replaces(kind))


@dataclass(frozen=True)
class StartingPod:
    """A pod on its way up: Pending or not yet Ready (for under ``STARTING_SECONDS``), or Ready
    for under ``SETTLING_SECONDS``."""

    pod: Entity
    # The controller that created it (a ReplicaSet's name; names are per namespace).
    creator: str
    since: datetime


@dataclass(frozen=True)
class ClusterFacts:
    # pod key -> created_by_kind ("ReplicaSet", "Job", "<none>", ...), from kube_pod_info.
    owners: Mapping[str, str] = field(default_factory=dict)
    # pod key -> node.
    pod_node: Mapping[str, str] = field(default_factory=dict)
    # node -> when it was last seen cordoned within the window (still cordoned or not).
    cordoned_at: Mapping[str, datetime] = field(default_factory=dict)
    # Nodes cordoned now (by a person, by aiops, or tainted for removal by the cluster-autoscaler).
    cordoned: frozenset[str] = frozenset()
    # node -> the pods on it an evacuation is about (not NOT_EVACUATED ones, nor finished ones, as
    # with kubectl drain): it moves them, or leaves them for a human (left_by_evacuation).
    node_pods: Mapping[str, tuple[Entity, ...]] = field(default_factory=dict)
    # False when the frame had no pod_info: nothing can be said about owners.
    knows_pods: bool = False
    # pod key -> the controller that created it (a ReplicaSet's name), from kube_pod_info.
    creators: Mapping[str, str] = field(default_factory=dict)
    # pod key -> the pod on its way up: a scale-up (or a rollout) in flight.
    starting: Mapping[str, StartingPod] = field(default_factory=dict)
    # (namespace, model name) -> the creators of the pods serving it (pod series with model_name).
    model_creators: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # Pods whose kube_pod_info stopped within the window while others' went on (deleted, evicted,
    # replaced), by key. A pod kube_pod_info never listed is unknown, not gone.
    departed: frozenset[str] = frozenset()
    # The pod_restarts series (restarts in the 15 minutes before each point), read only when a
    # decision asks whether its pod restarted (rare): nothing is computed for them each cycle.
    restarts: Sequence[Series] = ()
    # pod key -> its phase ("Succeeded", "Failed"), for the pods whose phase, seen now, says they
    # finished. A pod not here is taken as running (its phase unknown, or not finished).
    finished: Mapping[str, str] = field(default_factory=dict)
    # Nodes the cluster-autoscaler is removing now (tainted AUTOSCALER_REMOVAL_TAINT; among ``cordoned``).
    removing: frozenset[str] = frozenset()

    @classmethod
    def from_frame(cls, frame: Frame) -> ClusterFacts:
        owners: dict[str, str] = {}
        pod_node: dict[str, str] = {}
        on_node: dict[str, list[Entity]] = {}
        pods = frame.of("pod_info")
        # The collector keeps a series for its staleness window after its last point. A pod whose
        # kube_pod_info stopped before the others' (evicted, deleted) is no longer on its node;
        # when all of them stopped together (kube-state-metrics restarting), the pods are where they were.
        seen_at = [_seen_at(s) for s in pods]
        newest = max(seen_at, default=0.0)
        finished = _finished(frame.of("pod_finished"), newest)
        for s, last in zip(pods, seen_at):
            kind = s.entity.attr("created_by_kind")
            if kind:
                owners[s.entity.key] = kind
            node = s.entity.attr("node")
            if node:
                pod_node[s.entity.key] = node
                if kind not in NOT_EVACUATED and last >= newest and s.entity.key not in finished:
                    on_node.setdefault(node, []).append(s.entity)
        cordoned_at: dict[str, datetime] = {}
        cordoned: set[str] = set()
        removing: set[str] = set()
        # A node's cordon and its removal taint are two series (by their key label).
        for s in frame.of("node_unschedulable"):
            on = np.flatnonzero(np.nan_to_num(s.values) >= 0.5)
            if on.size:
                node, at = s.entity.name, from_epoch(float(s.timestamps[on[-1]]))
                cordoned_at[node] = max(at, cordoned_at.get(node, at))
                # Its last state: a Node that was deleted (or missed a scrape) stays as it was last seen.
                if on[-1] == _last_seen(s):
                    cordoned.add(node)
                    if s.entity.attr("key") == AUTOSCALER_REMOVAL_TAINT:
                        removing.add(node)
        creators = {s.entity.key: name for s in pods if (name := s.entity.attr("created_by_name"))}
        now = frame.now.timestamp()
        starting: dict[str, StartingPod] = {}
        # The series ends when the pod is Ready (the query keeps only pods on their way up), and
        # then leaves the frame's live series for its vanished ones.
        for s in (*frame.of("pod_starting"), *(v for v in frame.vanished if v.signal == "pod_starting")):
            since = _run_start(s)
            creator = s.entity.attr("created_by_name") or creators.get(s.entity.key, "")
            if not creator or since is None:
                continue
            last = _seen_at(s)
            # Starting now or ready too recently to show, after a start that was not stuck.
            if now - last <= 1.5 * frame.step_seconds + SETTLING_SECONDS and last - since <= STARTING_SECONDS:
                starting[s.entity.key] = StartingPod(s.entity, creator, from_epoch(since))
        serving: dict[tuple[str, str], set[str]] = {}
        for s in frame.series:
            model = s.entity.attr("model_name") if s.entity.kind == EntityKind.POD else None
            if model and s.entity.key in creators:
                serving.setdefault((s.entity.namespace, model), set()).add(creators[s.entity.key])
        present = {s.entity.key for s, last in zip(pods, seen_at) if last >= newest}
        departed = frozenset(
            {s.entity.key for s, last in zip(pods, seen_at) if last < newest}
            | {s.entity.key for s in frame.vanished if s.signal == "pod_info"}
        ) - present
        restarts = frame.of("pod_restarts")
        node_pods = {node: tuple(sorted(ps, key=lambda e: e.key)) for node, ps in on_node.items()}
        return cls(owners, pod_node, cordoned_at, frozenset(cordoned), node_pods, knows_pods=bool(pods),
                   removing=frozenset(removing),
                   creators=creators, starting=starting,
                   model_creators={k: frozenset(v) for k, v in serving.items()}, departed=departed, restarts=restarts,
                   finished=finished)

    def gone(self, pod: Entity) -> bool:
        """kube_pod_info listed the pod and stopped (deleted, evicted, replaced). A pod it never
        listed (kube-state-metrics sharded or relabelled) is not known to be gone."""
        return pod.key in self.departed

    def restarted_after(self, pod: Entity, since: datetime) -> bool:
        """Whether a container of the pod restarted after ``since``: the restarts of the last 15
        minutes rose above what they were at ``since``, or are counted a full window after it."""
        got = next((s for s in self.restarts if s.entity.key == pod.key), None)
        if got is None:
            return False
        t, v = got.timestamps, got.values
        at = since.timestamp()
        before = v[t <= at]
        then = float(before[-1]) if before.shape[0] and math.isfinite(before[-1]) else 0.0
        with np.errstate(invalid="ignore"):
            return bool(np.any(v[t > at] > then) or np.any((v > 0) & (t - RESTARTS_WINDOW_SECONDS >= at)))

    def scale_up_in_flight(self, target: Entity) -> list[StartingPod]:
        """Pods of ``target``'s workload on their way up now (by key); ``target`` is a model
        (the creators of the pods serving it) or a pod (its own creator)."""
        if target.kind == EntityKind.MODEL:
            owners = self.model_creators.get((target.namespace, target.name), frozenset())
        elif target.kind == EntityKind.POD and target.key in self.creators:
            owners = frozenset({self.creators[target.key]})
        else:
            return []
        return sorted((p for p in self.starting.values() if p.creator in owners and p.pod.namespace == target.namespace),
                      key=lambda p: p.pod.key)

    def owner_kind(self, pod: Entity) -> str | None:
        """The pod's owner kind, ``"<none>"`` for a bare pod, None when unknown."""
        return self.owners.get(pod.key)

    def replaced_on_delete(self, pod: Entity) -> bool | None:
        """Whether the pod's controller replaces it when deleted; None when kube_pod_info does not list it."""
        kind = self.owner_kind(pod)
        return None if kind is None else controller_replaces(kind)

    def left_on(self, node: str, *, predicted: bool, protected: Sequence[str] = ()) -> list[Entity]:
        """The pods on ``node`` an evacuation leaves for a human (on a predicted failure or not),
        those in a namespace the ``protected`` patterns match included: the rails never touch them."""
        return [
            p for p in self.node_pods.get(node, ())
            if left_by_evacuation(self.owner_kind(p), predicted=predicted)
            or (p.namespace and namespace_protected(protected, p.namespace))
        ]

    def drained(self, node: str, *, predicted: bool = False, protected: Sequence[str] = ()) -> bool:
        """Cordoned, with nothing left on it that an evacuation would move: what it leaves for a
        human (a bare pod; on a predicted failure, a Job's; a protected namespace's) stays by
        design, and does not count."""
        if node not in self.cordoned or not self.knows_pods:
            return False
        return len(self.left_on(node, predicted=predicted, protected=protected)) == len(self.node_pods.get(node, ()))


def _finished(series: Sequence[Series], newest: float) -> dict[str, str]:
    """Pod key -> phase of the pods finished now: their pod_finished series has a point as recent as
    the newest kube_pod_info (the same scrape of kube-state-metrics). A series that ended before
    says nothing about the pod now (a pod of the same name may run again, a StatefulSet's): its
    pod stays counted, as does a pod without one."""
    out: dict[str, str] = {}
    for s in series:
        if newest and _seen_at(s) >= newest:
            out[s.entity.key] = s.entity.attr("phase") or "finished"  # a query overridden without phase
    return out


def _last_seen(series: Series) -> int:
    """Index of the series' last point in the window (-1 when it has none)."""
    values = series.values
    n = len(values)
    if n and math.isfinite(values[n - 1]):
        return n - 1  # nearly every series of a cycle: no scan of the window
    seen = np.flatnonzero(np.isfinite(values))
    return int(seen[-1]) if seen.size else -1


def _run_start(series: Series) -> float | None:
    """Epoch second where the series' newest unbroken run of points began (None without points)."""
    seen = np.isfinite(series.values)
    if not seen.any():
        return None
    last = int(np.flatnonzero(seen)[-1])
    gaps = np.flatnonzero(~seen[: last + 1])
    return float(series.timestamps[gaps[-1] + 1 if gaps.size else 0])


def _seen_at(series: Series) -> float:
    """Epoch second of the series' last point (0 when it has none)."""
    i = _last_seen(series)
    return float(series.timestamps[i]) if i >= 0 else 0.0
