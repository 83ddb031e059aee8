"""Each safety rail refuses with its name, writes nothing, and the order of rails holds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aiops.metrics import REGISTRY
from aiops.model import ActionStatus, Entity, Mode
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_configmap, make_pod
from tests.engine.kubecluster import (
    NOW,
    decision,
    finding,
    logged,
    make_actor,
    make_config,
    seed_workload,
    writes,
)


def pod(name: str, ns: str = "default") -> Entity:
    return Entity("pod", name, ns)


def test_restart_applies_with_event_and_grace_period(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path))
    [result] = actor.act(
        [decision("restart_pod", pod("web-0"), grace_period_seconds=7)], findings=[], degraded=False, now=NOW
    )
    assert result.status is ActionStatus.APPLIED, result.detail
    assert not server.exists("Pod", "web-0")
    # A Ready pod goes through the Eviction API (its PodDisruptionBudget holds), never a DELETE.
    [evict] = server.requests_matching(method="POST", resource="pods", subresource="eviction")
    assert evict.body["deleteOptions"]["gracePeriodSeconds"] == 7 and evict.user.startswith("system:serviceaccount:")
    assert not server.requests_matching(method="DELETE", resource="pods")
    events = [e for e in server.list("Event", "default") if e.get("reason") == "AiopsRemediation"]
    assert len(events) == 1 and events[0]["involvedObject"]["name"] == "web-0"
    assert "pod_crashlooping" in events[0]["message"]
    assert actor.errors == []


def test_kill_switch_configmap_blocks_every_write(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    server.seed(make_configmap("aiops-control", {"kill_switch": "true"}, namespace="aiops"))
    actor, _ = make_actor(make_config(server, tmp_path))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert (result.status, result.rail) == (ActionStatus.BLOCKED, "kill_switch")
    assert "aiops-control" in result.detail
    assert writes(server) == []
    # What people read names the rail once: the detail says why, the rail field says which.
    from aiops.notify.formatting import action_line

    line = action_line(result)
    assert line.count("blocked") == 1 and line.count(" rail") == 1, line


def test_kill_switch_is_read_once_per_cycle(server: KubeApiServer, tmp_path: Path) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    actor, _ = make_actor(make_config(server, tmp_path, max_pods_per_workload=10))
    results = actor.act([decision("restart_pod", pod(n)) for n in names], findings=[], degraded=False, now=NOW)
    assert [r.status for r in results] == [ActionStatus.APPLIED] * 3
    assert len(server.requests_matching(method="GET", resource="configmaps")) == 1
    # Engaged between cycles: the next cycle sees it.
    server.seed(make_configmap("aiops-control", {"kill_switch": "yes"}, namespace="aiops"))
    seed_workload(server, "llm", ["gpu-1"])
    [r] = actor.act([decision("restart_pod", pod("llm-0"))], findings=[], degraded=False, now=NOW + timedelta(hours=1))
    assert r.rail == "kill_switch"


def test_kill_switch_file_and_unreadable_configmap(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    switch = tmp_path / "stop"
    switch.touch()
    actor, _ = make_actor(make_config(server, tmp_path, kill_switch={"file": str(switch)}))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.rail == "kill_switch" and str(switch) in result.detail
    switch.unlink()
    # The ConfigMap cannot be read: fail closed, never act on an unknown switch.
    server.fail_next(5, method="GET", path="/configmaps/aiops-control", status=500)
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.rail == "kill_switch" and "cannot read" in result.detail
    assert writes(server) == []


def test_protected_namespace_and_opt_out_label(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "dns", ["gpu-1"], namespace="kube-system")
    seed_workload(server, "db", ["gpu-1"], labels={"aiops.io/remediate": "false"})
    actor, _ = make_actor(make_config(server, tmp_path))
    r1, r2 = actor.act(
        [decision("restart_pod", pod("dns-0", "kube-system")), decision("restart_pod", pod("db-0"))],
        findings=[],
        degraded=False,
        now=NOW,
    )
    assert (r1.status, r1.rail) == (ActionStatus.BLOCKED, "protected_namespace")
    assert (r2.status, r2.rail) == (ActionStatus.BLOCKED, "opt_out")
    assert writes(server) == []


def test_opt_in_mode_acts_only_on_labelled_targets(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1"])
    seed_workload(server, "llm", ["gpu-2"], labels={"aiops.io/remediate": "true"})
    actor, _ = make_actor(make_config(server, tmp_path, opt_in=True))
    r1, r2 = actor.act(
        [decision("restart_pod", pod("web-0")), decision("restart_pod", pod("llm-0"))],
        findings=[],
        degraded=False,
        now=NOW,
    )
    assert r1.rail == "opt_out" and "opt-in" in r1.detail
    assert r2.status is ActionStatus.APPLIED


def test_silence_blocks_and_a_failing_silence_check_blocks_too(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    seen = []

    def silenced(labels):
        seen.append(dict(labels))
        return labels.get("pod") == "web-0"

    actor, _ = make_actor(make_config(server, tmp_path), is_silenced=silenced)
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.rail == "silenced" and seen[0]["namespace"] == "default"

    def broken(labels):
        raise ConnectionError("alertmanager down")

    actor2, _ = make_actor(make_config(server, tmp_path), is_silenced=broken)
    [result] = actor2.act([decision("restart_pod", pod("web-1"))], findings=[], degraded=False, now=NOW)
    assert result.rail == "silenced" and "alertmanager down" in result.detail
    assert writes(server) == []


def test_cooldown_per_target(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="30m", max_pods_per_workload=10))
    d = decision("restart_pod", pod("web-0"))
    assert actor.act([d], findings=[], degraded=False, now=NOW)[0].status is ActionStatus.APPLIED
    server.seed(make_pod("web-0", node="gpu-1", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
    again = actor.act(
        [decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW + timedelta(minutes=10)
    )[0]
    assert again.rail == "cooldown"
    other = actor.act(
        [decision("restart_pod", pod("web-1"))], findings=[], degraded=False, now=NOW + timedelta(minutes=10)
    )[0]
    assert other.status is ActionStatus.APPLIED


def test_an_undo_of_an_action_that_has_none_is_not_a_second_action(server: KubeApiServer, tmp_path: Path) -> None:
    # A false prediction rolls its preparation back with a restore decision, which the rails let
    # through as paid for by what it undoes. A restart has no undo: carried out, the "rollback"
    # was a second restart past the cooldown and the budget.
    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    actor, _ = make_actor(make_config(server, tmp_path, cooldown="6h", max_pods_per_workload=10,
                                      max_actions_per_hour=1, max_actions_per_day=1))
    assert actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False,
                     now=NOW)[0].status is ActionStatus.APPLIED
    server.seed(make_pod("web-0", node="gpu-1", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
    deletes = [w for w in writes(server) if w[0] == "DELETE"]
    [undo] = actor.act([decision("restart_pod", pod("web-0"), restore=True)], findings=[], degraded=False,
                       now=NOW + timedelta(minutes=2))
    assert undo.status is ActionStatus.OBSERVED and "no undo" in undo.detail
    assert [w for w in writes(server) if w[0] == "DELETE"] == deletes
    assert actor.writer.remaining_budget(NOW + timedelta(minutes=2))["hour"] == 0


def test_budget_exhausted_no_action_and_exactly_one_notification(server: KubeApiServer, tmp_path: Path) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3", "gpu-4"])
    actor, _ = make_actor(make_config(server, tmp_path, max_actions_per_hour=1, max_pods_per_workload=10))
    first = actor.act([decision("restart_pod", pod(names[0]))], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.APPLIED
    server.clear_requests()
    results = []
    for minute in (1, 2, 3):
        results += actor.act(
            [decision("restart_pod", pod(n)) for n in names[1:]],
            findings=[],
            degraded=False,
            now=NOW + timedelta(minutes=minute),
        )
    # Nothing written but the first restart's verdict (an Event: healed, its finding gone).
    assert [w for w in writes(server) if w[1] != "events"] == []
    assert all(r.rail == "budget" for r in results) and len(results) == 9
    # Only the first refusal of the episode is BLOCKED (worth a message); the rest are DEFERRED.
    assert [r.status for r in results].count(ActionStatus.BLOCKED) == 1
    assert "hourly budget of 1" in results[0].detail
    # An hour later the budget is back and the episode is over.
    later = actor.act(
        [decision("restart_pod", pod(names[1]))], findings=[], degraded=False, now=NOW + timedelta(minutes=61)
    )[0]
    assert later.status is ActionStatus.APPLIED
    remaining = actor.writer.remaining_budget(NOW + timedelta(minutes=61))
    assert (remaining["hour"], remaining["day"]) == (0, 18)
    assert REGISTRY.get_sample_value("aiops_budget_remaining", {"window": "hour"}) == 0
    assert REGISTRY.get_sample_value("aiops_budget_remaining", {"window": "day"}) == 18


def test_blast_radius_caps_cordoned_nodes(server: KubeApiServer, tmp_path: Path) -> None:
    server.put({**server.get("Node", "gpu-4"), "spec": {"unschedulable": True}})
    actor, _ = make_actor(make_config(server, tmp_path, max_cordoned_fraction=0.25))
    [result] = actor.act([decision("evacuate_node", Entity("node", "gpu-1"))], findings=[], degraded=False, now=NOW)
    assert (result.status, result.rail) == (ActionStatus.BLOCKED, "blast_radius")
    assert "2 of 4 nodes" in result.detail
    assert writes(server) == []


def test_blast_radius_caps_pods_per_workload(server: KubeApiServer, tmp_path: Path) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    actor, _ = make_actor(make_config(server, tmp_path, max_pods_per_workload=1, cooldown="0s"))
    assert (
        actor.act([decision("restart_pod", pod(names[0]))], findings=[], degraded=False, now=NOW)[0].status
        is ActionStatus.APPLIED
    )
    second = actor.act(
        [decision("restart_pod", pod(names[1]))], findings=[], degraded=False, now=NOW + timedelta(minutes=1)
    )[0]
    assert second.rail == "blast_radius"


@pytest.mark.parametrize("mode,status", [(Mode.OBSERVE, ActionStatus.OBSERVED), (Mode.SUGGEST, ActionStatus.SUGGESTED)])
def test_modes_below_auto_never_write(server: KubeApiServer, tmp_path: Path, mode: Mode, status: ActionStatus) -> None:
    seed_workload(server, "web", ["gpu-1"])
    actor, _ = make_actor(make_config(server, tmp_path, mode=mode.value))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.status is status and "/api/v1/namespaces/default/pods/web-0/eviction" in (
        result.plan.command if result.plan else ""
    )
    assert writes(server) == []


def test_per_action_mode_override(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1"])
    actor, _ = make_actor(make_config(server, tmp_path, action_modes={"restart_pod": "suggest"}))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.SUGGESTED and writes(server) == []


def test_degraded_cycle_skips_everything(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1"])
    actor, _ = make_actor(make_config(server, tmp_path))
    server.clear_requests()
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=True, now=NOW)
    assert result.status is ActionStatus.SKIPPED
    assert server.requests == []


def test_dry_run_uses_the_server_with_dry_run_all(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path, dry_run=True))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.DRY_RUN
    assert server.exists("Pod", "web-0")
    sent = server.requests_matching(method="POST", resource="pods", subresource="eviction")
    assert len(sent) == 1 and sent[0].query.get("dryRun") == ["All"]
    # Dry-run keeps its own books: the real budget is untouched.
    actor.writer  # noqa: B018
    assert actor.writer.books.count_actions(NOW - timedelta(hours=1), dry_run=False) == 0


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_api_500_and_timeout_back_off_then_defer_and_degrade(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path, api_attempts=3, request_timeout="500ms"))
    server.fail_next(3, method="POST", path="/pods/web-0/eviction", status=500)
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.DEFERRED and "500" in result.detail
    assert len(logged(server, 3, method="POST", subresource="eviction")) == 3  # backed off and retried
    assert actor.errors and actor.errors[0].temporary  # the pipeline marks the cycle degraded
    assert server.exists("Pod", "web-0")

    # The cluster read times out: nothing is planned on a missing picture, the cycle is degraded.
    server.hang_next(3, method="GET", path="/api/v1/nodes", seconds=2)
    [result] = actor.act(
        [decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW + timedelta(minutes=1)
    )
    assert result.status is ActionStatus.DEFERRED and "cluster state unreadable" in result.detail
    assert actor.errors and actor.errors[0].temporary

    # Recovered: the next cycle acts.
    [result] = actor.act(
        [decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW + timedelta(minutes=2)
    )
    assert result.status is ActionStatus.APPLIED and actor.errors == []


def test_forbidden_is_permanent_and_says_why(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path))
    server.fail_next(1, method="POST", path="/pods/web-0/eviction", status=403, message="forbidden by policy")
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.FAILED and "403" in result.detail and "clusterrole" in result.detail
    assert len(server.requests_matching(method="POST", subresource="eviction")) == 1  # never retried


def test_not_healed_escalates_and_opens_the_breaker(server: KubeApiServer, tmp_path: Path) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3", "gpu-4"])
    actor, _ = make_actor(
        make_config(server, tmp_path, breaker_threshold=2, verify_within="10m", cooldown="0s", max_pods_per_workload=10)
    )
    t = NOW
    escalations = []
    for name in names[:2]:
        d = decision("restart_pod", pod(name))
        assert actor.act([d], findings=[], degraded=False, now=t)[0].status is ActionStatus.APPLIED
        t += timedelta(minutes=11)
        # The triggering finding is still there after verify_within: not healed.
        out = actor.act([], findings=[d.finding], degraded=False, now=t)
        escalations += [r for r in out if r.status is ActionStatus.FAILED]
    assert len(escalations) == 2 and all("not healed" in r.detail for r in escalations)
    assert "Circuit breaker opened" in escalations[1].detail
    blocked = actor.act([decision("restart_pod", pod(names[2]))], findings=[], degraded=False, now=t)[0]
    assert (blocked.status, blocked.rail) == (ActionStatus.BLOCKED, "circuit_breaker")
    assert REGISTRY.get_sample_value("aiops_circuit_breaker_open") == 1
    assert (
        REGISTRY.get_sample_value("aiops_action_outcomes_total", {"action": "restart_pod", "outcome": "not_healed"})
        >= 2
    )
    assert server.exists("Pod", names[2])


def test_healed_action_is_recorded(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, store = make_actor(make_config(server, tmp_path))
    d = decision("restart_pod", pod("web-0"))
    actor.act([d], findings=[d.finding], degraded=False, now=NOW)
    out = actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=2))
    assert not [r for r in out if r.status is ActionStatus.FAILED]
    [row] = store.query("SELECT status FROM action_outcomes")
    assert row["status"] == "healed"
    assert actor.outcomes.pending() == 0


def test_an_idle_cycle_sends_no_request(server: KubeApiServer, tmp_path: Path) -> None:
    actor, _ = make_actor(make_config(server, tmp_path))
    # The first cycle that leads reads the cluster once, for the undos another replica left due
    # (a workload it scaled ahead); the idle cycles after it send nothing.
    assert actor.act([], findings=[], degraded=False, now=NOW) == []
    server.clear_requests()
    for minutes in (1, 2, 3):
        assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert server.requests == []


def test_the_same_problem_on_the_replacement_pod_is_not_healed(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    seed_workload(server, "other", ["gpu-3"])
    rs = next(
        r["metadata"]["name"]
        for r in server.list("ReplicaSet", "default", group="apps")
        if r["metadata"]["name"].startswith("web-")
    )
    actor, _ = make_actor(make_config(server, tmp_path, verify_within="10m"))
    d = decision("restart_pod", pod("web-0"))
    assert actor.act([d], findings=[d.finding], degraded=False, now=NOW)[0].status is ActionStatus.APPLIED
    # The ReplicaSet's replacement has a new name, and it crash-loops just the same.
    server.seed(make_pod("web-x7k2p", node="gpu-2", labels={"app": "web"}, owner=("ReplicaSet", rs)))
    again = finding("pod_crashlooping", pod("web-x7k2p"))
    elsewhere = finding("pod_crashlooping", pod("other-0"))
    assert actor.act([], findings=[again], degraded=False, now=NOW + timedelta(minutes=5)) == []  # still judging
    [escalation] = actor.act([], findings=[again, elsewhere], degraded=False, now=NOW + timedelta(minutes=11))
    assert escalation.status is ActionStatus.FAILED and "not healed" in escalation.detail
    assert actor.outcomes.pending() == 0


def test_a_problem_on_another_workload_does_not_count_against_the_action(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    seed_workload(server, "other", ["gpu-3"])
    actor, store = make_actor(make_config(server, tmp_path, verify_within="10m"))
    d = decision("restart_pod", pod("web-0"))
    actor.act([d], findings=[d.finding], degraded=False, now=NOW)
    elsewhere = finding("pod_crashlooping", pod("other-0"))
    assert actor.act([], findings=[elsewhere], degraded=False, now=NOW + timedelta(minutes=2)) == []
    [row] = store.query("SELECT status FROM action_outcomes")
    assert row["status"] == "healed"


def test_a_permanent_failure_is_not_retried_on_later_cycles(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path))
    server.fail_next(1, method="POST", path="/eviction$", status=422, message="invalid eviction")
    [result] = actor.act([decision("evacuate_node", Entity("node", "gpu-1"))], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.FAILED and "422" in result.detail
    assert actor.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=1)) == []  # nothing in flight
    assert len(logged(server, 1, method="POST", subresource="eviction")) == 1


def test_actions_on_predictions_have_their_own_smaller_budget(server: KubeApiServer, tmp_path: Path) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3", "gpu-4"])
    cfg = make_config(server, tmp_path, max_actions_per_hour=5, max_predicted_actions_per_hour=1,
                      max_predicted_actions_per_day=4, max_pods_per_workload=10)
    actor, _ = make_actor(cfg)
    first = actor.act([decision("restart_pod", pod(names[0]), basis="predicted")], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.APPLIED
    second = actor.act([decision("restart_pod", pod(names[1]), basis="predicted")], findings=[], degraded=False,
                       now=NOW + timedelta(minutes=1))[0]
    assert second.rail == "budget" and "hourly prediction budget of 1" in second.detail
    # A confirmed failure still has the overall budget.
    third = actor.act([decision("restart_pod", pod(names[2]), basis="confirmed")], findings=[], degraded=False,
                      now=NOW + timedelta(minutes=2))[0]
    assert third.status is ActionStatus.APPLIED
    remaining = actor.writer.remaining_budget(NOW + timedelta(minutes=2))
    assert remaining == {"hour": 3, "day": 18, "predicted_hour": 0, "predicted_day": 3,
                         "inbound_hour": 1, "inbound_day": 4}


def test_actions_on_inbound_alerts_have_their_own_small_budget(server: KubeApiServer, tmp_path: Path) -> None:
    """Whoever can post to Alertmanager can ask for at most max_inbound_actions_per_hour actions."""
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3", "gpu-4"])
    cfg = make_config(server, tmp_path, max_actions_per_hour=5, max_pods_per_workload=10)
    actor, _ = make_actor(cfg)
    assert (cfg.safety.max_inbound_actions_per_hour, cfg.safety.max_inbound_actions_per_day) == (1, 4)
    first = actor.act([decision("restart_pod", pod(names[0]), basis="inbound")], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.APPLIED
    second = actor.act([decision("restart_pod", pod(names[1]), basis="inbound")], findings=[], degraded=False,
                       now=NOW + timedelta(minutes=1))[0]
    assert second.rail == "budget" and "hourly inbound-alert budget of 1" in second.detail
    # The daemon's own confirmed findings still have the overall budget.
    third = actor.act([decision("restart_pod", pod(names[2]), basis="confirmed")], findings=[], degraded=False,
                      now=NOW + timedelta(minutes=2))[0]
    assert third.status is ActionStatus.APPLIED


def test_prediction_books_count_separately(tmp_path: Path) -> None:
    from aiops.state.books import Books
    from aiops.state import Store

    books = Books(Store(tmp_path / "b.sqlite"))
    for i in range(3):
        books.record_action(f"p{i}", "evacuate_node", f"node/n{i}", False, NOW - timedelta(minutes=i), "predicted")
    books.record_action("c0", "restart_pod", "pod/a/b", False, NOW, "confirmed")
    since = NOW - timedelta(hours=1)
    assert books.count_actions(since, False) == 4
    assert books.count_actions(since, False, "predicted") == 3
    assert books.count_actions(since, False, "confirmed") == 1


def test_event_carries_the_objects_uid_so_kubectl_describe_shows_it(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    uid = server.get("Node", "gpu-1")["metadata"]["uid"]
    actor, _ = make_actor(make_config(server, tmp_path, max_pods_per_workload=10))
    [result] = actor.act([decision("evacuate_node", Entity("node", "gpu-1"), cordon_only=True)],
                         findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.APPLIED
    events = [e for e in server.list("Event", "default") if e.get("reason") == "AiopsRemediation"]
    assert [e["involvedObject"].get("uid") for e in events] == [uid]
