"""Apiserver semantics the daemon relies on, checked through the official Python client."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from aiops.testing.kubeapi import ADMIN_TOKEN, SA_TOKEN, SA_USER, KubeApiServer
from aiops.testing.kubeapi_objects import (
    make_argo_application,
    make_configmap,
    make_daemonset,
    make_hpa,
    make_node,
    make_pdb,
    make_pod,
    make_replica_pods,
    make_statefulset,
)
from aiops.testing.kubeapi_rbac import load_cluster_role


def eviction(name: str, namespace: str = "default", dry_run: bool = False) -> client.V1Eviction:
    options = client.V1DeleteOptions(dry_run=["All"]) if dry_run else None
    return client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace), delete_options=options)


def status_of(err: pytest.ExceptionInfo[ApiException]) -> dict:
    body = json.loads(err.value.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == err.value.status
    return body


# -- optimistic concurrency and creation ---------------------------------------------------------


def test_lease_replace_with_a_stale_resource_version_conflicts(sa) -> None:
    leases = client.CoordinationV1Api(sa)
    now = datetime.now(UTC)
    spec = client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15, acquire_time=now, renew_time=now)
    created = leases.create_namespaced_lease(
        "aiops", client.V1Lease(metadata=client.V1ObjectMeta(name="leader"), spec=spec)
    )
    assert created.metadata.uid and created.metadata.creation_timestamp and int(created.metadata.resource_version) > 0
    assert created.spec.renew_time == now.replace(microsecond=now.microsecond)  # MicroTime round-trips

    fresh = leases.read_namespaced_lease("leader", "aiops")
    fresh.spec.holder_identity = "b"
    replaced = leases.replace_namespaced_lease("leader", "aiops", fresh)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    created.spec.holder_identity = "c"  # still carries the first resourceVersion
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("leader", "aiops", created)
    body = status_of(err)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert body["details"] == {"name": "leader", "group": "coordination.k8s.io", "kind": "leases"}
    assert leases.read_namespaced_lease("leader", "aiops").spec.holder_identity == "b"


def test_create_of_an_existing_name_is_already_exists(sa) -> None:
    leases = client.CoordinationV1Api(sa)
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="leader"), spec=client.V1LeaseSpec(holder_identity="a"))
    leases.create_namespaced_lease("aiops", lease)
    with pytest.raises(ApiException) as err:
        leases.create_namespaced_lease("aiops", lease)
    body = status_of(err)
    assert (err.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'leases.coordination.k8s.io "leader" already exists'


def test_patch_with_a_stale_resource_version_conflicts(admin) -> None:
    core = client.CoreV1Api(admin)
    node = core.read_node("n1")
    core.patch_node("n1", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as err:
        core.patch_node(
            "n1", {"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"unschedulable": True}}
        )
    assert err.value.status == 409
    assert not core.read_node("n1").spec.unschedulable


def test_generation_moves_with_the_spec_only(admin) -> None:
    apps = client.AppsV1Api(admin)
    first = apps.read_namespaced_deployment("model", "default")
    apps.patch_namespaced_deployment("model", "default", {"metadata": {"labels": {"team": "ml"}}})
    assert apps.read_namespaced_deployment("model", "default").metadata.generation == first.metadata.generation
    apps.patch_namespaced_deployment("model", "default", {"spec": {"replicas": 4}})
    after = apps.read_namespaced_deployment("model", "default")
    assert after.metadata.generation == first.metadata.generation + 1
    assert after.status.observed_generation == after.metadata.generation and after.status.ready_replicas == 4


# -- authentication and authorisation ------------------------------------------------------------


def test_unknown_token_is_unauthorized(api: KubeApiServer) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api.api_client("not-a-token")).list_node()
    assert (err.value.status, status_of(err)["reason"]) == (401, "Unauthorized")


def test_forbidden_names_verb_resource_subresource_and_scope(sa) -> None:
    core, apps = client.CoreV1Api(sa), client.AppsV1Api(sa)
    with pytest.raises(ApiException) as err:
        core.delete_node("n1")
    body = status_of(err)
    assert (err.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        f'nodes "n1" is forbidden: User "{SA_USER}" cannot delete resource "nodes" in API group "" at the cluster scope'
    )
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("model", "default", {"spec": {"replicas": 9}})
    assert (
        'cannot patch resource "deployments" in API group "apps" in the namespace "default"'
        in status_of(err)["message"]
    )
    # Granting pods does not grant a subresource of pods.
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_status("web-0", "default")
    assert 'cannot get resource "pods/status"' in status_of(err)["message"]


def test_rules_from_a_cluster_role_manifest(tmp_path) -> None:
    manifest = tmp_path / "role.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: aiops}\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: aiops}\nrules:\n"
        "- apiGroups: ['']\n  resources: [pods/eviction]\n  verbs: [create]\n"
        "- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get]\n  resourceNames: [aiops-control]\n"
    )
    (evict, configmap) = load_cluster_role(manifest)
    assert evict.allows("create", "", "pods", "eviction", "web-0")
    assert not evict.allows("create", "", "pods", "", "web-0")
    assert configmap.allows("get", "", "configmaps", "", "aiops-control")
    assert not configmap.allows("get", "", "configmaps", "", "other")
    objects = [
        make_configmap("aiops-control", {"kill_switch": "false"}, namespace="aiops"),
        make_configmap("other", {}),
    ]
    with KubeApiServer(objects, cluster_role=manifest) as server:
        core = client.CoreV1Api(server.api_client())
        assert core.read_namespaced_config_map("aiops-control", "aiops").data == {"kill_switch": "false"}
        with pytest.raises(ApiException) as err:
            core.read_namespaced_config_map("other", "default")
        assert err.value.status == 403


def test_a_missing_cluster_role_file_grants_nothing(tmp_path) -> None:
    with KubeApiServer([make_node("n1")], cluster_role=tmp_path / "absent.yaml") as server:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(server.api_client(SA_TOKEN)).list_node()
        assert err.value.status == 403
        assert client.CoreV1Api(server.api_client(ADMIN_TOKEN)).list_node().items[0].metadata.name == "n1"


# -- eviction and disruption budgets -------------------------------------------------------------


def test_eviction_deletes_when_the_budget_allows_and_429s_when_it_is_spent(api: KubeApiServer, sa, admin) -> None:
    core, policy = client.CoreV1Api(sa), client.PolicyV1Api(admin)
    pdb = policy.read_namespaced_pod_disruption_budget("web", "default")
    assert (pdb.status.expected_pods, pdb.status.current_healthy, pdb.status.disruptions_allowed) == (3, 3, 1)
    core.create_namespaced_pod_eviction("web-0", "default", eviction("web-0"))
    assert not api.exists("Pod", "web-0")
    assert policy.read_namespaced_pod_disruption_budget("web", "default").status.disruptions_allowed == 0
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("web-1", "default", eviction("web-1"))
    body = status_of(err)
    assert (err.value.status, body["reason"]) == (429, "TooManyRequests")
    assert body["details"]["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}
    ]
    assert api.exists("Pod", "web-1")


def test_eviction_dry_run_checks_the_budget_but_keeps_the_pod(api: KubeApiServer, sa) -> None:
    core = client.CoreV1Api(sa)
    core.create_namespaced_pod_eviction("web-0", "default", eviction("web-0", dry_run=True))
    assert api.exists("Pod", "web-0")
    api.delete("Pod", "web-2")  # budget now exhausted: the dry run says so too
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("web-0", "default", eviction("web-0", dry_run=True))
    assert err.value.status == 429


def test_eviction_of_a_missing_pod_is_404(sa) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(sa).create_namespaced_pod_eviction("nope", "default", eviction("nope"))
    body = status_of(err)
    assert (err.value.status, body["reason"], body["message"]) == (404, "NotFound", 'pods "nope" not found')


def test_a_pod_under_two_budgets_cannot_be_evicted(api: KubeApiServer, sa) -> None:
    api.seed(make_pdb("web-too", selector={"app": "web"}, max_unavailable=1))
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(sa).create_namespaced_pod_eviction("web-0", "default", eviction("web-0"))
    assert err.value.status == 500
    assert "more than one PodDisruptionBudget" in status_of(err)["message"]
    assert api.exists("Pod", "web-0")


def test_unready_pods_count_against_the_budget_and_may_leave_when_it_is_met(api: KubeApiServer, sa, admin) -> None:
    api.seed(
        make_statefulset("job", replicas=3),
        *[make_pod(f"job-{i}", labels={"app": "job"}, owner=("StatefulSet", "job"), ready=i > 0) for i in range(3)],
        make_pdb("job", max_unavailable="34%"),  # of 3 replicas: 2 may be unavailable (rounded up)
    )
    pdb = client.PolicyV1Api(admin).read_namespaced_pod_disruption_budget("job", "default")
    assert (pdb.status.desired_healthy, pdb.status.current_healthy, pdb.status.disruptions_allowed) == (1, 2, 1)
    core = client.CoreV1Api(sa)
    core.create_namespaced_pod_eviction("job-0", "default", eviction("job-0"))  # unready, budget met
    core.create_namespaced_pod_eviction("job-1", "default", eviction("job-1"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("job-2", "default", eviction("job-2"))
    assert err.value.status == 429


def test_pending_and_finished_pods_are_evicted_regardless_of_budgets(api: KubeApiServer, sa) -> None:
    api.seed(make_pod("web-pending", labels={"app": "web"}, phase="Pending", ready=False))
    api.delete("Pod", "web-2")  # the budget is exhausted for running pods
    client.CoreV1Api(sa).create_namespaced_pod_eviction("web-pending", "default", eviction("web-pending"))
    assert not api.exists("Pod", "web-pending")


# -- reads, writes and dry runs -------------------------------------------------------------------


def test_label_and_field_selectors(admin, api: KubeApiServer) -> None:
    api.seed(make_pod("db-0", labels={"app": "db", "tier": "data"}, node="n2"))
    core = client.CoreV1Api(admin)

    def names(**kw: str) -> list[str]:
        return sorted(p.metadata.name for p in core.list_pod_for_all_namespaces(**kw).items)

    assert names(label_selector="app=web") == ["web-0", "web-1", "web-2"]
    assert names(label_selector="app in (db, node-exporter)") == ["db-0", "node-exporter-n1"]
    assert names(label_selector="tier,app!=web") == ["db-0"]
    assert names(label_selector="!tier,app notin (web)") == ["node-exporter-n1"]
    assert names(field_selector="spec.nodeName=n2") == ["db-0", "web-1"]
    assert names(field_selector="spec.nodeName=n1,metadata.namespace!=kube-system") == ["web-0", "web-2"]
    with pytest.raises(ApiException) as err:
        core.list_pod_for_all_namespaces(field_selector="nonsense")
    assert err.value.status == 400


def test_delete_dry_run_keeps_the_pod_and_deletion_collects_dependents(api: KubeApiServer, admin) -> None:
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    core.delete_namespaced_pod("web-0", "default", dry_run="All", grace_period_seconds=0)
    assert api.exists("Pod", "web-0")
    assert len(api.list("ReplicaSet", "default")) == 1
    apps.delete_namespaced_deployment("model", "default")
    assert api.list("ReplicaSet", "default") == []  # garbage-collected with their Deployment


def test_patch_content_types(api: KubeApiServer, admin) -> None:
    apps, custom = client.AppsV1Api(admin), client.CustomObjectsApi(admin)
    # JSON patch (a list body), as kubectl rollout undo sends.
    apps.patch_namespaced_deployment("model", "default", [{"op": "replace", "path": "/spec/replicas", "value": 5}])
    assert api.get("Deployment", "model")["spec"]["replicas"] == 5
    # Strategic merge merges containers by name.
    api.seed(make_statefulset("kv"))
    apps.patch_namespaced_stateful_set(
        "kv", "default", {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:1"}]}}}}
    )
    containers = api.get("StatefulSet", "kv")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"]
    assert api.get("StatefulSet", "kv")["status"]["updateRevision"].startswith("kv-")
    # Custom resources take merge patches (the client's choice) and refuse strategic merge, as CRDs do.
    api.seed(make_argo_application("app", history=["r1"]))
    custom.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", "app", {"spec": {"syncPolicy": None}}
    )
    assert "syncPolicy" not in api.get("Application", "app", "argocd")["spec"]
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            "argoproj.io",
            "v1alpha1",
            "argocd",
            "applications",
            "app",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert (err.value.status, status_of(err)["reason"]) == (415, "UnsupportedMediaType")


def test_hpa_and_scale_subresource(api: KubeApiServer, admin) -> None:
    api.seed(make_hpa("model", min_replicas=2, max_replicas=8, current=2))
    autoscaling = client.AutoscalingV2Api(admin)
    autoscaling.patch_namespaced_horizontal_pod_autoscaler("model", "default", {"spec": {"minReplicas": 4}})
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler("model", "default")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas, hpa.spec.scale_target_ref.name) == (4, 8, "model")
    apps = client.AppsV1Api(admin)
    apps.patch_namespaced_deployment_scale("model", "default", {"spec": {"replicas": 6}})
    assert apps.read_namespaced_deployment_scale("model", "default").spec.replicas == 6


def test_events_core_and_events_k8s_io(sa, api: KubeApiServer) -> None:
    core = client.CoreV1Api(sa)
    ref = client.V1ObjectReference(kind="Node", name="n1", api_version="v1")
    made = core.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="n1."),
            involved_object=ref,
            reason="AiopsRemediation",
            message="cordoned",
            type="Normal",
        ),
    )
    assert made.metadata.name.startswith("n1.") and made.reason == "AiopsRemediation"
    events = client.EventsV1Api(api.api_client(ADMIN_TOKEN))
    with pytest.raises(ApiException) as err:
        events.create_namespaced_event(
            "default",
            client.EventsV1Event(metadata=client.V1ObjectMeta(name="e1"), reason="X", event_time=datetime.now(UTC)),
        )
    assert err.value.status == 422 and "reportingController: Required value" in status_of(err)["message"]
    good = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="e2"),
        event_time=datetime.now(UTC),
        action="Cordon",
        reason="AiopsRemediation",
        note="cordoned n1",
        type="Normal",
        reporting_controller="aiops.io/aiops",
        reporting_instance="aiops-0",
        regarding=ref,
    )
    assert events.create_namespaced_event("default", good).note == "cordoned n1"


def test_factories_are_valid_for_the_client_models(admin, api: KubeApiServer) -> None:
    """v37 models are strict pydantic: every object the server returns must deserialise."""
    api.seed(
        make_hpa("model"), make_statefulset("kv"), make_configmap("cm", {"a": "b"}), make_daemonset("gpu-exporter")
    )
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    assert len(core.list_node().items) == 2
    assert len(core.list_pod_for_all_namespaces().items) == 4
    assert len(core.list_namespace().items) == 4
    assert len(apps.list_deployment_for_all_namespaces().items) == 1
    assert len(apps.list_replica_set_for_all_namespaces().items) == 1
    assert len(apps.list_stateful_set_for_all_namespaces().items) == 1
    assert len(apps.list_daemon_set_for_all_namespaces().items) == 2
    assert len(client.PolicyV1Api(admin).list_pod_disruption_budget_for_all_namespaces().items) == 1
    assert len(client.AutoscalingV2Api(admin).list_horizontal_pod_autoscaler_for_all_namespaces().items) == 1
    assert core.read_namespaced_config_map("cm", "default").data == {"a": "b"}


# -- watches, faults and the request log ----------------------------------------------------------


def test_watch_streams_changes(admin, api: KubeApiServer) -> None:
    core = client.CoreV1Api(admin)
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        for event in watch.Watch().stream(
            core.list_namespaced_pod, "default", label_selector="app=web", timeout_seconds=5
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:  # the initial ADDED events
        time.sleep(0.02)
    core.delete_namespaced_pod("web-1", "default")
    thread.join(timeout=5)
    assert sorted(seen[:3]) == [("ADDED", "web-0"), ("ADDED", "web-1"), ("ADDED", "web-2")]
    assert seen[-1] == ("DELETED", "web-1")


def test_injected_errors_and_the_request_log(api: KubeApiServer) -> None:
    config = api.configuration()
    config.retries = 0  # as the daemon configures it (urllib3 would honour Retry-After itself)
    core = client.CoreV1Api(client.ApiClient(config))
    api.fail_next(2, method="POST", path="/eviction$", status=500)
    api.fail_next(1, method="GET", path="/api/v1/nodes$", status=429, retry_after=3)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod_eviction("web-0", "default", eviction("web-0"))
        assert err.value.status == 500 and status_of(err)["reason"] == "InternalError"
    core.create_namespaced_pod_eviction("web-0", "default", eviction("web-0"))  # the third goes through
    with pytest.raises(ApiException) as err:
        core.list_node()
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "3"
    assert [r.status for r in api.requests_matching(subresource="eviction")] == [500, 500, 201]
    assert all(r.user == SA_USER for r in api.requests_matching(subresource="eviction"))
    assert not api.requests_matching(method="DELETE")  # "no delete was sent"


def test_a_hanging_request_times_out_the_client(api: KubeApiServer) -> None:
    config = api.configuration()
    config.retries = 0  # as the daemon configures it: retries are the caller's
    core = client.CoreV1Api(client.ApiClient(config))
    api.hang_next(1, path="/api/v1/nodes$", seconds=10)
    started = time.monotonic()
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        core.list_node(_request_timeout=(1, 0.5))
    assert time.monotonic() - started < 3
    assert [n.metadata.name for n in core.list_node().items] == ["n1", "n2"]  # the next one is answered


def test_server_stops_promptly_even_with_a_hanging_request(tmp_path) -> None:
    server = KubeApiServer([make_node("n1")], rules=[]).start()
    server.hang_next(1, seconds=60)
    config = server.configuration(ADMIN_TOKEN)
    config.retries = 0
    thread = threading.Thread(
        target=lambda: _swallow(client.CoreV1Api(client.ApiClient(config)).list_node), daemon=True
    )
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    thread.join(timeout=5)
    assert not thread.is_alive()


def _swallow(call) -> None:  # noqa: ANN001 - any client call
    try:
        call()
    except Exception:  # noqa: BLE001 - the connection is dropped on purpose
        pass


def test_replica_pods_and_daemonset_pods_are_told_apart(api: KubeApiServer, admin) -> None:
    api.seed(*make_replica_pods("llm", 2, nodes=["n1", "n2"]))
    pods = {p.metadata.name: p for p in client.CoreV1Api(admin).list_pod_for_all_namespaces().items}
    assert pods["llm-0"].metadata.owner_references[0].kind == "ReplicaSet"
    assert pods["node-exporter-n1"].metadata.owner_references[0].kind == "DaemonSet"


def test_lists_are_chunked_with_limit_and_continue(api: KubeApiServer, admin) -> None:
    api.seed(*make_replica_pods("llm", 5, node="n1"))
    core = client.CoreV1Api(admin)
    names, token, pages = [], None, 0
    while True:
        page = core.list_pod_for_all_namespaces(limit=3, _continue=token)
        names += [p.metadata.name for p in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 9 - len(names)
    assert pages == 3 and len(names) == len(set(names)) == 9
    assert names == [p.metadata.name for p in core.list_pod_for_all_namespaces().items]


def test_graceful_deletion_keeps_pods_terminating_until_the_kubelet_confirms() -> None:
    objects = [make_node("n1"), *make_replica_pods("web", 2, node="n1")]
    with KubeApiServer(objects, rules=[], graceful_deletion=True) as server:
        core = client.CoreV1Api(server.api_client(ADMIN_TOKEN))
        core.delete_namespaced_pod("web-0", "default", grace_period_seconds=30)
        core.create_namespaced_pod_eviction("web-1", "default", eviction("web-1"))
        for name in ("web-0", "web-1"):
            pod = core.read_namespaced_pod(name, "default")
            assert pod.metadata.deletion_timestamp is not None
        assert core.read_namespaced_pod("web-0", "default").metadata.deletion_grace_period_seconds == 30
        assert server.finish_terminations() == ["default/web-0", "default/web-1"]
        assert core.list_namespaced_pod("default").items == []


def test_delete_answers_like_the_apiserver_registries(admin, api: KubeApiServer) -> None:
    pod = client.CoreV1Api(admin).delete_namespaced_pod("web-0", "default")
    assert pod.metadata.name == "web-0"  # pods answer with the object
    status = client.AppsV1Api(admin).delete_namespaced_deployment("model", "default")  # v37: a plain dict
    assert (status["kind"], status["status"], status["details"]["name"], status["details"]["group"]) == (
        "Status",
        "Success",
        "model",
        "apps",
    )


def test_lease_patch_and_auth_reviews_through_the_client(sa, api: KubeApiServer) -> None:
    leases = client.CoordinationV1Api(api.api_client(ADMIN_TOKEN))
    leases.create_namespaced_lease(
        "aiops", client.V1Lease(metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec(holder_identity="a"))
    )
    patched = leases.patch_namespaced_lease("l", "aiops", {"spec": {"holderIdentity": "b", "leaseTransitions": 1}})
    assert (patched.spec.holder_identity, patched.spec.lease_transitions) == ("b", 1)
    reviews = client.AuthorizationV1Api(sa)

    def can(verb: str, resource: str, subresource: str = "", group: str = "") -> bool:
        attrs = client.V1ResourceAttributes(
            verb=verb, resource=resource, subresource=subresource or None, group=group, namespace="default"
        )
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))
        return reviews.create_self_subject_access_review(review).status.allowed

    assert can("create", "pods", "eviction") and can("update", "leases", group="coordination.k8s.io")
    assert not can("create", "pods") and not can("delete", "nodes")


# -- bad requests get the apiserver's 4xx, never a 500 from the fake ------------------------------

BAD_REQUESTS = [
    # (method, path, content type, body, expected code, reason)
    ("POST", "/api/v1/namespaces/default/configmaps", "application/json", b"{not json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", "application/json", b'{"data": {}}', 422, "Invalid"),
    (
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        b'{"metadata": {"name": "x", "namespace": "other"}}',
        400,
        "BadRequest",
    ),
    ("PUT", "/api/v1/nodes/n1", "application/json", b'{"metadata": {"name": "n2"}}', 400, "BadRequest"),
    (
        "PATCH",
        "/api/v1/nodes/n1",
        "application/json-patch+json",
        b'[{"op": "frobnicate", "path": "/x"}]',
        422,
        "Invalid",
    ),
    ("PATCH", "/api/v1/nodes/n1", "application/json-patch+json", b'{"spec": {}}', 422, "Invalid"),
    ("PATCH", "/api/v1/nodes/n1", "text/plain", b"{}", 415, "UnsupportedMediaType"),
    ("PATCH", "/api/v1/nodes/n1", "application/apply-patch+yaml", b"{}", 415, "UnsupportedMediaType"),
    ("PATCH", "/api/v1/nodes/absent", "application/merge-patch+json", b"{}", 404, "NotFound"),
    ("GET", "/api/v1/widgets", "", b"", 404, "NotFound"),
    ("GET", "/apis/apps/v1/namespaces/default/deployments/model/frobs", "", b"", 404, "NotFound"),
    ("GET", "/api/v1/pods?labelSelector=a%20in%20", "", b"", 400, "BadRequest"),
    ("GET", "/api/v1/pods?limit=1&continue=garbage", "", b"", 400, "BadRequest"),
    (
        "POST",
        "/api/v1/namespaces/default/pods/web-0/eviction",
        "application/json",
        b'{"metadata": {"name": "web-1"}}',
        400,
        "BadRequest",
    ),
    ("POST", "/version", "application/json", b"{}", 405, "MethodNotAllowed"),
    ("DELETE", "/api/v1/namespaces/default/pods/web-0?gracePeriodSeconds=soon", "", b"", 400, "BadRequest"),
    ("GET", "/api/v1/pods?limit=many", "", b"", 400, "BadRequest"),
    ("GET", "/api/v1/pods?watch=true&timeoutSeconds=later", "", b"", 400, "BadRequest"),
    (
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/vnd.kubernetes.protobuf",
        b"k8s\x00garbage",
        415,
        "UnsupportedMediaType",
    ),
]


@pytest.mark.parametrize(("method", "path", "ctype", "body", "code", "reason"), BAD_REQUESTS)
def test_bad_requests_get_status_errors(
    api: KubeApiServer, method: str, path: str, ctype: str, body: bytes, code: int, reason: str
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "application/json"}
    if ctype:
        headers["Content-Type"] = ctype
    resp = requests.request(
        method, api.url + path, data=body, headers=headers, verify=str(api.certificate.cert_file), timeout=5
    )
    assert resp.headers["Content-Type"] == "application/json"
    status = resp.json()
    assert (resp.status_code, status["kind"], status["code"], status["reason"]) == (code, "Status", code, reason), (
        status
    )
    assert "test API server bug" not in status.get("message", "")


def test_core_events_must_live_in_their_objects_namespace(admin) -> None:
    core = client.CoreV1Api(admin)
    pod_ref = {"kind": "Pod", "name": "web-0", "namespace": "default"}
    node_ref = {"kind": "Node", "name": "n1"}
    event = {"metadata": {"generateName": "x."}, "reason": "AiopsRemediation", "type": "Normal", "message": "m"}
    core.create_namespaced_event("default", {**event, "involvedObject": pod_ref})
    core.create_namespaced_event("default", {**event, "involvedObject": node_ref})  # cluster-scoped: "default"
    for namespace, ref in (("kube-system", pod_ref), ("aiops", node_ref)):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_event(namespace, {**event, "involvedObject": ref})
        assert err.value.status == 422 and "does not match event.namespace" in status_of(err)["message"]


def test_unhealthy_pod_eviction_policy_always_allow(api: KubeApiServer, sa) -> None:
    api.seed(
        *[make_pod(f"db-{i}", labels={"app": "db"}, ready=i == 0) for i in range(3)], make_pdb("db", min_available=2)
    )
    core = client.CoreV1Api(sa)
    with pytest.raises(ApiException) as err:  # IfHealthyBudget: 1 healthy < 2 desired, even the sick may not go
        core.create_namespaced_pod_eviction("db-1", "default", eviction("db-1"))
    assert err.value.status == 429
    pdb = api.get("PodDisruptionBudget", "db")
    pdb["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    api.put(pdb)
    core.create_namespaced_pod_eviction("db-1", "default", eviction("db-1"))
    with pytest.raises(ApiException) as err:  # the healthy one stays protected
        core.create_namespaced_pod_eviction("db-0", "default", eviction("db-0"))
    assert err.value.status == 429


def test_namespaces_must_exist_when_required() -> None:
    with KubeApiServer(rules=[], require_namespaces=True) as server:
        core = client.CoreV1Api(server.api_client(ADMIN_TOKEN))
        with pytest.raises(ApiException) as err:
            core.create_namespaced_config_map("aiops", {"metadata": {"name": "aiops-control"}})
        assert (err.value.status, status_of(err)["message"]) == (404, 'namespaces "aiops" not found')
        core.create_namespace({"metadata": {"name": "aiops"}})
        assert (
            core.create_namespaced_config_map("aiops", {"metadata": {"name": "aiops-control"}}).metadata.namespace
            == "aiops"
        )
