"""The advisor's analyses on small in-memory histories: edge cases, bad input, config errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pytest
import yaml

from aiops.advisor import AdvisorError, Kind, advise, workload_of
from aiops.advisor.analyze import analyze
from aiops.advisor.autoscaling import fit_curve
from aiops.advisor.records import GpuTrack, History, HpaTrack, LatencyTrack
from aiops.advisor.render import terminal_summary, to_json
from aiops.collect.prometheus import PrometheusError, RawSeries
from aiops.config import ConfigError, parse_config
from aiops.config.advisor import AdvisorConfig
from aiops.model import Entity

pytestmark = pytest.mark.timeout(30)

STEP = 300.0
END = datetime(2026, 11, 20, tzinfo=UTC)
A100 = "NVIDIA A100-SXM4-80GB"


def _history(gpus: list[GpuTrack], steps: int, hpas: tuple[HpaTrack, ...] = (), latencies: tuple[LatencyTrack, ...] = ()) -> History:
    t = END.timestamp() - STEP * np.arange(steps)[::-1]
    return History(END - timedelta(seconds=STEP * steps), END, STEP, t, tuple(gpus), hpas, latencies)


def _gpu(uuid: str, pod: str, util: np.ndarray, fb_gib: float | np.ndarray, ns: str = "ml", model: str = A100) -> GpuTrack:
    fb = np.broadcast_to(np.asarray(fb_gib, dtype=float), util.shape).copy()
    return GpuTrack(uuid, "node-1", "0", model, ns if pod else "", pod, workload_of(ns, pod) if pod else None, util, fb, 80.0)


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("chat-5b8d7c9f6d-xk2zq", Entity("deployment", "chat", "ns")),
        ("vllm-mistral-7b-6c8d9b7f5d-q2w4z", Entity("deployment", "vllm-mistral-7b", "ns")),
        ("trainer-3", Entity("statefulset", "trainer", "ns")),
        ("dcgm-exporter-x2k4z", Entity("pod", "dcgm-exporter", "ns")),
        ("standalone", Entity("pod", "standalone", "ns")),
    ],
)
def test_workload_of(pod: str, expected: Entity) -> None:
    assert workload_of("ns", pod) == expected


def test_no_gpu_work_moves_to_cpu_instead_of_resizing() -> None:
    h = _history([_gpu("G1", "cron-job-3", np.full(288, 0.5), 0.2)], 288)
    advice = analyze(h, AdvisorConfig(), END)
    assert [r.kind for r in advice.recommendations] == [Kind.MOVE_TO_CPU]
    rec = advice.recommendations[0]
    assert rec.saving.gpu_hours == pytest.approx(24.0)
    assert yaml.safe_load(rec.change)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": None}


def test_gaps_count_only_the_hours_that_were_seen() -> None:
    util = np.full(288, 10.0)
    util[100:200] = np.nan  # exporter down for a while: those hours are unknown, not idle
    h = _history([_gpu("G1", "svc-5b8d7c9f6d-xk2zq", util, 30.0)], 288)
    [usage] = analyze(h, AdvisorConfig(), END).workloads
    assert usage.gpu_hours == pytest.approx(188 * STEP / 3600)
    assert usage.idle_gpu_hours == usage.gpu_hours
    assert usage.mean_utilization == pytest.approx(10.0)


def test_gpus_held_at_once_not_pods_ever_seen() -> None:
    # Two replicas at a time, rolled onto new GPUs halfway: 2 GPUs held, 4 tracks.
    half = np.r_[np.full(144, 50.0), np.full(144, np.nan)]
    other = half[::-1].copy()
    tracks = [
        _gpu("G1", "api-5b8d7c9f6d-xk2zq", half, 60.0),
        _gpu("G2", "api-5b8d7c9f6d-r7t9v", half, 60.0),
        _gpu("G3", "api-6c8d9b7f5d-q2w4z", other, 60.0),
        _gpu("G4", "api-6c8d9b7f5d-k4x2p", other, 60.0),
    ]
    [usage] = analyze(_history(tracks, 288), AdvisorConfig(), END).workloads
    assert usage.gpus == 2
    assert usage.gpu_hours == pytest.approx(48.0)


def test_unknown_gpu_model_is_reported_not_guessed() -> None:
    h = _history([_gpu("G1", "x-5b8d7c9f6d-xk2zq", np.full(288, 50.0), 5.0, model="Some Future GPU")], 288)
    advice = analyze(h, AdvisorConfig(), END)
    assert not advice.of_kind(Kind.MIG) and not advice.of_kind(Kind.SMALLER_GPU)
    assert "matches no advisor.gpu_classes" in advice.tiering["deployment/ml/x"]


def test_one_memory_spike_rules_out_the_small_slice() -> None:
    fb = np.full(288, 4.0)
    fb[50] = 30.0  # the framebuffer peak is the max, never a quantile: OOM is not a percentile event
    h = _history([_gpu("G1", "emb-5b8d7c9f6d-xk2zq", np.full(288, 20.0), fb)], 288)
    [mig] = analyze(h, AdvisorConfig(), END).of_kind(Kind.MIG)
    assert mig.facts["profile"] == "3g.40gb"


def test_fit_curve_ignores_a_slow_outlier_at_low_load() -> None:
    rng = np.random.default_rng(1)
    util = rng.uniform(10, 95, 600)
    p99 = np.where(util < 70, 0.04, 0.04 + 0.01 * (util - 70))
    p99[np.argmin(np.abs(util - 20))] = 2.0  # one slow request at 20 %
    _, fitted, knee = fit_curve(util, p99, 0.1)
    assert knee is not None and 74 <= knee <= 78
    assert fitted[20] < 0.1


def test_fit_curve_without_breach_or_data() -> None:
    util = np.linspace(0, 60, 100)
    assert fit_curve(util, np.full(100, 0.05), 0.1)[2] is None
    assert fit_curve(util[:10], np.full(10, 0.05), 0.1) is None
    assert fit_curve(np.full(100, np.nan), np.full(100, 0.05), 0.1) is None


def test_hpa_without_latency_says_so_and_still_costs_slow_scale_down() -> None:
    steps = 288
    t = END.timestamp() - STEP * np.arange(steps)[::-1]
    low = np.full(steps, 10.0)
    replicas = np.full(steps, 6.0)
    tracks = [_gpu(f"G{i}", f"svc-5b8d7c9f6d-{s}", low, 20.0) for i, s in enumerate(("xk2zq", "r7t9v"))]
    hpa = HpaTrack("ml", "svc", Entity("deployment", "svc", "ml"), replicas, 1, 8, target_value=60.0, target_metric="gpu_util")
    h = History(END - timedelta(days=1), END, STEP, t, tuple(tracks), (hpa,))
    advice = analyze(h, AdvisorConfig(), END)
    [rec] = advice.of_kind(Kind.HPA_SCALE_DOWN)
    # desired = ceil(6 x 10 / 60) = 1: 5 replicas too many from 15 min (10 min low + 5 min
    # stabilisation) after the first low step, i.e. from the 4th step on.
    assert rec.saving.gpu_hours == pytest.approx(5 * (steps - 3) * STEP / 3600)
    assert not advice.of_kind(Kind.HPA_TARGET) and not advice.of_kind(Kind.PRESCALE)
    assert any("no model latency" in note for note in advice.caveats)


def test_infinite_p99_counts_as_a_breach() -> None:
    steps = 288 * 4
    t = END.timestamp() - STEP * np.arange(steps)[::-1]
    hours = (t % 86400) / 3600
    util = np.where((hours >= 9) & (hours < 10), 90.0, 40.0)
    # histogram_quantile gives +Inf when the quantile lands in the +Inf bucket.
    p99 = np.where(util > 80, np.inf, 0.05)
    tracks = [_gpu("G1", "chat-5b8d7c9f6d-xk2zq", util, 40.0)]
    hpa = HpaTrack("ml", "chat", Entity("deployment", "chat", "ml"), np.full(steps, 2.0), 1, 4)
    lat = LatencyTrack("ml", "m", p99, frozenset({Entity("deployment", "chat", "ml")}))
    h = History(END - timedelta(days=4), END, STEP, t, tuple(tracks), (hpa,), (lat,))
    [rec] = analyze(h, AdvisorConfig(), END).of_kind(Kind.PRESCALE)
    assert rec.facts["peak_hours_utc"] == [9]
    assert rec.saving.breach_minutes == pytest.approx(4 * 60)


def test_json_is_strict_and_summary_says_nothing_to_do() -> None:
    util = np.full(288, 75.0)
    util[:5] = np.nan
    h = _history([_gpu("G1", "big-5b8d7c9f6d-xk2zq", util, 70.0)], 288)
    advice = analyze(h, AdvisorConfig(), END)
    assert advice.recommendations == ()
    assert "No changes recommended" in terminal_summary(advice)
    import json

    json.dumps(to_json(advice), allow_nan=False)


class _Client:
    def __init__(self, error: PrometheusError | None = None, series: list[RawSeries] | None = None) -> None:
        self.error, self.series = error, series or []

    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        if self.error:
            raise self.error
        return self.series


def test_outage_is_a_temporary_advisor_error() -> None:
    client = _Client(PrometheusError("connection refused", temporary=True))
    with pytest.raises(AdvisorError, match="try again later") as info:
        advise(parse_config({}), END, client)
    assert info.value.temporary


def test_no_dcgm_series_says_what_to_check() -> None:
    with pytest.raises(AdvisorError, match="dcgm-exporter is scraped"):
        advise(parse_config({}), END, _Client())


@pytest.mark.parametrize(
    ("advisor", "message"),
    [
        ({"window": "30m", "step": "5m"}, "at least 12 steps"),
        ({"idle_utilization_percent": 130}, "less than or equal to 100"),
        ({"gpu_classes": [{"name": "x", "match": "*", "memory_gib": 1, "relative_compute": 1}] * 2}, "unique"),
        ({"autoscaling": {"latency_slo": "soon"}}, "duration"),
        ({"idle_treshold": 30}, "unknown key"),
    ],
)
def test_config_errors_name_the_key(advisor: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config({"advisor": advisor})
    assert "advisor" in str(info.value)


def _chat_history(p99_of_util, target_metric: str = "", target_value: float | None = None) -> History:
    steps = 288 * 2
    t = END.timestamp() - STEP * np.arange(steps)[::-1]
    util = np.linspace(10, 95, steps) % 95 + 5
    tracks = [_gpu("G1", "chat-5b8d7c9f6d-xk2zq", util, 40.0)]
    hpa = HpaTrack("ml", "chat", Entity("deployment", "chat", "ml"), np.full(steps, 2.0), 1, 4, target_value, target_metric)
    lat = LatencyTrack("ml", "m", p99_of_util(util), frozenset({Entity("deployment", "chat", "ml")}))
    return History(END - timedelta(days=2), END, STEP, t, tuple(tracks), (hpa,), (lat,))


def test_hpa_on_cpu_is_told_to_scale_on_gpu() -> None:
    h = _chat_history(lambda u: np.where(u > 70, 0.3, 0.05), target_metric="cpu", target_value=50.0)
    [rec] = analyze(h, AdvisorConfig(), END).of_kind(Kind.HPA_TARGET)
    assert "now scales on cpu at 50" in rec.title
    assert 59 <= rec.facts["recommended_target"] <= 61  # latency steps up at 70 %; target = knee - 10
    assert "DCGM_FI_DEV_GPU_UTIL" in rec.change


def test_latency_bad_at_any_load_is_not_an_autoscaling_problem() -> None:
    advice = analyze(_chat_history(lambda u: np.full(u.shape, 0.5)), AdvisorConfig(), END)
    assert not advice.of_kind(Kind.HPA_TARGET)
    assert any("would not fix it" in note for note in advice.caveats)


def test_documented_example_config_is_valid() -> None:
    import aiops.config.advisor as module

    example = yaml.safe_load(module.__doc__.split("\n\n", 1)[1])
    advisor = parse_config(example).advisor
    assert advisor.currency == "EUR" and [c.name for c in advisor.gpu_classes] == ["H100-80GB", "L4"]


def test_exported_pod_labels_win_over_the_exporters_own() -> None:
    from aiops.advisor.history import HistoryReader

    t = END.timestamp() - STEP * np.arange(288)[::-1]
    labels = {"UUID": "G1", "gpu": "0", "Hostname": "n1", "modelName": A100, "namespace": "gpu-operator",
              "pod": "dcgm-exporter-x2k4z", "exported_namespace": "ml", "exported_pod": "chat-5b8d7c9f6d-xk2zq"}
    client = _Client(series=[RawSeries(labels, t, np.full(288, 50.0))])
    history = HistoryReader(parse_config({"advisor": {"window": "1d"}}), client).read(END)
    [track] = history.gpus
    assert (track.namespace, track.pod, track.workload) == ("ml", "chat-5b8d7c9f6d-xk2zq", Entity("deployment", "chat", "ml"))


def test_sm_activity_sizes_more_truly_than_gpu_util() -> None:
    # GPU_UTIL says busy 60 % of the time, but only ~10 % of the SMs work: a 1g slice is enough.
    busy = _gpu("G1", "emb-5b8d7c9f6d-xk2zq", np.full(288, 60.0), 6.0)
    with_sm = GpuTrack(**{**busy.__dict__, "sm_active": np.full(288, 10.0)})
    [plain] = analyze(_history([busy], 288), AdvisorConfig(), END).workloads
    advice = analyze(_history([with_sm], 288), AdvisorConfig(), END)
    assert plain.compute_source == "DCGM_FI_DEV_GPU_UTIL" and plain.peak_compute == pytest.approx(60.0)
    [mig] = advice.of_kind(Kind.MIG)
    assert mig.facts["profile"] == "1g.10gb" and mig.facts["compute_source"] == "DCGM_FI_PROF_SM_ACTIVE"
    assert "SM activity 10 %" in mig.evidence


def test_missing_framebuffer_never_sizes_down_or_moves_to_cpu() -> None:
    h = _history([_gpu("G1", "x-5b8d7c9f6d-xk2zq", np.full(288, 1.0), np.nan)], 288)
    advice = analyze(h, AdvisorConfig(), END)
    [idle] = advice.recommendations
    assert idle.kind == Kind.IDLE_GPU and "framebuffer use unknown" in idle.evidence
    assert "no framebuffer history" in advice.tiering["deployment/ml/x"]


def test_window_is_read_in_chunks_and_stitched() -> None:
    from aiops.advisor.history import HistoryReader

    t = END.timestamp() - STEP * np.arange(4 * 288)[::-1]
    labels = {"UUID": "G1", "gpu": "0", "Hostname": "n1", "modelName": A100, "namespace": "ml", "pod": "a-5b8d7c9f6d-xk2zq"}

    class Recording(_Client):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, datetime, datetime]] = []

        def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
            self.calls.append((query, start, end))
            sel = (t >= start.timestamp()) & (t <= end.timestamp())
            return [RawSeries(labels, t[sel], np.full(int(sel.sum()), 40.0))] if "GPU_UTIL" in query else []

    client = Recording()
    history = HistoryReader(parse_config({"advisor": {"window": "4d", "query_chunk": "1d"}}), client).read(END)
    util_calls = sorted((c for c in client.calls if "GPU_UTIL" in c[0]), key=lambda c: c[1])
    assert len(util_calls) == 4
    assert all(b[1] > a[2] for a, b in pairwise(util_calls))  # no overlap
    [track] = history.gpus
    assert np.isfinite(track.utilization).sum() == 4 * 288


def test_well_tuned_hpa_gets_no_advice() -> None:
    h = _chat_history(lambda u: np.full(u.shape, 0.04), target_metric="DCGM_FI_DEV_GPU_UTIL", target_value=60.0)
    h = History(h.start, h.end, h.step_seconds, h.timestamps, h.gpus,
                (replace(h.hpas[0], current_replicas=np.full(h.timestamps.shape, 1.0)),), h.latencies)
    advice = analyze(h, AdvisorConfig(), END)
    assert [r for r in advice.recommendations if r.target.kind == "hpa"] == []
    [summary] = advice.hpas
    assert summary.knee_utilization is None and summary.breach_minutes == 0 and summary.wasted_gpu_hours == 0


def test_weekly_digest_once_a_week_and_retried_after_an_outage(tmp_path) -> None:
    from aiops.advisor import weekly_digest
    from aiops.model import Severity
    from aiops.state import Store

    config = parse_config({"advisor": {"window": "1d", "digest": {"weekday": "monday", "hour_utc": 9}}})
    labels = {"UUID": "G1", "gpu": "0", "Hostname": "n1", "modelName": A100, "namespace": "ml", "pod": "a-5b8d7c9f6d-xk2zq"}

    class Fleet(_Client):
        def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
            t = np.arange(start.timestamp(), end.timestamp() + 1, step.total_seconds())
            return [RawSeries(labels, t, np.full(t.size, 50.0))] if "GPU_UTIL" in query else []

    store = Store(tmp_path / "state.sqlite")
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert weekly_digest(config, store, monday, Fleet()) == []  # before 09:00
    down = _Client(PrometheusError("connection refused", temporary=True))
    [warning] = weekly_digest(config, store, monday + timedelta(hours=1), down)
    assert warning.severity is Severity.WARNING
    [note] = weekly_digest(config, store, monday + timedelta(hours=2), Fleet())  # retried, not lost
    assert note.severity is Severity.INFO and note.key == warning.key == "advisor:digest:2026-W48"
    assert weekly_digest(config, store, monday + timedelta(days=3), Fleet()) == []  # done this week
    assert len(weekly_digest(config, store, monday + timedelta(days=7, hours=1), Fleet())) == 1
    store.close()


def test_an_hpa_scaling_a_kind_aiops_does_not_model_is_read_as_a_workload() -> None:
    from aiops.advisor.history import HistoryReader
    from aiops.model import EntityKind

    t = END.timestamp() - STEP * np.arange(288)[::-1]
    gpu = {"UUID": "G1", "gpu": "0", "Hostname": "n1", "modelName": A100, "namespace": "ml", "pod": "chat-5b8d7c9f6d-xk2zq"}
    hpa = {"namespace": "ml", "horizontalpodautoscaler": "chat"}
    targets = [("chat", "Rollout"), ("web", "StatefulSet")]

    class Client:
        def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
            if "kube_horizontalpodautoscaler_info" in query:
                return [RawSeries({**hpa, "horizontalpodautoscaler": name, "scaletargetref_kind": kind,
                                   "scaletargetref_name": name}, t, np.ones(288)) for name, kind in targets]
            if "kube_horizontalpodautoscaler_status_current_replicas" in query:
                return [RawSeries({**hpa, "horizontalpodautoscaler": name}, t, np.full(288, 2.0)) for name, _ in targets]
            return [RawSeries(gpu, t, np.full(288, 50.0))] if "DCGM_FI_DEV_GPU_UTIL" in query else []

    history = HistoryReader(parse_config({"advisor": {"window": "1d"}}), Client()).read(END)
    rollout, web = sorted(history.hpas, key=lambda h: h.name)
    # The Argo Rollout keeps its kind as an attribute; its pods are still matched by namespace and name.
    assert rollout.target == Entity(EntityKind.WORKLOAD, "chat", "ml") and rollout.target.attr("kind") == "Rollout"
    assert web.target.kind is EntityKind.STATEFULSET
