"""Cluster facts that policy needs beyond findings, read from the cycle's frame.

Who owns a pod decides whether a restart is safe (a Job's pod loses its batch work, a bare pod is
never replaced); whether a node is already cordoned and drained decides whether it needs an
evacuation; when it was last cordoned says whether a sticky XID is news. A node the cluster-autoscaler
removes (tainted ``ToBeDeletedByClusterAutoscaler``, drained and deleted by it) counts as cordoned:
the signal's query reads that taint too, so one fact answers both. All of it comes from
kube-state-metrics series in the frame (``pod_info``, ``node_unschedulable``), so the daemon and
``aiops replay`` decide alike, with or without access to the Kubernetes API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from aiops.model import Entity, Frame, Series, from_epoch

# Controllers that replace a pod that is deleted; anything else (Job, bare pod) is not replaced.
REPLACED_BY_CONTROLLER = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController"})
# kube-state-metrics writes "<none>" for a pod without a controller.
NO_OWNER = "<none>"


@dataclass(frozen=True)
class ClusterFacts:
    # pod key -> created_by_kind ("ReplicaSet", "Job", "<none>", ...), from kube_pod_info.
    owners: Mapping[str, str] = field(default_factory=dict)
    # pod key -> node.
    pod_node: Mapping[str, str] = field(default_factory=dict)
    # node -> when it was last seen cordoned within the window (still cordoned or not).
    cordoned_at: Mapping[str, datetime] = field(default_factory=dict)
    # Nodes cordoned now.
    cordoned: frozenset[str] = frozenset()
    # node -> pods on it an evacuation would move (DaemonSet pods stay, as with kubectl drain).
    movable_pods: Mapping[str, int] = field(default_factory=dict)
    # False when the frame had no pod_info: nothing can be said about owners.
    knows_pods: bool = False

    @classmethod
    def from_frame(cls, frame: Frame) -> ClusterFacts:
        owners: dict[str, str] = {}
        pod_node: dict[str, str] = {}
        movable: dict[str, int] = {}
        pods = frame.of("pod_info")
        # The collector keeps a series for its staleness window after its last point. A pod whose
        # kube_pod_info stopped before the others' (evicted, deleted) is no longer on its node;
        # when all of them stopped together (kube-state-metrics restarting), the pods are where they were.
        newest = max((_seen_at(s) for s in pods), default=0.0)
        for s in pods:
            kind = s.entity.attr("created_by_kind")
            if kind:
                owners[s.entity.key] = kind
            node = s.entity.attr("node")
            if node:
                pod_node[s.entity.key] = node
                if kind != "DaemonSet" and _seen_at(s) >= newest:
                    movable[node] = movable.get(node, 0) + 1
        cordoned_at: dict[str, datetime] = {}
        cordoned: set[str] = set()
        for s in frame.of("node_unschedulable"):
            on = np.flatnonzero(np.nan_to_num(s.values) >= 0.5)
            if on.size:
                cordoned_at[s.entity.name] = from_epoch(float(s.timestamps[on[-1]]))
                # Its last state: a Node that was deleted (or missed a scrape) stays as it was last seen.
                if on[-1] == _last_seen(s):
                    cordoned.add(s.entity.name)
        return cls(owners, pod_node, cordoned_at, frozenset(cordoned), movable, knows_pods=bool(pods))

    def owner_kind(self, pod: Entity) -> str | None:
        """The pod's owner kind, ``"<none>"`` for a bare pod, None when unknown."""
        return self.owners.get(pod.key)

    def replaced_on_delete(self, pod: Entity) -> bool | None:
        kind = self.owner_kind(pod)
        return None if kind is None else kind in REPLACED_BY_CONTROLLER

    def drained(self, node: str) -> bool:
        """Cordoned, with nothing left on it that an evacuation would move."""
        return node in self.cordoned and self.knows_pods and self.movable_pods.get(node, 0) == 0


def _last_seen(series: Series) -> int:
    """Index of the series' last point in the window (-1 when it has none)."""
    seen = np.flatnonzero(np.isfinite(series.values))
    return int(seen[-1]) if seen.size else -1


def _seen_at(series: Series) -> float:
    """Epoch second of the series' last point (0 when it has none)."""
    i = _last_seen(series)
    return float(series.timestamps[i]) if i >= 0 else 0.0
