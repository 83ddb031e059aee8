"""One series never takes a detector down: its exception is logged with its labels and it alone is skipped."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pytest

from aiops import plugins
from aiops.model import Entity, Series, SignalInfo
from detectors.ensemble import DefaultEnsemble
from detectors.exhaustion import ExhaustionForecast
from detectors.gpu_health import GpuHealth
from detectors.seasonal import SeasonalBaseline
from tests.detectors.synthetic import HOUR, MINUTE, POD, SIGNALS, T0, frame, grid

OTHER = Entity("pod", "web-1", "shop")


def near_flat(t: np.ndarray, level: float, slope: float) -> np.ndarray:
    return level + slope * (t - t[0])


@pytest.mark.parametrize(
    ("level", "slope"),
    [(0.5, 1e-13), (0.99999999, 1e-16), (0.9, 1e-300), (1e-300, 1e-310)],
)
def test_near_flat_series_gives_a_clamped_forecast_not_an_overflow(level: float, slope: float) -> None:
    """A slope of 1e-16/s puts the crossing centuries away: past datetime's range, which used to raise."""
    t = grid(3)
    det = ExhaustionForecast(report_floor=0.0)
    findings = det.detect(frame({"pod_memory_usage_ratio": [(POD, t, near_flat(t, level, slope))]}))
    assert len(findings) == 1
    f = findings[0]
    latest = f.observed_at + timedelta(seconds=det.params.max_lead_seconds)
    if f.predicted_failure_at is not None:
        assert f.observed_at <= f.predicted_failure_at <= latest
        assert f.failure_interval is not None
        assert f.observed_at <= f.failure_interval[0] <= f.failure_interval[1] <= latest
        assert 0 <= f.evidence.facts["lead_time_seconds"] <= det.params.max_lead_seconds
    assert f.score < 0.5


def _leak(t: np.ndarray) -> np.ndarray:
    return 0.5 + 0.45 * (t - t[0]) / (t[-1] - t[0])


def _raising_on(method, bad: str):
    def wrapped(self, frame, series, *args):
        if series.entity.name == bad:
            raise RuntimeError("boom on one series")
        return method(self, frame, series, *args)

    return wrapped


def test_a_series_that_raises_is_skipped_and_logged_with_its_labels(monkeypatch, caplog) -> None:
    t = grid(3)
    f = frame({"pod_memory_usage_ratio": [(POD, t, _leak(t)), (OTHER, t, _leak(t))]})
    monkeypatch.setattr(ExhaustionForecast, "explain", _raising_on(ExhaustionForecast.explain, POD.name))
    with caplog.at_level(logging.ERROR):
        findings = ExhaustionForecast(report_floor=0.0).detect(f)
    assert [x.entity for x in findings] == [OTHER]
    [record] = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert "name='web-0'" in record.getMessage() and "pod_memory_usage_ratio" in record.getMessage()
    # The traceback rides along (the secret-redacting filter, when installed, moves it to exc_text).
    assert record.exc_info is not None or "boom on one series" in (record.exc_text or "")


def test_a_screen_that_raises_falls_back_to_every_series(monkeypatch) -> None:
    t = grid(3)
    f = frame({"pod_memory_usage_ratio": [(POD, t, _leak(t)), (OTHER, t, _leak(t))]})

    def broken(self, frame, signal, series):
        raise FloatingPointError("vectorised screen broke")

    monkeypatch.setattr(ExhaustionForecast, "screen", broken)
    findings = ExhaustionForecast(report_floor=0.0).detect(f)
    assert {x.entity for x in findings} == {POD, OTHER}


def test_the_ensemble_is_not_degraded_by_one_series(monkeypatch) -> None:
    """A member raising on one series is no member failure (which degrades the cycle)."""
    t = grid(3)
    f = frame({"pod_memory_usage_ratio": [(POD, t, _leak(t)), (OTHER, t, _leak(t))]})
    monkeypatch.setattr(ExhaustionForecast, "explain", _raising_on(ExhaustionForecast.explain, POD.name))
    detection = DefaultEnsemble(report_floor=0.0).run(f)
    assert detection.failures == ()
    assert OTHER in {x.entity for x in detection.findings} and POD not in {x.entity for x in detection.findings}


def test_seasonal_skips_a_series_whose_seed_raises(monkeypatch) -> None:
    t = grid(30, step=5 * MINUTE)
    rng = np.random.default_rng(0)
    y = 1.0 + rng.normal(0, 0.01, t.shape[0])
    y2 = y.copy()
    y2[-3:] = 5.0  # a clear spike on the healthy entity
    f = frame({"inference_latency_p99": [(POD, t, y2), (OTHER, t, y2)]}, step=5 * MINUTE)
    real = SeasonalBaseline.trace

    def trace(self, t, y, direction):
        if trace.calls == 0:
            trace.calls += 1
            raise RuntimeError("boom in one seed")
        return real(self, t, y, direction)

    trace.calls = 0
    monkeypatch.setattr(SeasonalBaseline, "trace", trace)
    det = SeasonalBaseline(report_floor=0.0)
    findings = det.detect(f)
    assert len(findings) == 1
    # The skipped series is re-seeded next cycle.
    assert len(det.detect(f)) == 2


def test_gpu_health_skips_one_gpu(monkeypatch) -> None:
    gpu_a, gpu_b = Entity("gpu", "GPU-a"), Entity("gpu", "GPU-b")
    t = grid(1)
    y = np.full(t.shape[0], 79.0)
    info = {"gpu_xid": SignalInfo("gpu_xid", "gpu", "xid", bad_direction="up")}
    f = frame({"gpu_xid": [(gpu_a, t, y), (gpu_b, t, y)]}, signals=info)
    real = GpuHealth._xid

    def xid(self, frame, series, t, y):
        if series.entity == gpu_a:
            raise KeyError("boom")
        return real(self, frame, series, t, y)

    monkeypatch.setattr(GpuHealth, "_xid", xid)
    findings = GpuHealth().detect(f)
    assert [x.entity for x in findings] == [gpu_b]


def test_every_registered_detector_is_wired_to_isolate_series() -> None:
    """A registry-wide guard: each built-in's module routes its per-series work through ``isolated``."""
    import inspect

    for name in plugins.available(plugins.DETECTORS):
        cls = plugins.load(plugins.DETECTORS, name)
        if name == "ensemble":
            continue  # routes to members, each isolated
        source = inspect.getsource(inspect.getmodule(cls)) + inspect.getsource(inspect.getmodule(cls.__mro__[1]))
        assert "isolated(" in source, name


def test_series_labels_in_log_line() -> None:
    from detectors._isolation import describe

    s = Series("x", {"pod": "a", "namespace": "b"}, np.array([T0]), np.array([1.0]), POD)
    assert describe(s) == "x{namespace='b',pod='a'}"
    assert describe(POD) == POD.key
    assert SIGNALS and HOUR  # shared fixtures import cleanly


def test_a_skipped_series_is_named_in_the_detection_so_its_absent_finding_is_not_taken_for_health(
    monkeypatch,
) -> None:
    """The skipped series' entity has no finding this cycle for want of a score, not because it is
    well: the run says which entities went unjudged (the act stage must not call an action on them
    healed), and a clean run names none."""
    t = grid(3)
    f = frame({"pod_memory_usage_ratio": [(POD, t, _leak(t)), (OTHER, t, _leak(t))]})
    clean = plugins.run_detector(ExhaustionForecast(report_floor=0.0), f)
    assert clean.skipped == ()
    monkeypatch.setattr(ExhaustionForecast, "explain", _raising_on(ExhaustionForecast.explain, POD.name))
    detection = plugins.run_detector(ExhaustionForecast(report_floor=0.0), f)
    assert [x.entity for x in detection.findings] == [OTHER]
    assert detection.skipped == (POD.key,)
