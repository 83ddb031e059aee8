"""How fast the test Kubernetes API server answers, so remediation tests stay cheap.

Seeds N pods over N/50 nodes and measures, through the official client with the service-account
token (TLS, RBAC on): a full ``ClusterView`` read (the daemon's per-cycle read), a pod list as raw
JSON, a single GET, an eviction, and a lease replace. Prints median/p95 milliseconds per call.

    python bench/kubeapi_server.py --pods 1000 --repeat 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client

from aiops.kube.read import read_cluster_view
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_node, make_pod

RULES = [
    {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"], "verbs": ["list"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list"]},
    {"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["list"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]


def timed(label: str, call: Callable[[], object], repeat: int) -> None:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
    print(f"{label:<34} median {statistics.median(samples):8.2f} ms   p95 {p95:8.2f} ms   (n={repeat})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    nodes = max(1, args.pods // 50)
    objects = [make_node(f"n{i}") for i in range(nodes)]
    objects += [make_pod(f"p{i}", node=f"n{i % nodes}", labels={"app": f"a{i % 20}"}) for i in range(args.pods)]
    started = time.perf_counter()
    with KubeApiServer(objects, rules=RULES) as api:
        print(f"seeded {args.pods} pods on {nodes} nodes in {(time.perf_counter() - started) * 1000:.0f} ms")
        sa = api.api_client()
        core, leases = client.CoreV1Api(sa), client.CoordinationV1Api(sa)
        timed("ClusterView read (6 lists)", lambda: read_cluster_view(sa, now=datetime.now(UTC), timeout=(5, 30)), args.repeat)
        timed(f"list {args.pods} pods (raw JSON)", lambda: core.list_pod_for_all_namespaces(_preload_content=False).data, args.repeat)
        timed("get one pod", lambda: core.read_namespaced_pod("p0", "default"), args.repeat * 5)
        victims = iter(range(args.pods))

        def evict() -> None:
            name = f"p{next(victims)}"
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="default"))
            core.create_namespaced_pod_eviction(name, "default", body)

        timed("evict one pod", evict, min(args.repeat * 5, args.pods))
        leases.create_namespaced_lease("aiops", client.V1Lease(metadata=client.V1ObjectMeta(name="bench"), spec=client.V1LeaseSpec(holder_identity="a")))

        def renew() -> None:
            lease = leases.read_namespaced_lease("bench", "aiops")
            lease.spec.renew_time = datetime.now(UTC)
            leases.replace_namespaced_lease("bench", "aiops", lease)

        timed("lease read + replace", renew, args.repeat * 5)


if __name__ == "__main__":
    main()
