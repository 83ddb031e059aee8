"""GpuHealth: each dcgm-exporter fault maps to the finding the node remediation needs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from aiops import plugins
from aiops.model import Entity, Frame, Series, SignalInfo
from detectors.gpu_health import GpuHealth

GPU = Entity("gpu", "GPU-1234", attributes=(("Hostname", "gpu-node-7"), ("gpu", "3"), ("modelName", "H100")))
T = np.arange(30) * 60.0


def _frame(signal: str, values: np.ndarray, labels: dict[str, str] | None = None, missing: tuple[str, ...] = ()) -> Frame:
    series = Series(signal, {"UUID": GPU.name, "Hostname": "gpu-node-7", "gpu": "3", **(labels or {})}, T, values, GPU)
    return Frame(datetime.fromtimestamp(T[-1], UTC), (series,), {signal: SignalInfo(signal, "gpu")}, 60.0, missing)


def _last(values: list[float]) -> np.ndarray:
    y = np.zeros(T.size)
    y[-len(values) :] = values
    return y


@pytest.mark.parametrize("code", [79, 64, 95, 48])
def test_hard_xids_are_confirmed_node_failures(code: int) -> None:
    [finding] = GpuHealth().detect(_frame("gpu_xid", _last([code] * 4)))
    assert finding.confirmed is True
    assert finding.score == 1.0
    assert finding.entity.attr("Hostname") == "gpu-node-7"
    assert finding.evidence.facts["node"] == "gpu-node-7"
    assert finding.evidence.facts["since"] == datetime.fromtimestamp(T[-4], UTC).isoformat()
    assert f"XID {code}" in finding.evidence.summary


def test_xid_94_advises_restarting_the_pod_not_the_node() -> None:
    [finding] = GpuHealth().detect(_frame("gpu_xid", _last([94]), {"pod": "llama-0", "namespace": "ml"}))
    assert finding.confirmed is False
    assert finding.evidence.facts["pod"] == "ml/llama-0"
    assert "Restart the affected pod" in finding.evidence.summary


def test_xid_74_and_63_are_risks_not_confirmed_failures() -> None:
    [nvlink] = GpuHealth().detect(_frame("gpu_xid", _last([74])))
    [pending] = GpuHealth().detect(_frame("gpu_xid", _last([63])))
    assert (nvlink.confirmed, nvlink.score) == (False, 0.9)
    assert (pending.confirmed, pending.score) == (False, 0.6)


def test_no_xid_and_no_data_say_nothing() -> None:
    assert GpuHealth().detect(_frame("gpu_xid", np.zeros(T.size))) == []
    assert GpuHealth().detect(_frame("gpu_xid", np.full(T.size, np.nan))) == []
    assert GpuHealth().detect(_frame("gpu_xid", _last([79]), missing=("gpu_xid",))) == []


def test_double_bit_ecc_and_remap_failure_are_confirmed() -> None:
    [ecc] = GpuHealth().detect(_frame("gpu_ecc_dbe_rate", _last([2])))
    [remap] = GpuHealth().detect(_frame("gpu_row_remap_failure", _last([1])))
    assert ecc.confirmed and remap.confirmed
    assert ecc.score == remap.score == 1.0
    assert GpuHealth().detect(_frame("gpu_ecc_dbe_rate", np.zeros(T.size))) == []


def test_rising_uncorrectable_remapped_rows_asks_for_a_reset() -> None:
    rows = np.concatenate([np.full(20, 1.0), np.full(10, 3.0)])
    [finding] = GpuHealth().detect(_frame("gpu_uncorrectable_remapped_rows", rows))
    assert finding.evidence.facts["increase"] == 2.0
    assert not finding.confirmed
    assert GpuHealth().detect(_frame("gpu_uncorrectable_remapped_rows", np.full(T.size, 4.0))) == []


def test_throttling_from_temperature_and_clock_event_reasons() -> None:
    [hot] = GpuHealth().detect(_frame("gpu_temperature", np.full(T.size, 90.0)))
    assert hot.score == 0.7 and "thermal throttling" in hot.evidence.summary
    assert GpuHealth().detect(_frame("gpu_temperature", np.full(T.size, 70.0))) == []
    [capped] = GpuHealth().detect(_frame("gpu_clock_event_reasons", _last([0x40 | 0x04])))
    assert capped.evidence.facts["reasons"] == ["software power cap", "hardware thermal slowdown"]
    assert GpuHealth().detect(_frame("gpu_clock_event_reasons", _last([0x01]))) == []  # idle clocks: fine


def test_loaded_by_name_with_parameters() -> None:
    detector = plugins.instantiate(plugins.DETECTORS, "gpu_health", {"slowdown_celsius": 80})
    assert isinstance(detector, GpuHealth)
    assert detector.detect(_frame("gpu_temperature", np.full(T.size, 82.0)))
    with pytest.raises(plugins.PluginError):
        plugins.instantiate(plugins.DETECTORS, "gpu_health", {"throttle_score": 2})


def test_a_sticky_xid_level_is_not_a_new_event() -> None:
    # dcgm-exporter holds the last XID until the driver or exporter restarts: 79 for the whole
    # window is a level seen before (after a repair without a reboot), not a GPU falling off now.
    [old] = GpuHealth().detect(_frame("gpu_xid", np.full(T.size, 79.0)))
    assert old.confirmed is False and old.score == 0.5
    assert old.evidence.facts["sticky"] is True and "not a new event" in old.evidence.summary
    # The same code appearing inside the window (a change, or a new series) is an event.
    [new] = GpuHealth().detect(_frame("gpu_xid", _last([79] * 10)))
    assert new.confirmed is True and new.score == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_passing_over_healthy_gpus_finds_exactly_what_the_full_checks_find(seed: int) -> None:
    """``could_find`` skips a series on its first and last value: never one a check would report."""

    class Unscreened(GpuHealth):
        def could_find(self, signal: str, first: float, last: float) -> bool:
            return True

    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    series = []
    for signal in GpuHealth.default_signals:
        for k in range(60):
            n = int(rng.integers(1, 40))
            t = t0 + 60.0 * np.arange(n)
            choices = [0.0, 0.4, 0.6, 1.0, 2.0, 3.0, 8.0, 16.0, 48.0, 63.0, 79.0, 86.9, 87.0, 94.0, 255.0, -1.0, 1e300]
            y = rng.choice(choices, n)
            if rng.random() < 0.5:
                y[: int(rng.integers(0, n + 1))] = y[-1]  # a level held
            y[rng.random(n) < 0.15] = rng.choice([np.nan, np.inf, -np.inf])
            gpu = Entity("gpu", f"GPU-{signal}-{k}", attributes=(("Hostname", f"node-{k % 7}"),))
            series.append(Series(signal, {"gpu": str(k), "Hostname": f"node-{k % 7}"}, t, y, gpu))
    frame = Frame(datetime.fromtimestamp(t0 + 3600, UTC), tuple(series), {}, 60.0)
    for floor in (0.0, 0.5):
        fast = [replace(f, id="") for f in GpuHealth(report_floor=floor).detect(frame)]
        full = [replace(f, id="") for f in Unscreened(report_floor=floor).detect(frame)]
        assert fast == full
        assert floor > 0 or len(full) > 50  # the mix must find plenty for the comparison to mean anything
