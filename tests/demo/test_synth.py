"""The synthetic history: valid OpenMetrics, deterministic, and faults where the scenario says."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from aiops.demo.synth import (
    AccuracyDrift,
    CounterReset,
    CrashLoop,
    ExporterGarbage,
    ITL_BUCKETS,
    FilesystemFill,
    LatencyRegression,
    MemoryLeak,
    node_exporter_instance,
    OomKill,
    Scenario,
    ScenarioError,
    Topology,
    demo_scenario,
    load_scenario,
    write_openmetrics,
)

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_LINE = re.compile(r"^(?P<name>[^{ ]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+) (?P<ts>\d+)$")


def render(scenario: Scenario) -> str:
    buf = io.StringIO()
    write_openmetrics(scenario, buf)
    return buf.getvalue()


def series_of(text: str, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{labels: (timestamps, values)} of one sample name."""
    acc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            m = _LINE.match(line)
            assert m, line
            acc[m["labels"]].append((float(m["ts"]), float(m["value"])))
    return {k: (np.array([p[0] for p in v]), np.array([p[1] for p in v])) for k, v in acc.items()}


def small(**kw: object) -> Scenario:
    base: dict[str, object] = {"seed": 3, "duration": timedelta(hours=2), "end": END}
    base.update(kw)
    return Scenario(**base)  # type: ignore[arg-type]


@pytest.mark.slow
def test_output_is_valid_openmetrics_with_types_and_eof() -> None:
    text = render(small())
    assert text.endswith("# EOF\n")
    # prometheus_client's strict parser rejects timestamped histograms with more than one point
    # (its grouping check), so the histogram is checked by its own test and by promtool.
    rest = text
    for hist in ("vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds",
                 "vllm:inter_token_latency_seconds"):
        hist_start = rest.index(f"# HELP {hist} ")
        hist_end = rest.index("# HELP", hist_start + 1)
        assert f"# TYPE {hist} histogram\n" in rest[hist_start:hist_end]
        rest = rest[:hist_start] + rest[hist_end:]
    families = {f.name: f for f in text_string_to_metric_families(rest)}
    assert families["kube_pod_container_status_restarts"].type == "counter"
    assert families["container_memory_working_set_bytes"].type == "gauge"
    for name in (
        "kube_pod_container_resource_limits",
        "kube_node_status_condition",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_cpu_seconds",
        "DCGM_FI_DEV_XID_ERRORS",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:request_success",
        "model_accuracy",
        "business_conversion_rate",
        "kube_pod_info",
        "kube_pod_owner",
    ):
        assert families[name].samples, name


def test_same_seed_and_end_give_identical_bytes_and_another_seed_differs() -> None:
    assert render(small()) == render(small())
    assert render(small()) != render(small(seed=4))


def test_labels_match_what_the_catalog_aggregates_on() -> None:
    text = render(small())
    gpu = next(iter(series_of(text, "DCGM_FI_DEV_GPU_UTIL")))
    for label in ("Hostname=", "gpu=", "UUID=", "modelName="):
        assert label in gpu
    fs = next(iter(series_of(text, "node_filesystem_avail_bytes")))
    assert 'instance="10.0.' in fs and "mountpoint=" in fs and "fstype=" in fs
    # node-exporter is scraped at its address; node_uname_info names the node, as the catalog reads it.
    unames = list(series_of(text, "node_uname_info"))
    assert len(unames) == len(Topology.build(small()).nodes)
    assert all(f'instance="{node_exporter_instance(i)}"' in u and f'nodename="node-{i}"' in u
               for i, u in enumerate(sorted(unames, key=lambda u: int(u.split('nodename="node-')[1].split('"')[0]))))
    assert all(
        'resource="memory"' in k or 'resource="cpu"' in k for k in series_of(text, "kube_pod_container_resource_limits")
    )
    assert all(
        "model_name=" in k and "namespace=" in k for k in series_of(text, "vllm:e2e_request_latency_seconds_bucket")
    )


def test_timestamps_end_at_end_on_the_step_grid() -> None:
    sc = small(end=END + timedelta(seconds=37))
    text = render(sc)
    ts, _ = next(iter(series_of(text, "node_memory_MemTotal_bytes").values()))
    assert ts[-1] == END.timestamp()  # aligned down to the step
    assert np.all(np.diff(ts) == 60) and len(ts) == 121


def test_memory_leak_crosses_the_limit_at_the_chosen_time_after_the_data() -> None:
    sc = small(
        duration=timedelta(hours=6),
        faults=[MemoryLeak(pod=1, starts_before_end=timedelta(hours=3), crosses_limit_after_end=timedelta(minutes=45))],
    )
    text = render(sc)
    pod = Topology.build(sc).pods[1]
    key = next(k for k in series_of(text, "container_memory_working_set_bytes") if f'pod="{pod.name}"' in k)
    ts, ws = series_of(text, "container_memory_working_set_bytes")[key]
    assert np.all(ws < pod.memory_limit)  # not crossed within the data
    leaking = ts >= END.timestamp() - 3 * 3600
    slope, intercept = np.polyfit(ts[leaking], ws[leaking], 1)
    crossing = (pod.memory_limit - intercept) / slope
    assert abs(crossing - (END.timestamp() + 45 * 60)) < 5 * 60
    # A healthy pod has no trend.
    other = next(v for k, v in series_of(text, "container_memory_working_set_bytes").items() if k != key)
    assert np.all(other[1] < 0.8 * Topology.build(sc).pods[0].memory_limit * 2)


def test_counters_are_monotonic_except_at_injected_resets() -> None:
    sc = small(faults=[CounterReset(node=1, at_before_end=timedelta(minutes=30))])
    text = render(sc)
    reset_at = END.timestamp() - 30 * 60
    checked = 0
    for metric in ("node_cpu_seconds_total", "vllm:request_success_total", "vllm:e2e_request_latency_seconds_count"):
        for labels, (ts, vals) in series_of(text, metric).items():
            drops = ts[1:][np.diff(vals) < 0]
            on_node_1 = f'instance="{node_exporter_instance(1)}"' in labels or any(
                f'pod="{p.name}"' in labels for p in Topology.build(sc).model_pods if p.node == "node-1"
            )
            if on_node_1:
                assert list(drops) == [reset_at], (metric, labels)
            else:
                assert len(drops) == 0, (metric, labels)
            checked += 1
    assert checked > 10


def test_histogram_buckets_are_cumulative_and_end_in_count() -> None:
    text = render(small())
    buckets = series_of(text, "vllm:e2e_request_latency_seconds_bucket")
    counts = series_of(text, "vllm:e2e_request_latency_seconds_count")
    for labels, (_, count) in counts.items():
        les = sorted(
            (
                (float(re.search(r'le="([^"]+)"', k)[1]), v)
                for k, (_, v) in buckets.items()
                if k.startswith(labels + ",")
            ),
            key=lambda p: p[0],
        )
        stacked = np.vstack([v for _, v in les])
        assert np.all(np.diff(stacked, axis=0) >= 0)  # cumulative in le
        assert np.array_equal(stacked[-1], count)  # +Inf == _count


def test_inter_token_latency_has_vllms_buckets_and_stays_within_its_objective() -> None:
    # vLLM V1 exports inter-token latency with its own buckets (vllm/v1/metrics/loggers.py); the
    # serving_itl_p99 signal and the InferenceInterTokenLatencyP99High rule read it (objective 100 ms).
    sc = small(faults=[LatencyRegression(model=0, p99_seconds=4.0, starts_before_end=timedelta(minutes=60))])
    text = render(sc)
    buckets = series_of(text, "vllm:inter_token_latency_seconds_bucket")
    counts = series_of(text, "vllm:inter_token_latency_seconds_count")
    assert counts and len(buckets) == len(counts) * (len(ITL_BUCKETS) + 1)
    les = {float(re.search(r'le="([^"]+)"', k)[1]) for k in buckets}
    assert les == {*ITL_BUCKETS, float("inf")}
    slow = Topology.build(sc).model(0).name
    for labels, (_, count) in counts.items():
        # The last 10 minutes' p99 from the bucket increases, as histogram_quantile reads them.
        inc = {float(re.search(r'le="([^"]+)"', k)[1]): v[-1] - v[-11] for k, (_, v) in buckets.items()
               if k.startswith(labels + ",")}
        total = count[-1] - count[-11]
        p99_bucket = min(le for le, n in inc.items() if n >= 0.99 * total)
        # Tokens stream at tens of milliseconds; a TTFT regression (queueing) slows decoding a
        # little, not past the objective.
        assert total > 0 and 0.025 <= p99_bucket <= 0.1, (labels, p99_bucket)
        if f'model_name="{slow}"' in labels:
            assert p99_bucket >= 0.075


def test_crash_loop_restarts_with_backoff_and_reports_waiting() -> None:
    sc = small(faults=[CrashLoop(pod=2, starts_before_end=timedelta(minutes=40))])
    text = render(sc)
    pod = Topology.build(sc).pods[2].name
    ((ts, restarts),) = [v for k, v in series_of(text, "kube_pod_container_status_restarts_total").items() if pod in k]
    recent = restarts[-1] - restarts[ts <= END.timestamp() - 40 * 60][-1]
    assert 8 <= recent <= 14  # 10 s doubling to 5 min over 40 min
    ((_, waiting),) = series_of(text, "kube_pod_container_status_waiting_reason").values()
    assert waiting[-1] == 1 and waiting[0] == 0


def test_filesystem_fill_reaches_zero_after_the_data() -> None:
    sc = small(
        duration=timedelta(hours=4),
        faults=[FilesystemFill(node=0, starts_before_end=timedelta(hours=2), full_after_end=timedelta(minutes=30))],
    )
    text = render(sc)
    ((ts, avail),) = [
        v
        for k, v in series_of(text, "node_filesystem_avail_bytes").items()
        if f'instance="{node_exporter_instance(0)}"' in k and 'mountpoint="/var/lib/containerd"' in k
    ]
    tail = ts >= END.timestamp() - 2 * 3600
    slope, intercept = np.polyfit(ts[tail], avail[tail], 1)
    assert abs(-intercept / slope - (END.timestamp() + 1800)) < 300
    assert avail[-1] > 0


def test_bad_fault_target_names_what_exists() -> None:
    with pytest.raises(ScenarioError, match="pod index 99 is out of range"):
        write_openmetrics(small(faults=[MemoryLeak(pod=99)]), io.StringIO())
    with pytest.raises(ScenarioError, match="no node named 'nope'.*node-0"):
        write_openmetrics(small(faults=[CounterReset(node="nope")]), io.StringIO())
    with pytest.raises(ScenarioError, match="faults.0"):
        load_scenario({"faults": [{"kind": "memory_leak"}]})


def test_sized_scenario_lands_near_the_requested_series_count() -> None:
    for target in (1_000, 10_000):
        got = Topology.build(Scenario.sized(target)).series_count()
        assert 0.8 * target <= got <= 1.25 * target


def test_demo_scenario_is_small_and_has_every_fault_kind() -> None:
    sc = demo_scenario(end=END)
    topo = Topology.build(sc)
    assert len(topo.nodes) == 3 and len(topo.gpus) == 4 and len(topo.models) == 2 and len(topo.pods) == 10
    assert {f.kind for f in sc.faults} >= {
        "memory_leak",
        "gpu_xid",
        "gpu_remapped_rows",
        "latency_regression",
        "accuracy_drift",
        "filesystem_fill",
        "crash_loop",
    }
    assert topo.series_count() < 1000


def test_parts_are_disjoint_and_add_up_to_the_whole() -> None:
    sc = small()
    buf = io.StringIO()
    write_openmetrics(sc, buf, chunk_entities=2)
    whole = {ln for ln in buf.getvalue().splitlines() if not ln.startswith("#")}
    parts = []
    for k in range(3):
        buf = io.StringIO()
        write_openmetrics(sc, buf, chunk_entities=2, part=k, parts=3)
        assert buf.getvalue().endswith("# EOF\n")
        parts.append({ln for ln in buf.getvalue().splitlines() if not ln.startswith("#")})
    assert set().union(*parts) == whole
    assert sum(map(len, parts)) == len(whole)


def test_oom_kill_climbs_to_the_limit_then_restarts_with_the_reason() -> None:
    sc = small(faults=[OomKill(pod=1, at_before_end=timedelta(minutes=30), climb=timedelta(minutes=45))])
    text = render(sc)
    pod = Topology.build(sc).pods[1]
    ((ts, ws),) = [v for k, v in series_of(text, "container_memory_working_set_bytes").items() if pod.name in k]
    kill = END.timestamp() - 1800
    assert ws[ts < kill].max() > 0.95 * pod.memory_limit
    assert ws[ts >= kill].max() < 0.8 * pod.memory_limit
    ((_, restarts),) = [
        v for k, v in series_of(text, "kube_pod_container_status_restarts_total").items() if pod.name in k
    ]
    assert restarts[-1] - restarts[0] == 1
    ((_, reason),) = series_of(text, "kube_pod_container_status_last_terminated_reason").values()
    assert 'reason="OOMKilled"' in next(iter(series_of(text, "kube_pod_container_status_last_terminated_reason")))
    assert reason[ts < kill].max() == 0 and reason[-1] == 1


def test_accuracy_drift_on_one_replica_leaves_the_others_and_halves_the_conversion_drop() -> None:
    drift = AccuracyDrift(model=0, starts_before_end=timedelta(hours=1), drop=0.07, conversion_drop=0.1, replicas=[1])
    text = render(small(faults=[drift]))
    base = render(small())
    model = Topology.build(small()).models[0]
    pods = [p.name for p in Topology.build(small()).model_pods if p.model == model.name]
    acc = {k: v[1] for k, v in series_of(text, "model_accuracy").items() if f'model="{model.name}"' in k}
    assert len(acc) == 2 and all("pod=" in k for k in acc)
    last = {next(p for p in pods if p in k): float(np.mean(v[-5:])) for k, v in acc.items()}
    first = {next(p for p in pods if p in k): float(np.mean(v[:30])) for k, v in acc.items()}
    assert last[pods[1]] / first[pods[1]] == pytest.approx(0.93, abs=0.015)
    assert last[pods[0]] / first[pods[0]] == pytest.approx(1.0, abs=0.015)

    def conversion(t: str) -> np.ndarray:
        return next(v[1] for k, v in series_of(t, "business_conversion_rate").items() if model.name in k)

    assert conversion(text)[-1] / conversion(base)[-1] == pytest.approx(0.95, abs=0.01)


def test_exporter_garbage_writes_what_a_broken_dcgm_exporter_does_on_a_healthy_gpu() -> None:
    """One GPU utilisation of 4294967295 (NVIDIA/DCGM#199); DCGM's blanks for fields the GPU has
    no value for: the fp64 blank for the power draw, the int64 "not supported" for the row remap
    flag, written as the integer Prometheus reads as 2^63 (no wrap to a negative)."""
    sc = small(faults=[ExporterGarbage(gpu=1, at_before_end=timedelta(minutes=10))])
    text = render(sc)
    uuid = Topology.build(sc).gpus[1].uuid

    def of(metric: str) -> tuple[np.ndarray, np.ndarray]:
        ((ts, vs),) = [v for k, v in series_of(text, metric).items() if uuid in k]
        return ts, vs

    ts, util = of("DCGM_FI_DEV_GPU_UTIL")
    assert util[ts == END.timestamp() - 600].tolist() == [4294967295.0]
    assert ((util >= 0) & (util <= 100)).sum() == len(util) - 1
    assert set(of("DCGM_FI_DEV_POWER_USAGE")[1].tolist()) == {140737488355328.0}
    assert set(of("DCGM_FI_DEV_ROW_REMAP_FAILURE")[1].tolist()) == {2.0**63}
    assert " -9223372036854775808 " not in text
    # The other GPUs, and this GPU's other fields, are as without the fault.
    clean = render(small())
    changed = {line.rsplit(" ", 2)[0] for line in set(text.splitlines()) ^ set(clean.splitlines())}
    assert changed == {f"{m}{{{k}}}" for m in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_ROW_REMAP_FAILURE")
                       for k in series_of(text, m) if uuid in k}
