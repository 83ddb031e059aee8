"""deploy/rbac/clusterrole.yaml grants exactly what the code uses: every remediation path runs
with the service-account token without a single 403, every granted verb is exercised, and
anything else is refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aiops.engine.act import Actor
from aiops.engine.leader import LeaseElector
from aiops.kube.client import build_api_client
from aiops.model import ActionStatus, Entity
from aiops.state import Store
from aiops.testing.kubeapi import SA_TOKEN, SA_USER, KubeApiServer
from aiops.testing.kubeapi_objects import make_argo_application, make_deployment, make_hpa, make_statefulset
from tests.engine.kubecluster import CLUSTER_ROLE, NOW, decision, finding, make_config, seed_workload


def _granted() -> set[tuple[str, str, str]]:
    [role] = [d for d in yaml.safe_load_all(CLUSTER_ROLE.read_text()) if d and d["kind"] == "ClusterRole"]
    [own] = [d for d in yaml.safe_load_all(CLUSTER_ROLE.with_name("role.yaml").read_text()) if d and d["kind"] == "Role"]
    out = set()
    for rule in role["rules"] + own["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {rule}"
        out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


def test_cluster_role_is_exactly_what_the_code_uses(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    crash_looping = server.get("Pod", "web-2")  # not Ready: restarted by a DELETE, a Ready pod by an eviction
    crash_looping["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    server.put(crash_looping)
    seed_workload(server, "llm", ["gpu-2", "gpu-3"], labels={"aiops.io/model": "llama"})
    server.seed(make_hpa("llm", target="llm", min_replicas=2, max_replicas=6, current=2))
    server.seed(make_statefulset("vdb", replicas=2))
    # A model served by a Deployment that Argo CD manages: rollback_model patches the Application.
    server.seed(
        make_deployment(
            "gen",
            annotations={"argocd.argoproj.io/tracking-id": "gen:apps/Deployment:default/gen"},
            labels={"aiops.io/model": "gen"},
        ),
        make_argo_application("gen", dest_namespace="default", history=["a1" * 20, "b2" * 20]),
    )
    config = make_config(
        server,
        tmp_path,
        leader=True,
        cooldown="0s",
        max_pods_per_workload=10,
        auto_uncordon=True,
        uncordon_after="1m",
        max_actions_per_hour=10,
    )
    api = build_api_client(config.kubernetes)  # the kubeconfig carries the service-account token
    actor = Actor(config, Store(config.state.path), api=api, elector=LeaseElector.from_config(api, config.kubernetes))
    actor.start()
    try:
        assert actor.elector is not None and actor.elector.try_acquire_or_renew()  # create, then get + update
        model = Entity("model", "llama", "default")
        latency = finding("inference_latency_p99", model, recent=(0.3,))
        node = Entity("node", "gpu-1")
        node_down = finding("node_ready", node)
        decisions = [
            decision("restart_pod", Entity("pod", "web-1", "default")),
            decision("restart_pod", Entity("pod", "web-2", "default")),
            decision("restart_pod", Entity("pod", "llm-0", "default"), strategy="rollout"),
            decision("scale_ahead", model, latency, resolve_target="owner"),
            decision("scale_ahead", Entity("statefulset", "vdb", "default"), latency),
            decision("evacuate_node", node, node_down),
            decision(
                "rollback_model",
                Entity("model", "gen", "default"),
                finding("model_accuracy", Entity("model", "gen", "default")),
            ),
        ]
        results = actor.act(decisions, findings=[latency, node_down], degraded=False, now=NOW)
        assert all(r.status in (ActionStatus.APPLIED, ActionStatus.DEFERRED) for r in results), [
            r.detail for r in results
        ]
        assert results[-1].target.kind == "application"
        # Healthy again: scale-ahead restores, the node is uncordoned.
        later = []
        for minutes in (5, 40, 80):
            later += actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes))
        assert sorted(r.action for r in later if r.status is ActionStatus.APPLIED) == [
            "evacuate_node",
            "scale_ahead",
            "scale_ahead",
        ]
    finally:
        actor.close()

    sa = [r for r in server.requests if r.user == SA_USER]
    assert not [r for r in sa if r.status == 403], "the service account was refused something the code does"
    used = {(r.group, f"{r.resource}/{r.subresource}" if r.subresource else r.resource, r.verb) for r in sa}
    assert used == _granted()


@pytest.mark.parametrize(
    "call",
    [
        lambda api: client.CoreV1Api(api).delete_node("gpu-1"),
        lambda api: client.CoreV1Api(api).list_namespaced_config_map("aiops"),
        lambda api: client.CoreV1Api(api).patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "b"}}}),
        lambda api: client.AppsV1Api(api).delete_namespaced_deployment("web", "default"),
        lambda api: client.CoordinationV1Api(api).delete_namespaced_lease("aiops-leader", "aiops"),
        lambda api: client.CoordinationV1Api(api).read_namespaced_lease("kube-scheduler", "kube-system"),
        lambda api: client.CoreV1Api(api).read_namespaced_config_map("kube-proxy", "kube-system"),
        # The Role holds in the daemon's namespace only: the same names elsewhere are refused.
        lambda api: client.CoreV1Api(api).read_namespaced_config_map("aiops-control", "default"),
        lambda api: client.CoordinationV1Api(api).read_namespaced_lease("aiops-leader", "kube-system"),
    ],
    ids=[
        "delete-node",
        "list-configmaps",
        "patch-pod",
        "delete-deployment",
        "delete-lease",
        "other-lease",
        "other-configmap",
        "control-configmap-elsewhere",
        "leader-lease-elsewhere",
    ],
)
def test_the_service_account_can_do_nothing_else(server: KubeApiServer, call) -> None:
    with pytest.raises(ApiException) as info:
        call(server.api_client(SA_TOKEN))
    assert info.value.status == 403


def test_shard_leases_need_exactly_the_shard_role(tmp_path: Path) -> None:
    """With sharding on, deploy/rbac/role-shards.yaml is what the shard rounds use, all of it;
    without it the service account cannot count the replicas (list) or make a shard's Lease."""
    from aiops.engine.shards import ShardLeases
    from aiops.testing.kubeapi_rbac import load_cluster_role, load_roles

    shard_role = CLUSTER_ROLE.with_name("role-shards.yaml")
    rules = load_cluster_role(CLUSTER_ROLE) + load_roles(CLUSTER_ROLE.with_name("role.yaml"))

    def rounds(server: KubeApiServer) -> tuple[ShardLeases, ShardLeases]:
        pair = tuple(
            ShardLeases(server.api_client(SA_TOKEN), namespace="aiops", prefix="aiops-shard", shards=3, identity=n)
            for n in ("a", "b")
        )
        for _ in range(3):
            for r in pair:
                r.round()
        pair[0].stop(release=True)  # release: get + update
        return pair  # type: ignore[return-value]

    with KubeApiServer(rules=rules + load_roles(shard_role)) as server:
        a, b = rounds(server)
        assert a.last_error is None and b.last_error is None and b.held()
        sa = [r for r in server.requests if r.user == SA_USER]
        assert not [r for r in sa if r.status == 403]
        used = {(r.group, r.resource, r.verb) for r in sa}
        [granted] = yaml.safe_load(shard_role.read_text())["rules"]
        assert used == {("coordination.k8s.io", "leases", v) for v in granted["verbs"]}
        b.stop(release=True)

    with KubeApiServer(rules=rules) as server:
        a, b = rounds(server)
        assert a.last_error is not None and a.last_error.status == 403 and not b.held()
        b.stop(release=True)
