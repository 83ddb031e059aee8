"""A storm: 100 pods and 10 nodes anomalous in one cycle. Blast radius and budgets cap what is
done, and on-call gets one grouped message, not 110."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from aiops.config import AiopsConfig, parse_config
from aiops.engine.act import Actor
from aiops.engine.decide import Policy
from aiops.model import ActionResult, ActionStatus, Entity
from aiops.notify import ratelimit
from aiops.notify.stage import NotifyStage
from aiops.state import Store
from aiops.testing.dingtalk import DingTalkReceiver
from aiops.testing.kubeapi import SA_TOKEN, KubeApiServer
from aiops.testing.kubeapi_objects import make_node
from tests.reliability.daemon_process import applied_writes
from tests.engine.kubecluster import CLUSTER_ROLE, NOW, finding, seed_workload

pytestmark = pytest.mark.reliability

NODES = 20
WORKLOADS = 10
PODS_PER_WORKLOAD = 10
SICK_NODES = 10
TOKEN = "storm-robot-token"


@dataclass
class Storm:
    config: AiopsConfig
    server: KubeApiServer
    first_cycle: list[ActionResult]
    first_messages: list[dict]
    messages: list[dict]  # all four cycles


def seed_cluster(server: KubeApiServer) -> list[str]:
    pods = []
    for w in range(WORKLOADS):
        nodes = [f"node-{(w + 3 * p) % NODES:02d}" for p in range(PODS_PER_WORKLOAD)]
        pods += seed_workload(server, f"app{w}", nodes)
    for name in pods:  # crash-looping, so not Ready: restart_pod deletes them (a Ready pod is evicted)
        pod = server.get("Pod", name)
        pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        server.put(pod)
    return pods


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storm]:
    tmp_path = tmp_path_factory.mktemp("storm")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        KubeApiServer([make_node(f"node-{i:02d}", gpus=8) for i in range(NODES)], cluster_role=CLUSTER_ROLE) as server,
        DingTalkReceiver(access_token=TOKEN) as robot,
    ):
        monkeypatch.setattr(ratelimit, "_BUCKETS", {})  # a fresh per-process DingTalk bucket
        monkeypatch.setenv("STORM_DT_TOKEN", TOKEN)
        pods = seed_cluster(server)
        assert len(pods) == WORKLOADS * PODS_PER_WORKLOAD == 100
        config = parse_config({
            "safety": {"mode": "auto", "dry_run": False, "api_backoff_max": "50ms"},  # default budgets and radius
            "kubernetes": {"enabled": True, "kubeconfig": str(server.write_kubeconfig(tmp_path / "kc", token=SA_TOKEN)),
                           "leader_election": {"enabled": False}},
            "notify": {"channels": {"robot": {"plugin": "dingtalk", "params": {
                "url": robot.url, "access_token": {"env": "STORM_DT_TOKEN"}, "connect_timeout": "1s",
                "read_timeout": "2s"}}}},
            "state": {"path": str(tmp_path / "state.sqlite")},
        })
        store = Store(config.state.path)
        policy = Policy(config.policy, config.safety.mode)
        actor = Actor.from_config(config, store)
        stage = NotifyStage.from_config(config, store)
        findings = [finding("pod_crashlooping", Entity("pod", p, "default")) for p in pods]
        findings += [finding("node_ready", Entity("node", f"node-{i:02d}")) for i in range(SICK_NODES)]

        def cycle(minute: int) -> list[ActionResult]:
            now = NOW + timedelta(minutes=minute)
            graded, decisions = policy.decide(findings)
            results = actor.act(decisions, findings=graded, degraded=False, now=now)
            stage.notify(graded, results, cycle_id=f"storm-{minute}", now=now, degraded=False)
            return results

        try:
            first = cycle(0)
            first_messages = list(robot.messages)
            for minute in (1, 2, 3):  # the storm goes on unchanged
                cycle(minute)
        finally:
            stage.close()
            actor.close()
            store.close()
        yield Storm(config, server, first, first_messages, list(robot.messages))


def test_storm_actions_are_capped_by_budget_and_blast_radius(storm: Storm) -> None:
    safety, server, results = storm.config.safety, storm.server, storm.first_cycle
    assert len(results) == 110
    done = Counter(applied_writes(server, "nodes", "pods"))
    cordons = [k for k in done if k[:2] == ("PATCH", "nodes")]
    deletes = [k for k in done if k[0] == "DELETE"]
    evicted = [k for k in done if k[2] == "eviction"]
    assert all(n == 1 for n in done.values()), done  # nothing written twice
    started = [r for r in results if r.status in (ActionStatus.APPLIED, ActionStatus.DEFERRED) and not r.rail]
    # Budget: at most max_actions_per_hour actions started, over all four cycles.
    assert len(cordons) + len(deletes) <= safety.max_actions_per_hour, done
    assert len(started) <= safety.max_actions_per_hour
    # Blast radius: at most 10% of the nodes cordoned (also within one cycle), at most 2 pods of a workload gone.
    assert len(cordons) <= max(1, math.floor(safety.max_cordoned_fraction * NODES)), cordons
    assert len([n for n in server.list("Node") if n["spec"].get("unschedulable")]) == len(cordons)
    gone_per_workload = Counter(name.rsplit("-", 1)[0] for _, _, _, name in deletes + evicted)
    assert all(n <= safety.max_pods_per_workload for n in gone_per_workload.values()), gone_per_workload
    refused = [r for r in results if r.rail]
    assert {r.rail for r in refused} <= {"budget", "blast_radius", "cooldown"} and len(refused) >= 100
    print(f"\nstorm: {len(results)} decisions -> {len(cordons)} cordons, {len(deletes)} restarts, "
          f"{len(evicted)} evictions, {len(refused)} refused by rails; DingTalk messages: "
          f"{len(storm.first_messages)} in the first cycle, {len(storm.messages)} in four cycles")


def test_storm_message_counts_every_finding_and_says_why_the_rest_was_not_done(storm: Storm) -> None:
    (first,) = storm.first_messages
    told = first["markdown"]["text"]
    assert "STORM: 110 problems at once" in first["markdown"]["title"]
    assert "100 × pod_crashlooping on pods" in told and "10 × node_ready on nodes" in told  # every finding counted
    assert "budget" in told and "blast_radius" in told  # and why the rest was not done
    assert "aiops history --cycle" in told  # where the full list is


def test_storm_is_one_grouped_escalation(storm: Storm) -> None:
    assert len(storm.first_messages) == 1
    # The storm goes on for three more cycles: what changes is held for the storm window, not sent.
    assert len(storm.messages) == 1
