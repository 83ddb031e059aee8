"""The kubelet's eviction thresholds (hard, and soft where set) are where the node signals fail, and they are config."""

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


SOFT = {"eviction_soft": {"nodefs.available": "15%", "memory.available": "1Gi"},
        "eviction_soft_grace_period": {"nodefs.available": "1m30s", "memory.available": "2m"}}


def test_soft_thresholds_evict_first_where_they_are_set() -> None:
    # The kubelet reports the pressure as soon as a soft threshold is crossed and evicts, gracefully,
    # once it has held for its grace period: long before the hard threshold on a filling disk.
    signals = parse_config({"kubelet": SOFT}).resolved_signals()
    memory = signals["node_memory_usage_ratio"]
    assert f"- {1024 * MiB})" in memory.query
    assert _points(memory) == [(1.0, "MemoryPressure (kubelet soft eviction: memory.available < 1Gi for 2m)")]
    assert _points(signals["node_filesystem_usage_ratio"]) == [
        (0.85, "DiskPressure (kubelet eviction: imagefs.available < 15%)"),
        (0.85, "DiskPressure (kubelet soft eviction: nodefs.available < 15% for 1m30s)")]
    # No soft inode threshold: the hard default stands.
    assert _points(signals["node_filesystem_inodes_usage_ratio"]) == [
        (0.95, "DiskPressure (kubelet eviction: nodefs.inodesFree < 5%)")]


def test_a_soft_threshold_behind_the_hard_one_changes_nothing() -> None:
    config = parse_config({"kubelet": {"eviction_hard": {"nodefs.available": "10%", "memory.available": "2Gi"},
                                       "eviction_soft": {"nodefs.available": "5%", "memory.available": "1Gi"},
                                       "eviction_soft_grace_period": {"nodefs.available": "1m", "memory.available": "1m"}}})
    signals = config.resolved_signals()
    assert _points(signals["node_filesystem_usage_ratio"])[1] == (0.9, "DiskPressure (kubelet eviction: nodefs.available < 10%)")
    assert f"- {2048 * MiB})" in signals["node_memory_usage_ratio"].query


def test_memory_reserves_in_different_units_take_the_larger_on_each_node() -> None:
    # 5 % of a 16 GiB node is more than 100Mi, of a 1 GiB node less: which evicts first depends on the node.
    config = parse_config({"kubelet": {"eviction_soft": {"memory.available": "5%"},
                                       "eviction_soft_grace_period": {"memory.available": "30s"}}})
    memory = config.resolved_signals()["node_memory_usage_ratio"]
    assert f"* 0.05, {100 * MiB}))" in memory.query and "clamp_min(" in memory.query
    assert _points(memory) == [
        (1.0, "MemoryPressure (kubelet eviction: memory.available < 5% for 30s (soft) or < 100Mi)")]


@pytest.mark.parametrize(("kubelet", "key", "why"), [
    ({"eviction_soft": {"nodefs.available": "15%"}}, "kubelet", "eviction_soft_grace_period"),
    ({"eviction_soft": {"nodefs.available": "15Gi"}, "eviction_soft_grace_period": {"nodefs.available": "1m"}},
     "kubelet.eviction_soft", "give a percentage"),
    ({"eviction_soft": {"nodefs.available": "15%"}, "eviction_soft_grace_period": {"nodefs.available": "soon"}},
     "kubelet.eviction_soft_grace_period", "expected a duration"),
    ({"eviction_soft_grace_period": {"memory.avail": "1m"}}, "kubelet.eviction_soft_grace_period",
     "unknown eviction signal"),
])
def test_soft_thresholds_the_kubelet_would_not_take_are_named(kubelet: dict[str, dict[str, str]], key: str,
                                                              why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"kubelet": kubelet})
    [(where, msg)] = info.value.problems
    assert where == key and why in msg
