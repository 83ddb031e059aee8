"""A steady cycle asks Prometheus a few combined queries, not one per signal (aiops/collect/combine.py).

What it frames must be exactly what the per-signal fetch frames, cycle after cycle, sharded or not;
a broken signal's query costs only that signal; a combined request that fails for a temporary
reason costs its signals one cycle, after which they are fetched alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from aiops.collect import collector as collector_module
from aiops.collect.collector import Collector
from aiops.collect.combine import COMBINE_SERIES, LEG_LABEL
from aiops.collect.decode import Block
from aiops.collect.prometheus import PrometheusClient, PrometheusError
from aiops.collect.shard_query import HeldShards
from aiops.config import AiopsConfig, parse_config
from aiops.demo.prometheus import PrometheusServer
from aiops.model import Frame
from tests.shard_history import recorded_queries

SHARDS = 3
# Two signals whose series differ only by metric name: ``or`` alone would keep one of each pair.
TWINS = {
    "memory_raw": {"query": "container_memory_working_set_bytes", "entity": "pod",
                   "entity_labels": {"name": "pod", "namespace": "namespace"}, "unit": "bytes"},
    "memory_twin": {"query": "container_memory_working_set_bytes * 1", "entity": "pod",
                    "entity_labels": {"name": "pod", "namespace": "namespace"}, "unit": "bytes"},
}


def config(url: str, **signals: Any) -> AiopsConfig:
    return parse_config({
        "prometheus": {"url": url, "lookback": "1h", "timeout": "10s", "retries": 0},
        "signals": {**TWINS, **signals},
    })


class PerSignal:
    """The same client, without saying it evaluates PromQL: the collector asks signal by signal."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client

    def query_range(self, *args: Any) -> Any:
        return self.client.query_range(*args)

    def range_chunks(self, *args: Any) -> Iterator[Block]:
        return self.client.range_chunks(*args)

    def label_values(self, *args: Any) -> list[str]:
        return self.client.label_values(*args)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def every_signal_combines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The combining's mechanics, with no signal too large to go with others (this history's pod
    signals hold more series than COMBINE_SERIES)."""
    monkeypatch.setattr(collector_module, "COMBINE_SERIES", 10**9)


def most_requests(cfg: AiopsConfig) -> int:
    """A steady cycle's requests at most: one per fetch thread, and one more per entity kind
    (a request holds one kind's signals)."""
    return cfg.prometheus.max_concurrency + len({s.entity for s in cfg.resolved_signals().values()})


def same_frames(got: Frame, want: Frame) -> None:
    assert got.missing_signals == want.missing_signals
    assert dict(got.absent_signals) == dict(want.absent_signals)
    assert {s.key for s in got.vanished} == {s.key for s in want.vanished}
    mine = {(s.signal, s.key): s for s in got.series}
    theirs = {(s.signal, s.key): s for s in want.series}
    assert set(mine) == set(theirs)
    for key, s in mine.items():
        assert s.labels == theirs[key].labels and LEG_LABEL not in s.labels
        np.testing.assert_array_equal(s.timestamps, theirs[key].timestamps)
        np.testing.assert_array_equal(s.values, theirs[key].values)


@pytest.mark.usefixtures("every_signal_combines")
@pytest.mark.parametrize("held", [None, frozenset({0}), frozenset({0, 2})], ids=["unsharded", "one-shard", "two-shards"])
def test_a_steady_cycle_asks_a_few_combined_queries_and_frames_the_same(
    shard_prometheus: PrometheusServer, shard_history_end: datetime, held: frozenset[int] | None
) -> None:
    cfg = config(shard_prometheus.url)
    combined = Collector(cfg)
    apart = Collector(cfg, PerSignal(PrometheusClient(cfg.prometheus)))  # type: ignore[arg-type]
    sent = recorded_queries(combined)
    shards = HeldShards(SHARDS, held) if held is not None else None
    start = shard_history_end - timedelta(minutes=6)
    for minute in range(7):
        sent.clear()
        now = start + timedelta(minutes=minute)
        got, errors = combined.collect(now, shards)
        want, want_errors = apart.collect(now, shards)
        assert errors == want_errors == []
        same_frames(got, want)
        if minute == 0:  # cold: the whole lookback, each signal on its own
            assert all(LEG_LABEL not in q for q in sent)
        else:
            assert len(sent) <= most_requests(cfg) < len(cfg.resolved_signals()) // 2
            assert all(LEG_LABEL in q for q in sent)
    assert len(got.of("memory_twin")) == len(got.of("memory_raw")) > 20


@pytest.mark.usefixtures("every_signal_combines")
def test_a_broken_query_costs_only_its_own_signal(shard_prometheus: PrometheusServer, shard_history_end: datetime) -> None:
    cfg = config(shard_prometheus.url, broken={"query": "rate((", "entity": "pod"})
    combined = Collector(cfg)
    apart = Collector(cfg, PerSignal(PrometheusClient(cfg.prometheus)))  # type: ignore[arg-type]
    sent = recorded_queries(combined)
    start = shard_history_end - timedelta(minutes=3)
    for minute in range(4):
        sent.clear()
        got, errors = combined.collect(start + timedelta(minutes=minute))
        want, _ = apart.collect(start + timedelta(minutes=minute))
        assert got.missing_signals == ("broken",)
        assert len(errors) == 1 and errors[0].message.startswith("signal broken:") and not errors[0].temporary
        same_frames(got, want)
    # Once known broken, it is asked alone: the others keep going together.
    assert "rate((" in sent and sum(LEG_LABEL in q for q in sent) <= most_requests(cfg)


class FailsOnce(PerSignal):
    """Evaluates PromQL (the real client), but the first combined request times out."""

    evaluates_promql = True

    def __init__(self, client: PrometheusClient) -> None:
        super().__init__(client)
        self.failed: str | None = None

    def range_chunks(self, query: str, *args: Any) -> Iterator[Block]:
        if LEG_LABEL in query and self.failed is None:
            self.failed = query
            raise PrometheusError("Prometheus did not answer within 10s", temporary=True, query=query)
        return self.client.range_chunks(query, *args)


@pytest.mark.usefixtures("every_signal_combines")
def test_a_combined_request_that_times_out_costs_its_signals_one_cycle(
    shard_prometheus: PrometheusServer, shard_history_end: datetime
) -> None:
    cfg = config(shard_prometheus.url)
    source = FailsOnce(PrometheusClient(cfg.prometheus))
    combined = Collector(cfg, source)
    apart = Collector(cfg, PerSignal(PrometheusClient(cfg.prometheus)))  # type: ignore[arg-type]
    start = shard_history_end - timedelta(minutes=3)
    combined.collect(start)
    apart.collect(start)
    got, errors = combined.collect(start + timedelta(minutes=1))
    assert source.failed is not None
    lost = set(got.missing_signals)
    assert lost and len(lost) < len(cfg.resolved_signals())  # one request's signals, not all
    assert len(errors) == 1 and errors[0].temporary and "did not answer" in errors[0].message
    sent = recorded_queries(combined)
    for minute in (2, 3):
        sent.clear()
        got, errors = combined.collect(start + timedelta(minutes=minute))
        want, _ = apart.collect(start + timedelta(minutes=minute))
        assert errors == [] and got.missing_signals == ()
        same_frames(got, want)  # the lost minute was fetched again
        if minute == 2:  # each lost signal alone, once
            alone = [q for q in sent if LEG_LABEL not in q]
            assert len(alone) == len(lost)
    assert all(LEG_LABEL in q for q in sent)


class LosesTheLegLabel(FailsOnce):
    """A store (or a proxy) in front of Prometheus that answers without the leg label."""

    def range_chunks(self, query: str, *args: Any) -> Iterator[Block]:
        for block in self.client.range_chunks(query, *args):
            labels = [{k: v for k, v in lab.items() if k != LEG_LABEL} for lab in block.labels]
            yield Block(labels, block.counts, block.timestamps, block.values)


@pytest.mark.usefixtures("every_signal_combines")
def test_a_store_that_loses_the_leg_label_is_asked_signal_by_signal(
    shard_prometheus: PrometheusServer, shard_history_end: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the label nothing says which signal a series answers: the daemon must not guess
    (nor drop the series and go blind); it asks each signal alone from then on, and says why."""
    cfg = config(shard_prometheus.url)
    combined = Collector(cfg, LosesTheLegLabel(PrometheusClient(cfg.prometheus)))
    apart = Collector(cfg, PerSignal(PrometheusClient(cfg.prometheus)))  # type: ignore[arg-type]
    sent = recorded_queries(combined)
    start = shard_history_end - timedelta(minutes=3)
    for minute in range(4):
        got, errors = combined.collect(start + timedelta(minutes=minute))
        want, _ = apart.collect(start + timedelta(minutes=minute))
        assert errors == []
        same_frames(got, want)
    assert sum(LEG_LABEL in q for q in sent) <= most_requests(cfg)  # tried once, then never
    warned = [r for r in caplog.records if LEG_LABEL in r.getMessage()]
    assert len(warned) == 1 and "one query per signal" in warned[0].getMessage()


@pytest.mark.usefixtures("every_signal_combines")
def test_a_combined_request_holds_one_entity_kind(shard_prometheus: PrometheusServer, shard_history_end: datetime) -> None:
    """Pods come and go many times a day, and each pod signal's answer changes with them: a request
    of pod signals decodes its labels afresh then, one of node or GPU signals keeps its label memo
    (aiops/collect/decode.py). Mixed, every request would lose it with every pod replaced."""
    cfg = config(shard_prometheus.url)
    combined = Collector(cfg)
    sent = recorded_queries(combined)
    signals = cfg.resolved_signals()
    combined.collect(shard_history_end - timedelta(minutes=1))
    sent.clear()
    combined.collect(shard_history_end)
    together = [q for q in sent if LEG_LABEL in q]
    assert together
    for query in together:
        kinds = {s.entity for s in signals.values() if f'label_replace({s.query}, "{LEG_LABEL}"' in query}
        assert len(kinds) == 1, kinds


def test_a_signal_of_many_series_is_asked_alone(shard_prometheus: PrometheusServer, shard_history_end: datetime) -> None:
    """A request saves the daemon a fixed ~0.7 ms; a leg costs the server ~30 µs a series
    (``label_replace`` and ``or`` at each step) and waits for the legs before it. At 100k series
    the steady signals asked together took Prometheus half as much CPU again as asked one by one,
    and their wall 1.5 times as long: only signals of few series go together."""
    cfg = config(shard_prometheus.url)
    combined = Collector(cfg)
    apart = Collector(cfg, PerSignal(PrometheusClient(cfg.prometheus)))  # type: ignore[arg-type]
    sent = recorded_queries(combined)
    signals = cfg.resolved_signals()
    start = shard_history_end - timedelta(minutes=2)
    for minute in range(3):
        sent.clear()
        got, errors = combined.collect(start + timedelta(minutes=minute))
        want, _ = apart.collect(start + timedelta(minutes=minute))
        assert errors == []
        same_frames(got, want)
    large = [name for name in signals if len(got.of(name)) > COMBINE_SERIES]
    assert {"memory_raw", "memory_twin"} <= set(large)
    together = [q for q in sent if LEG_LABEL in q]
    assert together  # the small ones (nodes, models) still go together
    for name in large:
        assert signals[name].query in sent
        assert not any(f'label_replace({signals[name].query}, "{LEG_LABEL}"' in q for q in together)
