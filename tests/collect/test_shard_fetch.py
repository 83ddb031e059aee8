"""A sharded replica fetches only its shards' series, from a real Prometheus.

Three collectors, each holding one shard of three: what they fetch covers every series of the
unsharded fetch, each series is owned (after the frame filter) by exactly one of them, the values
are the same, and each fetches only a part. A shard taken over is fetched with its whole history;
one handed back is forgotten.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from aiops.collect.collector import Collector
from aiops.collect.shard_query import HeldShards
from aiops.engine.shards import shard_of
from aiops.model import Frame
from aiops.demo.prometheus import PrometheusServer
from tests.shard_history import collector_config, recorded_queries

SHARDS = 3


def keyed(frame: Frame) -> dict[tuple[str, tuple[tuple[str, str], ...]], object]:
    return {s.key: s for s in frame.series}


def owned(frame: Frame, held: set[int]) -> dict:
    return {k: s for k, s in keyed(frame).items() if shard_of(s.entity, SHARDS) in held}  # type: ignore[attr-defined]


def test_three_shards_fetch_disjoint_parts_that_add_up_to_the_whole(
    shard_prometheus: PrometheusServer, shard_history_end: datetime
) -> None:
    config = collector_config(shard_prometheus.url)
    whole, errors = Collector(config).collect(shard_history_end)
    assert not errors and len(whole) > 200
    fetched: list[dict] = []
    mine: list[dict] = []
    for k in range(SHARDS):
        frame, errors = Collector(config).collect(shard_history_end, HeldShards(SHARDS, frozenset({k})))
        assert not errors
        fetched.append(keyed(frame))
        mine.append(owned(frame, {k}))
    # Every series is owned by exactly one replica, and the owners together have all of them.
    union = [key for part in mine for key in part]
    assert len(union) == len(set(union)) == len(whole)
    assert set(union) == set(keyed(whole))
    # Each replica fetched a part, not everything: only series whose shard label is missing (the
    # GPU without a Hostname) or shared (a pod name in two namespaces) are fetched by more than one.
    for part in fetched:
        assert len(part) < 0.6 * len(whole)
    extra = sum(len(f) - len(m) for f, m in zip(fetched, mine))
    assert extra <= 2 * SHARDS
    # Same points as the unsharded fetch.
    full = keyed(whole)
    for part in mine:
        for key, s in part.items():
            np.testing.assert_array_equal(s.values, full[key].values)  # type: ignore[attr-defined]
            np.testing.assert_array_equal(s.timestamps, full[key].timestamps)  # type: ignore[attr-defined]


def test_a_shard_taken_over_comes_with_its_history_and_one_handed_back_is_dropped(
    shard_prometheus: PrometheusServer, shard_history_end: datetime
) -> None:
    config = collector_config(shard_prometheus.url)
    start = shard_history_end - timedelta(minutes=10)
    replica = Collector(config)
    for minute in range(0, 10, 2):  # steady cycles holding shard 0
        frame, errors = replica.collect(start + timedelta(minutes=minute), HeldShards(SHARDS, frozenset({0})))
        assert not errors
    # Shard 1's holder died: we take it over. Its series arrive with the whole lookback at once.
    frame, errors = replica.collect(shard_history_end, HeldShards(SHARDS, frozenset({0, 1})))
    assert not errors
    reference, _ = Collector(config).collect(shard_history_end)
    ref = keyed(reference)
    took = owned(frame, {1})
    assert took
    for key, s in took.items():
        np.testing.assert_array_equal(s.timestamps, ref[key].timestamps)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(s.values, ref[key].values)  # type: ignore[attr-defined]
    assert len(took[next(iter(took))].timestamps) == 61  # type: ignore[attr-defined]  # an hour at 1 min
    # Shard 0 handed back: its windows go at once, not a lookback later.
    frame, errors = replica.collect(shard_history_end, HeldShards(SHARDS, frozenset({1})))
    assert not errors and not owned(frame, {0})
    assert all(not name.startswith(tuple(f"{s}@0/" for s in config.resolved_signals())) for name in replica.window._signals)
    # Holding nothing: nothing fetched, and that is not "blind".
    frame, errors = replica.collect(shard_history_end, HeldShards(SHARDS, frozenset()))
    assert not errors and not frame.series


def test_shards_held_together_are_fetched_in_one_query_per_signal(
    shard_prometheus: PrometheusServer, shard_history_end: datetime
) -> None:
    """Two shards at the same fetch horizon go in one request per signal (each held shard's own
    request was a fixed cost per cycle), written to each shard's window; the frame is the same as
    fetching them one by one."""
    config = collector_config(shard_prometheus.url)
    both = Collector(config)
    sent = recorded_queries(both)
    held = HeldShards(SHARDS, frozenset({0, 2}))
    start = shard_history_end - timedelta(minutes=4)
    for minute in range(0, 6, 2):  # cold, then steady cycles
        sent.clear()
        frame, errors = both.collect(start + timedelta(minutes=minute), held)
        assert not errors
        assert len(sent) == len(config.resolved_signals()) == len(set(sent))
    apart = [Collector(config).collect(shard_history_end, HeldShards(SHARDS, frozenset({k})))[0] for k in (0, 2)]
    expected = {**owned(apart[0], {0}), **owned(apart[1], {2})}
    got = owned(frame, {0, 2})
    assert set(got) == set(expected) and len(got) > 100
    for key, s in got.items():
        np.testing.assert_array_equal(s.values, expected[key].values)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(s.timestamps, expected[key].timestamps)  # type: ignore[attr-defined]
    # Every part window holds only its own shard's series (and the label-less ones in the first).
    for name in config.resolved_signals():
        for k in (0, 2):
            win = both.window.get(f"{name}@{k}/{SHARDS}")
            assert win is not None


def test_the_client_keeps_label_memos_for_the_queries_still_asked_only(
    shard_prometheus: PrometheusServer, shard_history_end: datetime
) -> None:
    """A shard's query names its nodes, so its text changes whenever the shard's nodes or the held
    shards change (an autoscaling cluster, a takeover). The client memoises each query's last
    labels (aiops/collect/decode.py LabelMemo): one kept per text ever asked would grow without
    bound, each holding a whole answer's labels."""
    config = collector_config(shard_prometheus.url)
    replica = Collector(config)
    asked = recorded_queries(replica)
    start = shard_history_end - timedelta(minutes=10)
    for minute, held in enumerate(({0}, {0, 1}, {1}, {1, 2}, {2}, {0, 2}, {0})):
        asked.clear()
        frame, errors = replica.collect(start + timedelta(minutes=minute), HeldShards(SHARDS, frozenset(held)))
        assert not errors
    assert set(replica.client._memos) == set(asked)  # type: ignore[attr-defined]
    assert set(replica.client._quoted) <= set(asked)  # type: ignore[attr-defined]


class _Discovered:
    """A source whose nodes change between cycles; it records the queries asked."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = nodes
        self.asked: list[str] = []

    def label_values(self, label: str, selectors: object, start: object, end: object) -> list[str]:
        return list(self.nodes) if label == "node" else []

    def query_range(self, query: str, start: object, end: object, step: object) -> list:
        self.asked.append(query)
        return []

    def close(self) -> None:
        pass


def test_a_shards_query_follows_the_nodes_that_come_and_go(shard_history_end: datetime) -> None:
    """What a replica asks for is rebuilt from each cycle's label values (the build is remembered
    while they stay the same: a node that comes is asked for at once, one that goes no more)."""
    source = _Discovered(["node-a", "node-b"])
    replica = Collector(collector_config("http://127.0.0.1:9"), source)  # type: ignore[arg-type]
    everything = HeldShards(SHARDS, frozenset(range(SHARDS)))
    for minute, nodes in enumerate((["node-a", "node-b"], ["node-a", "node-b"], ["node-a", "node-c"], ["node-a", "node-c"])):
        source.nodes, source.asked = nodes, []
        replica.collect(shard_history_end + timedelta(minutes=minute), everything)
        node_queries = [q for q in source.asked if "kube_node_status_condition" in q]
        assert node_queries and all(all(n in q for n in nodes) for q in node_queries)
        gone = {"node-a", "node-b", "node-c"} - set(nodes)
        assert not any(node in q for node in gone for q in node_queries)
