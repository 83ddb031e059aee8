"""The default signal catalog: named signals with their PromQL and how labels map to entities.

Every query aggregates to the labels that identify its entity, so one series is one entity (or
one container/GPU of it). Users override any field per signal in the config, or disable a signal.
Metric names follow kube-state-metrics, node-exporter, cAdvisor, dcgm-exporter and vLLM (V1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiops.config.kubelet import KubeletConfig, Threshold
from aiops.config.signals import (
    AUTOSCALER_REMOVAL_TAINT,
    DCGM_INT32_BLANKS,
    DCGM_MIG_INSTANCE,
    FailurePointConfig,
    SignalConfig,
)
from aiops.model import EntityKind

_CONTAINER = 'container!="",container!="POD"'
_FS_SELECTOR = 'fstype!~"tmpfs|overlay|squashfs"'
# The image filesystem, where it is a separate one (containerd's or docker's root on its own disk).
_IMAGEFS_MOUNT = {"mountpoint": "/var/lib/(containerd|docker)(/.*)?"}


def _gpu(**fields: Any) -> SignalConfig:
    """A dcgm-exporter signal: the UUID names the GPU; Hostname (its node), index and model ride along."""
    return SignalConfig(
        entity=EntityKind.GPU, entity_labels={"name": "UUID"}, attribute_labels=["Hostname", "gpu", "modelName"], **fields
    )


def _no_blank(metric: str) -> str:
    """A dcgm-exporter field in MiB without DCGM's blank sentinels (aiops/config/signals.py), for a
    signal computed from it: a ratio hides them from the collector's range (2^63 / (2^63 + free)
    is 1.0, a full framebuffer). Every sentinel is at or above the int32 blank, 2 PiB in MiB."""
    return f"({metric} < {int(DCGM_INT32_BLANKS[0])})"


# node-exporter's ``instance`` is the address it was scraped at (10.0.3.7:9100 under
# kube-prometheus-stack's defaults), not the Kubernetes node: a finding on it would meet none of the
# node's pods or GPUs, and a cordon of it would fail. node_uname_info's ``nodename`` is the host
# name, which is the node's name unless the kubelet runs with --hostname-override (then relabel, or
# override the signal). Where node_uname_info is missing (the uname collector off), the host part of
# ``instance`` stands in: right where relabelling already made the instance the node's name.
_PORT = "(?::[0-9]+)?"


def _braces(*matchers: str) -> str:
    """A selector's matchers, or nothing when there are none."""
    kept = [m for m in matchers if m]
    return "{" + ", ".join(kept) + "}" if kept else ""


def by_node_name(
    per_instance: Callable[[str], str], by: str = "", *, uname: str = "", node: str = "", scope: str = ""
) -> str:
    """A node-exporter expression renamed from its scrape address to its node, as ``nodename``.

    ``per_instance(matchers)`` is the expression aggregated by ``instance`` (and ``scope`` and
    ``by``), with ``matchers`` ("" or one ``instance`` matcher) inside each of its selectors.
    ``uname`` adds matchers to node_uname_info; ``node``, a regex of node names, keeps the fallback
    to those (the dashboards' node variable). ``scope`` names the label within which a scrape
    address is unique (``cluster`` where one Prometheus sees several clusters: pod-network
    addresses repeat across them). One series per node (and ``scope`` and ``by``), however many
    scrape jobs.
    """
    host = f'instance=~"({node}){_PORT}"' if node else ""
    address = ", ".join(["instance", *([scope] if scope else [])])
    keep = ", ".join(["nodename", *([scope] if scope else []), *([by] if by else [])])
    return (
        f"max by ({keep}) ("
        f"({per_instance('')}) * on ({address}) group_left (nodename) topk by ({address}) (1, node_uname_info{_braces(uname)})"
        f' or on ({address}) label_replace({per_instance(host)}, "nodename", "$1", "instance", "(.+?){_PORT}"))'
    )


def _filesystem(free: str, total: str, failure_points: list[FailurePointConfig], description: str) -> SignalConfig:
    """A node-exporter filesystem resource in use, per node and mountpoint: 1 - ``free`` / ``total``."""

    def per_instance(m: str) -> str:
        sel = _braces(_FS_SELECTOR, m)
        return f"1 - max by (instance, mountpoint) ({free}{sel}) / max by (instance, mountpoint) ({total}{sel} > 0)"

    return SignalConfig(
        query=by_node_name(per_instance, "mountpoint"),
        entity=EntityKind.NODE,
        entity_labels={"name": "nodename"},
        attribute_labels=["mountpoint"],
        unit="ratio",
        capacity=1.0,
        failure_points=failure_points,
        bad_direction="up",
        description=description,
    )


def _model(**fields: Any) -> SignalConfig:
    """A vLLM-style per-model signal: ``model_name`` names the model."""
    return SignalConfig(entity=EntityKind.MODEL, entity_labels={"name": "model_name", "namespace": "namespace"}, **fields)


def _pod(**fields: Any) -> SignalConfig:
    return SignalConfig(entity=EntityKind.POD, entity_labels={"name": "pod", "namespace": "namespace"}, **fields)


def _usable(t: Threshold) -> float:
    """The share of a resource in use where the kubelet evicts (``nodefs.available<10%``: 0.9)."""
    assert t.fraction is not None  # a percentage (filesystems take nothing else: KubeletConfig)
    return round(1.0 - t.fraction, 10)


def _eviction_name(pressure: str, signal: str, thresholds: tuple[Threshold, ...]) -> str:
    if len(thresholds) == 1:
        [t] = thresholds
        return f"{pressure} (kubelet {'soft ' if t.grace else ''}eviction: {signal} < {t.describe()})"
    soft, hard = thresholds  # KubeletConfig.evicts_first's order
    return f"{pressure} (kubelet eviction: {signal} < {soft.describe()} (soft) or < {hard.describe()})"


def _eviction(signal: str, kubelet: KubeletConfig, pressure: str, **match: str) -> FailurePointConfig:
    [t] = kubelet.evicts_first(signal)  # filesystems: percentages only, so one always comes first
    return FailurePointConfig(value=_usable(t), name=_eviction_name(pressure, signal, (t,)), match=match)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def eviction_signals(kubelet: KubeletConfig) -> dict[str, SignalConfig]:
    """The node signals whose failure points are the kubelet's eviction thresholds (the first of the
    hard and soft ones): when one is crossed the node reports MemoryPressure/DiskPressure and evicts
    pods, before it is full."""
    memory = kubelet.evicts_first("memory.available")
    [nodefs] = kubelet.evicts_first("nodefs.available")
    [imagefs] = kubelet.evicts_first("imagefs.available")
    [inodes] = kubelet.evicts_first("nodefs.inodesFree")

    def memory_query(m: str) -> str:
        total = f"max by (instance) (node_memory_MemTotal_bytes{_braces(m)})"
        if len(memory) == 2:  # a share and an amount: whichever reserves more on this node
            share = next(t.fraction for t in memory if t.fraction is not None)
            amount = next(t.bytes for t in memory if t.bytes is not None)
            allowed = f"({total} - clamp_min({total} * {share}, {_number(amount)}))"
        elif memory[0].bytes is not None:
            allowed = f"({total} - {_number(memory[0].bytes)})"
        else:
            allowed = f"({total} * {_usable(memory[0])})"
        return f"({total} - max by (instance) (node_memory_MemAvailable_bytes{_braces(m)})) / {allowed}"

    reserve = " or ".join(t.describe() for t in memory)
    return {
        # Measured against what the kubelet lets pods use: 1.0 is memory.available at the threshold,
        # where it evicts. A ratio of the total would put that point at a different value on every node size.
        "node_memory_usage_ratio": SignalConfig(
            query=by_node_name(memory_query),
            entity=EntityKind.NODE,
            entity_labels={"name": "nodename"},
            unit="ratio",
            capacity=1.0,
            failure_points=[FailurePointConfig(
                value=1.0, name=_eviction_name("MemoryPressure", "memory.available", memory))],
            bad_direction="up",
            description=f"node memory in use / (total - the kubelet's {reserve} eviction reserve); eviction at 1.0",
        ),
        "node_filesystem_usage_ratio": _filesystem(
            "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
            [_eviction("imagefs.available", kubelet, "DiskPressure", **_IMAGEFS_MOUNT),
             _eviction("nodefs.available", kubelet, "DiskPressure")],
            f"filesystem space in use / size (DiskPressure at {_usable(nodefs):.0%}, "
            f"{_usable(imagefs):.0%} on a separate image filesystem)",
        ),
        # Many small files (a log spammer, an unpacked dataset) exhaust the inodes with space to spare.
        "node_filesystem_inodes_usage_ratio": _filesystem(
            "node_filesystem_files_free", "node_filesystem_files", [_eviction("nodefs.inodesFree", kubelet, "DiskPressure")],
            f"filesystem inodes in use / inodes (DiskPressure at {_usable(inodes):.0%}: "
            f"nodefs.inodesFree < {inodes.describe()})",
        ),
    }


DEFAULT_SIGNALS: dict[str, SignalConfig] = {
    # --- pods and containers -------------------------------------------------------------
    "pod_memory_usage_ratio": _pod(
        query=(
            f"max by (namespace, pod, container) (container_memory_working_set_bytes{{{_CONTAINER}}})"
            " / on (namespace, pod, container)"
            ' max by (namespace, pod, container) (kube_pod_container_resource_limits{resource="memory"} > 0)'
        ),
        attribute_labels=["container"],
        unit="ratio",
        capacity=1.0,
        failure_points=[FailurePointConfig(value=1.0, name="OOMKill (memory limit)")],
        bad_direction="up",
        description="container memory working set / memory limit (OOMKill at 1.0)",
    ),
    "pod_restarts": _pod(
        query="sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[15m]))",
        unit="restarts/15m",
        bad_direction="up",
        description="container restarts in the last 15 minutes",
    ),
    "pod_oom_killed": _pod(
        query='max by (namespace, pod) (kube_pod_container_status_last_terminated_reason{reason="OOMKilled"})',
        unit="bool",
        bad_direction="up",
        description="the last termination of a container was an OOMKill",
        sparse=True,
    ),
    "pod_crashlooping": _pod(
        query='max by (namespace, pod) (kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"})',
        unit="bool",
        bad_direction="up",
        description="a container is in CrashLoopBackOff",
        sparse=True,
    ),
    "pod_info": _pod(
        query="max by (namespace, pod, node, created_by_kind, created_by_name) (kube_pod_info)",
        attribute_labels=["node", "created_by_kind", "created_by_name"],
        unit="bool",
        bad_direction="both",
        description="topology and owner: which node each pod runs on, and what created it (Job, ReplicaSet, <none>)",
    ),
    # A pod on its way up: Pending (unscheduled, or pulling), or Running but not yet Ready (a model
    # loading). Policy reads it as a scale-up already in flight for the pod's owner.
    "pod_starting": _pod(
        query=(
            'max by (namespace, pod, created_by_name) ('
            '((kube_pod_status_phase{phase="Pending"} == 1) or (kube_pod_status_ready{condition="false"} == 1))'
            ' * on (namespace, pod) group_left (created_by_name)'
            ' max by (namespace, pod, created_by_name) (kube_pod_info))'
        ),
        attribute_labels=["created_by_name"],
        unit="bool",
        bad_direction="up",
        description="the pod is Pending or not yet Ready (1), with the controller that created it",
        sparse=True,
    ),
    # A pod that finished: Succeeded (a completed Job's pod, listed until its Job's TTL or for ever)
    # or Failed. It holds nothing on its node and an evacuation has nothing to move (kubectl drain's
    # eviction of it is a no-op), so it does not keep a node "to be drained". Only the finished
    # phases are asked for: a pod without a series here (an older kube-state-metrics, a series
    # gone) is taken as running, the safe side. kube-state-metrics exports every phase, 1 for the
    # current one; uid is dropped (a new pod of the same name is another uid).
    "pod_finished": _pod(
        query='max by (namespace, pod, phase) (kube_pod_status_phase{phase=~"Succeeded|Failed"} == 1)',
        attribute_labels=["phase"],
        unit="bool",
        bad_direction="up",
        description="the pod finished: its phase is Succeeded or Failed (1), with the phase",
        sparse=True,
    ),
    # --- nodes -------------------------------------------------------------------------
    "node_ready": SignalConfig(
        query='max by (node) (kube_node_status_condition{condition="Ready",status="true"})',
        entity=EntityKind.NODE,
        entity_labels={"name": "node"},
        unit="bool",
        bad_direction="down",
        description="node Ready condition (1 = ready)",
    ),
    # Out of service: cordoned (spec.unschedulable), or being removed by the cluster-autoscaler,
    # which taints the node ToBeDeletedByClusterAutoscaler instead of cordoning it, evicts its pods
    # and deletes it (its NotReady/Unknown on the way out, and its exporters vanishing, are the
    # removal, not a failure). DeletionCandidateOfClusterAutoscaler is not read: it is a soft
    # PreferNoSchedule mark on an unneeded node that still serves and may be kept.
    "node_unschedulable": SignalConfig(
        # The taint's series keeps its key (the cordon's has none): policy tells the two apart.
        query=('max by (node, key) (kube_node_spec_unschedulable'
               f' or kube_node_spec_taint{{key="{AUTOSCALER_REMOVAL_TAINT}"}})'),
        entity=EntityKind.NODE,
        entity_labels={"name": "node"},
        attribute_labels=["key"],
        unit="bool",
        bad_direction="up",
        description="node cordoned, or tainted ToBeDeletedByClusterAutoscaler (1): an evacuation or a removal "
                    "is under way or done, by aiops, a person or the cluster-autoscaler",
    ),
    **eviction_signals(KubeletConfig()),
    "node_cpu_utilization": SignalConfig(
        query=by_node_name(
            lambda m: "1 - avg by (instance) (rate(node_cpu_seconds_total" + _braces('mode="idle"', m) + "[5m]))"
        ),
        entity=EntityKind.NODE,
        entity_labels={"name": "nodename"},
        unit="ratio",
        bad_direction="up",
        description="share of CPU time not idle",
    ),
    # --- GPUs (dcgm-exporter) ------------------------------------------------------------
    # Whole GPUs only: a MIG instance's 0 is "not measured", not idle (DCGM_MIG_INSTANCE).
    "gpu_utilization": _gpu(
        query=f'max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_GPU_UTIL{{{DCGM_MIG_INSTANCE}=""}})',
        unit="percent",
        bad_direction="both",
        description="GPU utilisation",
    ),
    # Used / total per series, then the fullest per GPU: in MIG mode each GPU instance (GPU_I_ID,
    # same UUID) reports its own framebuffer, and an instance that fills up runs out of memory
    # whatever the others hold. A whole GPU's series (one per pod attached) carry the same values.
    # A field DCGM has no value for (a blank) leaves the GPU without a point, not at 1.0.
    "gpu_memory_usage_ratio": _gpu(
        query=(
            "max by (Hostname, gpu, UUID, modelName)"
            f" ({_no_blank('DCGM_FI_DEV_FB_USED')}"
            f" / ({_no_blank('DCGM_FI_DEV_FB_USED')} + {_no_blank('DCGM_FI_DEV_FB_FREE')}))"
        ),
        unit="ratio",
        capacity=1.0,
        failure_points=[FailurePointConfig(value=1.0, name="CUDA out of memory (framebuffer full)")],
        bad_direction="up",
        description="GPU framebuffer used / total",
    ),
    "gpu_temperature": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_GPU_TEMP)",
        unit="celsius",
        bad_direction="up",
        description="GPU die temperature",
    ),
    "gpu_power": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_POWER_USAGE)",
        unit="watts",
        bad_direction="both",
        description="GPU power draw",
    ),
    # dcgm-exporter's pod mapping: one series per GPU and pod attached (the per-GPU signals above
    # and below drop these labels, so that a GPU's history does not split when a pod attaches).
    # Read by gpu_health to name the pod an XID 94 hit; exported_* are the pod labels when the
    # scrape does not honour the exporter's own (pod/namespace then name the exporter's pod). Read
    # off the framebuffer, which dcgm-exporter reports in MIG mode too (per GPU instance, with the
    # pod attached to it); DCGM_FI_DEV_GPU_UTIL is not reported for a MIG GPU, and lost its pods.
    "gpu_pods": _gpu(
        query=(
            "group by (Hostname, gpu, UUID, modelName, namespace, pod, exported_namespace, exported_pod)"
            ' (DCGM_FI_DEV_FB_USED{pod!=""})'
        ),
        unit="bool",
        description="which pod is on each GPU (dcgm-exporter's pod mapping), for the pod an XID 94 hit",
        sparse=True,
    ),
    "gpu_xid": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_XID_ERRORS)",
        unit="xid",
        bad_direction="up",
        description="code of the last XID error (a gauge, not a count)",
    ),
    "gpu_uncorrectable_remapped_rows": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS)",
        unit="rows",
        bad_direction="up",
        description="rows remapped after uncorrectable ECC errors (pending a GPU reset)",
    ),
    "gpu_row_remap_failure": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_ROW_REMAP_FAILURE)",
        unit="bool",
        bad_direction="up",
        description="row remapping failed (RMA candidate)",
    ),
    "gpu_clock_event_reasons": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (DCGM_FI_DEV_CLOCKS_EVENT_REASONS)",
        unit="bitmask",
        bad_direction="up",
        description="why the GPU clocks are held down (thermal/power throttling bits); needs the field enabled",
    ),
    "gpu_ecc_dbe_rate": _gpu(
        query="max by (Hostname, gpu, UUID, modelName) (increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[10m]))",
        unit="errors/10m",
        bad_direction="up",
        description="double-bit ECC errors in 10 minutes (needs the ECC counters enabled in dcgm-exporter)",
    ),
    # --- inference (vLLM V1) ---------------------------------------------------------------
    # Serving latency objectives, one signal per runtime; the objective lives in the config
    # (signals.<name>.objective). For an LLM they are time to first token and inter-token
    # latency; end-to-end latency grows with the output length and is context, never an SLO.
    # Defaults are the server-scenario limits of MLPerf Inference for an 8B chat model (TTFT p99
    # 2 s, per-token p99 100 ms); a classic model server keeps the 100 ms request objective.
    # KServe runs these same runtimes (vLLM, Triton, TorchServe): their metrics are covered here.
    "serving_ttft_p99": _model(
        query=(
            "histogram_quantile(0.99, sum by (namespace, model_name, le)"
            " (rate(vllm:time_to_first_token_seconds_bucket[5m])))"
        ),
        unit="seconds",
        objective=2.0,
        bad_direction="up",
        description="p99 time to first token (vLLM); the chat latency objective",
    ),
    "serving_itl_p99": _model(
        # vLLM renamed time_per_output_token to inter_token_latency (V1); either is read.
        query=(
            "histogram_quantile(0.99, sum by (namespace, model_name, le)"
            " (rate(vllm:inter_token_latency_seconds_bucket[5m])"
            " or rate(vllm:time_per_output_token_seconds_bucket[5m])))"
        ),
        unit="seconds",
        objective=0.1,
        bad_direction="up",
        description="p99 inter-token latency (vLLM); the streaming latency objective",
    ),
    "serving_request_latency_triton": SignalConfig(
        # Triton exports cumulative microsecond counters, no histogram by default: the mean.
        query=(
            "sum by (namespace, model) (rate(nv_inference_request_duration_us[5m]))"
            " / sum by (namespace, model) (rate(nv_inference_request_success[5m]) > 0) / 1e6"
        ),
        entity=EntityKind.MODEL,
        entity_labels={"name": "model", "namespace": "namespace"},
        unit="seconds",
        objective=0.1,
        bad_direction="up",
        description="mean request latency of a Triton model (request duration / successful requests)",
    ),
    "serving_request_latency_torchserve": _model(
        query=(
            "sum by (namespace, model_name) (rate(ts_inference_latency_microseconds[5m]))"
            " / sum by (namespace, model_name) (rate(ts_inference_requests_total[5m]) > 0) / 1e6"
        ),
        unit="seconds",
        objective=0.1,
        bad_direction="up",
        description="mean inference latency of a TorchServe model",
    ),
    # Demand per runtime: what the headroom forecast reads (detectors/headroom.py). Requests
    # served per second; a surge shows here first, half an hour before the queue and the latency.
    "inference_request_rate_triton": SignalConfig(
        query="sum by (namespace, model) (rate(nv_inference_request_success[5m]))",
        entity=EntityKind.MODEL,
        entity_labels={"name": "model", "namespace": "namespace"},
        unit="requests/s",
        bad_direction="up",
        description="successful inference requests per second of a Triton model (all its replicas)",
    ),
    "inference_request_rate_torchserve": _model(
        query="sum by (namespace, model_name) (rate(ts_inference_requests_total[5m]))",
        unit="requests/s",
        bad_direction="up",
        description="inference requests per second of a TorchServe model (all its replicas)",
    ),
    "inference_latency_p99": _model(
        query=(
            "histogram_quantile(0.99, sum by (namespace, model_name, le)"
            " (rate(vllm:e2e_request_latency_seconds_bucket[5m])))"
        ),
        unit="seconds",
        bad_direction="up",
        description="p99 end-to-end request latency (context: grows with the output length; not an objective)",
    ),
    "inference_queue_length": _model(
        query="sum by (namespace, model_name) (vllm:num_requests_waiting)",
        unit="requests",
        bad_direction="up",
        description="requests waiting for a slot",
    ),
    "inference_kv_cache_usage": _pod(
        # vLLM V1 renamed gpu_cache_usage_perc to kv_cache_usage_perc; either is read.
        query="max by (namespace, pod, model_name) (vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)",
        attribute_labels=["model_name"],
        unit="ratio",
        capacity=1.0,
        failure_points=[FailurePointConfig(value=0.99, name="preemptions (KV cache exhausted)")],
        bad_direction="up",
        description="KV-cache blocks in use (preemptions start near 1.0)",
    ),
    "inference_request_rate": _model(
        query="sum by (namespace, model_name) (rate(vllm:request_success_total[5m]))",
        unit="requests/s",
        bad_direction="both",
        description="successful requests per second",
    ),
    # --- model quality and business KPI ---------------------------------------------------
    "model_accuracy": SignalConfig(
        query="avg by (namespace, model) (model_accuracy)",
        entity=EntityKind.MODEL,
        entity_labels={"name": "model", "namespace": "namespace"},
        unit="ratio",
        bad_direction="down",
        description="online accuracy (or any quality gauge in [0, 1]) exported by the serving stack",
    ),
    "model_replica_accuracy": _pod(
        query='avg by (namespace, model, pod) (model_accuracy{pod!=""})',
        attribute_labels=["model"],
        unit="ratio",
        bad_direction="down",
        description="accuracy per serving replica, when the gauge carries a pod label",
    ),
    "business_conversion_rate": SignalConfig(
        query="avg by (namespace, model) (business_conversion_rate)",
        entity=EntityKind.MODEL,
        entity_labels={"name": "model", "namespace": "namespace"},
        unit="ratio",
        bad_direction="down",
        description="business KPI that the model drives (conversion, CTR)",
    ),
}
