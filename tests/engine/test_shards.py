"""Shards across replicas on coordination.k8s.io Leases, against the test API server.

Three replicas with a shared simulated clock take rounds the way their background loops would
(every ``retry_period``): every series ends up owned by exactly one live replica, a killed
replica's shard moves within one lease period, no shard ever has two holders, and budgets split
per shard add up to the global budget.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from kubernetes import client

from aiops.config import ConfigError, parse_config
from aiops.config.safety import SHARD_SPLIT_BUDGETS
from aiops.engine.facts import ClusterFacts
from aiops.engine.shards import _LEASE_WORKERS, SHARED_SIGNALS, ShardLeases, budget_share, shard_of, shares
from aiops.model import Entity, Frame, Series, SignalInfo
from aiops.testing.kubeapi import ADMIN_TOKEN, KubeApiServer
from tests.engine.kubecluster import connections_opened

LEASE, RENEW, RETRY = 15.0, 10.0, 2.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def replica(server: KubeApiServer, name: str, clock: Clock, shards: int = 3) -> ShardLeases:
    return ShardLeases(
        server.api_client(ADMIN_TOKEN),
        namespace="aiops",
        prefix="aiops-shard",
        shards=shards,
        identity=name,
        lease_duration=LEASE,
        renew_deadline=RENEW,
        retry_period=RETRY,
        clock=clock,
    )


def two_sharded_actors(
    server: KubeApiServer, tmp_path, clock: Clock, *, read_view=None, **safety  # noqa: ANN001, ANN003
) -> dict:  # type: ignore[type-arg]
    """The act stages of replicas ``a`` and ``b`` of a 2-shard deployment (leader election on,
    ``safety`` over the test config's), each with its own state file under ``tmp_path``."""
    from aiops.config.sharding import ShardingConfig
    from aiops.engine.act import Actor
    from aiops.state import Store
    from tests.engine.kubecluster import make_config

    actors = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = make_config(server, tmp_path / name, leader=True, **safety)
        config = config.model_copy(update={"sharding": ShardingConfig(shards=2)})
        actors[name] = Actor(
            config, Store(config.state.path), api=server.api_client(ADMIN_TOKEN),
            elector=replica(server, name, clock, shards=2), read_view=read_view,
        )
    return actors


def then_meanwhile(read: Callable, meanwhile: Callable) -> tuple[Callable, list]:  # type: ignore[type-arg]
    """``read`` that, once, runs ``meanwhile`` (another replica's whole act stage) after its own
    answer came back and before its caller goes on; and the list ``meanwhile``'s answer lands in."""
    answers: list = []  # type: ignore[type-arg]

    def wrapped():  # type: ignore[no-untyped-def]
        got = read()
        if not answers:
            answers.append(meanwhile())
        return got

    return wrapped, answers


def entities(n: int = 300) -> list[Entity]:
    nodes = [Entity("node", f"gpu-node-{i}") for i in range(n // 3)]
    pods = [Entity("pod", f"p-{i}", "ml", (("node", f"gpu-node-{i % 40}"),)) for i in range(n // 3)]
    models = [Entity("model", f"m-{i}", "serving") for i in range(n // 3)]
    return nodes + pods + models


def tick(clock: Clock, live: list[ShardLeases], rounds: int = 1) -> None:
    for _ in range(rounds):
        clock.t += RETRY
        for r in live:
            r.round()
        holders = Counter(s for r in live for s in r.held())
        assert all(n == 1 for n in holders.values()), f"a shard with two holders: {holders}"


def test_three_replicas_split_three_shards_and_a_kill_moves_one_within_a_lease_period(server: KubeApiServer) -> None:
    clock = Clock()
    a, b, c = (replica(server, n, clock) for n in "abc")
    a.round()
    assert a.held() == {0, 1, 2}  # alone: it holds everything
    tick(clock, [a, b, c], rounds=3)
    assert sorted(len(r.held()) for r in (a, b, c)) == [1, 1, 1]  # a handed two back as b, c joined

    # Every series is owned by exactly one live replica.
    owners = Counter()
    for e in entities():
        mine = [r.identity for r in (a, b, c) if r.owns(e)]
        assert len(mine) == 1, (e, mine)
        owners[mine[0]] += 1
    assert set(owners) == {"a", "b", "c"}

    # b is killed (no release). Its shard is orphaned until its Lease has not changed for a lease period.
    lost = next(iter(b.held()))
    killed_at = clock.t
    moved_at = None
    while clock.t - killed_at <= LEASE + 2 * RETRY:
        tick(clock, [a, c])
        if any(lost in r.held() for r in (a, c)):
            moved_at = clock.t
            break
    assert moved_at is not None, "the orphaned shard was not picked up"
    assert moved_at - killed_at <= LEASE + 2 * RETRY  # one lease period, plus the round that sees it
    assert not b.is_leader  # its renew deadline passed long before anyone took over
    tick(clock, [a, c], rounds=2)
    assert sorted(len(r.held()) for r in (a, c)) == [1, 2]  # at most ceil(3 / 2) each
    assert a.held() | c.held() == {0, 1, 2}
    for e in entities():
        assert sum(r.owns(e) for r in (a, c)) == 1


@pytest.mark.slow  # real time: renewals against an API server answering every request late
def test_each_shard_lease_is_renewed_within_its_own_deadline_on_a_slow_api(server: KubeApiServer) -> None:
    """Renewed one after another, a round of 16 shards at 80 ms a request took longer than the
    renew deadline: the first Leases renewed lapsed before the round ended, and the replica stopped
    acting on shards nobody else could take. Renewed side by side (a bounded pool), each Lease is
    renewed well within its own deadline, and a request that hangs on one Lease costs only that one."""
    import time

    shards = 16
    server.slow_down(0.08)  # every request
    leases = ShardLeases(
        server.api_client(ADMIN_TOKEN), namespace="aiops", prefix="aiops-shard", shards=shards, identity="a",
        lease_duration=3.0, renew_deadline=2.0, retry_period=0.5, timeout=(1.0, 1.0),
    )

    def held_throughout(seconds: float) -> list[frozenset[int]]:
        seen, until = [], time.monotonic() + seconds
        while time.monotonic() < until:
            seen.append(leases.held())
            time.sleep(0.05)
        return seen

    leases.start()
    try:
        taken = time.monotonic() + 5.0
        while len(leases.held()) < shards and time.monotonic() < taken:
            time.sleep(0.05)
        assert [h for h in held_throughout(3.0) if len(h) != shards] == []  # once held, never lapsed
        server.hang_next(2, method="GET", path=r"leases/aiops-shard-5$", seconds=1.2)  # one Lease's API stalls
        assert [h for h in held_throughout(3.0) if len(h - {5}) != shards - 1] == []
    finally:
        leases.stop(release=True)


@pytest.mark.slow  # real time: a member Lease request that hangs longer than the renew deadline
@pytest.mark.parametrize(
    "stalled",
    [pytest.param(r"leases/aiops-shard-member-a$", id="member-lease"), pytest.param(r"namespaces/aiops/leases$", id="listing")],
)
def test_a_stalled_membership_request_does_not_hold_up_the_shard_leases(server: KubeApiServer, stalled: str) -> None:
    """The member Lease and the listing of members only size the replica's share. Renewed before
    the shard Leases, in the same round, one of them hanging past the renew deadline made every
    shard the replica held lapse: it stopped acting for want of a request that decides nothing
    about the shards it already holds."""
    import time

    shards = 4
    leases = ShardLeases(
        server.api_client(ADMIN_TOKEN), namespace="aiops", prefix="aiops-shard", shards=shards, identity="a",
        lease_duration=3.0, renew_deadline=2.0, retry_period=0.5, timeout=(1.0, 4.0),
    )
    leases.start()
    try:
        taken = time.monotonic() + 5.0
        while len(leases.held()) < shards and time.monotonic() < taken:
            time.sleep(0.05)
        assert leases.held() == set(range(shards))
        server.hang_next(2, method="GET", path=stalled, seconds=3.0)  # 6 s stalled, three deadlines
        seen, until = [], time.monotonic() + 7.0
        while time.monotonic() < until:
            seen.append(leases.held())
            time.sleep(0.05)
        assert [h for h in seen if len(h) != shards] == []  # held throughout
    finally:
        leases.stop(release=True)


@pytest.mark.slow  # real time: the listing of members answers after the round stopped waiting for it
def test_a_membership_answer_that_comes_after_its_rounds_wait_is_used_by_the_next_round(server: KubeApiServer) -> None:
    """A round waits one retry period for the membership, then keeps what it holds. An answer that
    came after that wait (here every one: the listing takes 0.7 s, the wait 0.5 s and the pause
    between rounds 0.5 s) was thrown away by the next round, which asked anew: the count of
    replicas was never used, so a replica joining got no shard and the one holding all of them
    never handed any back."""
    import time

    def replica_(identity: str) -> ShardLeases:
        return ShardLeases(
            server.api_client(ADMIN_TOKEN), namespace="aiops", prefix="aiops-shard", shards=4, identity=identity,
            lease_duration=3.0, renew_deadline=2.0, retry_period=0.5, timeout=(1.0, 4.0),
        )

    def until(done: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
        return done()

    a, b = replica_("a"), replica_("b")
    a.start()
    try:
        assert until(lambda: a.held() == {0, 1, 2, 3}, 5.0)
        server.slow_down(0.7, method="GET", path=r"namespaces/aiops/leases$")  # the listing of members
        b.start()
        assert until(lambda: len(a.held()) == len(b.held()) == 2, 8.0), (a.held(), b.held())
        assert not a.held() & b.held()
    finally:
        b.stop(release=True)
        a.stop(release=True)


def test_shard_rounds_reuse_the_clients_connections(server: KubeApiServer) -> None:
    """Each round renews every shard Lease side by side: with the Lease writes' answers left unread
    every round opened a new connection per Lease, in bursts of the pool's workers. Read to their
    end, the connections go back to the client's pool and the rounds reuse them."""
    config = server.configuration(ADMIN_TOKEN)
    config.connection_pool_maxsize = 10  # the client's default is 5 per CPU: the same on every machine
    api = client.ApiClient(config)
    clock = Clock()
    a = ShardLeases(api, namespace="aiops", prefix="aiops-shard", shards=16, identity="a", lease_duration=LEASE,
                    renew_deadline=RENEW, retry_period=RETRY, clock=clock)
    try:
        for _ in range(4):
            a.round()
            clock.t += RETRY
        assert a.held() == set(range(16))
        assert connections_opened(api) <= _LEASE_WORKERS  # one per worker (the membership runs in them too)
    finally:
        a.stop(release=True)


def test_a_clean_stop_hands_shards_over_at_once(server: KubeApiServer) -> None:
    clock = Clock()
    a, b = replica(server, "a", clock, shards=4), replica(server, "b", clock, shards=4)
    tick(clock, [a, b], rounds=3)
    assert sorted(len(r.held()) for r in (a, b)) == [2, 2]
    a.stop(release=True)
    tick(clock, [b], rounds=2)  # no lease period to wait for: a handed its shards and membership back
    assert b.held() == {0, 1, 2, 3}


def test_restrict_keeps_the_replicas_series_and_a_node_with_its_pods(server: KubeApiServer) -> None:
    clock = Clock()
    a = replica(server, "a", clock)
    info = {"s": SignalInfo("s", "pod")}
    ts = np.arange(3, dtype=np.float64)
    series = tuple(Series("s", {"i": str(i)}, ts, ts, e) for i, e in enumerate(entities()))
    frame = Frame(datetime(2026, 1, 1, tzinfo=UTC), series, info, 60.0)
    parts = [a.restrict(frame, frozenset({k})) for k in range(3)]
    assert sum(len(p) for p in parts) == len(frame)
    node = Entity("node", "gpu-node-7")
    pod = Entity("pod", "x", "ml", (("node", "gpu-node-7"),))
    gpu = Entity("gpu", "GPU-1", "", (("Hostname", "gpu-node-7"),))
    assert shard_of(node, 3) == shard_of(pod, 3) == shard_of(gpu, 3)


def test_every_replica_keeps_pod_info_whole_so_it_knows_who_owns_the_pods_it_may_restart(server: KubeApiServer) -> None:
    """A pod's own signals hash by its name, its ``pod_info`` by its node (the node's shard counts
    the pods an evacuation moves): a replica holding the pod but not its node must still know the
    pod is a Job's, or it would restart it. ``pod_info`` is kept whole; its findings stay with their owner."""
    a = replica(server, "a", Clock())
    ts = np.arange(3, dtype=np.float64)
    job_pods = [(f"train-{i}", f"gpu-node-{i}") for i in range(30)]
    pods = [Entity("pod", name, "ml") for name, _ in job_pods]
    infos = [Entity("pod", name, "ml", (("node", node), ("created_by_kind", "Job"))) for name, node in job_pods]
    series = tuple(Series("pod_restarts", {"pod": e.name}, ts, ts, e) for e in pods) + tuple(
        Series("pod_info", {"pod": e.name, "node": e.attr("node")}, ts, ts + 1, e) for e in infos
    )
    info = {n: SignalInfo(n, "pod") for n in ("pod_restarts", "pod_info")}
    frame = Frame(datetime(2026, 1, 1, tzinfo=UTC), series, info, 60.0)
    apart = [p for p, i in zip(pods, infos) if shard_of(p, 3) != shard_of(i, 3)]
    assert len(apart) > 10  # most pods' two keys fall in different shards
    for k in range(3):
        part = a.restrict(frame, frozenset({k}))
        facts = ClusterFacts.from_frame(part)
        assert [p.name for p in pods if shard_of(p, 3) == k and facts.owner_kind(p) != "Job"] == []
        assert len(part.of("pod_info")) == len(infos)
        mine = [s for s in part.series if s.signal == "pod_restarts"]
        assert {s.entity for s in mine} == {p for p in pods if shard_of(p, 3) == k}


def test_the_shard_of_a_node_knows_which_of_its_pods_finished(server: KubeApiServer) -> None:
    """An evacuation is judged in its node's shard, but ``pod_finished`` carries no node (it hashes
    by the pod's name): kept whole, the node's shard sees its completed Job pods as finished and the
    node as drained, whichever shard their names fall in."""
    a = replica(server, "a", Clock())
    ts = np.arange(3, dtype=np.float64)
    nodes = [f"gpu-node-{i}" for i in range(30)]
    pods = [Entity("pod", f"report-{i}", "batch", (("node", n), ("created_by_kind", "Job"))) for i, n in enumerate(nodes)]
    series = tuple(Series("node_unschedulable", {"node": n}, ts, np.ones(3), Entity("node", n)) for n in nodes) + tuple(
        Series("pod_info", {"pod": e.name, "node": e.attr("node")}, ts, np.ones(3), e) for e in pods
    ) + tuple(Series("pod_finished", {"pod": e.name, "phase": "Succeeded"}, ts, np.ones(3),
                     Entity("pod", e.name, "batch", (("phase", "Succeeded"),))) for e in pods)
    info = {n: SignalInfo(n, "pod") for n in ("pod_info", "pod_finished")} | {
        "node_unschedulable": SignalInfo("node_unschedulable", "node")}
    frame = Frame(datetime(2026, 1, 1, tzinfo=UTC), series, info, 60.0)
    apart = [e for e in pods if shard_of(Entity("pod", e.name, "batch"), 3) != shard_of(Entity("node", e.attr("node")), 3)]
    assert len(apart) > 10  # most finished series hash to another shard than their node's
    for k in range(3):
        facts = ClusterFacts.from_frame(a.restrict(frame, frozenset({k})))
        mine = [n for n in nodes if shard_of(Entity("node", n), 3) == k]
        assert mine and all(facts.drained(n) for n in mine)


@pytest.mark.parametrize("total", [0, 1, 2, 5, 20, 101])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_budget_shares_add_up_to_the_global_budget(total: int, n: int) -> None:
    parts = [budget_share(total, s, n) for s in range(n)]
    assert sum(parts) == total and max(parts) - min(parts) <= 1
    # Any partition of the shards over replicas spends at most the global budget.
    assert shares(total, range(n), n) == total
    assert shares(total, [s for s in range(n) if s % 2], n) + shares(total, [s for s in range(n) if not s % 2], n) == total
    assert math.ceil(total / n) >= max(parts)


def test_stable_hash_does_not_depend_on_the_process() -> None:
    # blake2b, not hash(): every replica (and every restart) computes the same shard.
    assert [shard_of(Entity("node", f"n{i}"), 5) for i in range(6)] == [1, 3, 0, 2, 3, 1]
    assert shard_of(Entity("node", "n1"), 1) == 0


def test_sharding_needs_leases() -> None:
    with pytest.raises(ConfigError, match="sharding.shards > 1 needs kubernetes.enabled"):
        parse_config({"sharding": {"shards": 3}})


def test_more_shards_than_a_split_budget_is_refused_at_load() -> None:
    """Every budget is split per shard, so with fewer units than shards some shards get none and
    their entities are never acted on (6 shards, 5 actions an hour: shard 5 never acts) though
    nothing was spent. The config names each such budget and says what to do."""
    leases = {"kubernetes": {"enabled": True}}
    with pytest.raises(ConfigError) as info:
        parse_config({**leases, "sharding": {"shards": 6}})
    msg = str(info.value)
    for key in (
        "sharding.shards (6)",
        "safety.max_actions_per_hour (5)",
        "safety.max_predicted_actions_per_hour (2)",
        "safety.max_inbound_actions_per_hour (1)",
        "safety.max_inbound_actions_per_day (4)",
    ):
        assert key in msg, (key, msg)
    assert "max_actions_per_day" not in msg and "max_predicted_actions_per_day" not in msg  # 20, 8 >= 6
    # Budgets of at least the shard count are fine, and 0 (that kind of action off) is no split.
    ok = parse_config(
        {**leases, "sharding": {"shards": 3}, "safety": {
            "max_predicted_actions_per_hour": 3, "max_inbound_actions_per_hour": 0, "max_inbound_actions_per_day": 0,
        }}
    )
    for knob in SHARD_SPLIT_BUDGETS:
        total = getattr(ok.safety, knob)
        assert total == 0 or min(budget_share(total, i, 3) for i in range(3)) >= 1, knob
    with pytest.raises(ConfigError, match=r"safety.max_predicted_actions_per_hour \(2\)"):
        parse_config({**leases, "sharding": {"shards": 3}, "safety": {"max_inbound_actions_per_hour": 3}})


def test_the_split_budgets_are_every_hourly_and_daily_action_budget() -> None:
    """The check covers every budget the writer splits per shard: a new one is covered too."""
    import re

    from aiops.config.safety import SafetyConfig

    budgets = {f for f in SafetyConfig.model_fields if re.fullmatch(r"max_\w*actions_per_(hour|day)", f)}
    assert set(SHARD_SPLIT_BUDGETS) == budgets and len(budgets) == 6


def test_three_sharded_replicas_act_once_each_and_share_one_global_budget(server: KubeApiServer, tmp_path) -> None:  # noqa: ANN001
    """The act stage of three replicas, each fed every decision (as if each had seen every finding):
    each action is applied by the one holder of its shard, and the global hourly budget is kept."""
    from aiops.config.sharding import ShardingConfig
    from aiops.engine.act import Actor
    from aiops.model import ActionStatus
    from aiops.state import Store
    from tests.engine.kubecluster import NOW, decision, make_config, seed_workload

    nodes = ["gpu-1", "gpu-2", "gpu-3", "gpu-4"]
    pods = [(name, node) for app in ("web", "llm", "db") for name, node in zip(seed_workload(server, app, nodes), nodes)]
    clock = Clock()
    actors = []
    for name in ("replica-a", "replica-b", "replica-c"):
        (tmp_path / name).mkdir()
        config = make_config(server, tmp_path / name, leader=True, max_actions_per_hour=5, max_pods_per_workload=10)
        config = config.model_copy(update={"sharding": ShardingConfig(shards=3)})
        api = server.api_client(ADMIN_TOKEN)
        leases = replica(server, name, clock)
        actors.append(Actor(config, Store(config.state.path), api=api, elector=leases))
    tick(clock, [a.elector for a in actors], rounds=3)  # type: ignore[misc]
    assert sorted(len(a.elector.held()) for a in actors) == [1, 1, 1]  # type: ignore[union-attr]
    decisions = [decision("restart_pod", Entity("pod", name, "default", (("node", node),))) for name, node in pods]
    applied: Counter[str] = Counter()
    for a in actors:
        mine = [d for d in decisions if a.elector.owns(d.finding.entity)]  # type: ignore[union-attr]
        for r in a.act(mine, findings=[], degraded=False, now=NOW):
            if r.status is ActionStatus.APPLIED:
                applied[r.target.key] += 1
    assert all(n == 1 for n in applied.values())  # no action duplicated
    # Hourly budget 5 over 3 shards: shares 2, 2, 1; no replica set may spend more than 5 together.
    by_shard = Counter(shard_of(Entity("node", node), 3) for name, node in pods if f"pod/default/{name}" in applied)
    assert all(by_shard[s] <= budget_share(5, s, 3) for s in range(3))
    # gpu-2..4 hash to shard 0 (9 pods, spends its 2), gpu-1 to shard 1 (3 pods, spends its 2).
    assert dict(by_shard) == {0: 2, 1: 2} and sum(applied.values()) == 4 <= 5
    for a in actors:
        a.elector.stop(release=True)  # type: ignore[union-attr]


def test_three_replicas_fetch_only_their_shards_and_a_kill_moves_the_fetch_with_its_history(
    server: KubeApiServer, shard_prometheus, shard_history_end: datetime  # noqa: ANN001
) -> None:
    """Leases and fetch together: each replica asks Prometheus for its own shards' series only;
    after a kill, the replica that takes the shard over fetches its series with their history."""
    from aiops.collect.collector import Collector
    from aiops.collect.shard_query import HeldShards
    from tests.shard_history import collector_config

    config = collector_config(shard_prometheus.url)
    whole, _ = Collector(config).collect(shard_history_end)
    clock = Clock()
    replicas = {n: replica(server, n, clock) for n in "abc"}
    collectors = {n: Collector(config) for n in "abc"}
    tick(clock, list(replicas.values()), rounds=3)

    def split(frame: Frame) -> list[Series]:
        return [s for s in frame.series if s.signal not in SHARED_SIGNALS]

    def fetch(names: str) -> dict[str, Frame]:
        frames = {}
        for n in names:
            held = replicas[n].held()
            frame, errors = collectors[n].collect(shard_history_end, HeldShards(3, held, SHARED_SIGNALS))
            assert not errors
            frames[n] = replicas[n].restrict(frame, held)
            # Its shards' part, not everything (of what is not shared).
            assert len(split(frame)) < (len(held) / 3 + 0.25) * len(split(whole))
            # pod_info whole in every replica: it knows every pod's node and owner.
            assert {s.key for s in frames[n].of("pod_info")} == {s.key for s in whole.of("pod_info")}
        return frames

    def owned_keys(frames: dict[str, Frame]) -> list:
        return [s.key for n, f in frames.items() for s in f.series
                if s.signal not in SHARED_SIGNALS or replicas[n].owns(s.entity)]

    frames = fetch("abc")
    keys = owned_keys(frames)
    assert len(keys) == len(set(keys)) and set(keys) == {s.key for s in whole.series}

    lost = next(iter(replicas["b"].held()))
    killed_at = clock.t
    while not any(lost in replicas[n].held() for n in "ac"):
        tick(clock, [replicas["a"], replicas["c"]])
        assert clock.t - killed_at <= LEASE + 2 * RETRY
    frames = fetch("ac")
    keys = owned_keys(frames)
    assert len(keys) == len(set(keys)) and set(keys) == {s.key for s in whole.series}
    full = {s.key: s for s in whole.series}
    assert all(len(s.timestamps) == len(full[s.key].timestamps) for f in frames.values() for s in f.series)
    for r in replicas.values():
        r.stop(release=True)


def test_a_replica_that_hands_a_shard_back_writes_nothing_more_for_it(server: KubeApiServer, tmp_path) -> None:  # noqa: ANN001
    """Holding *a* shard is not holding *this* one: after replica a hands shard 1 back to b, a
    neither resumes its in-flight evacuation there, nor judges or undoes its shard-1 actions
    (their findings are b's now, so their absence in a's cycle proves nothing), and its leader
    rail refuses a shard-1 decision that reaches the writer. b adopts the evacuation from the
    action ledger and finishes it: one node, one acting replica."""
    from datetime import timedelta

    from aiops.model import ActionStatus
    from aiops.testing.kubeapi_objects import make_pod
    from tests.engine.kubecluster import NOW, decision, seed_workload, writes

    seed_workload(server, "web", ["gpu-1", "gpu-2"], min_available=2)  # the PDB holds web-0 on gpu-1
    seed_workload(server, "llm", ["gpu-1", "gpu-3"])
    clock = Clock()
    actors = two_sharded_actors(
        server, tmp_path, clock, max_pods_per_workload=10, max_cordoned_fraction=0.5, auto_uncordon=True, uncordon_after="1m",
    )
    a, b = actors["a"], actors["b"]
    gpu1, gpu3 = Entity("node", "gpu-1"), Entity("node", "gpu-3")
    assert shard_of(gpu1, 2) == shard_of(gpu3, 2) == 1

    a.elector.round()  # type: ignore[union-attr]
    assert a.elector.held() == {0, 1}  # type: ignore[union-attr]
    first = a.act([decision("evacuate_node", gpu1), decision("evacuate_node", gpu3)], findings=[], degraded=False, now=NOW)
    assert [r.status for r in first] == [ActionStatus.DEFERRED, ActionStatus.APPLIED]  # gpu-1 waits for the PDB
    assert [f.decision.target.key for f in a.writer.in_flight()] == ["node/gpu-1"]

    tick(clock, [a.elector, b.elector], rounds=3)  # type: ignore[list-item]
    assert (a.elector.held(), b.elector.held()) == ({0}, {1})  # type: ignore[union-attr]
    server.seed(make_pod("web-9", node="gpu-2", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))  # PDB allows now

    # a's cycles (the pipeline gives it no shard-1 decision): nothing resumed, judged or undone.
    server.clear_requests()
    for minutes in (3, 5, 40):
        assert a.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    # A shard-1 decision that reaches a's writer anyway: its leader rail refuses it.
    late = a.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=41))
    assert [(r.status, r.rail) for r in late] == [(ActionStatus.BLOCKED, "leader")]
    assert "shard 1" in late[0].detail
    assert [w for w in writes(server) if w[1] in ("pods", "nodes")] == []

    # b, which holds shard 1 now, adopts the evacuation from the ledger and evicts web-0 itself.
    got = b.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=42))
    assert [(r.status, r.target) for r in got if r.target == gpu1] == [(ActionStatus.APPLIED, gpu1)]
    # gpu-3's evacuation converged at NOW and was never judged (a handed the shard over, b's first
    # cycle is 42 min later): its node stays cordoned, and the on-call is told so.
    assert [(r.status, r.target) for r in got if r.target != gpu1] == [(ActionStatus.SUGGESTED, gpu3)]
    assert ("POST", "pods", "eviction", "web-0") in writes(server)
    for r in actors.values():
        r.elector.stop(release=True)  # type: ignore[union-attr]


def test_the_new_holder_of_a_shard_restores_what_the_old_one_scaled_ahead(server: KubeApiServer, tmp_path) -> None:  # noqa: ANN001
    """Replica a scales a shard-1 model's workload ahead, then hands shard 1 to b. a's outcome of
    it stays in a's state file; the workload carries the decision, so b restores it once the
    finding has stayed clear, and a, which no longer holds the shard, does not."""
    from datetime import timedelta

    from aiops.model import ActionStatus
    from aiops.testing.kubeapi_objects import make_hpa
    from tests.engine.kubecluster import NOW, decision, finding, seed_workload

    seed_workload(server, "mistral", ["gpu-1"], labels={"aiops.io/model": "mistral"})
    server.seed(make_hpa("mistral", target="mistral", min_replicas=1, max_replicas=4, current=1))
    clock = Clock()
    actors = two_sharded_actors(server, tmp_path, clock, restore_after="30m")
    a, b = actors["a"], actors["b"]
    model = Entity("model", "mistral", "default")
    assert shard_of(model, 2) == 1

    a.elector.round()  # type: ignore[union-attr]
    surge = finding("inference_request_rate", model, detector="headroom")
    [up] = a.act([decision("scale_ahead", model, surge, resolve_target="owner", direction="up")],
                 findings=[surge], degraded=False, now=NOW)
    assert up.status is ActionStatus.APPLIED, up.detail
    tick(clock, [a.elector, b.elector], rounds=3)  # type: ignore[list-item]
    assert (a.elector.held(), b.elector.held()) == ({0}, {1})  # type: ignore[union-attr]

    def floor() -> int:
        return int(server.get("HorizontalPodAutoscaler", "mistral", group="autoscaling")["spec"]["minReplicas"])

    # b takes it over before a's verdict (within verify_within): b judges it healed at 5, and
    # restores it 30 min later.
    for minutes in (5, 20, 34):
        assert b.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
        assert a.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=minutes)) == []
    assert floor() == 2
    [restore] = b.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=36))
    assert restore.status is ActionStatus.APPLIED and "restore" in restore.detail, restore.detail
    assert floor() == 1
    assert a.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=60)) == []
    for r in actors.values():
        r.elector.stop(release=True)  # type: ignore[union-attr]


def test_the_per_workload_cap_is_cluster_wide_across_shards(server: KubeApiServer, tmp_path) -> None:  # noqa: ANN001
    """Pods of one Deployment sit on nodes of different shards: with max_pods_per_workload counted
    per replica, each holder evicted 'its' pod and the cap was spent once per shard. The second
    holder reads the first's disruption from its Event and holds its pod of the workload back."""
    from datetime import timedelta

    from aiops.model import ActionStatus
    from tests.engine.kubecluster import NOW, decision, seed_workload, writes

    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-4"])
    clock = Clock()
    actors = list(two_sharded_actors(server, tmp_path, clock, max_pods_per_workload=1, max_cordoned_fraction=0.5).values())
    tick(clock, [a.elector for a in actors], rounds=3)  # type: ignore[misc]
    gpu1, gpu2 = Entity("node", "gpu-1"), Entity("node", "gpu-2")
    assert (shard_of(gpu2, 2), shard_of(gpu1, 2)) == (0, 1)
    first, second = (next(a for a in actors if a.elector.owns(n)) for n in (gpu2, gpu1))  # type: ignore[union-attr]
    assert first is not second

    done = first.act([decision("evacuate_node", gpu2)], findings=[], degraded=False, now=NOW)[0]
    assert done.status is ActionStatus.APPLIED, done.detail  # web-1 evicted: the cap is spent
    held = second.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=2))[0]
    assert held.status is ActionStatus.DEFERRED and "reached 1 pod(s)" in held.detail, held.detail
    assert [w[3] for w in writes(server) if w[2] == "eviction"] == ["web-1"]
    # The first holder reads its own disruption back: counted once, not twice.
    first.act([], findings=[], degraded=False, now=NOW + timedelta(minutes=3))
    assert first.writer.books.disruptions("deployment/default/web", NOW - timedelta(hours=1), False) == 1
    for a in actors:
        a.elector.stop(release=True)  # type: ignore[union-attr]


def test_the_cordon_cap_holds_across_replicas_that_read_the_cluster_before_either_cordoned(
    server: KubeApiServer, tmp_path  # noqa: ANN001
) -> None:
    """Each replica judged max_cordoned_fraction against the view it read at the start of its act
    stage, and counted only its own cordons since: two replicas in two shards that read before
    either cordoned both passed a cap with room for one more node, and 3 of 4 nodes ended up
    cordoned (cap 2). The rail counts the nodes cordoned right now, read from the API server."""
    from aiops.kube.read import read_cluster_view
    from aiops.model import ActionStatus
    from aiops.testing.kubeapi_objects import make_node
    from tests.engine.kubecluster import NOW, decision

    server.put(make_node("gpu-4", gpus=8, unschedulable=True))  # a human's: one of the two allowed
    stale = read_cluster_view(server.api_client(ADMIN_TOKEN), now=NOW, timeout=(2.0, 2.0))  # read by both, first
    clock = Clock()
    actors = two_sharded_actors(server, tmp_path, clock, read_view=lambda now: stale, max_cordoned_fraction=0.5)
    tick(clock, [a.elector for a in actors.values()], rounds=3)  # type: ignore[misc]
    gpu1, gpu2 = Entity("node", "gpu-1"), Entity("node", "gpu-2")
    first, second = (next(a for a in actors.values() if a.elector.owns(n)) for n in (gpu2, gpu1))  # type: ignore[union-attr]
    assert first is not second

    done = first.act([decision("evacuate_node", gpu2)], findings=[], degraded=False, now=NOW)[0]
    assert done.status is ActionStatus.APPLIED, done.detail
    late = second.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW)[0]
    assert (late.status, late.rail) == (ActionStatus.BLOCKED, "blast_radius"), late.detail
    assert "3 of 4 nodes" in late.detail
    cordoned = sorted(n["metadata"]["name"] for n in server.list("Node", "") if n["spec"].get("unschedulable"))
    assert cordoned == ["gpu-2", "gpu-4"]
    for a in actors.values():
        a.elector.stop(release=True)  # type: ignore[union-attr]


def test_a_shard_that_comes_back_brings_no_stale_in_flight_action_with_it(server: KubeApiServer, tmp_path) -> None:  # noqa: ANN001
    """a started an evacuation of gpu-1 (shard 1) and handed shard 1 back before it finished; its
    in-flight record stayed in its books. b finished the evacuation and the node was uncordoned
    since; when shard 1 came back to a hours later, a resumed its stale record, past every rail
    that gates starting an action: it cordoned gpu-1 again. A replica that takes a shard (not a
    renewal) forgets what it had in flight there; the shard's holder continues from the ledger,
    as a itself does when it takes shard 1 back while an evacuation there is unfinished."""
    from datetime import timedelta

    from aiops.engine.act import Actor
    from aiops.model import ActionStatus
    from aiops.testing.kubeapi_objects import make_node, make_pod
    from tests.engine.kubecluster import NOW, decision, finding, seed_workload, writes

    seed_workload(server, "web", ["gpu-1", "gpu-2"], min_available=2)  # the PDB holds web-0 on gpu-1
    clock = Clock()
    actors = two_sharded_actors(server, tmp_path, clock, max_pods_per_workload=10, max_cordoned_fraction=0.5)
    a, b = actors["a"], actors["b"]
    gpu1, gpu3 = Entity("node", "gpu-1"), Entity("node", "gpu-3")

    def hand_shard_1(to: Actor, away: Actor) -> None:
        away.elector.stop(release=True)  # type: ignore[union-attr]
        tick(clock, [to.elector], rounds=2)  # type: ignore[list-item]
        assert to.elector.held() == {0, 1}  # type: ignore[union-attr]

    a.elector.round()  # type: ignore[union-attr]
    first = a.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW)
    assert [r.status for r in first] == [ActionStatus.DEFERRED]  # cordoned; web-0 waits for the PDB
    tick(clock, [a.elector, b.elector], rounds=3)  # type: ignore[list-item]
    assert b.elector.held() == {1}  # type: ignore[union-attr]

    # b finishes it; later the node is repaired and uncordoned. Shard 1 comes back to a.
    server.seed(make_pod("web-9", node="gpu-2", labels={"app": "web"}, owner=("ReplicaSet", "web-rs")))
    done = b.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=5))
    assert [r.status for r in done] == [ActionStatus.APPLIED]
    server.put(make_node("gpu-1", gpus=8))
    hand_shard_1(a, b)
    server.clear_requests()
    assert a.act([], findings=[], degraded=False, now=NOW + timedelta(hours=3)) == []
    assert [w for w in writes(server) if w[1] in ("pods", "nodes")] == []
    assert a.writer.in_flight() == []

    # An evacuation a started and handed over unfinished: back with a, a adopts it from the ledger
    # (its own record went with the shard; a fresh start would be refused by the cooldown).
    later = NOW + timedelta(hours=4)
    seed_workload(server, "db", ["gpu-3", "gpu-4"], min_available=2)  # the PDB holds db-0 on gpu-3
    got = a.act([decision("evacuate_node", gpu3)], findings=[], degraded=False, now=later)
    assert [r.status for r in got] == [ActionStatus.DEFERRED]
    tick(clock, [a.elector, b.elector], rounds=3)  # type: ignore[list-item]
    assert b.elector.held() == {1}  # type: ignore[union-attr]
    hand_shard_1(a, b)
    server.seed(make_pod("db-9", node="gpu-4", labels={"app": "db"}, owner=("ReplicaSet", "db-rs")))
    resumed = a.act([decision("evacuate_node", gpu3)], findings=[], degraded=False, now=later + timedelta(minutes=5))
    assert [r.status for r in resumed] == [ActionStatus.APPLIED], resumed[0].detail
    assert ("POST", "pods", "eviction", "db-0") in writes(server)

    # Its outcome was pending when shard 1 went to b and came back: a did not watch the findings
    # in between (b did: it may have healed and returned, b may have acted), so a judges nothing.
    tick(clock, [a.elector, b.elector], rounds=3)  # type: ignore[list-item]
    hand_shard_1(a, b)
    again = finding("pod_crashlooping", gpu3)
    assert a.act([], findings=[again], degraded=False, now=later + timedelta(hours=2)) == []
    for r in actors.values():
        r.elector.stop(release=True)  # type: ignore[union-attr]


def test_the_cordon_cap_holds_when_both_replicas_list_the_nodes_before_either_cordons(
    server: KubeApiServer, tmp_path  # noqa: ANN001
) -> None:
    """The cap was counted from a list of the nodes read right before the cordon, but two
    replicas whose lists both landed before either's cordon each passed a cap with room for one
    (3 of 4 nodes cordoned, cap 2). Listing and cordoning now happen under one cluster-wide guard
    Lease: the second replica defers while the first holds it, counts the first's cordon once it
    is handed back, and takes a guard whose holder died once it has seen it unrenewed for a lease
    period."""
    from datetime import timedelta

    from aiops.model import ActionStatus
    from aiops.testing.kubeapi_objects import make_node
    from tests.engine.kubecluster import NOW, decision

    server.put(make_node("gpu-4", gpus=8, unschedulable=True))  # a human's: one of the two allowed
    clock = Clock()
    actors = two_sharded_actors(server, tmp_path, clock, max_cordoned_fraction=0.5, cooldown="0s")
    tick(clock, [a.elector for a in actors.values()], rounds=3)  # type: ignore[misc]
    gpu1, gpu2 = Entity("node", "gpu-1"), Entity("node", "gpu-2")
    first, second = (next(a for a in actors.values() if a.elector.owns(n)) for n in (gpu2, gpu1))  # type: ignore[union-attr]
    assert first is not second

    # The second replica's whole act stage runs after the first listed the nodes, before it cordons.
    assert first.writer.read_nodes is not None
    first.writer.read_nodes, meanwhile = then_meanwhile(
        first.writer.read_nodes,
        lambda: second.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW)[0],
    )
    done = first.act([decision("evacuate_node", gpu2)], findings=[], degraded=False, now=NOW)[0]
    assert done.status is ActionStatus.APPLIED, done.detail
    assert len(meanwhile) == 1 and meanwhile[0].status is ActionStatus.DEFERRED, meanwhile[0].detail
    assert "cordon" in meanwhile[0].detail and "aiops-shard-disruption" in meanwhile[0].detail
    cordoned = sorted(n["metadata"]["name"] for n in server.list("Node", "") if n["spec"].get("unschedulable"))
    assert cordoned == ["gpu-2", "gpu-4"]

    # Next cycle: the guard was handed back, and the second counts the first's cordon.
    late = second.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=1))[0]
    assert (late.status, late.rail) == (ActionStatus.BLOCKED, "blast_radius"), late.detail
    assert "3 of 4 nodes" in late.detail

    # A holder that died holding the guard: waited out for one lease period, not forever.
    server.put(make_node("gpu-4", gpus=8))  # the human uncordons
    assert first.elector.disruption_guard.try_acquire_or_renew()  # type: ignore[union-attr]  # and never hands it back
    held = second.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=2))[0]
    assert held.status is ActionStatus.DEFERRED, held.detail
    tick(clock, [a.elector for a in actors.values()], rounds=int(LEASE / RETRY) + 1)  # type: ignore[misc]
    took = second.act([decision("evacuate_node", gpu1)], findings=[], degraded=False, now=NOW + timedelta(minutes=3))[0]
    assert took.status is ActionStatus.APPLIED, took.detail
    cordoned = sorted(n["metadata"]["name"] for n in server.list("Node", "") if n["spec"].get("unschedulable"))
    assert cordoned == ["gpu-1", "gpu-2"]
    for a in actors.values():
        a.elector.stop(release=True)  # type: ignore[union-attr]


def test_aiops_leader_says_whether_the_replica_holds_a_shard_after_every_round(server: KubeApiServer) -> None:
    """Each shard's elector set the process-wide ``aiops_leader`` gauge from its own Lease, so a
    round's last answer won: a replica that handed one shard back (or only observed another's)
    read 0 on /metrics while it held a shard, until its next cycle set it right. The gauge is
    the replica's: whether it holds any shard after the round."""
    from aiops.metrics import REGISTRY

    clock = Clock()
    a, b = replica(server, "a", clock, shards=2), replica(server, "b", clock, shards=2)
    a.round()
    assert a.held() == {0, 1} and REGISTRY.get_sample_value("aiops_leader") == 1
    b.round()  # b joins; a holds both shards still
    clock.t += RETRY
    a.round()  # a sees two replicas: it hands one shard back and keeps the other
    assert len(a.held()) == 1 and REGISTRY.get_sample_value("aiops_leader") == 1
    tick(clock, [a, b], rounds=2)
    assert len(a.held()) == len(b.held()) == 1
    a.round()  # a renews its shard and observes b's
    assert REGISTRY.get_sample_value("aiops_leader") == 1
    b.round()
    assert REGISTRY.get_sample_value("aiops_leader") == 1
    a.stop(release=True)
    assert REGISTRY.get_sample_value("aiops_leader") == 0
    b.stop(release=True)


def test_the_per_workload_cap_holds_when_both_replicas_count_before_either_disrupts(
    server: KubeApiServer, tmp_path  # noqa: ANN001
) -> None:
    """Each replica counted a workload's disruptions from the action ledger it read once a cycle:
    two replicas restarting pods of one Deployment (on nodes of two shards) whose counts both came
    before either's delete each passed max_pods_per_workload=1, and two of its pods went down at
    once. Counting (from a fresh read of the ledger) and the pod writes happen under the
    cluster-wide guard Lease: the second defers, and next cycle counts the first's disruption."""
    from datetime import timedelta

    from aiops.model import ActionStatus
    from tests.engine.kubecluster import NOW, decision, seed_workload, writes

    seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-4"])
    clock = Clock()
    actors = two_sharded_actors(server, tmp_path, clock, max_pods_per_workload=1, cooldown="0s")
    tick(clock, [a.elector for a in actors.values()], rounds=3)  # type: ignore[misc]
    pods = [Entity("pod", f"web-{i}", "default", (("node", node),)) for i, node in enumerate(["gpu-1", "gpu-2", "gpu-4"])]
    by_shard = {shard_of(p, 2): p for p in pods}
    assert len(by_shard) == 2, "the fixture needs pods of the workload in both shards"
    mine, theirs = by_shard[0], by_shard[1]
    first = next(a for a in actors.values() if a.elector.owns(mine))  # type: ignore[union-attr]
    second = next(a for a in actors.values() if a.elector.owns(theirs))  # type: ignore[union-attr]
    assert first is not second

    # The second replica's whole act stage runs after the first read the action ledger.
    assert first.writer.read_ledger is not None
    first.writer.read_ledger, meanwhile = then_meanwhile(
        first.writer.read_ledger,
        lambda: second.act([decision("restart_pod", theirs)], findings=[], degraded=False, now=NOW)[0],
    )
    done = first.act([decision("restart_pod", mine)], findings=[], degraded=False, now=NOW)[0]
    assert len(meanwhile) == 1
    evicted = [w[3] for w in writes(server) if w[2] == "eviction" or (w[0] == "DELETE" and w[1] == "pods")]
    assert len(evicted) == 1, evicted  # one pod of the workload, not one per replica
    statuses = sorted([done.status.value, meanwhile[0].status.value])
    assert statuses in (["applied", "blocked"], ["applied", "deferred"]), (done.detail, meanwhile[0].detail)
    loser = done if done.status is not ActionStatus.APPLIED else meanwhile[0]
    assert loser.rail == "blast_radius", loser.detail

    # Next cycle the other pod's restart is still held: the first disruption is counted.
    loser_actor, loser_pod = (first, mine) if loser is done else (second, theirs)
    late = loser_actor.act([decision("restart_pod", loser_pod)], findings=[], degraded=False, now=NOW + timedelta(minutes=1))[0]
    assert late.status in (ActionStatus.DEFERRED, ActionStatus.BLOCKED) and late.rail == "blast_radius", late.detail
    assert "disrupted" in late.detail or "reached 1 pod(s)" in late.detail, late.detail
    assert len([w for w in writes(server) if w[2] == "eviction" or (w[0] == "DELETE" and w[1] == "pods")]) == 1
    for a in actors.values():
        a.elector.stop(release=True)  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["observe", "suggest"])
def test_a_replica_that_will_not_write_takes_no_disruption_guard(server: KubeApiServer, tmp_path, mode: str) -> None:  # noqa: ANN001
    """The guard is for counting before a write: a replica in observe or suggest mode, which
    writes nothing, neither reads nor writes its Lease (each decided evacuation would otherwise
    cost four API calls a cycle)."""
    from aiops.config.sharding import ShardingConfig
    from aiops.engine.act import Actor
    from aiops.model import ActionStatus
    from aiops.state import Store
    from tests.engine.kubecluster import NOW, decision, make_config

    clock = Clock()
    config = make_config(server, tmp_path, leader=True, mode=mode)
    config = config.model_copy(update={"sharding": ShardingConfig(shards=2)})
    leases = replica(server, "a", clock, shards=2)
    actor = Actor(config, Store(config.state.path), api=server.api_client(ADMIN_TOKEN), elector=leases)
    leases.round()
    server.clear_requests()
    got = actor.act([decision("evacuate_node", Entity("node", "gpu-1"))], findings=[], degraded=False, now=NOW)[0]
    assert got.status in (ActionStatus.OBSERVED, ActionStatus.SUGGESTED), got.detail
    assert server.requests_matching(resource="leases", name="aiops-shard-disruption") == []
    leases.stop(release=True)
