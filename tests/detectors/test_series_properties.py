"""Property test: every registered detector survives flat, near-flat, huge, tiny, NaN and Inf series.

"Survives" means: no exception, every score in [0, 1], and every predicted time is a real time
between the observation and a year after it (a near-flat slope extrapolates to the year 10^7
otherwise). Inf is passed through as the detector receives it from a plugin-written frame, not
only as the collector normalises it, since user detectors may build frames of their own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops import plugins
from aiops.collect.collector import entity_of, signal_info
from aiops.config import parse_config
from aiops.model import Frame, Series

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SIGNALS = parse_config({}).resolved_signals()
INFOS = {n: signal_info(n, s) for n, s in SIGNALS.items()}
LABELS = {
    "namespace": "ns", "pod": "p", "node": "n", "instance": "n", "UUID": "GPU-0", "Hostname": "n",
    "model_name": "m", "model": "m", "container": "c", "mountpoint": "/",
}
DETECTORS = sorted(plugins.available(plugins.DETECTORS))
YEAR = timedelta(days=366)
# One or two signals of every family, so that each detector has its own to chew on (all 25 take minutes).
FAMILIES = (
    "pod_memory_usage_ratio", "node_filesystem_usage_ratio", "inference_kv_cache_usage", "gpu_xid",
    "gpu_temperature", "gpu_clock_event_reasons", "inference_latency_p99", "model_accuracy", "pod_restarts",
    "pod_crashlooping", "node_ready",
)


@st.composite
def awkward_series(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(min_value=1, max_value=240))
    kind = draw(st.sampled_from(["flat", "near_flat", "huge", "tiny", "nan", "inf", "mixed"]))
    level = draw(st.sampled_from([0.0, 1e-300, 1e-12, 0.5, 0.999999999, 1.0, 1e12, 1e300, -1e300]))
    i = np.arange(n, dtype=np.float64)
    if kind == "flat":
        y = np.full(n, level)
    elif kind == "near_flat":
        y = level + draw(st.sampled_from([1e-300, 1e-18, 1e-15, -1e-15, 1e-9])) * i
    elif kind == "huge":
        y = np.full(n, draw(st.sampled_from([1e300, -1e300, 1.7e308]))) * (1 + 1e-16 * i)
    elif kind == "tiny":
        y = draw(st.sampled_from([5e-324, 1e-308, 1e-200])) * (1 + i)
    elif kind == "nan":
        y = np.where(i % draw(st.integers(1, 5)) == 0, np.nan, level)
    elif kind == "inf":
        y = np.where(i % draw(st.integers(1, 5)) == 0, draw(st.sampled_from([np.inf, -np.inf])), level)
    else:
        pool = [np.nan, np.inf, -np.inf, 0.0, 1.0, 1e300, 1e-300, 0.999]
        y = np.array(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    return y


def _frame(values: np.ndarray) -> Frame:
    t = NOW.timestamp() - 60.0 * np.arange(values.shape[0])[::-1]
    series = tuple(Series(name, LABELS, t, values, entity_of(cfg, LABELS)) for name, cfg in SIGNALS.items() if name in FAMILIES)
    return Frame(NOW, series, INFOS, 60.0)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(awkward_series())
def test_every_detector_survives_awkward_series(values: np.ndarray) -> None:
    frame = _frame(values)
    skipped = _Skipped()
    logging.getLogger("detectors").addHandler(skipped)
    try:
        _check_all(frame, values)
    finally:
        logging.getLogger("detectors").removeHandler(skipped)
    # Isolation is the last line of defence, not the way these inputs are handled.
    assert skipped.messages == []


class _Skipped(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_all(frame: Frame, values: np.ndarray) -> None:
    for name in DETECTORS:
        detector = plugins.instantiate(plugins.DETECTORS, name, {"report_floor": 0.0})
        for f in plugins.detect_findings(detector, frame):
            assert 0.0 <= f.score <= 1.0, (name, f)
            if f.predicted_failure_at is not None:
                assert f.observed_at <= f.predicted_failure_at <= f.observed_at + YEAR, (name, f)
            if f.failure_interval is not None:
                lo, hi = f.failure_interval
                assert f.observed_at <= lo <= hi <= f.observed_at + YEAR, (name, f)
        scorer = getattr(detector, "score_series", None)
        if scorer is not None and name != "multivariate":
            t = NOW.timestamp() - 60.0 * np.arange(values.shape[0])[::-1]
            scores = np.asarray(scorer(t, values))
            assert scores.shape == values.shape and np.all((scores >= 0) & (scores <= 1)), name
