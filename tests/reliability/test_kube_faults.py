"""The Kubernetes API misbehaves (500s, hangs, PDB 429s, throttling, lease 409s, nothing listening):
the actor backs off, keeps its budgets, never forces, and finishes or reports what it started."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from aiops.config import parse_config
from aiops.engine.act import Actor
from aiops.engine.leader import LeaseElector
from aiops.kube.client import build_api_client
from aiops.model import ActionStatus, Entity
from aiops.state import Store
from aiops.testing.kubeapi import SA_TOKEN, KubeApiServer
from aiops.testing.kubeapi_objects import make_pod
from aiops.demo.prometheus import free_port
from tests.reliability.daemon_process import applied_writes
from tests.engine.kubecluster import (
    NOW,
    decision,
    make_actor,
    make_config,
    seed_workload,
    server,
)

pytestmark = pytest.mark.reliability

__all__ = ["server"]  # the fixture: a test API server seeded with four GPU nodes

NODE = Entity("node", "gpu-1")


def act(actor: Actor, *decisions, minutes: float = 0):
    return actor.act(list(decisions), findings=[], degraded=False, now=NOW + timedelta(minutes=minutes))


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_evacuation_through_500s_and_hangs_finishes_once_within_budget(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "llm", ["gpu-1", "gpu-2"])
    seed_workload(server, "web", ["gpu-1", "gpu-3"])
    actor, _ = make_actor(make_config(server, tmp_path, request_timeout="500ms", api_attempts=3,
                                      max_actions_per_hour=1, max_pods_per_workload=10))
    budget = actor.writer.remaining_budget(NOW)["hour"]
    server.fail_next(1, method="PATCH", path="/nodes/gpu-1", status=500)  # the cordon: retried, then applied
    server.hang_next(3, method="POST", path="/pods/llm-0/eviction", seconds=1.5)  # every attempt hangs
    t0 = time.monotonic()
    [first] = act(actor, decision("evacuate_node", NODE))
    assert time.monotonic() - t0 < 20, "hangs cost their timeouts, not more"
    assert first.status is ActionStatus.DEFERRED, first.detail
    assert actor.errors and all(e.temporary for e in actor.errors)  # the cycle is reported degraded
    assert server.get("Node", "gpu-1", "")["spec"].get("unschedulable") is True

    # Later cycles resume the same evacuation: no second cordon, no second budget unit.
    results = [act(actor, decision("evacuate_node", NODE), minutes=m)[0] for m in (1, 2)]
    assert ActionStatus.APPLIED in {r.status for r in results}, [r.detail for r in results]
    done = Counter(applied_writes(server, "nodes", "pods"))
    assert done == Counter({("PATCH", "nodes", "", "gpu-1"): 1, ("POST", "pods", "eviction", "llm-0"): 1,
                            ("POST", "pods", "eviction", "web-0"): 1}), done
    assert actor.writer.remaining_budget(NOW + timedelta(minutes=2))["hour"] == budget - 1
    assert not server.requests_matching(method="DELETE", resource="pods")  # never a delete instead of an eviction


def test_pdb_429_defers_every_cycle_never_forces_and_spends_one_budget_unit(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"], min_available=2)
    actor, _ = make_actor(make_config(server, tmp_path, max_actions_per_hour=3))
    budget = actor.writer.remaining_budget(NOW)["hour"]
    statuses = [act(actor, decision("evacuate_node", NODE), minutes=m)[0].status for m in range(5)]
    assert statuses == [ActionStatus.DEFERRED] * 5
    refused = server.requests_matching(method="POST", resource="pods", subresource="eviction", name="web-0")
    assert len(refused) >= 5 and all(r.status == 429 for r in refused)
    assert server.exists("Pod", "web-0") and not server.requests_matching(method="DELETE", resource="pods")
    assert actor.writer.remaining_budget(NOW + timedelta(minutes=5))["hour"] == budget - 1
    # The PDB frees up: the next cycle finishes it.
    server.seed(make_pod("web-9", node="gpu-3", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
    assert act(actor, decision("evacuate_node", NODE), minutes=6)[0].status is ActionStatus.APPLIED
    assert not server.exists("Pod", "web-0")


def test_api_throttling_429_with_retry_after_is_waited_out(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    crash_looping = server.get("Pod", "web-0")  # not Ready: restarted by a DELETE (a Ready one is evicted)
    crash_looping["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    server.put(crash_looping)
    actor, _ = make_actor(make_config(server, tmp_path, api_attempts=3))
    server.fail_next(2, method="DELETE", path="/pods/web-0", status=429, message="too many requests", retry_after=0)
    [result] = act(actor, decision("restart_pod", Entity("pod", "web-0", "default")))
    assert result.status is ActionStatus.APPLIED, result.detail
    deletes = server.requests_matching(method="DELETE", resource="pods", name="web-0")
    assert [r.status for r in deletes][:2] == [429, 429] and len([r for r in deletes if r.status < 300]) == 1


def test_lease_409_and_500_mean_not_leader_and_no_write(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    config = make_config(server, tmp_path, leader=True)
    api = build_api_client(config.kubernetes)
    elector = LeaseElector.from_config(api, config.kubernetes)
    actor = Actor(config, Store(config.state.path), api=api, elector=elector)
    restart = decision("restart_pod", Entity("pod", "web-0", "default"))
    try:
        # Creating the lease conflicts (another replica created it first): not leader, nothing written.
        server.fail_next(1, method="POST", path="/leases", status=409, message="already exists")
        assert elector.try_acquire_or_renew() is False and not actor.is_leader
        [blocked] = act(actor, restart)
        assert (blocked.status, blocked.rail) == (ActionStatus.BLOCKED, "leader")
        assert applied_writes(server, "pods") == []
        assert elector.try_acquire_or_renew() is True  # the next round wins
        # A renewal that conflicts (someone else updated the lease) or cannot read it: stop acting.
        server.fail_next(1, method="PUT", path="/leases/", status=409, message="the object has been modified")
        assert elector.try_acquire_or_renew() is False and not actor.is_leader
        server.fail_next(1, method="GET", path="/leases/", status=500)
        assert elector.try_acquire_or_renew() is False and not actor.is_leader
        [blocked] = act(actor, restart, minutes=1)
        assert blocked.rail == "leader" and applied_writes(server, "pods") == []
        assert elector.try_acquire_or_renew() is True
        [applied] = act(actor, restart, minutes=2)
        assert applied.status is ActionStatus.APPLIED
        assert Counter(applied_writes(server, "pods")) == Counter({("POST", "pods", "eviction", "web-0"): 1})
    finally:
        actor.close()


def test_nothing_listening_defers_within_bounded_time(tmp_path: Path) -> None:
    with KubeApiServer() as srv:
        kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig", token=SA_TOKEN)
        url = srv.url
    # A port nobody listens on: connection refused.
    kubeconfig.write_text(kubeconfig.read_text().replace(url, f"https://127.0.0.1:{free_port()}"))

    config = parse_config({
        "safety": {"mode": "auto", "dry_run": False, "api_attempts": 3, "api_backoff_max": "200ms"},
        "kubernetes": {"enabled": True, "kubeconfig": str(kubeconfig), "request_timeout": "1s",
                       "leader_election": {"enabled": False}},
        "state": {"path": str(tmp_path / "state.sqlite")},
    })
    actor, store = make_actor(config)
    t0 = time.monotonic()
    results = act(actor, decision("evacuate_node", NODE), decision("restart_pod", Entity("pod", "web-0", "default")))
    assert time.monotonic() - t0 < 15
    assert [r.status for r in results] == [ActionStatus.DEFERRED, ActionStatus.DEFERRED]
    assert all("cluster state unreadable" in r.detail for r in results)
    assert actor.errors and all(e.temporary for e in actor.errors)
    assert actor.writer.books.count_actions(NOW - timedelta(hours=1), dry_run=False) == 0  # no budget spent
    store.close()
