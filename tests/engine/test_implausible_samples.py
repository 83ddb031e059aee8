"""Physically impossible exporter values through the whole cycle: a gap, never evidence.

A healthy GPU on a Ready node whose dcgm-exporter emits what real exporters emit now and then:
a GPU utilisation of 4294967295 (NVIDIA/DCGM#199) and DCGM's "blank" sentinels (int64
0x7ffffffffffffff0..., fp64 2^47) for fields with no value. None of it is a measurement.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from aiops.collect.collector import Collector
from aiops.collect.decode import RawSeries
from aiops.config import AiopsConfig, parse_config
from aiops.engine.pipeline import Pipeline
from aiops.model import CycleReport, EntityKind

END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
UINT32_MAX = 4294967295.0
INT64_BLANK = 9223372036854775792.0  # DCGM_INT64_BLANK (0x7ffffffffffffff0)
FP64_BLANK = 140737488355328.0  # DCGM_FP64_BLANK (2^47)
GPU = {"UUID": "GPU-a", "Hostname": "gpu-node-a", "gpu": "0", "modelName": "NVIDIA H100 80GB HBM3"}
SIGNALS = parse_config({}).resolved_signals()


def _healthy(name: str, ts: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, name)))
    level = {"gpu_utilization": 55.0, "gpu_temperature": 62.0, "gpu_power": 310.0}.get(name)
    return level + rng.normal(0, 2, ts.size) if level is not None else np.zeros(ts.size)


# What the exporter emits on top of healthy values: (signal, how many newest samples, value).
GARBAGE = [
    ("gpu_utilization", 1, UINT32_MAX),
    ("gpu_row_remap_failure", 1, INT64_BLANK),
    ("gpu_ecc_dbe_rate", 1, INT64_BLANK),
    ("gpu_xid", 1, INT64_BLANK),
    ("gpu_uncorrectable_remapped_rows", 1, INT64_BLANK),
    ("gpu_clock_event_reasons", 10**6, INT64_BLANK),  # a field the GPU does not support: all blank
    ("gpu_power", 5, FP64_BLANK),  # a run of blanks at the newest end: still reporting
]


class _Exporter:
    """Recorded history, as ``aiops replay`` reads it: one GPU, its node Ready."""

    def __init__(self, garbage: list[tuple[str, int, float]]) -> None:
        self.garbage = {name: (n, v) for name, n, v in garbage}

    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        name = next((n for n, s in SIGNALS.items() if s.query == query), None)
        ts = np.arange(start.timestamp() // 60 * 60, end.timestamp() + 1, 60.0)
        if name == "node_ready":
            return [RawSeries({"node": GPU["Hostname"]}, ts, np.ones(ts.size))]
        if name is None or SIGNALS[name].entity != EntityKind.GPU or SIGNALS[name].sparse:
            return []
        values = _healthy(name, ts)
        if name in self.garbage:
            n, v = self.garbage[name]
            values[-min(n, ts.size):] = v
        return [RawSeries(dict(GPU), ts, values)]

    def close(self) -> None:
        pass


def _config(tmp_path: Path) -> AiopsConfig:
    return parse_config({
        "prometheus": {"url": "http://127.0.0.1:9", "lookback": "6h"},
        "safety": {"mode": "auto", "dry_run": True},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
    })


def _cycle(tmp_path: Path, garbage: list[tuple[str, int, float]]) -> CycleReport:
    cfg = _config(tmp_path)
    pipeline = Pipeline.from_config(cfg, collector=Collector(cfg, client=_Exporter(garbage)), live=False)
    try:
        return pipeline.run_cycle(END)
    finally:
        pipeline.close()


def test_the_healthy_gpu_alone_raises_nothing(tmp_path: Path) -> None:
    """The scenario's baseline: without the garbage, nothing to say about this GPU."""
    report = _cycle(tmp_path, [])
    assert not report.degraded, report.errors
    assert report.findings == [] and report.decisions == []


def test_impossible_exporter_values_raise_no_finding_and_no_action(tmp_path: Path) -> None:
    """Before: the blank on DCGM_FI_DEV_ROW_REMAP_FAILURE read as "row remapping failed"
    (confirmed, score 1) and the blank on the ECC counter as 9.2e18 new double-bit errors: both
    evacuated the node in auto mode; the blank XID read as an unknown XID 9223372036854775808."""
    report = _cycle(tmp_path, GARBAGE)
    assert not report.degraded, report.errors
    assert [(f.detector, f.signal, f.evidence.summary) for f in report.findings] == []
    assert report.decisions == []


def test_a_run_of_rejected_samples_is_not_a_gpu_that_stopped_reporting(tmp_path: Path) -> None:
    """"Vanishing series are evidence" (a GPU off the bus): a sample rejected as impossible was
    still reported, so the series stays current and nothing says the GPU stopped reporting."""
    report = _cycle(tmp_path, [("gpu_utilization", 5, UINT32_MAX), ("gpu_temperature", 5, INT64_BLANK)])
    assert not report.degraded, report.errors
    assert [f.signal for f in report.findings] == []
    assert report.decisions == []
