"""Leader election on a coordination.k8s.io/v1 Lease, against the test API server."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aiops.engine.act import Actor
from aiops.engine.leader import LeaseElector
from aiops.kube.client import build_api_client
from aiops.model import ActionStatus, Entity
from aiops.state import Store
from aiops.testing.kubeapi import ADMIN_TOKEN, SA_TOKEN, KubeApiServer
from aiops.testing.kubeapi_objects import make_pod
from tests.engine.kubecluster import (
    NOW,
    connections_opened,
    decision,
    finding,
    logged,
    make_config,
    seed_workload,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def elector(server: KubeApiServer, identity: str, clock: Clock | None = None, **kw: float) -> LeaseElector:
    return LeaseElector(
        server.api_client(SA_TOKEN),
        namespace="aiops",
        name="aiops-leader",
        identity=identity,
        lease_duration=kw.get("lease_duration", 15.0),
        renew_deadline=kw.get("renew_deadline", 10.0),
        retry_period=kw.get("retry_period", 2.0),
        clock=clock or time.monotonic,
    )


def lease(server: KubeApiServer) -> dict:
    return server.get("Lease", "aiops-leader", "aiops", group="coordination.k8s.io")


def test_exactly_one_of_two_holds_the_lease(server: KubeApiServer) -> None:
    a, b = elector(server, "a"), elector(server, "b")
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    assert (a.is_leader, b.is_leader) == (True, False)
    assert a.try_acquire_or_renew() is True  # renews
    spec = lease(server)["spec"]
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15 and spec["leaseTransitions"] == 0


def test_a_new_term_begins_only_when_another_replica_held_the_lease_in_between(server: KubeApiServer) -> None:
    """The act stage forgets what it had in flight when its term changes (another replica may have
    finished or undone it): taking back a Lease nobody took since, or finding our own after a
    restart, continues the term; taking it after another holder begins a new one."""
    a, b = elector(server, "a"), elector(server, "b")
    assert a.try_acquire_or_renew() and a.try_acquire_or_renew() and a.term == 0  # created, renewed
    a.release()
    assert a.try_acquire_or_renew() and a.term == 0  # nobody took it in between
    a.release()
    assert b.try_acquire_or_renew() and b.term == 0  # a's hand-back: b never held it before
    b.release()
    assert a.try_acquire_or_renew() and a.term == 1  # b held it since a's last term
    a.release()
    restarted = elector(server, "a")
    assert restarted.try_acquire_or_renew() and restarted.term == 0  # our own hand-back, on restart
    assert restarted.held_terms() == {0: 0}


def test_lease_rounds_reuse_the_clients_connection(server: KubeApiServer) -> None:
    """The Lease writes are raw responses (``_preload_content=False``); left unread, each kept its
    connection out of the client's pool, so every renewal opened a new TCP and TLS connection. A
    round of shard Leases opened one per Lease at once: a burst that overflowed the API server's
    accept queue, and the connect that waited a second for its SYN to be resent made a renewal
    late enough to let its Lease lapse (test_each_shard_lease_is_renewed_within_its_own_deadline_on_a_slow_api)."""
    a = elector(server, "a")
    for _ in range(5):
        assert a.try_acquire_or_renew()
    a.release()
    assert connections_opened(a.api.api_client) == 1


def test_conflict_on_replace_means_lost_the_race(server: KubeApiServer) -> None:
    a, b = elector(server, "a"), elector(server, "b")
    a.try_acquire_or_renew()
    a.release()
    assert lease(server)["spec"]["holderIdentity"] == ""
    server.fail_next(1, method="PUT", path="/leases/aiops-leader", status=409, message="the object has been modified")
    assert b.try_acquire_or_renew() is False and not b.is_leader
    assert b.try_acquire_or_renew() is True  # next round wins the free lease


def test_follower_takes_over_an_expired_lease_with_a_transition(server: KubeApiServer) -> None:
    clock = Clock()
    a, b = elector(server, "a", clock), elector(server, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.t += 14  # a stops renewing (crashed); b has seen the same record for 14 s < 15 s
    assert not b.try_acquire_or_renew()
    clock.t += 2
    assert b.try_acquire_or_renew() and b.is_leader
    assert not a.is_leader  # a's renew deadline passed long ago
    spec = lease(server)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


@pytest.mark.parametrize("duration, deadline", [(2.9, 2.5), (2.5, 2.1), (15.9, 15.5), (1.5, 1.2), (0.9, 0.6)])
def test_a_fractional_lease_duration_never_gives_two_leaders(
    server: KubeApiServer, duration: float, deadline: float
) -> None:
    """The Lease holds whole seconds (leaseDurationSeconds) and observers judge expiry by it, so
    it is rounded up, never down: 2.9 s written as 2 let a follower take over at 2.0 s while the
    holder, not renewing, still led until its 2.5 s renew deadline."""
    clock = Clock()
    a = elector(server, "a", clock, lease_duration=duration, renew_deadline=deadline, retry_period=0.1)
    b = elector(server, "b", clock, lease_duration=duration, renew_deadline=deadline, retry_period=0.1)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()  # b sees a's record now
    took_over = False
    for _ in range(int(duration / 0.1) + 20):  # a stops renewing; b tries every 0.1 s
        clock.t += 0.1
        took_over = b.try_acquire_or_renew() or took_over
        assert not (a.is_leader and b.is_leader), f"two leaders at +{clock.t - 1000:.1f} s"
    assert took_over and b.is_leader and not a.is_leader
    assert lease(server)["spec"]["leaseDurationSeconds"] == math.ceil(duration)


def test_leader_that_cannot_renew_stops_before_the_lease_expires(server: KubeApiServer) -> None:
    clock = Clock()
    a = elector(server, "a", clock)
    assert a.try_acquire_or_renew()
    server.fail_next(100, path="/leases/aiops-leader", status=503)
    clock.t += 5
    assert a.try_acquire_or_renew() is True  # one failed renewal does not flap leadership
    clock.t += 5.5  # 10.5 s since the last renewal > renew_deadline (10 s) < lease_duration (15 s)
    assert a.is_leader is False
    assert a.last_error is not None and a.last_error.temporary


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_two_replicas_exactly_one_acts(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actors = []
    for name in ("replica-a", "replica-b"):
        (tmp_path / name).mkdir()
        config = make_config(server, tmp_path / name, leader=True)
        api = build_api_client(config.kubernetes)
        actors.append(
            Actor(config, Store(config.state.path), api=api, elector=LeaseElector.from_config(api, config.kubernetes))
        )
        actors[-1].elector.identity = name  # both run on this host
    try:
        for a in actors:
            a.start()  # background renewals, plus one round now
        leaders = [a.is_leader for a in actors]
        assert sorted(leaders) == [False, True]
        d = decision("restart_pod", Entity("pod", "web-0", "default"))
        follower, leader = sorted(actors, key=lambda a: a.is_leader)
        blocked = follower.act([d], findings=[], degraded=False, now=NOW)[0]
        applied = leader.act([d], findings=[], degraded=False, now=NOW)[0]
        assert (blocked.status, blocked.rail) == (ActionStatus.BLOCKED, "leader")
        assert applied.status is ActionStatus.APPLIED
        assert len(logged(server, 1, method="POST", subresource="eviction")) == 1
        time.sleep(1.2)  # a few renewal periods: still exactly one leader
        assert sorted(a.is_leader for a in actors) == [False, True]
    finally:
        for a in actors:
            a.close()
    # Closing released the lease so a successor need not wait for it to expire.
    assert lease(server)["spec"]["holderIdentity"] == ""


def test_lost_lease_stops_acting_immediately_even_mid_evacuation(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1"])
    seed_workload(server, "llm", ["gpu-1"])
    seed_workload(server, "db", ["gpu-1"])
    config = make_config(server, tmp_path, leader=True, max_pods_per_workload=10)
    api = build_api_client(config.kubernetes)
    clock = Clock()
    el = LeaseElector(api, namespace="aiops", name="aiops-leader", identity="a", clock=clock)
    actor = Actor(config, Store(config.state.path), api=api, elector=el)
    assert el.try_acquire_or_renew()

    # Another replica takes the lease over (a was partitioned and its lease expired meanwhile),
    # right after a's first eviction; a notices on its next renewal round.
    admin = KubeApiServer.api_client(server, ADMIN_TOKEN)
    original_apply = actor.writer.kube.apply
    evictions = []

    def apply_then_lose(m):
        original_apply(m)
        if m.verb == "evict":
            evictions.append(m.name)
            if len(evictions) == 1:
                body = lease(server)
                body["spec"]["holderIdentity"] = "b"
                from kubernetes import client

                client.CoordinationV1Api(admin).replace_namespaced_lease(
                    "aiops-leader", "aiops", client.V1Lease.from_dict(body)
                )
                assert el.try_acquire_or_renew() is False

    actor.writer.kube.apply = apply_then_lose
    result = actor.act([decision("evacuate_node", Entity("node", "gpu-1"))], findings=[], degraded=False, now=NOW)[0]
    assert result.status is ActionStatus.DEFERRED and "lost the leader lease" in result.detail
    assert evictions == ["db-0"]  # stopped right after losing the lease
    assert not actor.is_leader
    follow_up = actor.act(
        [decision("restart_pod", Entity("pod", "web-0", "default"))], findings=[], degraded=False, now=NOW
    )[0]
    assert (follow_up.status, follow_up.rail) == (ActionStatus.BLOCKED, "leader")


def test_invalid_timings_are_refused(server: KubeApiServer) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        elector(server, "a", lease_duration=5, renew_deadline=10, retry_period=2)


def test_a_new_leader_honours_its_predecessors_cooldown_and_budget(server: KubeApiServer, tmp_path: Path) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    actors = []
    for name in ("replica-a", "replica-b"):
        (tmp_path / name).mkdir()
        config = make_config(server, tmp_path / name, leader=True, max_actions_per_hour=2, max_pods_per_workload=10)
        api = build_api_client(config.kubernetes)
        el = LeaseElector.from_config(api, config.kubernetes)
        el.identity = name
        actors.append(Actor(config, Store(config.state.path), api=api, elector=el))
    a, b = actors
    assert a.elector is not None and b.elector is not None
    assert a.elector.try_acquire_or_renew() and not b.elector.try_acquire_or_renew()
    assert (
        a.act([decision("restart_pod", Entity("pod", names[0], "default"))], findings=[], degraded=False, now=NOW)[
            0
        ].status
        is ActionStatus.APPLIED
    )
    a.close()  # a hands the lease over (or crashes); b takes over with its own, empty state file
    assert b.elector.try_acquire_or_renew()
    server.seed(make_pod(names[0], node="gpu-1", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))  # recreated
    later = NOW + timedelta(minutes=5)
    again = b.act(
        [decision("restart_pod", Entity("pod", names[0], "default"))], findings=[], degraded=False, now=later
    )[0]
    assert again.rail == "cooldown"  # a's action, read back from its AiopsRemediation Event
    assert b.writer.remaining_budget(later)["hour"] == 1
    b.close()


def _two_replicas(server: KubeApiServer, tmp_path: Path, **safety: Any) -> tuple[Actor, Actor]:
    """Two leader-electing replicas of the act stage, each with its own state file."""
    actors = []
    for name in ("replica-a", "replica-b"):
        (tmp_path / name).mkdir()
        config = make_config(server, tmp_path / name, leader=True, **safety)
        api = build_api_client(config.kubernetes)
        el = LeaseElector.from_config(api, config.kubernetes)
        el.identity = name
        actors.append(Actor(config, Store(config.state.path), api=api, elector=el))
    return actors[0], actors[1]


def test_a_new_leader_continues_an_evacuation_its_predecessor_left_half_done(
    server: KubeApiServer, tmp_path: Path
) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"], min_available=2)  # the PDB blocks web-0 for now
    seed_workload(server, "llm", ["gpu-1", "gpu-3"])
    a, b = _two_replicas(server, tmp_path, max_actions_per_hour=1, max_pods_per_workload=10)
    assert a.elector is not None and b.elector is not None
    assert a.elector.try_acquire_or_renew()
    node = Entity("node", "gpu-1")
    first = a.act([decision("evacuate_node", node)], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.DEFERRED  # cordoned, llm-0 evicted, web-0 blocked by the PDB
    a.close()
    assert b.elector.try_acquire_or_renew()
    server.seed(make_pod("web-9", node="gpu-3", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))  # replacement
    server.clear_requests()
    later = NOW + timedelta(minutes=3)
    resumed = b.act([decision("evacuate_node", node)], findings=[], degraded=False, now=later)[0]
    assert resumed.status is ActionStatus.APPLIED, resumed.detail  # not blocked by a's cooldown or the spent budget
    sent = {
        (r.method, r.resource, r.name) for r in logged(server, 1, writes_only=True) if r.resource in ("pods", "nodes")
    }
    assert sent == {("POST", "pods", "web-0")}  # no second cordon, no second eviction of llm-0
    # A one-shot action of the predecessor keeps its cooldown (see the test above); the budget
    # was spent once, by a.
    assert b.writer.remaining_budget(later)["hour"] == 0
    b.close()


def test_a_new_leader_counts_its_predecessors_predicted_actions_in_the_prediction_budget(
    server: KubeApiServer, tmp_path: Path
) -> None:
    """The action Events did not say an action was begun on a prediction: read back, a
    predecessor's predicted actions counted as confirmed, so after a failover the new leader spent
    the prediction budget again. The Event carries the basis (and the ladder rung) now."""
    from dataclasses import replace

    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    a, b = _two_replicas(server, tmp_path, max_predicted_actions_per_hour=1, max_pods_per_workload=10)
    assert a.elector is not None and b.elector is not None
    assert a.elector.try_acquire_or_renew()
    web0, web1 = Entity("pod", "web-0", "default"), Entity("pod", "web-1", "default")
    leak = replace(finding("pod_memory_usage_ratio", web0), confirmed=False)
    first = a.act([decision("restart_pod", web0, leak, basis="predicted")], findings=[leak], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.APPLIED, first.detail
    a.close()
    assert b.elector.try_acquire_or_renew()
    other = replace(finding("pod_memory_usage_ratio", web1), confirmed=False)
    second = b.act([decision("restart_pod", web1, other, basis="predicted")], findings=[other], degraded=False,
                   now=NOW + timedelta(minutes=5))[0]
    assert (second.status, second.rail) == (ActionStatus.BLOCKED, "budget"), second.detail
    assert server.exists("Pod", "web-1")
    b.close()


def test_a_new_leader_counts_its_predecessors_disruptions_in_the_per_workload_cap(
    server: KubeApiServer, tmp_path: Path
) -> None:
    """max_pods_per_workload was counted from the replica's own books only: after a failover the
    new leader started at zero and evicted another pod of the workload its predecessor had just
    hit. It reads the predecessor's disruption Events and waits out the window instead."""
    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    a, b = _two_replicas(server, tmp_path, max_pods_per_workload=1, max_cordoned_fraction=0.5)
    assert a.elector is not None and b.elector is not None
    assert a.elector.try_acquire_or_renew()
    first = a.act([decision("evacuate_node", Entity("node", "gpu-1"))], findings=[], degraded=False, now=NOW)[0]
    assert first.status is ActionStatus.APPLIED, first.detail  # web-0 evicted
    a.close()
    assert b.elector.try_acquire_or_renew()
    gpu2 = decision("evacuate_node", Entity("node", "gpu-2"))
    held = b.act([gpu2], findings=[], degraded=False, now=NOW + timedelta(minutes=2))[0]
    assert held.status is ActionStatus.DEFERRED and "reached 1 pod(s)" in held.detail, held.detail
    evicted = [r.name for r in server.requests_matching(writes_only=True) if r.subresource == "eviction"]
    assert evicted == ["web-0"]
    # Once a's disruption is out of the window, b finishes its evacuation.
    later = b.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=62))
    assert [r.status for r in later] == [ActionStatus.APPLIED], [r.detail for r in later]
    assert not server.exists("Pod", "web-1")
    b.close()


def test_the_ledger_reads_disruption_events_and_older_action_events(server: KubeApiServer, tmp_path: Path) -> None:
    """Disruption Events (reason AiopsDisruption) read as typed records; an action Event from an
    older replica, without the newer annotations, still reads as an action."""
    from aiops.engine.safety import DISRUPTION_REASON, EVENT_REASON
    from aiops.kube.read import LedgerDisruption, LedgerEntry, read_action_ledger

    def event(name: str, reason: str, notes: dict[str, str]) -> dict:
        return {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": "default", "annotations": notes},
            "involvedObject": {"kind": "Node", "name": "gpu-1"}, "reason": reason, "message": "m", "type": "Warning",
        }

    at = "2026-11-25T09:00:00Z"
    server.seed(
        event("old", EVENT_REASON, {"aiops.io/target": "node/gpu-1", "aiops.io/action": "evacuate_node",
                                    "aiops.io/decision": "d1", "aiops.io/at": at}),
        event("dis", DISRUPTION_REASON, {"aiops.io/decision": "d1", "aiops.io/at": at,
                                         "aiops.io/workload": "deployment/default/web", "aiops.io/pod": "default/web-0"}),
        event("bad", DISRUPTION_REASON, {"aiops.io/decision": "d1", "aiops.io/at": at}),  # no workload: skipped
    )
    read = read_action_ledger(
        server.api_client(ADMIN_TOKEN), reason=EVENT_REASON, disruption_reason=DISRUPTION_REASON, timeout=(2, 2)
    )
    assert sorted(read, key=lambda r: type(r).__name__) == [
        LedgerDisruption("d1", "deployment/default/web", "default/web-0", NOW),
        LedgerEntry("d1", "evacuate_node", "node/gpu-1", NOW),
    ]
