"""A realistic GPU inference cluster's history, for ``aiops replay`` scenario tests and the bench.

Where :mod:`aiops.demo.synth` anchors clean faults to the end of the data, this generator
writes what exporters really expose over a day or two, with the quirks a default must survive:

- kube-state-metrics v2: ``kube_pod_info{created_by_kind,created_by_name}`` and ``kube_pod_owner``
  (ReplicaSet, Job, DaemonSet, ``<none>`` for a bare pod); ``kube_node_status_condition``
  with ``status`` true/false/unknown; ``kube_node_spec_unschedulable``; restarts counters;
  ``waiting_reason`` and ``last_terminated_reason`` present only while they hold;
- cAdvisor: ``container_memory_working_set_bytes`` per container plus the pod cgroup
  (``container=""``); node-exporter with ``instance`` = node name;
- dcgm-exporter: ``DCGM_FI_DEV_XID_ERRORS`` is sticky (holds the last XID until the exporter
  restarts); ``pod``/``namespace``/``container`` labels appear when a pod attaches to a GPU (a
  new series); every field of a GPU that fell off the bus (XID 79) vanishes;
- vLLM V1: TTFT, inter-token and end-to-end histograms with vLLM's own buckets; series absent
  while a server restarts, counters that start from zero again under a new pod name;
- a CronJob whose pods (new names each night) reach 92 % of their memory limit near their end,
  a rolling deployment, routine restarts in kube-system, a bare pod, diurnal traffic in the
  cluster's local time (UTC+8).

Incidents (memory leak → OOMKill, disk fill → DiskPressure at 90 % used, XID 79, traffic surge,
model accuracy drift) are placed at fixed offsets from the start and returned with the time a
static alert would fire, for ``aiops replay --incidents``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

__all__ = ["ClusterHistory", "HistorySpec", "generate"]

GIB, MIB = 1024**3, 1024**2
LOCAL_UTC_OFFSET_H = 8  # the cluster's local time (Asia/Shanghai): traffic follows it
# vLLM V1's own bucket boundaries (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)
GPU_MODEL = "NVIDIA H100 80GB HBM3"
FB_MIB = 81559.0


@dataclass(frozen=True)
class HistorySpec:
    start: datetime = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 20:00 local
    hours: float = 12.0
    step_s: int = 60
    # Plain ReplicaSet pods in namespace "shop" (6 series each) and CPU nodes: the bulk of a
    # 1,000-series cluster is healthy workload.
    filler_pods: int = 40
    cpu_nodes: int = 3
    seed: int = 7
    # Hours before the first incident's build-up: a day lets daily baselines form first.
    incident_offset_h: float = 0.0


@dataclass
class _Series:
    name: str
    labels: dict[str, str]
    values: np.ndarray  # NaN: no sample (absent)


@dataclass
class _Histogram:
    name: str
    labels: dict[str, str]
    buckets: tuple[float, ...]
    counts: np.ndarray  # (len(buckets) + 1, T) cumulative counts incl. +Inf, NaN: absent
    sums: np.ndarray


@dataclass
class ClusterHistory:
    spec: HistorySpec
    t: np.ndarray
    gauges: list[_Series] = field(default_factory=list)
    counters: list[_Series] = field(default_factory=list)
    histograms: list[_Histogram] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    # Entities on which no action is wanted (batch, rollout, kube-system, bare pod).
    decoys: list[str] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(float(self.t[-1]), UTC)

    @property
    def series_count(self) -> int:
        return len(self.gauges) + len(self.counters) + sum(len(h.buckets) + 3 for h in self.histograms)

    def at(self, hours: float) -> datetime:
        return self.spec.start + timedelta(hours=hours)

    def write_openmetrics(self, path: Path) -> Path:
        ts = [f" {int(x)}\n" for x in self.t]
        with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
            for fam, typ, items in _families(self.gauges, "gauge") + _families(self.counters, "counter"):
                fh.write(f"# TYPE {fam} {typ}\n")
                for s in items:
                    fh.write(_rows(s.name, s.labels, s.values, ts))
            by_name: dict[str, list[_Histogram]] = {}
            for h in self.histograms:
                by_name.setdefault(h.name, []).append(h)
            for name, hs in by_name.items():
                fh.write(f"# TYPE {name} histogram\n")
                for h in hs:
                    fh.write(_histogram_rows(h, ts))
            fh.write("# EOF\n")
        return path


def _families(items: list[_Series], typ: str) -> list[tuple[str, str, list[_Series]]]:
    out: dict[str, list[_Series]] = {}
    for s in items:
        out.setdefault(s.name, []).append(s)
    fams = []
    for name, ss in out.items():
        fam = name[: -len("_total")] if typ == "counter" and name.endswith("_total") else name
        fams.append((fam, typ if typ == "gauge" or name.endswith("_total") else "unknown", ss))
    return fams


def _label_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _rows(name: str, labels: dict[str, str], values: np.ndarray, ts: list[str]) -> str:
    head = name + _label_text(labels) + " "
    return "".join(head + f"{v:.6g}" + ts[i] for i, v in enumerate(values.tolist()) if v == v)


def _histogram_rows(h: _Histogram, ts: list[str]) -> str:
    les = [*(f"{b:g}" for b in h.buckets), "+Inf"]
    heads = [f"{h.name}_bucket" + _label_text({**h.labels, "le": le}) + " " for le in les]
    count_head = f"{h.name}_count" + _label_text(h.labels) + " "
    sum_head = f"{h.name}_sum" + _label_text(h.labels) + " "
    counts, sums = h.counts.tolist(), h.sums.tolist()
    out = []
    for i, tsx in enumerate(ts):
        if sums[i] != sums[i]:
            continue
        out += [head + f"{int(counts[b][i])}" + tsx for b, head in enumerate(heads)]
        out.append(count_head + f"{int(counts[-1][i])}" + tsx)
        out.append(sum_head + f"{sums[i]:.6g}" + tsx)
    return "".join(out)


def _hex(seed: int, *parts: object, n: int = 10) -> str:
    return hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()[:n]


def _pod_name(seed: int, workload: str, rs: str, i: int) -> str:
    return f"{workload}-{rs}-{_hex(seed, workload, rs, i, n=5)}"


class _Builder:
    def __init__(self, spec: HistorySpec) -> None:
        self.spec = spec
        t0 = spec.start.timestamp()
        self.t = t0 + np.arange(int(spec.hours * 3600 // spec.step_s) + 1) * spec.step_s
        self.h = (self.t - t0) / 3600.0  # hours since start
        self.rng = np.random.default_rng(spec.seed)
        self.out = ClusterHistory(spec, self.t)
        local = ((self.t / 3600.0) + LOCAL_UTC_OFFSET_H) % 24
        # Diurnal traffic in local time: trough at 04:00, peak at 16:00.
        self.load = 0.55 - 0.45 * np.cos(2 * math.pi * (local - 4) / 24)

    # -- helpers --------------------------------------------------------------------------
    def T(self) -> int:
        return self.t.shape[0]

    def between(self, a: float, b: float) -> np.ndarray:
        return (self.h >= a) & (self.h < b)

    def noise(self, scale: float) -> np.ndarray:
        return self.rng.normal(0.0, scale, self.T())

    def gauge(self, name: str, labels: dict[str, str], values: np.ndarray | float) -> None:
        v = np.full(self.T(), float(values)) if np.isscalar(values) else np.asarray(values, dtype=float)
        self.out.gauges.append(_Series(name, labels, v))

    def counter(self, name: str, labels: dict[str, str], values: np.ndarray) -> None:
        self.out.counters.append(_Series(name, labels, values))

    def alive(self, a: float | None, b: float | None) -> np.ndarray:
        return self.between(-1 if a is None else a, 1e9 if b is None else b)

    # -- pods -----------------------------------------------------------------------------
    def pod(
        self, ns: str, pod: str, node: str, kind: str, owner: str, *, container: str, limit: float,
        usage: np.ndarray, alive: np.ndarray, restarts: np.ndarray | None = None,
        oom_from: float | None = None, crashloop: np.ndarray | None = None,
    ) -> None:
        """kube-state-metrics and cAdvisor series of one pod while it exists (NaN elsewhere)."""
        mask = np.where(alive, 1.0, np.nan)
        owner_kind = kind if kind != "<none>" else "<none>"
        self.gauge("kube_pod_info", {"namespace": ns, "pod": pod, "node": node, "created_by_kind": kind,
                                     "created_by_name": owner, "host_ip": "10.0.0.1", "pod_ip": "10.1.0.1",
                                     "uid": _hex(1, ns, pod, n=8)}, mask)
        self.gauge("kube_pod_owner", {"namespace": ns, "pod": pod, "owner_kind": owner_kind, "owner_name": owner,
                                      "owner_is_controller": "true" if kind != "<none>" else "<none>"}, mask)
        self.gauge("kube_pod_container_resource_limits", {"namespace": ns, "pod": pod, "container": container,
                                                          "node": node, "resource": "memory", "unit": "byte"},
                   limit * mask)
        r = np.zeros(self.T()) if restarts is None else restarts
        self.counter("kube_pod_container_status_restarts_total", {"namespace": ns, "pod": pod, "container": container}, r * mask)
        cadv = {"namespace": ns, "pod": pod, "instance": node, "image": f"registry.local/{container}:1"}
        self.gauge("container_memory_working_set_bytes", {**cadv, "container": container,
                                                          "id": f"/kubepods/pod{_hex(1, pod, n=8)}/{container}"},
                   usage * mask)
        self.gauge("container_memory_working_set_bytes", {**cadv, "container": "", "id": f"/kubepods/pod{_hex(1, pod, n=8)}"},
                   (usage + 8 * MIB) * mask)
        if oom_from is not None:
            self.gauge("kube_pod_container_status_last_terminated_reason",
                       {"namespace": ns, "pod": pod, "container": container, "reason": "OOMKilled"},
                       np.where(alive & (self.h >= oom_from), 1.0, np.nan))
        if crashloop is not None:
            self.gauge("kube_pod_container_status_waiting_reason",
                       {"namespace": ns, "pod": pod, "container": container, "reason": "CrashLoopBackOff"},
                       np.where(alive & crashloop, 1.0, np.nan))

    # -- nodes ----------------------------------------------------------------------------
    def node(self, name: str, *, disk_used: np.ndarray | None = None, disk_pressure: np.ndarray | None = None,
             unschedulable: np.ndarray | None = None) -> None:
        for cond in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            bad = np.zeros(self.T(), bool) if cond != "DiskPressure" or disk_pressure is None else disk_pressure
            is_true = ~bad if cond == "Ready" else bad
            for status, v in (("true", is_true), ("false", ~is_true), ("unknown", np.zeros(self.T(), bool))):
                self.gauge("kube_node_status_condition", {"node": name, "condition": cond, "status": status}, v.astype(float))
        self.gauge("kube_node_spec_unschedulable", {"node": name},
                   np.zeros(self.T()) if unschedulable is None else unschedulable.astype(float))
        total = 512 * GIB
        self.gauge("node_memory_MemTotal_bytes", {"instance": name}, total)
        self.gauge("node_memory_MemAvailable_bytes", {"instance": name}, total * (0.55 - 0.15 * self.load + self.noise(0.01)))
        for mount, dev, fs, size, base in (("/", "/dev/nvme0n1p1", "ext4", 200 * GIB, 0.41),
                                           ("/var/lib/containerd", "/dev/nvme1n1", "xfs", 1024 * GIB, 0.35)):
            used = base + self.noise(0.0005) if mount != "/" or disk_used is None else disk_used
            lab = {"instance": name, "device": dev, "fstype": fs, "mountpoint": mount}
            self.gauge("node_filesystem_size_bytes", lab, size)
            self.gauge("node_filesystem_avail_bytes", lab, size * (1 - used))
        busy = np.cumsum(np.clip(0.2 + 0.5 * self.load + self.noise(0.03), 0, 1)) * self.spec.step_s
        for cpu in ("0", "1"):
            self.counter("node_cpu_seconds_total", {"instance": name, "cpu": cpu, "mode": "idle"},
                         np.arange(self.T()) * self.spec.step_s - busy + 1e6)
            self.counter("node_cpu_seconds_total", {"instance": name, "cpu": cpu, "mode": "user"}, busy + 5e5)

    # -- GPUs -----------------------------------------------------------------------------
    def gpu(self, node: str, index: int, util: np.ndarray, *, attached: list[tuple[float, float, str, str, str]] = (),
            xid: list[tuple[float, int]] = (), gone: tuple[float, float] | None = None) -> str:
        """dcgm-exporter fields of one GPU. ``attached``: (from_h, to_h, namespace, pod, container)
        intervals where pod labels ride along (a new series each); ``gone``: hours where the GPU is
        off the bus (every field absent); ``xid``: (from_h, code), sticky until the end."""
        uuid = f"GPU-{_hex(self.spec.seed, node, index, n=8)}-{_hex(2, node, index, n=4)}-4{_hex(3, node, index, n=3)}"
        base = {"gpu": str(index), "UUID": uuid, "device": f"nvidia{index}", "modelName": GPU_MODEL, "Hostname": node}
        present = np.ones(self.T(), bool)
        if gone is not None:
            present &= ~self.between(*gone)
        segments: list[tuple[np.ndarray, dict[str, str]]] = []
        covered = np.zeros(self.T(), bool)
        for a, b, ns, pod, ctr in attached:
            m = self.between(a, b) & present
            covered |= self.between(a, b)
            segments.append((m, {**base, "pod": pod, "namespace": ns, "container": ctr}))
        segments.append((present & ~covered, base))
        fb = np.clip(0.08 + 0.85 * (util > 5), 0, 1) * FB_MIB
        xid_v = np.zeros(self.T())
        for at, code in xid:
            xid_v[self.h >= at] = code
        fields = {
            "DCGM_FI_DEV_GPU_UTIL": np.clip(util, 0, 100),
            "DCGM_FI_DEV_FB_USED": fb,
            "DCGM_FI_DEV_FB_FREE": FB_MIB - fb,
            "DCGM_FI_DEV_GPU_TEMP": 38 + 0.35 * util + self.noise(0.5),
            "DCGM_FI_DEV_POWER_USAGE": 90 + 5.5 * util + self.noise(4),
            "DCGM_FI_DEV_XID_ERRORS": xid_v,
        }
        for name, v in fields.items():
            for m, labels in segments:
                if name == "DCGM_FI_DEV_XID_ERRORS":
                    # The XID comes from the driver's event stream: it stays while the other
                    # fields of a GPU off the bus are gone.
                    m = m | ~present if labels is base else m
                if m.any():
                    self.gauge(name, labels, np.where(m, v, np.nan))
        return uuid

    # -- vLLM -----------------------------------------------------------------------------
    def vllm(self, ns: str, model: str, pod: str, alive: np.ndarray, rps: np.ndarray, *, ttft_median: np.ndarray,
             waiting: np.ndarray, kv: np.ndarray) -> None:
        mask = np.where(alive, 1.0, np.nan)
        lab = {"namespace": ns, "pod": pod, "model_name": model, "engine": "0"}
        n = np.where(alive, rps * self.spec.step_s, 0.0)
        self.gauge("vllm:num_requests_running", lab, np.minimum(rps * 4, 64) * mask)
        self.gauge("vllm:num_requests_waiting", lab, waiting * mask)
        self.gauge("vllm:kv_cache_usage_perc", lab, np.clip(kv, 0, 1) * mask)
        # Counters start from zero with each new process (a new pod name: a new series).
        cum = np.cumsum(n)
        self.counter("vllm:request_success_total", {**lab, "finished_reason": "stop"}, cum * 0.97 * mask)
        self.counter("vllm:request_success_total", {**lab, "finished_reason": "length"}, cum * 0.03 * mask)
        self.counter("vllm:prompt_tokens_total", lab, cum * 850 * mask)
        self.counter("vllm:generation_tokens_total", lab, cum * 320 * mask)
        self.histogram("vllm:time_to_first_token_seconds", lab, TTFT_BUCKETS, n, np.log(ttft_median), 0.55, alive)
        self.histogram("vllm:inter_token_latency_seconds", lab, ITL_BUCKETS, n * 320, np.log(0.022 + 0.01 * self.load), 0.35, alive)
        # End-to-end grows with the output length: seconds by nature.
        self.histogram("vllm:e2e_request_latency_seconds", lab, E2E_BUCKETS, n, np.log(6.5 + 2 * self.load), 0.8, alive)

    def histogram(self, name: str, labels: dict[str, str], buckets: tuple[float, ...], n: np.ndarray,
                  mu: np.ndarray, sigma: float, alive: np.ndarray) -> None:
        edges = np.log(np.asarray(buckets))[:, None]
        cdf = ndtr((edges - mu[None, :]) / sigma)
        per_step = np.vstack([cdf * n[None, :], n[None, :]])
        counts = np.floor(np.cumsum(per_step, axis=1))
        sums = np.cumsum(n * np.exp(mu + sigma**2 / 2))
        self.out.histograms.append(_Histogram(name, labels, buckets, np.where(alive, counts, np.nan),
                                              np.where(alive, sums, np.nan)))


def generate(spec: HistorySpec = HistorySpec()) -> ClusterHistory:
    """The cluster and its incidents; offsets in hours from ``spec.start`` (20:00 local)."""
    o = spec.incident_offset_h
    if spec.hours < 12 + o:
        raise ValueError("the incidents need 12 hours of history after incident_offset_h")
    if spec.cpu_nodes < 2:
        raise ValueError("cpu_nodes must be at least 2 (the bare pod and the batch job need their own)")
    b = _Builder(spec)
    out, h, s = b.out, b.h, spec.seed
    at = out.at

    # --- nodes: CPU nodes, three GPU nodes --------------------------------------------------
    cpu_nodes = [f"cpu-node-{i}" for i in range(spec.cpu_nodes)]
    for n in cpu_nodes:
        b.node(n)
    # Disk fill on gpu-node-1 "/": log spam from 5 h, DiskPressure at 90 % used, image GC at +20 min.
    fill = np.where(h < o + 5, 0.45, 0.45 + (h - o - 5) * 0.1)
    gc_at = o + 9.5 + 20 / 60
    fill = np.where(h >= gc_at, 0.52, np.minimum(fill, 0.905)) + b.noise(0.0005)
    pressure = (fill >= 0.9) & (h < gc_at)
    b.node("gpu-node-0")
    b.node("gpu-node-1", disk_used=fill, disk_pressure=pressure)
    # gpu-node-2 loses GPU 1 (XID 79) at 7 h; a human cordons it at +10 min, drains it by +20 min,
    # reboots it (GPU back at +50 min) and uncordons it at +60 min. The XID gauge stays 79.
    xid_h = o + 7.0
    b.node("gpu-node-2", unschedulable=b.between(xid_h + 10 / 60, xid_h + 1.0))

    # --- vLLM: llama-3-8b (2 replicas), qwen2-7b (1 replica) ---------------------------------
    load = b.load
    surge_from, surge_peak = o + 9.0, o + 10.5  # traffic surge on llama (a launch): 4.5x over 90 min, holds 1 h
    surge = 1 + 3.5 * np.clip((h - surge_from) / (surge_peak - surge_from), 0, 1) * (h < surge_peak + 1.0)
    rps_llama = (4 + 10 * load) * surge
    rs_llama = _hex(s, "llama-rs", n=10)
    llama_a = _pod_name(s, "vllm-llama-3-8b", rs_llama, 0)
    llama_b = _pod_name(s, "vllm-llama-3-8b", rs_llama, 1)
    llama_c = _pod_name(s, "vllm-llama-3-8b", rs_llama, 2)  # the replacement after the drain
    alive_a = np.ones(b.T(), bool)
    crash = b.between(xid_h, xid_h + 20 / 60)
    # llama_b on gpu-node-2's GPU 1 crash-loops until the drain evicts it; its server restarts
    # keep its vLLM series absent (nothing answers /metrics).
    alive_b = h < xid_h + 20 / 60
    serving_b = h < xid_h
    alive_c = h >= xid_h + 22 / 60
    serving_c = h >= xid_h + 27 / 60  # model load takes five minutes: no /metrics before
    replicas = alive_a.astype(float) + serving_b + serving_c
    per_replica = rps_llama / np.maximum(replicas, 1)
    saturation = np.clip(per_replica / 9.0, 0, 3)
    queue = np.maximum(0, (saturation - 1.0) * 60) + np.abs(b.noise(0.3))
    kv = 0.25 + 0.5 * np.minimum(saturation, 1.0) + 0.1 * np.clip(saturation - 1, 0, 1) + b.noise(0.01)
    ttft = 0.11 * (1 + 0.3 * load) * (1 + 12 * np.clip(saturation - 1.0, 0, None))
    for pod, alive, serving in ((llama_a, alive_a, alive_a), (llama_b, alive_b, serving_b), (llama_c, alive_c, serving_c)):
        b.vllm("inference", "llama-3-8b", pod, serving, per_replica, ttft_median=ttft, waiting=queue, kv=kv)
        restarts = np.where(crash, np.floor((h - xid_h) * 60 / 4), 0) if pod == llama_b else None
        node = {llama_a: "gpu-node-0", llama_b: "gpu-node-2", llama_c: "gpu-node-1"}[pod]
        b.pod("inference", pod, node, "ReplicaSet", f"vllm-llama-3-8b-{rs_llama}", container="vllm", limit=64 * GIB,
              usage=np.full(b.T(), 40 * GIB) + b.noise(0.2 * GIB), alive=alive, restarts=restarts,
              crashloop=(crash & (h >= xid_h + 5 / 60)) if pod == llama_b else None)
    rs_qwen = _hex(s, "qwen-rs", n=10)
    qwen = _pod_name(s, "vllm-qwen2-7b", rs_qwen, 0)
    rps_qwen = 3 + 6 * load
    q_sat = rps_qwen / 14.0
    b.vllm("inference", "qwen2-7b", qwen, np.ones(b.T(), bool), rps_qwen, ttft_median=0.09 * (1 + 0.3 * load),
           waiting=np.abs(b.noise(0.2)), kv=0.2 + 0.5 * q_sat + b.noise(0.01))
    b.pod("inference", qwen, "gpu-node-1", "ReplicaSet", f"vllm-qwen2-7b-{rs_qwen}", container="vllm", limit=64 * GIB,
          usage=np.full(b.T(), 38 * GIB) + b.noise(0.2 * GIB), alive=np.ones(b.T(), bool))

    # --- GPUs: 4 per GPU node; pods attach and detach -------------------------------------
    busy = 35 + 50 * load
    for node in ("gpu-node-0", "gpu-node-1", "gpu-node-2"):
        for i in range(4):
            attached: list[tuple[float, float, str, str, str]] = []
            util = np.full(b.T(), 0.0) + np.abs(b.noise(0.3))
            xid: list[tuple[float, int]] = []
            gone = None
            if (node, i) == ("gpu-node-0", 0):
                attached, util = [(-1, 1e9, "inference", llama_a, "vllm")], busy + b.noise(3)
            elif (node, i) == ("gpu-node-2", 1):
                attached = [(-1, xid_h, "inference", llama_b, "vllm")]
                util = np.where(h < xid_h, busy + b.noise(3), 0.0)
                xid, gone = [(xid_h, 79)], (xid_h, xid_h + 50 / 60)
            elif (node, i) == ("gpu-node-1", 0):
                attached, util = [(-1, 1e9, "inference", qwen, "vllm")], 25 + 40 * load + b.noise(3)
            elif (node, i) == ("gpu-node-1", 2):
                attached = [(xid_h + 22 / 60, 1e9, "inference", llama_c, "vllm")]
                util = np.where(h >= xid_h + 27 / 60, busy + b.noise(3), 0.0)
            b.gpu(node, i, util, attached=attached, xid=xid, gone=gone)

    # --- model quality: accuracy of qwen2-7b drifts down from 8 h (a bad data pipeline) until the
    # previous model is rolled back an hour after the static alert ------------------------------
    drift_from = o + 8.0
    base_acc = 0.91
    drift_alert = drift_from + (base_acc * 0.05) / 0.03  # accuracy 5 % below its baseline
    fixed_at = drift_alert + 1.0
    drifting = np.clip(np.minimum(h, fixed_at) - drift_from, 0, None) * (h < fixed_at)
    acc = base_acc - drifting * 0.03 + b.noise(0.002)
    b.gauge("model_accuracy", {"namespace": "inference", "model": "qwen2-7b", "pod": qwen}, acc)
    b.gauge("model_accuracy", {"namespace": "inference", "model": "llama-3-8b", "pod": llama_a}, 0.88 + b.noise(0.002))
    b.gauge("business_conversion_rate", {"namespace": "inference", "model": "qwen2-7b"},
            0.042 - np.clip(drifting - 0.5, 0, None) * 0.002 + b.noise(0.0004))

    # --- shop: ReplicaSet pods, one leaking; a rolling deployment -----------------------------
    rs_api = _hex(s, "api-rs", n=10)
    leak_pod = _pod_name(s, "api", rs_api, 0)
    limit = 2 * GIB
    # Working set climbs from 5 h at a steady rate and hits the limit (OOMKilled) at 8.5 h; the
    # container restarts under the same pod name with a fresh working set.
    oom_h = o + 8.5
    leak = np.where(h < o + 5, 0.45, 0.45 + (h - o - 5) * (0.55 / (oom_h - o - 5)))
    leak = np.where(h >= oom_h, 0.45, np.minimum(leak, 1.0)) * limit + b.noise(4 * MIB)
    b.pod("shop", leak_pod, cpu_nodes[0], "ReplicaSet", f"api-{rs_api}", container="api", limit=limit, usage=leak,
          alive=np.ones(b.T(), bool), restarts=(h >= oom_h).astype(float), oom_from=oom_h)
    # Filler workloads; "web" rolls out at 4 h: new ReplicaSet, new pod names, old ones go 5 min later.
    rs_web_old, rs_web_new = _hex(s, "web-old", n=10), _hex(s, "web-new", n=10)
    for i in range(spec.filler_pods):
        app = ("api", "web", "worker", "search", "cart")[i % 5]
        node = cpu_nodes[i % len(cpu_nodes)]
        level = (0.3 + 0.3 * ((i * 37) % 10) / 10) * limit
        usage = level * (0.9 + 0.15 * load) + b.noise(6 * MIB)
        if app == "web":
            old = _pod_name(s, "web", rs_web_old, i)
            new = _pod_name(s, "web", rs_web_new, i)
            b.pod("shop", old, node, "ReplicaSet", f"web-{rs_web_old}", container="web", limit=limit, usage=usage,
                  alive=h < 4 + 5 / 60 + i / 600)
            b.pod("shop", new, node, "ReplicaSet", f"web-{rs_web_new}", container="web", limit=limit,
                  usage=usage * np.clip((h - 4) * 20, 0.2, 1.0), alive=h >= 4 + i / 600)
            out.decoys.append(f"pod/shop/web-{rs_web_old}-*")
            continue
        rs = _hex(s, app, n=10)
        b.pod("shop", _pod_name(s, app, rs, i + 1), node, "ReplicaSet", f"{app}-{rs}", container=app, limit=limit,
              usage=usage, alive=np.ones(b.T(), bool))

    # --- batch: a nightly CronJob at 02:00 local (18:00 UTC) reaching 92 % of its limit at its end ---
    job_limit = 8 * GIB
    for day in range(int(spec.hours // 24) + 2):
        start_h = 6.0 + 24 * day
        if start_h >= spec.hours:
            break
        job = f"nightly-report-{29390000 + day * 1440}"
        pod = f"{job}-{_hex(s, job, n=5)}"
        run = b.between(start_h, start_h + 50 / 60)
        frac = np.clip((h - start_h) / (50 / 60), 0, 1)
        b.pod("batch", pod, cpu_nodes[-1], "Job", job, container="report", limit=job_limit,
              usage=(0.3 + 0.62 * frac) * job_limit + b.noise(8 * MIB), alive=run)
        out.decoys.append(f"pod/batch/{pod}")

    # --- a bare pod (no controller): a notebook creeping up to 96 % of its limit, then flat -----
    nb_limit = 16 * GIB
    nb = np.clip(0.6 + np.clip(h - 3, 0, None) * 0.06, 0, 0.96) * nb_limit + b.noise(16 * MIB)
    b.pod("research", "notebook-alice", cpu_nodes[1], "<none>", "<none>", container="notebook", limit=nb_limit,
          usage=nb, alive=np.ones(b.T(), bool))
    out.decoys.append("pod/research/notebook-alice")

    # --- kube-system: coredns restarts now and then (routine, protected) ---------------------------
    rs_dns = _hex(s, "coredns", n=10)
    dns = _pod_name(s, "coredns", rs_dns, 0)
    b.pod("kube-system", dns, cpu_nodes[0], "ReplicaSet", f"coredns-{rs_dns}", container="coredns", limit=170 * MIB,
          usage=np.full(b.T(), 60 * MIB) + b.noise(1 * MIB), alive=np.ones(b.T(), bool),
          restarts=np.floor(np.clip(h - 3, 0, None) / 3.3))
    out.decoys.append(f"pod/kube-system/{dns}")

    # --- incidents, with the time a static alert fires ----------------------------------------
    out.incidents = [
        {"name": "memory leak -> OOMKill", "entity": f"pod/shop/{leak_pod}", "failure_at": at(oom_h),
         "static_alert_at": at(oom_h), "resolved_at": at(oom_h + 1 / 60), "expected_action": "restart_pod",
         "signal": "pod_memory_usage_ratio",
         "trend": True},
        {"name": "disk fill -> DiskPressure (90 % used)", "entity": "node/gpu-node-1",
         "failure_at": at(o + 5 + 0.45 / 0.1), "static_alert_at": at(o + 5 + 0.45 / 0.1), "resolved_at": at(gc_at),
         "expected_action": "advise", "trend": True, "signal": "node_filesystem_usage_ratio"},
        {"name": "XID 79: GPU fell off the bus", "entity": "node/gpu-node-2", "failure_at": at(xid_h),
         "static_alert_at": at(xid_h), "resolved_at": at(xid_h + 1.0), "expected_action": "evacuate_node",
         # A GPU that falls off the bus gives no warning in the exporters' data: the action is
         # wanted in the cycle that sees it, not ahead of it.
         "window_before": "1h", "wanted_lead": "0m"},
        {"name": "traffic surge on llama-3-8b", "entity": "model/inference/llama-3-8b",
         "failure_at": at(_first(h, ttft * math.exp(2.326 * 0.55) > 2.0)),
         "static_alert_at": at(_first(h, ttft * math.exp(2.326 * 0.55) > 2.0) + 5 / 60),
         "resolved_at": at(surge_peak + 1.0), "expected_action": "scale_ahead"},
        {"name": "accuracy drift of qwen2-7b", "entity": "model/inference/qwen2-7b", "failure_at": at(drift_alert),
         "static_alert_at": at(drift_alert), "resolved_at": at(fixed_at), "expected_action": "rollback_model",
         "trend": True},
    ]
    return out


def _first(h: np.ndarray, cond: np.ndarray) -> float:
    idx = np.flatnonzero(cond)
    if not idx.size:
        raise AssertionError("the scenario's incident never happens")
    return float(h[idx[0]])


def incidents_yaml(history: ClusterHistory) -> str:
    import yaml

    rows = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in inc.items()} for inc in history.incidents]
    return yaml.safe_dump(rows, sort_keys=False)


def iter_series_names(history: ClusterHistory) -> Iterator[str]:  # pragma: no cover - debugging aid
    for s in history.gauges + history.counters:
        yield s.name + _label_text(s.labels)
