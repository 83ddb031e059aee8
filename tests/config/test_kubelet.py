"""The kubelet's hard eviction thresholds are where the node signals fail, and they are config."""

from __future__ import annotations

import pytest

from aiops.config import ConfigError, parse_config
from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.config.signals import FailurePointConfig

MiB = 2**20


def _points(signal) -> list[tuple[float, str]]:  # noqa: ANN001
    # An override merged over the catalog carries its failure points as plain mappings.
    points = [FailurePointConfig.model_validate(p) for p in signal.failure_points]
    return [(p.value, p.name) for p in points]


def test_the_defaults_are_the_kubelet_s() -> None:
    signals = parse_config({}).resolved_signals()
    assert signals["node_memory_usage_ratio"].query == DEFAULT_SIGNALS["node_memory_usage_ratio"].query
    assert f"- {100 * MiB})" in signals["node_memory_usage_ratio"].query
    assert [v for v, _ in _points(signals["node_filesystem_usage_ratio"])] == [0.85, 0.9]
    assert [v for v, _ in _points(signals["node_filesystem_inodes_usage_ratio"])] == [0.95]


def test_configured_thresholds_move_the_failure_points() -> None:
    config = parse_config({"kubelet": {"eviction_hard": {"memory.available": "750Mi", "nodefs.available": "15%",
                                                         "nodefs.inodesFree": "10%"}}})
    signals = config.resolved_signals()
    memory = signals["node_memory_usage_ratio"]
    assert f"- {750 * MiB})" in memory.query and "memory.available < 750Mi" in _points(memory)[0][1]
    fs = _points(signals["node_filesystem_usage_ratio"])
    assert fs == [(0.85, "DiskPressure (kubelet eviction: imagefs.available < 15%)"),
                  (0.85, "DiskPressure (kubelet eviction: nodefs.available < 15%)")]
    assert _points(signals["node_filesystem_inodes_usage_ratio"]) == [
        (0.9, "DiskPressure (kubelet eviction: nodefs.inodesFree < 10%)")]
    # A user's override of the signal still wins over the thresholds.
    mine = parse_config({"kubelet": {"eviction_hard": {"nodefs.available": "15%"}},
                         "signals": {"node_filesystem_usage_ratio": {"failure_points": [{"value": 0.8, "name": "x"}]}}})
    assert [v for v, _ in _points(mine.resolved_signals()["node_filesystem_usage_ratio"])] == [0.8]


def test_memory_as_a_share_of_the_node() -> None:
    config = parse_config({"kubelet": {"eviction_hard": {"memory.available": "5%"}}})
    assert "* 0.95)" in config.resolved_signals()["node_memory_usage_ratio"].query


@pytest.mark.parametrize(("hard", "why"), [
    ({"memory.avail": "1Gi"}, "unknown eviction signal"),
    ({"nodefs.available": "10Gi"}, "give a percentage"),
    ({"imagefs.available": "150%"}, "between 0% and 100%"),
    ({"memory.available": "lots"}, "neither a percentage nor a quantity"),
])
def test_a_threshold_the_kubelet_would_not_take_is_named(hard: dict[str, str], why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"kubelet": {"eviction_hard": hard}})
    [(key, msg)] = info.value.problems
    assert key == "kubelet.eviction_hard" and why in msg


def test_signals_the_catalog_does_not_measure_are_accepted() -> None:
    parse_config({"kubelet": {"eviction_hard": {"pid.available": "5%", "imagefs.inodesFree": "5%"}}})
