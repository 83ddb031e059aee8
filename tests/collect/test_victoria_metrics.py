"""The collector against VictoriaMetrics: the default catalog reads the same cluster from it as
from Prometheus.

docs/scaling.md sends a cluster past one Prometheus through a store with Prometheus's HTTP API
(Thanos, Mimir, VictoriaMetrics). VictoriaMetrics evaluates MetricsQL, not PromQL, so "the same
API" is a claim about every query the catalog writes (``label_replace``, ``or`` of combined legs,
``histogram_quantile``, shard matchers), and it is checked here on one realistic history loaded
into both: the same series, entities, vanished series and grid, cold, steady and sharded. Values
are equal at all but a few instants, where series stop, start or reset (a vLLM server's restart,
a rollout): there the engines read differently (Prometheus's 5-minute lookback holds a stopped
series' last value; MetricsQL's ``rate``/``increase`` do not extrapolate), and those instants are
bounded here rather than listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from aiops.collect.collector import Collector
from aiops.collect.shard_query import HeldShards
from aiops.config import parse_config
from aiops.demo.prometheus import PrometheusServer
from aiops.model import Frame
from aiops.testing.cluster_history import HistorySpec, generate
from aiops.testing.victoria_metrics import VictoriaMetricsServer

pytestmark = pytest.mark.timeout(180)

SHARDS = 3


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, datetime]]:
    work: Path = tmp_path_factory.mktemp("vm-compat")
    hist = generate(HistorySpec(hours=12, filler_pods=5))
    om = hist.write_openmetrics(work / "history.om")
    with PrometheusServer(work / "prometheus", openmetrics=om) as prom, VictoriaMetricsServer(
        work / "victoria-metrics", openmetrics=om
    ) as vm:
        yield prom.url, vm.url, hist.end


def _collect(url: str, *nows: datetime, held: HeldShards | None = None) -> Frame:
    collector = Collector(parse_config({"prometheus": {"url": url}}))
    frame = None
    for now in nows:
        frame, errors = collector.collect(now, held)
        assert errors == [], errors
    assert frame is not None
    return frame


def _keys(frame: Frame) -> dict[str, set[object]]:
    return {signal: {s.key for s in frame.of(signal)} for signal in frame.signals}


def test_every_default_query_reads_the_same_series_as_from_prometheus(stores: tuple[str, str, datetime]) -> None:
    prom_url, vm_url, end = stores
    prom, vm = _collect(prom_url, end), _collect(vm_url, end)
    assert vm.missing_signals == prom.missing_signals == ()
    assert dict(vm.absent_signals) == dict(prom.absent_signals)
    assert _keys(vm) == _keys(prom)
    assert sum(map(len, _keys(prom).values())) > 150  # the history's GPUs, pods, nodes and models
    assert {s.key for s in vm.vanished} == {s.key for s in prom.vanished} != set()
    ours = {s.key: s for s in vm.series}
    points = unequal = 0
    for signal in prom.signals:
        signal_points = signal_unequal = 0
        for p in prom.of(signal):
            v = ours[p.key]
            assert v.entity == p.entity
            np.testing.assert_array_equal(v.timestamps[-10:], p.timestamps[-10:])
            at = dict(zip(v.timestamps.tolist(), v.values.tolist()))
            both = [(x, at[t]) for t, x in zip(p.timestamps.tolist(), p.values.tolist()) if t in at]
            assert len(both) >= len(p) - 2, (signal, p.key)  # a counter's first point at most
            signal_points += len(both)
            signal_unequal += sum(1 for x, y in both if not np.isclose(x, y, rtol=1e-9, equal_nan=True))
        assert signal_unequal <= 0.05 * signal_points, (signal, signal_unequal, signal_points)
        points, unequal = points + signal_points, unequal + signal_unequal
    assert unequal <= 0.01 * points, (unequal, points)


def test_steady_cycles_and_shards_read_the_same_series_as_from_prometheus(stores: tuple[str, str, datetime]) -> None:
    """A steady cycle asks its signals in combined queries (``label_replace(...) or ...``); a
    sharded replica adds its shard's matchers: both are MetricsQL's to evaluate too."""
    prom_url, vm_url, end = stores
    cycles = (end - timedelta(minutes=5), end)
    assert _keys(_collect(vm_url, *cycles)) == _keys(_collect(prom_url, *cycles))
    owned = []
    for k in range(SHARDS):
        held = HeldShards(SHARDS, frozenset({k}))
        vm = _keys(_collect(vm_url, *cycles, held=held))
        assert vm == _keys(_collect(prom_url, *cycles, held=held))
        owned.append(vm)
    assert 0 < min(sum(map(len, o.values())) for o in owned)
