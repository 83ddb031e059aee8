"""DefaultEnsemble: routing by signal family, merging, and what the daemon runs by default."""

from __future__ import annotations

import numpy as np
import pytest

from aiops import plugins
from aiops.config import parse_config
from aiops.errors import explain, is_temporary
from aiops.engine.pipeline import build_detectors
from aiops.model import Entity, Evidence, Finding, SignalInfo, from_epoch
from aiops.plugins import PluginError
from detectors.ensemble import DefaultEnsemble, merge
from detectors.seasonal import SeasonalBaseline
from tests.detectors.synthetic import (
    DAY,
    HOUR,
    MODEL,
    POD,
    SIGNALS,
    T0,
    daily,
    frame,
    grid,
)

MINE = {"exhaustion": {}, "quality_drift": {}, "seasonal": {}}


def cluster_frame():
    t = grid(30.0)
    memory = 0.4 + 0.6 * (t - T0) / (30.5 * HOUR)  # crosses the limit 30 min after the last point
    accuracy = np.full(t.shape[0], 0.92)
    accuracy[t >= T0 + 29 * HOUR] *= 0.9
    latency = daily(t, 0.2, 0.05, 0.005)
    latency[-1] = 2.0
    return frame(
        {
            "pod_memory_usage_ratio": [(POD, t, memory)],
            "model_accuracy": [(MODEL, t, accuracy)],
            "inference_latency_p99": [(MODEL, t, latency)],
        }
    )


def test_each_family_goes_to_its_detector_and_keeps_its_name() -> None:
    findings = DefaultEnsemble(members=MINE).detect(cluster_frame())
    by_signal = {f.signal: f for f in findings}
    assert by_signal["pod_memory_usage_ratio"].detector == "exhaustion"
    assert by_signal["pod_memory_usage_ratio"].predicted_failure_at is not None
    assert by_signal["model_accuracy"].detector == "quality_drift"
    assert by_signal["inference_latency_p99"].detector == "seasonal"
    assert all(f.score >= 0.5 for f in findings)


def test_unknown_signal_is_routed_by_capacity() -> None:
    t = grid(3.0)
    signals = dict(
        SIGNALS,
        my_disk=SignalInfo("my_disk", "node", "ratio", capacity=1.0),
        my_qps=SignalInfo("my_qps", "service", "rps"),
    )
    node = Entity("node", "n1")
    f = frame(
        {"my_disk": [(node, t, 0.4 + 0.6 * (t - T0) / (3.5 * HOUR))], "my_qps": [(MODEL, t, np.ones(t.shape[0]))]},
        signals,
    )
    ens = DefaultEnsemble(signals=["my_disk", "my_qps"], members=MINE)
    routes = ens.route(f)
    assert routes["exhaustion"] == ("my_disk",) and routes["seasonal"] == ("my_qps",)
    (finding,) = ens.detect(f)
    assert finding.signal == "my_disk" and finding.detector == "exhaustion"


def test_merge_keeps_the_highest_score_and_the_other_as_evidence() -> None:
    def finding(detector: str, score: float) -> Finding:
        return Finding(detector, "gpu_temperature", POD, score, from_epoch(T0), Evidence(f"{detector} says so"))

    (top,) = merge([finding("seasonal", 0.6), finding("gpu_health", 0.95)])
    assert top.detector == "gpu_health" and top.score == 0.95
    assert any("seasonal (0.60)" in r for r in top.evidence.related)


def test_backtest_scores_like_the_seasonal_baseline() -> None:
    t = T0 + np.arange(0.0, 3 * DAY, 300.0)
    y = daily(t, 10.0, 3.0, 0.3)
    np.testing.assert_array_equal(
        DefaultEnsemble(members=MINE).score_series(t, y), SeasonalBaseline().score_series(t, y)
    )


def test_daemon_runs_the_ensemble_by_default() -> None:
    # Other default detectors may run beside it; the ensemble is the one that routes by family.
    detector = dict(build_detectors(parse_config({})))["ensemble"]
    assert isinstance(detector, DefaultEnsemble)
    assert {"exhaustion", "quality_drift", "seasonal"} <= set(detector.members)


def test_a_named_member_that_cannot_load_is_an_error() -> None:
    with pytest.raises(PluginError, match="no_such_detector"):
        DefaultEnsemble(members={"no_such_detector": {}})
    with pytest.raises(ValueError, match="itself"):
        DefaultEnsemble(members={"ensemble": {}})


def test_a_built_in_member_missing_from_the_installed_entry_points_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An install made before a member existed lacks its entry point: the registry is the one way a
    # member loads, so the ensemble refuses to start and the hint says how to refresh the install.
    installed = dict(plugins.available(plugins.DETECTORS))
    del installed["headroom"]
    monkeypatch.setattr(plugins, "available", lambda group: installed)
    with pytest.raises(PluginError, match="'headroom'") as caught:
        DefaultEnsemble()
    assert not is_temporary(caught.value)
    assert "pip install -e ." in caught.value.hint
    assert "hint: " in explain(caught.value)


def test_a_failing_member_is_named_and_the_others_still_report(monkeypatch: pytest.MonkeyPatch) -> None:
    ens = DefaultEnsemble(members=MINE)

    def broken(frame: object) -> list[Finding]:
        raise ValueError("bad history")

    monkeypatch.setattr(ens.members["seasonal"], "detect", broken)
    detection = ens.run(cluster_frame())  # nothing raises
    assert detection.failures == ("member 'seasonal': ValueError: bad history",)
    # The healthy members' findings survive the failure, for the pipeline to pass on.
    assert {f.detector for f in detection.findings} == {"exhaustion", "quality_drift"}
    assert [f.key for f in ens.detect(cluster_frame())] == [f.key for f in detection.findings]
