"""Garbage series: no crash, no finding (so no action) from values that carry no information."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops import plugins
from aiops.collect.collector import entity_of, signal_info
from aiops.collect.prometheus import RawSeries
from aiops.collect.window import RollingWindow
from aiops.config import parse_config
from aiops.engine.decide import Policy
from aiops.model import Frame, Mode, Series, Severity

pytestmark = pytest.mark.reliability

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNALS = parse_config({}).resolved_signals()
INFOS = {n: signal_info(n, s) for n, s in SIGNALS.items()}


def all_detectors() -> list[plugins.Detector]:
    out = []
    for name in sorted(plugins.available(plugins.DETECTORS)):
        out.append(plugins.instantiate(plugins.DETECTORS, name))
    return out


def frame_of(arrays: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> Frame:
    series = []
    for signal, items in arrays.items():
        cfg = SIGNALS[signal]
        for i, (ts, vs) in enumerate(items):
            labels = {"namespace": "ns", "pod": f"p{i}", "node": f"n{i}", "instance": f"n{i}", "UUID": f"GPU-{i}",
                      "Hostname": f"n{i}", "model_name": f"m{i}", "model": f"m{i}", "container": "c"}
            series.append(Series(signal, labels, ts, vs, entity_of(cfg, labels)))
    return Frame(NOW, tuple(series), INFOS, 60.0)


def timeline(n: int) -> np.ndarray:
    return NOW.timestamp() - 60.0 * np.arange(n)[::-1]


GARBAGE = {
    "all_nan": lambda n: np.full(n, np.nan),
    "empty": lambda n: np.empty(0),
    "single": lambda n: np.array([0.5]),
    "huge": lambda n: np.full(n, 1e300),
    "alternating_nan": lambda n: np.where(np.arange(n) % 2 == 0, np.nan, 0.5),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_detectors_survive_garbage(kind: str) -> None:
    n = 360
    arrays: dict[str, list] = {}
    for signal in SIGNALS:
        vs = GARBAGE[kind](n)
        ts = timeline(len(vs)) if len(vs) else np.empty(0)
        arrays[signal] = [(ts, vs)]
    frame = frame_of(arrays)
    policy = Policy(parse_config({}).policy, Mode.AUTO)
    for det in all_detectors():
        findings = plugins.detect_findings(det, frame)
        graded, decisions = policy.decide(findings)
        if kind in {"all_nan", "empty"}:
            # No information, no finding: silence in the data is not evidence of a failure.
            assert [f for f in graded if f.severity is not Severity.INFO] == [], (det.name, graded)
            assert decisions == []
        for f in findings:
            assert 0.0 <= f.score <= 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.just(0.0)), min_size=0, max_size=400))
def test_detectors_never_raise_on_arbitrary_values(values: list[float]) -> None:
    vs = np.array(values, dtype=np.float64)
    vs = np.where(np.isfinite(vs), vs, np.nan)  # what the collector hands over: +/-Inf becomes a gap
    ts = timeline(len(vs)) if len(vs) else np.empty(0)
    frame = frame_of({s: [(ts, vs)] for s in ("pod_memory_usage_ratio", "gpu_utilization", "model_accuracy", "pod_restarts")})
    for det in all_detectors():
        for f in plugins.detect_findings(det, frame):
            assert 0.0 <= f.score <= 1.0 and f.score == f.score


def test_window_normalises_out_of_order_duplicate_and_infinite_points() -> None:
    w = RollingWindow(3600)
    ts = np.array([120.0, 60.0, 60.0, 180.0, 0.0])
    vs = np.array([2.0, 1.0, 1.5, np.inf, 0.0])
    w.merge("s", 0.0, [RawSeries({"a": "b"}, ts, vs)])
    buf = w.items("s")[0]
    np.testing.assert_array_equal(buf.timestamps, [0.0, 60.0, 120.0, 180.0])
    np.testing.assert_array_equal(buf.values[:3], [0.0, 1.5, 2.0])  # last value wins for a duplicate
    assert np.isnan(buf.values[3])
    # A later, overlapping merge replaces the overlap and keeps order; the slot it no longer
    # reports (180) is a gap: on the signal's shared step grid, a gap is a NaN value.
    w.merge("s", 120.0, [RawSeries({"a": "b"}, np.array([120.0, 240.0]), np.array([9.0, 10.0]))])
    buf = w.items("s")[0]
    np.testing.assert_array_equal(buf.timestamps, [0.0, 60.0, 120.0, 180.0, 240.0])
    np.testing.assert_array_equal(buf.values, [0.0, 1.5, 9.0, np.nan, 10.0])


@pytest.mark.slow
def test_label_explosion_is_bounded() -> None:
    n_series = 1000
    ts = timeline(120)
    rng = np.random.default_rng(7)
    frame = frame_of({"pod_memory_usage_ratio": [(ts, 0.3 + 0.01 * rng.standard_normal(120)) for _ in range(n_series)]})
    t0 = time.perf_counter()
    total = 0
    for det in all_detectors():
        total += len(plugins.detect_findings(det, frame))
    elapsed = time.perf_counter() - t0
    # Flat, healthy series: nothing to report, and no per-series blow-up in time.
    policy = Policy(parse_config({}).policy, Mode.AUTO)
    assert policy.decide([])[1] == []
    assert elapsed < 120, f"{n_series} series took {elapsed:.1f}s"
    assert total < n_series * 0.01 + 5
