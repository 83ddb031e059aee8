"""Profiles of the replay fixture: the default stays as it was, the others carry their clusters'
exporter semantics (no Prometheus needed)."""

from __future__ import annotations

import warnings

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from aiops.testing.cluster_history import LEGACY_TPOT_BUCKETS, HistorySpec, generate, incidents_yaml
from aiops.testing.cluster_profiles import AP_AUTOSCALE, EU_ROUGH, US_EAST, profile

# sha256 of the default profile's OpenMetrics and incidents file for HistorySpec(hours=12,
# filler_pods=10). The series are as generated before profiles existed; the incidents changed once,
# on purpose: the surge's static alert is histogram_quantile over the buckets held 5 min, as a rule
# computes it (it was the analytic p99, 9 min late). The series changed once, on purpose
# (2026-12-05): request counters carry per-scrape noise and days that differ, in every profile.
# It changed again (2026-12-07) by additions alone: kube_pod_status_phase for every pod, the
# CronJob's pod listed by kube-state-metrics (Succeeded) after its run, and a completed evaluation
# Job's pod on gpu-node-2.
# Change them only with a meant change of the default cluster, and say so in the commit.
DEFAULT_OPENMETRICS_SHA256 = "a5b965d3378d787fcb8d7a064ced058e9e638337898a2800ce51f5a088e580eb"
DEFAULT_INCIDENTS_SHA256 = "2de64ae249ff8097754eb39a45b6876970bcf821b47cdb6d5d7fc9aee44f6152"


@pytest.fixture(scope="module")
def us_east():
    return generate(HistorySpec(hours=16, filler_pods=5, profile=US_EAST))


@pytest.fixture(scope="module")
def eu_rough():
    return generate(HistorySpec(hours=12, filler_pods=5, profile=EU_ROUGH))


def _series(hist, name, **labels):
    return [s for s in hist.gauges + hist.counters if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def _hours(hist) -> np.ndarray:
    return (hist.t - hist.t[0]) / 3600


def _incident_h(hist, prefix: str) -> float:
    inc = next(i for i in hist.incidents if i["name"].startswith(prefix))
    return (inc["failure_at"] - hist.spec.start).total_seconds() / 3600


def test_default_profile_is_unchanged_byte_for_byte(tmp_path: Path) -> None:
    hist = generate(HistorySpec(hours=12, filler_pods=10))
    hist.write_openmetrics(tmp_path / "h.om")
    assert hashlib.sha256((tmp_path / "h.om").read_bytes()).hexdigest() == DEFAULT_OPENMETRICS_SHA256
    assert hashlib.sha256(incidents_yaml(hist).encode()).hexdigest() == DEFAULT_INCIDENTS_SHA256


def test_profiles_are_named_and_sized() -> None:
    assert profile("us-east") is US_EAST
    with pytest.raises(ValueError, match="choose one of default, us-east, eu-rough, ap-autoscale"):
        profile("nope")
    with pytest.raises(ValueError, match="need 15.5 hours"):
        generate(HistorySpec(hours=12, profile=US_EAST))


def test_us_east_runs_an_older_vllm_beside_triton_and_torchserve(us_east) -> None:
    tpot = [x for x in us_east.histograms if x.name == "vllm:time_per_output_token_seconds"]
    assert tpot and {x.labels["model_name"] for x in tpot} == {"llama-3-8b"}
    assert all(x.buckets == LEGACY_TPOT_BUCKETS and "engine" not in x.labels for x in tpot)
    assert _series(us_east, "vllm:gpu_cache_usage_perc", model_name="llama-3-8b")
    assert not _series(us_east, "vllm:kv_cache_usage_perc", model_name="llama-3-8b")
    # Triton's counters carry no _total suffix: untyped families in OpenMetrics.
    triton = _series(us_east, "nv_inference_request_duration_us", model="resnet50")
    assert len(triton) == 2 and all(np.all(np.diff(s.values) >= 0) for s in triton)
    assert _series(us_east, "ts_inference_requests_total", model_name="bert-intent")
    # Six GPU nodes of eight GPUs.
    assert len({(s.labels["Hostname"], s.labels["gpu"]) for s in _series(us_east, "DCGM_FI_DEV_GPU_UTIL")}) == 48


def test_us_east_hpa_scale_out_makes_new_pods_that_count_from_zero(us_east) -> None:
    pods = {s.labels["pod"] for s in _series(us_east, "kube_pod_info", namespace="chat")}
    assert len(pods) >= 6  # two base replicas, their replacements after the drain, HPA pods
    h = _hours(us_east)
    late = [s for s in _series(us_east, "vllm:request_success_total", model_name="mistral-7b", finished_reason="stop")
            if np.isnan(s.values[0])]
    assert late
    for s in late:  # a pod started later counts from (near) zero, and attaches to a GPU
        first = np.flatnonzero(np.isfinite(s.values))[0]
        assert s.values[first] < 10 * 60 * 15
        # us-east scrapes dcgm-exporter without honor_labels: the pod arrives as exported_pod.
        assert _series(us_east, "DCGM_FI_DEV_GPU_UTIL", exported_pod=s.labels["pod"])
    assert h[-1] > 15


def test_us_east_dcgm_labels_are_renamed_by_the_scrape_and_an_xid_94_sticks(us_east) -> None:
    """Without honor_labels every GPU series carries the exporter's own pod (a DaemonSet's, renamed
    by its rollout) as pod/namespace, and the workload's as exported_*; an idle GPU has no
    exported_pod. XID 94 under TorchServe stays on the gauge after its pod was replaced."""
    util = _series(us_east, "DCGM_FI_DEV_GPU_UTIL")
    assert all(s.labels["namespace"] == "gpu-operator" and s.labels["pod"].startswith("nvidia-dcgm-exporter-")
               for s in util)
    assert {s.labels.get("exported_namespace") for s in util} >= {None, "nlp", "vision", "inference", "chat"}
    exporters = {s.labels["pod"] for s in _series(us_east, "kube_pod_info", namespace="gpu-operator")}
    assert {s.labels["pod"] for s in util} <= exporters
    assert {s.labels["created_by_kind"] for s in _series(us_east, "kube_pod_info", namespace="gpu-operator")} == {"DaemonSet"}
    h = _hours(us_east)
    xid = [s for s in _series(us_east, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-4", gpu="3")]
    first = min(float(h[np.flatnonzero(s.values == 94)[0]]) for s in xid if (s.values == 94).any())
    assert first == pytest.approx(9.5)
    assert {s.labels.get("exported_pod") for s in xid if (s.values == 94).any()} == {
        p for p in (s.labels.get("exported_pod") for s in xid) if p}
    assert len({s.labels.get("exported_pod") for s in xid if (s.values == 94).any()}) == 2  # the wedged pod, its successor
    incident = next(i for i in us_east.incidents if i["name"].startswith("XID 94"))
    assert incident["expected_action"] == "restart_pod" and incident["entity"].startswith("pod/nlp/torchserve-")


def test_us_east_planned_drain_reboots_the_node(us_east) -> None:
    h = _hours(us_east)
    (cordon,) = _series(us_east, "kube_node_spec_unschedulable", node="gpu-node-3")
    on = h[cordon.values == 1]
    assert on[0] == pytest.approx(13.5) and on[-1] - on[0] < 0.6
    unknown = _series(us_east, "kube_node_status_condition", node="gpu-node-3", condition="Ready", status="unknown")[0]
    down = unknown.values == 1
    assert down.sum() == 7  # 7 min without the kubelet
    (uname,) = _series(us_east, "node_uname_info", nodename="gpu-node-3")
    cpu = _series(us_east, "node_cpu_seconds_total", instance=uname.labels["instance"], cpu="0", mode="user")[0]
    valid = np.isfinite(cpu.values)
    assert np.isnan(cpu.values[down]).all()  # node-exporter is down while the node reboots
    assert (np.diff(cpu.values[valid]) < 0).sum() == 1  # and its counters restart with the new boot
    assert "node/gpu-node-3" in us_east.decoys


def test_node_exporter_is_scraped_at_its_address_where_the_profile_says_so(us_east, eu_rough) -> None:
    nodes = {s.labels["node"] for s in _series(us_east, "kube_node_spec_unschedulable")}
    uname = {s.labels["instance"]: s.labels["nodename"] for s in _series(us_east, "node_uname_info")}
    # One address per node; every node-exporter series carries one of them, none the node's name.
    assert sorted(uname.values()) == sorted(nodes) and len(uname) == len(nodes)
    assert all(re.fullmatch(r"10\.\d+\.\d+\.\d+:9100", i) for i in uname)
    exported = [s.labels for s in us_east.gauges + us_east.counters if s.name.startswith("node_")]
    assert {lab["instance"] for lab in exported} == set(uname)
    # As a ServiceMonitor scrapes it: the exporter's own pod on every series, not the node's pods.
    assert all(lab["pod"].startswith("kps-prometheus-node-exporter-") and lab["namespace"] == "monitoring"
               for lab in exported)
    # eu-rough relabels the instance to the node's name and has no uname collector.
    assert not _series(eu_rough, "node_uname_info")
    assert {s.labels["instance"] for s in _series(eu_rough, "node_memory_MemTotal_bytes")} == {
        s.labels["node"] for s in _series(eu_rough, "kube_node_spec_unschedulable")}


def test_us_east_dcgm_rollout_clears_the_sticky_xid(us_east) -> None:
    h = _hours(us_east)
    # No workload on it after the XID: the series without exported_pod, one per exporter pod (the
    # scrape does not honour the exporter's labels, so its own pod names the series).
    idle = [s for s in _series(us_east, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-2", gpu="1")
            if "exported_pod" not in s.labels]
    assert len({s.labels["pod"] for s in idle}) == 2
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.nanmax(np.vstack([s.values for s in idle]), axis=0)
    rollout = 6.5 + 2 * 3 / 60  # gpu-node-2's exporter restarts third
    assert np.all(values[(h >= 0.5) & (h < rollout)] == 79)
    assert np.isnan(values[(h >= rollout) & (h < rollout + 1.5 / 60)]).all()  # 90 s without scrapes
    assert np.all(values[h >= rollout + 2 / 60] == 0)
    owners = {s.labels["pod"]: s.labels["created_by_kind"] for s in _series(us_east, "kube_pod_info", namespace="gpu-operator")}
    assert len(owners) == 12 and set(owners.values()) == {"DaemonSet"}


def test_us_east_traffic_follows_business_hours_in_utc_minus_5(us_east) -> None:
    qwen = next(s for s in us_east.counters if s.name == "vllm:prompt_tokens_total" and s.labels["model_name"] == "qwen2-7b")
    rate = np.diff(qwen.values)
    local = (_hours(us_east)[1:] + 7) % 24  # starts at 12:00 UTC = 07:00 local
    assert 9.5 < local[np.argmax(rate)] < 16
    assert rate[(local >= 0) & (local < 6)].size == 0 or rate[(local > 22) | (local < 6)].max() < 0.3 * rate.max()


def test_eu_rough_gpu_off_the_bus_loses_every_series_then_comes_back_clean(eu_rough) -> None:
    h = _hours(eu_rough)
    xid_h = _incident_h(eu_rough, "XID 79")
    (xid,) = [s for s in _series(eu_rough, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-2", gpu="1") if "pod" not in s.labels]
    assert np.all(xid.values[(h >= xid_h) & (h < xid_h + 2 / 60)] == 79)
    gone = (h >= xid_h + 2 / 60) & (h < xid_h + 80 / 60)
    assert np.isnan(xid.values[gone]).all()
    assert np.all(xid.values[h >= xid_h + 80 / 60] == 0)  # the reloaded driver has no XID


def test_eu_rough_counters_reset_in_place_and_scrapes_go_missing(eu_rough) -> None:
    h = _hours(eu_rough)
    llama = [s for s in _series(eu_rough, "vllm:request_success_total", model_name="llama-3-8b", finished_reason="stop")
             if np.isfinite(s.values[0]) and np.isfinite(s.values[-1])]
    assert len(llama) == 1  # the replica that restarted in place keeps its labels
    v = llama[0].values[np.isfinite(llama[0].values)]
    assert (np.diff(v) < 0).sum() == 1
    oom_h = _incident_h(eu_rough, "memory leak")
    leak = next(i for i in eu_rough.incidents if i["name"].startswith("memory leak"))["entity"].split("/")[-1]
    (ws,) = _series(eu_rough, "container_memory_working_set_bytes", pod=leak, container="api")
    before = (h > oom_h - 1.5) & (h < oom_h)
    assert 5 <= np.isnan(ws.values[before]).sum() <= 12
    (info,) = _series(eu_rough, "kube_pod_info", pod=leak)
    assert np.isnan(info.values).sum() == 3  # kube-state-metrics restarted once


def test_eu_rough_protected_crashloop_and_long_job(eu_rough) -> None:
    h = _hours(eu_rough)
    proxy = [s for s in _series(eu_rough, "kube_pod_container_status_waiting_reason", namespace="kube-system")]
    assert len(proxy) == 1 and proxy[0].labels["pod"].startswith("kube-proxy-")
    assert np.nansum(proxy[0].values) == pytest.approx(44, abs=2)  # 45 min of CrashLoopBackOff
    owners = {s.labels["pod"]: s.labels["created_by_kind"] for s in _series(eu_rough, "kube_pod_info")}
    assert owners[proxy[0].labels["pod"]] == "DaemonSet"
    (job,) = [s for s in _series(eu_rough, "container_memory_working_set_bytes", namespace="training") if s.labels["container"]]
    alive = np.isfinite(job.values)
    assert 9.9 < h[alive][-1] - h[alive][0] <= 10
    (limit,) = _series(eu_rough, "kube_pod_container_resource_limits", namespace="training")
    assert 0.88 < np.nanmax(job.values / limit.values) < 0.95
    assert owners[job.labels["pod"]] == "Job"
    # Its Job has no ttlSecondsAfterFinished: after the run its pod stays listed, Succeeded, with no
    # container running (a completed fine-tune is not a pod that vanished).
    (info,) = _series(eu_rough, "kube_pod_info", namespace="training")
    done = np.isfinite(info.values) & (h > h[alive][-1])
    assert done.sum() > 60  # listed to the end of the history but for kube-state-metrics' own gaps
    (succeeded,) = _series(eu_rough, "kube_pod_status_phase", namespace="training", phase="Succeeded")
    assert np.all(succeeded.values[done] == 1) and not np.any(succeeded.values[alive] == 1)


def test_ap_autoscale_pool_nodes_join_and_leave_as_the_cluster_autoscaler_does() -> None:
    hist = generate(HistorySpec(hours=24, filler_pods=5, profile=AP_AUTOSCALE))
    h = _hours(hist)
    pool = sorted({s.labels["node"] for s in _series(hist, "kube_node_spec_unschedulable") if s.labels["node"].startswith("gpu-pool-")})
    assert len(pool) >= 2  # a new node name for each scale-up
    for node in pool:
        (ready,) = _series(hist, "kube_node_status_condition", node=node, condition="Ready", status="true")
        (unknown,) = _series(hist, "kube_node_status_condition", node=node, condition="Ready", status="unknown")
        (cordon,) = _series(hist, "kube_node_spec_unschedulable", node=node)
        (tbd,) = _series(hist, "kube_node_spec_taint", node=node, key="ToBeDeletedByClusterAutoscaler")
        (gpu_taint,) = _series(hist, "kube_node_spec_taint", node=node, key="nvidia.com/gpu")
        util = _series(hist, "DCGM_FI_DEV_GPU_UTIL", Hostname=node, gpu="1")[0]
        exists = np.isfinite(ready.values)
        first, deleted = h[exists][0], h[exists][-1] + 1 / 60
        assert 0 < first and deleted < h[-1]  # the Node object exists only in between
        assert np.nansum(cordon.values) == 0  # the autoscaler taints, it does not cordon
        tainted = h[np.isfinite(tbd.values)]
        gone = h[exists & np.isnan(util.values) & (h > first + 0.1)]
        assert tainted[0] < gone[0] < deleted  # tainted, then the instance goes, then the Node
        assert unknown.values[h == h[exists][-1]][0] == 1  # the kubelet stopped posting before deletion
        assert ready.values[h == gone[0]][0] == 1  # the exporters vanished while the Node still said Ready
        assert np.isfinite(gpu_taint.values[exists]).all()
    owners = {s.labels["pod"]: s.labels["node"] for s in _series(hist, "kube_pod_info", namespace="inference")
              if "gemma" in s.labels["pod"]}
    assert set(pool) <= set(owners.values()) and "gpu-node-0" in owners.values()
    assert "node/gpu-pool-*" in hist.decoys
    # dcgm-exporter 3.3.6+: the XID code is in err_code too, so the XID 79 starts a new series and
    # the err_code="0" one stops; each holds one value.
    xid = {s.labels["err_code"]: s for s in _series(hist, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-2", gpu="1")}
    assert set(xid) == {"0", "79"} and xid["79"].labels["err_msg"] == "GPU has fallen off the bus"
    healthy, failed = np.isfinite(xid["0"].values), np.isfinite(xid["79"].values)
    assert not (healthy & failed).any() and h[healthy][-1] < h[failed][0] and failed[-1]
    assert set(xid["0"].values[healthy]) == {0.0} and set(xid["79"].values[failed]) == {79.0}
    # The pool's pods write their own phases (Pending, then Running): one series per pod and phase.
    phases = [(s.labels["pod"], s.labels["phase"]) for s in _series(hist, "kube_pod_status_phase", namespace="inference")]
    assert len(phases) == len(set(phases)) and {p for _, p in phases} == {"Pending", "Running"}


def test_eu_rough_inodes_run_out_with_space_to_spare(eu_rough) -> None:
    """A spool of small files exhausts gpu-node-3's inodes while its disk is 41 % used: DiskPressure
    at 95 % of the inodes (nodefs.inodesFree < 5%), the kubelet evicts the pod 5 min later."""
    h = _hours(eu_rough)
    (files,) = _series(eu_rough, "node_filesystem_files", instance="gpu-node-3", mountpoint="/")
    (free,) = _series(eu_rough, "node_filesystem_files_free", instance="gpu-node-3", mountpoint="/")
    used = 1 - free.values / files.values
    fail = 4.0 + 0.5 / 0.12
    assert used[h < 4.0].max() < 0.46 and used[(h >= fail) & (h < fail + 5 / 60)].min() >= 0.95
    assert used[h >= fail + 5 / 60].max() < 0.46  # the eviction freed them
    (size,) = _series(eu_rough, "node_filesystem_size_bytes", instance="gpu-node-3", mountpoint="/")
    (avail,) = _series(eu_rough, "node_filesystem_avail_bytes", instance="gpu-node-3", mountpoint="/")
    assert (1 - avail.values / size.values).max() < 0.5
    (pressure,) = _series(eu_rough, "kube_node_status_condition", node="gpu-node-3", condition="DiskPressure", status="true")
    assert h[pressure.values == 1][0] == pytest.approx(fail, abs=1 / 60)
    (spool,) = {s.labels["pod"] for s in _series(eu_rough, "kube_pod_info", namespace="logging")}
    incident = next(i for i in eu_rough.incidents if i["name"].startswith("inode exhaustion"))
    assert incident["entity"] == "node/gpu-node-3" and incident["expected_action"] == "advise" and spool
    # Every other node reports its inodes too, steady.
    assert len(_series(eu_rough, "node_filesystem_files")) == 2 * (3 + 4)


def test_us_east_triton_surge_alert_is_the_exported_mean_latency_held_5_min(us_east) -> None:
    # Triton exports cumulative counters, no latency gauge: a static alert can only read the mean
    # over a rate window, sum(rate(nv_inference_request_duration_us[5m])) / sum(rate(
    # nv_inference_request_success[5m])) (the catalog's serving_request_latency_triton), held 5 min,
    # as the llama surge's alert reads vLLM's buckets. The latency the generator drew is ahead of it.
    h = _hours(us_east)
    w = 4  # samples in (t - 5m, t] at one a minute: the first and the last (as _histogram_p99)

    def summed(name: str) -> np.ndarray:
        total = np.zeros(h.shape[0])
        for s in _series(us_east, name, model="resnet50"):
            d = np.full(h.shape[0], np.nan)
            d[w:] = s.values[w:] - s.values[:-w]
            total += d
        return total

    with np.errstate(invalid="ignore", divide="ignore"):
        mean = summed("nv_inference_request_duration_us") / summed("nv_inference_request_success") / 1e6
    over = np.nan_to_num(mean) > 0.1
    first = int(np.flatnonzero(over)[0])
    held = next(i for i in np.flatnonzero(over) if over[i : i + 6].all())
    inc = next(i for i in us_east.incidents if i["name"] == "traffic surge on resnet50 (Triton)")
    assert (inc["failure_at"] - us_east.spec.start).total_seconds() == pytest.approx(h[first] * 3600)
    assert (inc["static_alert_at"] - us_east.spec.start).total_seconds() == pytest.approx((h[held] + 5 / 60) * 3600)


def test_eu_rough_dcgm_exporter_writes_impossible_values_as_it_does(eu_rough, tmp_path: Path) -> None:
    """NVIDIA/DCGM#199's UINT32_MAX and 150k utilisations, and DCGM's blank sentinels (dcgm_fields.h)
    on a healthy node, written to the digit: rounded to six, 2147483632 is no longer DCGM's blank."""
    h = _hours(eu_rough)
    uint32_max, int32_blank, int64_not_supported, fp64_blank = 4294967295, 0x7FFFFFF0, 0x7FFFFFFFFFFFFFF2, 2.0**47
    util = [s for s in _series(eu_rough, "DCGM_FI_DEV_GPU_UTIL", Hostname="gpu-node-0", gpu="1")]
    values = np.concatenate([s.values for s in util])
    assert (values == uint32_max).sum() == 3 and ((values > 1000) & (values < 200_000)).sum() == 1
    assert np.nanmax(values[values < 1000]) <= 100  # the rest of the series is real
    power = np.concatenate([s.values for s in _series(eu_rough, "DCGM_FI_DEV_POWER_USAGE", Hostname="gpu-node-0", gpu="3")])
    assert (power == fp64_blank).sum() == 18
    fb_used = np.concatenate([s.values for s in _series(eu_rough, "DCGM_FI_DEV_FB_USED", Hostname="gpu-node-0", gpu="1")])
    assert (fb_used == int32_blank).sum() == 10
    for name in ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"):
        blanks = _series(eu_rough, name, Hostname="gpu-node-0")
        assert {s.labels["gpu"] for s in blanks} == {"0", "1", "2", "3"}
        assert all(np.all(s.values[np.isfinite(s.values)] == float(int64_not_supported)) for s in blanks)
        # The other nodes' GPUs support the field: 0, and absent with the GPU off the bus.
        others = [s for s in _series(eu_rough, name) if s.labels["Hostname"] != "gpu-node-0"]
        assert others and all(np.all(s.values[np.isfinite(s.values)] == 0) for s in others)
    xid_h = _incident_h(eu_rough, "XID 79")
    off = (h > xid_h + 0.1) & (h < xid_h + 0.5)
    assert all(np.isnan(s.values[off]).all() for s in _series(eu_rough, "DCGM_FI_DEV_ROW_REMAP_FAILURE",
                                                             Hostname="gpu-node-2", gpu="1"))
    text = eu_rough.write_openmetrics(tmp_path / "h.om").read_text()
    written = {float(line.rsplit(" ", 2)[1]) for line in text.splitlines()
               if line.startswith(("DCGM_FI_DEV_GPU_UTIL{", "DCGM_FI_DEV_FB_USED{", "DCGM_FI_DEV_POWER_USAGE{",
                                   "DCGM_FI_DEV_ROW_REMAP_FAILURE{")) and 'Hostname="gpu-node-0"' in line}
    assert {float(uint32_max), float(int32_blank), float(int64_not_supported), fp64_blank} <= written
