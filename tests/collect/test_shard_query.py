"""The PromQL rewrite that asks for one shard's series, checked on the parsed query."""

from __future__ import annotations

import logging
import re

import promql_parser
import pytest

from aiops.config import parse_config
from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.collect.shard_query import NotShardable, ShardQuery, shard_key, shard_queries
from aiops.config.signals import SignalConfig
from aiops.model import Entity


def pod(query: str) -> SignalConfig:
    return SignalConfig(query=query, entity="pod", entity_labels={"name": "pod", "namespace": "namespace"})


# node-exporter's signals name their node by a join with node_uname_info (the catalog): no
# selector carries the node's name, so every replica fetches them whole (one series per node and
# mountpoint) and keeps its own. tests/config/test_catalog.py checks they are declined.
NAMED_BY_A_JOIN = {"node_memory_usage_ratio", "node_filesystem_usage_ratio", "node_filesystem_inodes_usage_ratio",
                   "node_cpu_utilization"}


def test_every_other_catalog_signal_can_be_fetched_per_shard() -> None:
    for name, signal in DEFAULT_SIGNALS.items():
        if name in NAMED_BY_A_JOIN:
            continue
        sq = ShardQuery.build(signal)
        query = sq.query(["a", "b"])
        promql_parser.parse(query)  # what is sent parses
        assert query.count(f'{sq.label}=~"|a|b"') == len(re.findall(r"\{", query)), name  # on every selector


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("sum(container_memory_working_set_bytes)", "not grouped by 'pod'"),
        ("max by (namespace) (x)", "not grouped by 'pod'"),
        ("max without (pod) (x)", "not grouped by 'pod'"),
        ("max by (pod) (x) and on (namespace) max by (namespace, pod) (y)", "does not match on 'pod'"),
        ("max by (pod) (x) / ignoring (pod) group_left max by (pod) (y)", "does not match on 'pod'"),
        ('label_replace(x, "pod", "$1", "instance", "(.*)")', "writes the shard label"),
        ("absent(x)", "absent"),
        ("max by (pod) (x) / scalar(sum(y))", "scalar"),
        ("sum(", "does not parse"),
    ],
)
def test_queries_a_shard_matcher_would_change_are_fetched_whole(query: str, why: str) -> None:
    with pytest.raises(NotShardable, match=re.escape(why)):
        ShardQuery.build(pod(query))


@pytest.mark.parametrize(
    "query",
    [
        "max by (namespace, pod) (x) / on (namespace, pod) max by (namespace, pod) (y)",
        "max without (container) (x) * 2",
        "x > 0.5",
        "rate(x[5m] offset 10m)",
        'label_replace(x, "app", "$1", "pod", "(.*)-[0-9]+")',
    ],
)
def test_queries_grouped_and_joined_by_the_label_are_split(query: str) -> None:
    sq = ShardQuery.build(pod(query))
    assert sq.label == "pod" and sq.prefix == "pod/"
    promql_parser.parse(sq.query(["p-1"]))


def test_values_and_existing_matchers_are_quoted_exactly() -> None:
    # The parser's own printer drops escapes; what is sent must keep them.
    sq = ShardQuery.build(pod(r'max by (pod) (x{path=~"/api/v\\d+", q="say \"hi\""})'))
    sent = sq.query(['we"ird\\pod', "a.b|c"])
    assert r'path=~"/api/v\\d+"' in sent and r'q="say \"hi\""' in sent
    vs = promql_parser.parse(sent).expr
    pattern = {m.name: m.value for m in vs.matchers.matchers}["pod"]
    assert re.fullmatch(pattern, 'we"ird\\pod') and re.fullmatch(pattern, "a.b|c")
    assert not re.fullmatch(pattern, "aXb|c") and re.fullmatch(pattern, "")  # "" : series without the label
    assert sq.selectors == (r'{__name__="x", path=~"/api/v\\d+", q="say \"hi\""}',)


def test_the_shard_label_is_what_the_entity_hashes_by() -> None:
    gpu = DEFAULT_SIGNALS["gpu_utilization"]
    sq = ShardQuery.build(gpu)
    assert sq.label == "Hostname"
    entity = Entity("gpu", "GPU-1", "", (("Hostname", "n1"),))
    assert sq.prefix + "n1" == shard_key(entity)
    node = ShardQuery.build(DEFAULT_SIGNALS["node_ready"])
    assert node.label == "node" and node.prefix + "n1" == shard_key(Entity("node", "n1"))
    model = ShardQuery.build(DEFAULT_SIGNALS["serving_ttft_p99"])
    assert model.prefix + "m" == shard_key(Entity("model", "m", "serving")) == shard_key(Entity("model", "m", "other"))


def test_long_value_lists_are_split_into_requests_under_the_limit() -> None:
    sq = ShardQuery.build(pod("max by (pod) (x)"))
    values = [f"pod-{i:05d}" for i in range(1000)]
    parts = list(sq.queries(values, max_bytes=2000))
    assert len(parts) > 3
    got: list[str] = []
    for q in parts:
        pattern = promql_parser.parse(q).expr.matchers.matchers[-1].value
        assert len(pattern) <= 2000 + 20
        got += [v for v in pattern.split("|") if v]
    assert sorted(got) == values  # every value once
    assert list(sq.queries([], max_bytes=2000)) == [sq.query([])]  # no value: only label-less series


def test_only_a_signal_someone_wrote_is_warned_about_when_fetched_whole(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="aiops.collect.shard_query"):
        shard_queries(dict(DEFAULT_SIGNALS))
        assert {r.signal for r in caplog.records} == NAMED_BY_A_JOIN  # told, as expected of the catalog
        assert all(r.levelno == logging.INFO for r in caplog.records)
        caplog.clear()
        # Held to one cluster, still the catalog's own; overridden, someone's.
        config = parse_config({"prometheus": {"scope": {"cluster": "eu"}},
                               "signals": {"node_cpu_utilization": {"description": "mine"}}})
        shard_queries(config.resolved_signals(), written=config.signals)
        assert {(r.levelno, r.signal) for r in caplog.records} == {
            (logging.WARNING if n == "node_cpu_utilization" else logging.INFO, n) for n in NAMED_BY_A_JOIN}
        caplog.clear()
        shard_queries({"mine": pod("sum(container_memory_working_set_bytes)")})
        assert [(r.levelno, r.signal) for r in caplog.records] == [(logging.WARNING, "mine")]
