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


# -- XID 94: which pod is on the GPU ---------------------------------------------------------------
# The catalog's gpu_xid aggregates to the GPU (its history must not split when a pod attaches), so
# the pod comes from gpu_pods: dcgm-exporter's pod mapping, one series per (GPU, pod) attachment.
OTHER_GPU = Entity("gpu", "GPU-9999", attributes=(("Hostname", "gpu-node-7"), ("gpu", "0")))


def _attached(gpu: Entity, labels: dict[str, str], first: int = 0, last: int = T.size) -> Series:
    t = T[first:last]
    return Series("gpu_pods", {"UUID": gpu.name, "Hostname": "gpu-node-7", "gpu": gpu.attr("gpu"), **labels}, t,
                  np.ones(t.size), gpu)


def _pod_info(ns: str, pod: str, kind: str) -> Series:
    entity = Entity("pod", pod, ns, attributes=(("node", "gpu-node-7"), ("created_by_kind", kind)))
    return Series("pod_info", {"namespace": ns, "pod": pod, "node": "gpu-node-7", "created_by_kind": kind}, T,
                  np.ones(T.size), entity)


def _xid94(*others: Series) -> Frame:
    xid = Series("gpu_xid", {"UUID": GPU.name, "Hostname": "gpu-node-7", "gpu": "3"}, T, _last([94] * 3), GPU)
    signals = {s: SignalInfo(s, kind) for s, kind in (("gpu_xid", "gpu"), ("gpu_pods", "gpu"), ("pod_info", "pod"))}
    return Frame(datetime.fromtimestamp(T[-1], UTC), (xid, *others), signals, 60.0)


def _facts_and_summary(frame: Frame) -> tuple[dict[str, object], str]:
    [finding] = GpuHealth().detect(frame)
    return dict(finding.evidence.facts), finding.evidence.summary


def test_xid_94_reads_the_pod_on_its_gpu_from_the_pod_mapping() -> None:
    facts, summary = _facts_and_summary(_xid94(
        _attached(GPU, {"namespace": "ml", "pod": "llama-0", "container": "vllm"}),
        _attached(OTHER_GPU, {"namespace": "ml", "pod": "qwen-0", "container": "vllm"}),
    ))
    assert facts["pod"] == "ml/llama-0"
    assert "(pod ml/llama-0)" in summary
    [finding] = GpuHealth().detect(_xid94(_attached(GPU, {"namespace": "ml", "pod": "llama-0", "container": "vllm"})))
    assert finding.evidence.related == ("node/gpu-node-7", "pod/ml/llama-0")


def test_xid_94_reads_exported_labels_when_the_scrape_did_not_honour_them() -> None:
    """Without honor_labels Prometheus renames dcgm-exporter's pod/namespace to exported_*, and
    pod/namespace then name the exporter's own pod (a DaemonSet's)."""
    exporter = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p", "container": "nvidia-dcgm-exporter"}
    facts, _ = _facts_and_summary(_xid94(
        _attached(GPU, {**exporter, "exported_namespace": "ml", "exported_pod": "llama-0"}),
    ))
    assert facts["pod"] == "ml/llama-0"


@pytest.mark.parametrize("with_pod_info", [True, False])
def test_xid_94_on_an_idle_gpu_never_names_the_exporter_pod(with_pod_info: bool) -> None:
    """An idle GPU's series carries only the exporter's own pod when labels are not honoured: a
    restart of it would heal nothing. pod_info says it is a DaemonSet's; without pod_info, a busy
    GPU of the same exporter showing exported_* says the scrape renamed them."""
    exporter = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p"}
    others: list[Series] = [_attached(GPU, exporter)]
    if with_pod_info:
        others.append(_pod_info("gpu-operator", "nvidia-dcgm-exporter-x7k2p", "DaemonSet"))
    else:
        others.append(_attached(OTHER_GPU, {**exporter, "exported_namespace": "ml", "exported_pod": "qwen-0"}))
    facts, summary = _facts_and_summary(_xid94(*others))
    assert "pod" not in facts
    assert "dcgm-exporter" not in summary


def test_xid_94_names_the_pod_attached_when_it_happened_not_one_gone_before() -> None:
    facts, _ = _facts_and_summary(_xid94(
        _attached(GPU, {"namespace": "ml", "pod": "llama-old"}, last=T.size - 10),  # rolled out earlier
        _attached(GPU, {"namespace": "ml", "pod": "llama-new"}, first=T.size - 9),
    ))
    assert facts["pod"] == "ml/llama-new"


def test_xid_94_on_a_shared_gpu_names_every_pod_and_picks_none() -> None:
    """Time-slicing or MPS: several pods on one GPU. Which one the error hit is not known, so no
    pod is restarted automatically; the evidence names them for a person."""
    facts, summary = _facts_and_summary(_xid94(
        _attached(GPU, {"namespace": "ml", "pod": "a-0"}),
        _attached(GPU, {"namespace": "ml", "pod": "b-0"}),
    ))
    assert "pod" not in facts
    assert facts["pods"] == ["ml/a-0", "ml/b-0"]
    assert "ml/a-0" in summary and "ml/b-0" in summary


def test_xid_94_still_names_its_pod_after_the_pod_is_gone() -> None:
    """The pod replaced after the XID has left the live series (its mapping is among the frame's
    vanished ones): the finding still names it, so that policy sees the pod is gone and stops,
    instead of advising on the node for the rest of the lookback."""
    xid = Series("gpu_xid", {"UUID": GPU.name, "Hostname": "gpu-node-7", "gpu": "3"}, T, _last([94] * 12), GPU)
    gone = _attached(GPU, {"namespace": "ml", "pod": "llama-0"}, last=T.size - 6)
    new = _attached(GPU, {"namespace": "ml", "pod": "llama-1"}, first=T.size - 3)
    signals = {sig: SignalInfo(sig, "gpu") for sig in ("gpu_xid", "gpu_pods")}
    frame = Frame(datetime.fromtimestamp(T[-1], UTC), (xid, new), signals, 60.0, vanished=(gone,))
    facts, _ = _facts_and_summary(frame)
    assert facts["pod"] == "ml/llama-0"


def test_an_exporter_restart_s_zeros_inside_a_sticky_xid_are_not_a_new_event() -> None:
    """A sticky 79 held for hours; dcgm-exporter restarts and reads 0 for two scrapes, then the held
    79 again (a standalone hostengine kept the field). Taken for a change, it was a new XID 79:
    confirmed, and the sick-gpu-node rule evacuated a node already handled. A short run of zeros
    between the same code is the exporter's restart; a long one (the driver reloaded: the node was
    repaired) followed by the code is a new event."""
    t = np.arange(180) * 60.0
    blip = np.full(t.size, 79.0)
    blip[150:152] = 0.0
    [held] = GpuHealth().detect(_frame_at(t, "gpu_xid", blip))
    assert held.confirmed is False and held.score == 0.5 and held.evidence.facts["sticky"] is True
    repaired = np.full(t.size, 79.0)
    repaired[100:150] = 0.0  # 50 min at 0, then 79 again: a new fall off the bus
    [new] = GpuHealth().detect(_frame_at(t, "gpu_xid", repaired))
    assert new.confirmed is True and new.score == 1.0


def _frame_at(t: np.ndarray, signal: str, values: np.ndarray) -> Frame:
    series = Series(signal, {"UUID": GPU.name, "Hostname": "gpu-node-7", "gpu": "3"}, t, values, GPU)
    return Frame(datetime.fromtimestamp(t[-1], UTC), (series,), {signal: SignalInfo(signal, "gpu")}, 60.0)


def test_a_temperature_no_gpu_can_have_is_a_broken_reading_not_throttling() -> None:
    """A newest reading of 1e300 °C (a broken exporter or relabelling) was reported as thermal
    throttling ("at 1000000...°C"): no die reads past 150 °C, so it says nothing about cooling."""
    hot = np.full(T.size, 70.0)
    hot[-1] = 1e300
    assert GpuHealth().detect(_frame("gpu_temperature", hot)) == []
    hot[-1] = 95.0
    [throttling] = GpuHealth().detect(_frame("gpu_temperature", hot))
    assert "95 °C" in throttling.evidence.summary


def test_the_detector_s_temperature_bound_is_the_catalog_s() -> None:
    """The collector drops a reading past the catalog's celsius range before the detector sees it;
    the detector's own bound (for frames built otherwise) says the same, not a second opinion."""
    from aiops.config.signals import UNIT_RANGES
    from detectors.gpu_health import MAX_CELSIUS

    assert MAX_CELSIUS == UNIT_RANGES["celsius"][1]
