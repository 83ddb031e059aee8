"""Impossible samples become gaps where samples enter the daemon: counted, named once per series."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from aiops import metrics
from aiops.collect.collector import Collector
from aiops.collect.decode import Block, RawSeries
from aiops.collect.plausible import OUT_OF_RANGE, SENTINEL, Screen, rejected, sentinel_name, sentinels
from aiops.config import parse_config
from aiops.config.signals import DCGM_FP64_BLANK, Plausible

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GPU = {"UUID": "GPU-a", "Hostname": "gpu-node-a", "gpu": "0", "modelName": "H100"}
INT64_BLANK = float(0x7FFFFFFFFFFFFFF0)


def rejected_count(signal: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("aiops_samples_rejected_total", {"signal": signal, "reason": reason}) or 0.0


def test_dcgm_sentinels_are_matched_and_real_large_values_are_not() -> None:
    blanks = [2147483632.0, 2147483635.0, 2147483647.0, 4294967295.0, DCGM_FP64_BLANK, DCGM_FP64_BLANK + 3, INT64_BLANK]
    real = [0.0, 100.0, 2147483631.0, 2147483648.0, 3e9, 4294967294.0, 80e9, 192e9, 2.0**46, math.nan]
    assert sentinels(np.array(blanks)).all()
    assert not sentinels(np.array(real)).any()
    # A GPU signal in bytes keeps a framebuffer of 80 GB and 192 GB; only the sentinels go.
    in_bytes = Plausible(0.0, math.inf, blanks=True)
    assert rejected(np.array(real), in_bytes) is None
    got = rejected(np.array(real + blanks), in_bytes)
    assert got is not None
    outside, blank = got
    assert not outside.any() and blank.tolist() == [False] * len(real) + [True] * len(blanks)


def test_out_of_range_and_sentinels_are_told_apart_and_nan_is_left_alone() -> None:
    percent = Plausible(0.0, 110.0, blanks=True)
    values = np.array([50.0, 109.0, 111.0, -1.0, 4294967295.0, 1000.0, math.nan, INT64_BLANK])
    got = rejected(values, percent)
    assert got is not None
    outside, blank = got
    assert outside.tolist() == [False, False, True, True, False, True, False, False]
    assert blank.tolist() == [False, False, False, False, True, False, False, True]
    assert rejected(np.array([0.0, 55.0, 110.0, math.nan]), percent) is None


@pytest.mark.parametrize(
    "value,name",
    [
        (4294967295.0, "UINT32_MAX (a -1 read as unsigned: the driver had no value)"),
        (2147483632.0, "DCGM's int32 blank (the field has no value)"),
        (2147483633.0, "DCGM's int32 blank (the field was not found)"),
        (2147483634.0, "DCGM's int32 blank (the field is not supported on this GPU)"),
        (2147483635.0, "DCGM's int32 blank (dcgm-exporter may not read the field)"),
        (2147483647.0, "DCGM's int32 blank"),
        (140737488355328.0, "DCGM's fp64 blank (the field has no value)"),
        (140737488355330.0, "DCGM's fp64 blank (the field is not supported on this GPU)"),
        (9.223372036854776e18, "DCGM's int64 blank (no value, not found, not supported or not permitted: they read alike)"),
    ],
)
def test_each_sentinel_is_named_as_dcgm_fields_h_names_it(value: float, name: str) -> None:
    # The on-call reads which blank it was: "not supported" is permanent on this GPU, "no value" is not.
    assert sentinel_name(value) == name


def test_a_screen_drops_counts_and_names_each_series_once(caplog: pytest.LogCaptureFixture) -> None:
    screen = Screen("test_gpu_util", Plausible(0.0, 110.0, blanks=True), "percent")
    before = {r: rejected_count("test_gpu_util", r) for r in (OUT_OF_RANGE, SENTINEL)}
    assert before == {OUT_OF_RANGE: 0.0, SENTINEL: 0.0}  # exported at 0 before the first
    a, b = {"UUID": "GPU-a"}, {"UUID": "GPU-b"}
    block = Block([a, b], np.array([3, 2]), np.arange(5.0), np.array([50.0, 4294967295.0, 150000.0, 40.0, 41.0]))
    with caplog.at_level(logging.WARNING, logger="aiops.collect.plausible"):
        out = screen.block(block)
        # The next cycle's overlap reads the same samples again: dropped again, but neither
        # counted (the exporter wrote each once) nor logged again.
        again = screen.block(block)
        # A newer one of the same series is counted, not logged.
        later = Block([a], np.array([2]), np.array([2.0, 3.0]), np.array([150000.0, 4294967295.0]))
        screen.block(later)
    assert np.isnan(out.values).tolist() == [False, True, True, False, False]
    assert np.isnan(again.values).tolist() == [False, True, True, False, False]
    assert out.labels is block.labels and out.counts is block.counts and out.timestamps is block.timestamps
    assert rejected_count("test_gpu_util", SENTINEL) == 2.0
    assert rejected_count("test_gpu_util", OUT_OF_RANGE) == 1.0
    [line] = [r.getMessage() for r in caplog.records]
    assert "signal test_gpu_util: dropped 4294967295.0 from UUID=GPU-a" in line
    assert "as missing: UINT32_MAX (a -1 read as unsigned: the driver had no value)" in line
    assert "valid: [0, 110] and not a DCGM blank" in line
    assert "fix the exporter" in line and "signals.test_gpu_util.valid" in line
    clean = Block([b], np.array([2]), np.arange(2.0), np.array([40.0, 41.0]))
    assert screen.block(clean) is clean  # nothing to drop: the chunk as it came
    # What it dropped since it was made, for a report that outlives the log (aiops replay).
    assert screen.dropped == {SENTINEL: 2, OUT_OF_RANGE: 1}
    assert screen.named == ["UUID=GPU-a"]  # GPU-b sent nothing impossible


class _Source:
    def __init__(self, values: dict[str, np.ndarray]) -> None:
        self.values = values
        self.signals = parse_config({}).resolved_signals()

    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        name = next(n for n, s in self.signals.items() if s.query == query)
        if name not in self.values:
            return []
        ts = np.arange(start.timestamp() // 60 * 60, end.timestamp() + 1, 60.0)
        vs = self.values[name]
        return [RawSeries(dict(GPU), ts[-len(vs):], vs[-len(ts):])]

    def close(self) -> None:
        pass


def test_a_rejected_newest_sample_is_a_gap_in_a_current_series_not_a_vanished_one() -> None:
    util = np.full(60, 50.0)
    util[-3:] = 4294967295.0  # the newest three: past the staleness steps, were they left out
    temp = np.full(60, 60.0)
    temp[-1] = 2147483632.0  # DCGM's int32 blank
    cfg = parse_config({"prometheus": {"url": "http://127.0.0.1:9", "lookback": "1h"}})
    collector = Collector(cfg, client=_Source({"gpu_utilization": util, "gpu_temperature": temp}))
    try:
        frame, errors = collector.collect(NOW)
    finally:
        collector.close()
    assert errors == []
    [u] = frame.of("gpu_utilization")
    [t] = frame.of("gpu_temperature")
    assert np.isnan(u.values[-3:]).all() and (u.values[:-3] == 50.0).all()
    assert np.isnan(t.values[-1]) and u.timestamps[-1] == t.timestamps[-1] == NOW.timestamp()
    assert frame.vanished == () and frame.absent_signals == {}


def test_the_days_a_detector_learns_from_are_screened_too() -> None:
    cfg = parse_config({"prometheus": {"url": "http://127.0.0.1:9", "lookback": "1h"}})
    collector = Collector(cfg, client=_Source({"gpu_power": np.array([300.0, DCGM_FP64_BLANK, -5.0, 310.0])}))
    try:
        [[series]] = list(collector.history(["gpu_power"], NOW - timedelta(minutes=3), NOW, timedelta(minutes=1)))
    finally:
        collector.close()
    assert np.isnan(series.values).tolist() == [False, True, True, False]


def test_an_overridden_range_is_what_the_collector_keeps() -> None:
    cfg = parse_config({"prometheus": {"url": "http://127.0.0.1:9", "lookback": "1h"},
                        "signals": {"gpu_utilization": {"valid": {"max": 200}}}})
    collector = Collector(cfg, client=_Source({"gpu_utilization": np.array([150.0, 250.0])}))
    try:
        frame, _ = collector.collect(NOW)
    finally:
        collector.close()
    [u] = frame.of("gpu_utilization")
    assert u.values[-2] == 150.0 and np.isnan(u.values[-1])
