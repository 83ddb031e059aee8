"""Two `aiops run` replicas on one cluster: exactly one acts; SIGKILL the lease holder mid-evacuation
and the other takes over within the lease timings and finishes the job without repeating a step."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from aiops.testing.dingtalk import DingTalkReceiver
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_node, make_pod
from aiops.demo.prometheus import PrometheusServer
from tests.prometheus_history import write_history
from tests.reliability.daemon_process import (
    node_failing_rules,
    WEBHOOK_TOKEN,
    DaemonProcess,
    applied_writes,
    daemon_config,
    evictions,
    wait_for,
)
from tests.engine.kubecluster import CLUSTER_ROLE, seed_workload

# Starts daemons or real servers (tens of seconds each): `-m "not slow"` leaves it out of the inner loop.
pytestmark = [pytest.mark.reliability, pytest.mark.slow]

LEASE_DURATION = 4.0  # daemon_config's leader_election timings
RETRY_PERIOD = 0.5


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    write_history(tmp_path / "h.om", datetime.now(UTC).replace(second=0, microsecond=0))
    rules = node_failing_rules(tmp_path / "rules.json")
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "h.om", rule_files=[rules],
                          evaluation_interval="1s") as prom:
        yield prom


def holder(kube: KubeApiServer) -> str:
    if not kube.exists("Lease", "aiops-leader", "aiops", group="coordination.k8s.io"):
        return ""
    return kube.get("Lease", "aiops-leader", "aiops", group="coordination.k8s.io")["spec"].get("holderIdentity") or ""


def texts(robot: DingTalkReceiver) -> list[str]:
    return [m["markdown"]["text"] for m in robot.messages]


def parse_micro(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()  # MicroTime: "...T09:28:56.078256Z" (or +00:00)


def test_two_replicas_one_acts_and_the_survivor_takes_over_a_killed_leaders_evacuation(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    with KubeApiServer([make_node(f"gpu-{i}", gpus=8) for i in range(1, 5)], cluster_role=CLUSTER_ROLE) as kube:
        seed_workload(kube, "web", ["gpu-1", "gpu-2"], min_available=2)  # the PDB holds web-0 for now
        seed_workload(kube, "llm", ["gpu-1", "gpu-3"])
        replicas = {}
        robot = DingTalkReceiver(access_token=WEBHOOK_TOKEN).start()
        channel = {"plugin": "dingtalk", "params": {"url": robot.url, "access_token": {"env": "RELIABILITY_HOOK_TOKEN"},
                                                    "connect_timeout": "1s", "read_timeout": "2s"}}
        for name in ("replica-a", "replica-b"):
            (tmp_path / name).mkdir()
            cfg = daemon_config(tmp_path / name, kube, prometheus.url, channels={"robot": channel}, leader=True,
                                identity=name)
            replicas[name] = DaemonProcess(cfg, tmp_path / name, name=name)
        try:
            for r in replicas.values():
                r.start()
            assert wait_for(lambda: holder(kube) in replicas, 20)
            leader_name = holder(kube)
            leader = replicas[leader_name]
            follower = next(r for n, r in replicas.items() if n != leader_name)
            # Alertmanager's Service reaches either pod; both replicas hear of the failing node.
            for r in replicas.values():
                r.post_alert("gpu-1")
            assert wait_for(lambda: len(evictions(kube, "web-0")) >= 1, 30), leader.output()[-3000:]
            time.sleep(2)  # several cycles of both replicas
            assert Counter(applied_writes(kube, "nodes", "pods")) == Counter(
                {("PATCH", "nodes", "", "gpu-1"): 1, ("POST", "pods", "eviction", "llm-0"): 1})
            acting_users = {r.user for r in kube.requests_matching(writes_only=True) if r.resource in ("nodes", "pods")}
            assert len(acting_users) == 1  # one identity (the shared service account) ...
            told_before_failover = texts(robot)
            ready = requests.get(follower.base + "/readyz", timeout=5).json()
            assert "follower" in ready["reason"], ready  # ... and the follower says it does not act

            before = kube.get("Lease", "aiops-leader", "aiops", group="coordination.k8s.io")["spec"]
            leader.kill()  # no release: the lease must expire
            killed = time.monotonic()
            kube.seed(make_pod("web-9", node="gpu-3", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
            assert wait_for(lambda: holder(kube) == follower.name, 3 * LEASE_DURATION, 0.05)
            takeover = time.monotonic() - killed
            spec = kube.get("Lease", "aiops-leader", "aiops", group="coordination.k8s.io")["spec"]
            since_last_renewal = parse_micro(spec["acquireTime"]) - parse_micro(before["renewTime"])
            assert spec["leaseTransitions"] == before["leaseTransitions"] + 1
            assert takeover <= LEASE_DURATION + RETRY_PERIOD + 2.0, takeover  # +2 s: slack for busy shared cores
            assert since_last_renewal >= LEASE_DURATION - 0.1, "took over a lease that had not expired"

            assert wait_for(lambda: not kube.exists("Pod", "web-0"), 20), follower.output()[-3000:]
            time.sleep(2)
            assert follower.stop() == 0
        finally:
            for r in replicas.values():
                if r.proc and r.proc.poll() is None:
                    r.proc.kill()
                    r.proc.wait()
            robot.stop()
        done = Counter(applied_writes(kube, "nodes", "pods"))
        assert done == Counter({("PATCH", "nodes", "", "gpu-1"): 1, ("POST", "pods", "eviction", "llm-0"): 1,
                                ("POST", "pods", "eviction", "web-0"): 1}), done
        # The survivor released the lease on its clean shutdown.
        assert holder(kube) == ""
    # Only the leader tells: one message per finding, not one per replica.
    assert sum("leaky-0" in t for t in told_before_failover) == 1, told_before_failover
    told = texts(robot)
    assert sum("leaky-0" in t for t in told) == 1, "the new leader told an old finding again"
    print(f"\nleader takeover: {takeover:.2f}s after SIGKILL, {since_last_renewal:.2f}s after the last renewal "
          f"(lease_duration {LEASE_DURATION:.0f}s, retry_period {RETRY_PERIOD}s)")


def test_a_message_the_killed_leader_could_not_deliver_is_sent_by_the_new_leader(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    with (
        KubeApiServer([make_node("gpu-1", gpus=8)], cluster_role=CLUSTER_ROLE) as kube,
        DingTalkReceiver(access_token=WEBHOOK_TOKEN) as robot,
    ):
        robot.fail_next(130101, "send too fast")  # the leader's first digest is throttled: held 10 min
        channel = {"plugin": "dingtalk", "params": {"url": robot.url, "access_token": {"env": "RELIABILITY_HOOK_TOKEN"},
                                                    "connect_timeout": "1s", "read_timeout": "2s"}}
        replicas = {}
        for name in ("replica-a", "replica-b"):
            (tmp_path / name).mkdir()
            cfg = daemon_config(tmp_path / name, kube, prometheus.url, channels={"robot": channel}, leader=True,
                                identity=name)
            replicas[name] = DaemonProcess(cfg, tmp_path / name, name=name)
        try:
            for r in replicas.values():
                r.start()
            assert wait_for(lambda: len(robot.requests) == 1, 30)  # the throttled attempt
            leader = replicas[holder(kube)]
            follower = next(r for r in replicas.values() if r is not leader)
            time.sleep(2)  # a few more cycles of both: the message waits in the leader's outbox
            assert robot.messages == []
            leader.kill()
            assert wait_for(lambda: holder(kube) == follower.name, 3 * LEASE_DURATION, 0.05)
            delivered = wait_for(lambda: any("leaky-0" in t for t in texts(robot)), 10)
            follower.stop()
        finally:
            for r in replicas.values():
                if r.proc and r.proc.poll() is None:
                    r.proc.kill()
                    r.proc.wait()
    assert delivered, "the finding the old leader could not deliver was never told"
