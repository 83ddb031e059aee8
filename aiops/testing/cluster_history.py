"""A realistic GPU inference cluster's history, for ``aiops replay`` scenario tests and the bench.

Where :mod:`aiops.demo.synth` anchors clean faults to the end of the data, this generator
writes what exporters really expose over a day or two, with the quirks a default must survive:

- kube-state-metrics v2: ``kube_pod_info{created_by_kind,created_by_name}`` and ``kube_pod_owner``
  (ReplicaSet, Job, DaemonSet, ``<none>`` for a bare pod); ``kube_pod_status_phase`` (1 for the
  current phase: Running, or Succeeded for a finished Job's pod, which stays listed with its
  kube_pod_info until its Job is cleaned up, if ever); ``kube_node_status_condition``
  with ``status`` true/false/unknown; ``kube_node_spec_unschedulable``; restarts counters;
  ``waiting_reason`` and ``last_terminated_reason`` present only while they hold;
- cAdvisor: ``container_memory_working_set_bytes`` per container plus the pod cgroup
  (``container=""``); node-exporter with ``instance`` = node name;
- dcgm-exporter: ``DCGM_FI_DEV_XID_ERRORS`` is sticky (holds the last XID until the exporter
  restarts); ``pod``/``namespace``/``container`` labels appear when a pod attaches to a GPU (a
  new series); every field of a GPU that fell off the bus (XID 79) vanishes; in profiles that say
  so (eu-rough), the impossible values real exporters write on a healthy node: DCGM's blank
  sentinels and NVIDIA/DCGM#199's utilisations, to the last digit; in us-east, a GPU in MIG mode
  (a series per GPU instance, ``GPU_I_ID``/``GPU_I_PROFILE``, utilisation 0 on each whatever runs);
- vLLM V1: TTFT, inter-token and end-to-end histograms with vLLM's own buckets; series absent
  while a server restarts, counters that start from zero again under a new pod name;
- a completed evaluation Job's pod left on the node that later loses a GPU (XID 79);
- a CronJob whose pods (new names each night) reach 92 % of their memory limit near their end,
  a rolling deployment, routine restarts in kube-system, a bare pod, diurnal traffic in the
  cluster's local time (UTC+8 by default);
- request counters as real traffic fills them (vLLM, Triton, TorchServe alike, in every profile):
  each model's demand runs at a level of its own each day (lognormal, sigma ``DAY_LEVEL_SIGMA``
  = 5 %, drawn per model and local day from the seed, eased from one local noon to the next so
  no step falls at midnight), and each scrape counts a Poisson number of requests whose mean is
  itself bursty (gamma, coefficient of variation ``BURST_CV`` = 3 % a minute): a 5-minute rate
  scatters by 2-4 %, and no two days peak alike. Exact counters (the fixture before 2026-12-05)
  hide what a demand forecast does with ordinary days. What the counters count is the noisy
  demand; latency, queue and KV cache follow the designed demand, so every incident keeps its
  designed timing (``exact_requests=True`` gives the exact counters, for comparisons).

Incidents (memory leak → OOMKill, disk fill → DiskPressure, XID 79, traffic surge, model accuracy
drift) are placed at offsets from the start and returned with the time a static alert would fire,
for ``aiops replay --incidents``; the entities where no action is wanted are listed as decoys.

``HistorySpec.profile`` (:mod:`aiops.testing.cluster_profiles`) says which cluster: the default
one, or another time zone, traffic shape, runtime mix, size and set of routine operations
(HPA scale-out, a planned drain, a DaemonSet rollout, scrape gaps and counter resets, ...).
The default profile's output is the same, byte for byte, as before profiles existed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

from aiops.demo.synth import ITL_BUCKETS  # the demo exports the same vLLM V1 histogram
from aiops.testing.cluster_profiles import DEFAULT, Profile, TrafficShape

__all__ = ["ClusterHistory", "HistorySpec", "generate"]

GIB, MIB = 1024**3, 1024**2
# vLLM V1's own bucket boundaries (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)
# An older vLLM (before inter_token_latency and kv_cache_usage_perc): its shorter bucket lists.
LEGACY_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
LEGACY_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
LEGACY_E2E_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
GPU_MODEL = "NVIDIA H100 80GB HBM3"
# Request counts (module docstring): each model's level per local day, and each scrape's burstiness.
DAY_LEVEL_SIGMA = 0.05
BURST_CV = 0.03
FB_MIB = 81559.0
# dcgm-exporter's err_msg for the codes the fixture uses (its xidErrCodeToText, from NVIDIA's XID catalog).
XID_MESSAGES = {
    0: "No Error",
    48: "DBE (Double Bit Error) ECC Error",
    79: "GPU has fallen off the bus",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
}


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
    # Which cluster (time zone, traffic, runtimes, size, routine operations, incident timings).
    profile: Profile = DEFAULT
    # Request counters without the per-scrape noise and the days' levels (module docstring): for
    # before/after comparisons only; no realistic history is that clean.
    exact_requests: bool = False


@dataclass
class _Series:
    name: str
    labels: dict[str, str]
    values: np.ndarray  # NaN: no sample (absent)
    # Written to the last digit, not to six: DCGM's blank 2147483632 rounded to six digits is a
    # plain number below the blanks, which no real exporter writes.
    exact: bool = False


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
                    fh.write(_rows(s.name, s.labels, s.values, ts, exact=s.exact))
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


def _rows(name: str, labels: dict[str, str], values: np.ndarray, ts: list[str], *, exact: bool = False) -> str:
    head = name + _label_text(labels) + " "
    fmt = "{!r}" if exact else "{:.6g}"
    return "".join(head + fmt.format(v) + ts[i] for i, v in enumerate(values.tolist()) if v == v)


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


def _traffic(local: np.ndarray, shape: TrafficShape) -> np.ndarray:
    """Load in [0, 1] by the cluster's local hour."""
    if shape == "afternoon_peak":  # trough at 04:00, peak at 16:00
        return 0.55 - 0.45 * np.cos(2 * math.pi * (local - 4) / 24)
    if shape == "business_hours":  # 10:30 and 15:00 humps, a lunch dip, quiet nights
        hump = np.maximum(np.exp(-0.5 * ((local - 10.5) / 1.6) ** 2), np.exp(-0.5 * ((local - 15.0) / 1.8) ** 2))
        return 0.1 + 0.85 * hump
    # evening_peak: a consumer app, busiest at 20:30, quiet in the small hours and the morning
    return 0.1 + 0.85 * ((1 + np.cos(2 * math.pi * (local - 20.5) / 24)) / 2) ** 2


class _Builder:
    def __init__(self, spec: HistorySpec) -> None:
        self.spec = spec
        t0 = spec.start.timestamp()
        self.t = t0 + np.arange(int(spec.hours * 3600 // spec.step_s) + 1) * spec.step_s
        self.h = (self.t - t0) / 3600.0  # hours since start
        self.rng = np.random.default_rng(spec.seed)
        self.out = ClusterHistory(spec, self.t)
        local = ((self.t / 3600.0) + spec.profile.utc_offset_h) % 24
        self.load = _traffic(local, spec.profile.traffic)
        # (node, GPU index) -> XID events (from_h, code) of incidents placed on that GPU.
        self.xids: dict[tuple[str, int], list[tuple[float, int]]] = {}

    # -- helpers --------------------------------------------------------------------------
    def T(self) -> int:
        return self.t.shape[0]

    def between(self, a: float, b: float) -> np.ndarray:
        return (self.h >= a) & (self.h < b)

    def noise(self, scale: float) -> np.ndarray:
        return self.rng.normal(0.0, scale, self.T())

    @contextmanager
    def own_stream(self, *key: object) -> Iterator[None]:
        """Draw from a stream of the seed and ``key`` meanwhile: a part that only some profiles
        have leaves the shared stream, and so every other series, as it was."""
        shared = self.rng
        self.rng = np.random.default_rng(int(_hex(self.spec.seed, "stream", *key, n=15), 16))
        try:
            yield
        finally:
            self.rng = shared

    def node_exporter(self, node: str) -> dict[str, str]:
        """The labels node-exporter's series of ``node`` carry (``Profile.node_exporter_instance``)."""
        if self.spec.profile.node_exporter_instance == "node":
            return {"instance": node}
        ip = int(_hex(self.spec.seed, "address", node, n=6), 16)  # 24 bits: 10.x.y.z, one per node
        # Scraped through kube-prometheus-stack's ServiceMonitor: the target's labels ride along.
        return {"instance": f"10.{ip >> 16}.{(ip >> 8) & 255}.{ip & 255}:9100", "job": "node-exporter",
                "namespace": "monitoring", "pod": f"kps-prometheus-node-exporter-{_hex(self.spec.seed, 'ne', node, n=5)}",
                "container": "node-exporter", "service": "kps-prometheus-node-exporter", "endpoint": "http-metrics"}

    def gauge(self, name: str, labels: dict[str, str], values: np.ndarray | float) -> None:
        v = np.full(self.T(), float(values)) if np.isscalar(values) else np.asarray(values, dtype=float)
        self.out.gauges.append(_Series(name, labels, v))

    def counter(self, name: str, labels: dict[str, str], values: np.ndarray) -> None:
        self.out.counters.append(_Series(name, labels, values))

    def alive(self, a: float | None, b: float | None) -> np.ndarray:
        return self.between(-1 if a is None else a, 1e9 if b is None else b)

    def counted(self, ns: str, model: str, pod: str, n: np.ndarray) -> np.ndarray:
        """The requests a server counts per scrape when ``n`` are expected: the model's level of the
        day times a bursty (gamma) mean, drawn as Poisson counts (module docstring). Each model's
        levels and each pod's scrapes come from their own stream of the seed, so adding a series
        changes no other."""
        if self.spec.exact_requests:
            return n
        local_h = self.t / 3600.0 + self.spec.profile.utc_offset_h
        day0 = math.floor(local_h[0] / 24) - 1
        noons = (day0 + np.arange(int(math.ceil(local_h[-1] / 24)) - day0 + 2)) * 24.0 + 12.0
        days = np.random.default_rng(int(_hex(self.spec.seed, "demand-days", ns, model, n=15), 16))
        levels = np.exp(days.normal(0.0, DAY_LEVEL_SIGMA, noons.shape[0]))
        level = np.interp(local_h, noons, levels)
        scrapes = np.random.default_rng(int(_hex(self.spec.seed, "demand-scrapes", ns, pod, n=15), 16))
        shape = 1.0 / BURST_CV**2
        mean = np.maximum(n, 0.0) * level * scrapes.gamma(shape, 1.0 / shape, n.shape[0])
        return scrapes.poisson(mean).astype(float)

    # -- pods -----------------------------------------------------------------------------
    def pod(
        self, ns: str, pod: str, node: str, kind: str, owner: str, *, container: str, limit: float,
        usage: np.ndarray, alive: np.ndarray, restarts: np.ndarray | None = None,
        oom_from: float | None = None, crashloop: np.ndarray | None = None,
        succeeded: np.ndarray | None = None, phase: bool = True,
    ) -> None:
        """kube-state-metrics and cAdvisor series of one pod while it exists (NaN elsewhere): it
        runs while ``alive``; where ``succeeded`` (after its run) it has finished, phase Succeeded,
        and kube-state-metrics still lists it (its info, owner, limits and restarts) while cAdvisor
        has no container of it. ``phase=False``: the caller writes kube_pod_status_phase itself."""
        done = np.zeros(self.T(), bool) if succeeded is None else succeeded & ~alive
        listed = alive | done
        mask = np.where(listed, 1.0, np.nan)
        running = np.where(alive, 1.0, np.nan)
        owner_kind = kind if kind != "<none>" else "<none>"
        self.gauge("kube_pod_info", {"namespace": ns, "pod": pod, "node": node, "created_by_kind": kind,
                                     "created_by_name": owner, "host_ip": "10.0.0.1", "pod_ip": "10.1.0.1",
                                     "uid": _hex(1, ns, pod, n=8)}, mask)
        self.gauge("kube_pod_owner", {"namespace": ns, "pod": pod, "owner_kind": owner_kind, "owner_name": owner,
                                      "owner_is_controller": "true" if kind != "<none>" else "<none>"}, mask)
        if phase:
            # One series per phase the pod goes through (kube-state-metrics writes all five, 0 but
            # for the current one); uid as kube_pod_info's.
            phases = (("Running", alive), ("Succeeded", done)) if done.any() else (("Running", alive),)
            for name, on in phases:
                self.gauge("kube_pod_status_phase", {"namespace": ns, "pod": pod, "phase": name,
                                                     "uid": _hex(1, ns, pod, n=8)}, np.where(listed, on.astype(float), np.nan))
        self.gauge("kube_pod_container_resource_limits", {"namespace": ns, "pod": pod, "container": container,
                                                          "node": node, "resource": "memory", "unit": "byte"},
                   limit * mask)
        r = np.zeros(self.T()) if restarts is None else restarts
        self.counter("kube_pod_container_status_restarts_total", {"namespace": ns, "pod": pod, "container": container}, r * mask)
        cadv = {"namespace": ns, "pod": pod, "instance": node, "image": f"registry.local/{container}:1"}
        self.gauge("container_memory_working_set_bytes", {**cadv, "container": container,
                                                          "id": f"/kubepods/pod{_hex(1, pod, n=8)}/{container}"},
                   usage * running)
        self.gauge("container_memory_working_set_bytes", {**cadv, "container": "", "id": f"/kubepods/pod{_hex(1, pod, n=8)}"},
                   (usage + 8 * MIB) * running)
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
             unschedulable: np.ndarray | None = None, disk_mount: str = "/", unknown: np.ndarray | None = None,
             taints: dict[tuple[str, str], np.ndarray] | None = None, inodes_used: np.ndarray | None = None) -> None:
        """``unknown``: the kubelet stopped posting status (a reboot): every condition is Unknown.
        ``taints``: (key, effect) -> when the node carries it (``kube_node_spec_taint``).
        ``inodes_used``: the share of the root filesystem's inodes in use (default a steady 12 %)."""
        for (key, effect), on in (taints or {}).items():
            self.gauge("kube_node_spec_taint", {"node": name, "key": key, "value": "", "effect": effect},
                       np.where(on, 1.0, np.nan))
        lost = np.zeros(self.T(), bool) if unknown is None else unknown
        for cond in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            bad = np.zeros(self.T(), bool) if cond != "DiskPressure" or disk_pressure is None else disk_pressure
            is_true = ~bad if cond == "Ready" else bad
            for status, v in (("true", is_true & ~lost), ("false", ~is_true & ~lost), ("unknown", lost)):
                self.gauge("kube_node_status_condition", {"node": name, "condition": cond, "status": status}, v.astype(float))
        self.gauge("kube_node_spec_unschedulable", {"node": name},
                   np.zeros(self.T()) if unschedulable is None else unschedulable.astype(float))
        exporter = self.node_exporter(name)
        if exporter["instance"] != name:  # the uname collector: what names the node
            self.gauge("node_uname_info", {**exporter, "nodename": name, "sysname": "Linux", "machine": "x86_64",
                                           "release": "5.15.0-1063-nvidia"}, 1.0)
        total = 512 * GIB
        self.gauge("node_memory_MemTotal_bytes", exporter, total)
        self.gauge("node_memory_MemAvailable_bytes", exporter, total * (0.55 - 0.15 * self.load + self.noise(0.01)))
        for mount, dev, fs, size, base in (("/", "/dev/nvme0n1p1", "ext4", 200 * GIB, 0.41),
                                           ("/var/lib/containerd", "/dev/nvme1n1", "xfs", 1024 * GIB, 0.35)):
            used = base + self.noise(0.0005) if mount != disk_mount or disk_used is None else disk_used
            lab = {**exporter, "device": dev, "fstype": fs, "mountpoint": mount}
            self.gauge("node_filesystem_size_bytes", lab, size)
            self.gauge("node_filesystem_avail_bytes", lab, size * (1 - used))
            # Inodes: ext4 makes one per 16 KiB, xfs allocates them as it goes (no draw from the
            # shared stream: every other series stays as it was).
            files = float(size // (16 * 1024 if fs == "ext4" else 64 * 1024))
            share = inodes_used if inodes_used is not None and mount == "/" else np.full(self.T(), 0.12)
            self.gauge("node_filesystem_files", lab, np.full(self.T(), files))
            self.gauge("node_filesystem_files_free", lab, np.floor(files * (1 - share)))
        busy = np.cumsum(np.clip(0.2 + 0.5 * self.load + self.noise(0.03), 0, 1)) * self.spec.step_s
        for cpu in ("0", "1"):
            self.counter("node_cpu_seconds_total", {**exporter, "cpu": cpu, "mode": "idle"},
                         np.arange(self.T()) * self.spec.step_s - busy + 1e6)
            self.counter("node_cpu_seconds_total", {**exporter, "cpu": cpu, "mode": "user"}, busy + 5e5)

    # -- GPUs -----------------------------------------------------------------------------
    def gpu(self, node: str, index: int, util: np.ndarray, *, attached: list[tuple[float, float, str, str, str]] = (),
            xid: list[tuple[float, int]] = (), gone: tuple[float, float] | None = None,
            xid_gone: tuple[float, float] | None = None,
            exporters: list[tuple[float, float, str]] | None = None) -> str:
        """dcgm-exporter fields of one GPU. ``attached``: (from_h, to_h, namespace, pod, container)
        intervals where pod labels ride along (a new series each); ``gone``: hours where the GPU is
        off the bus (every field absent); ``xid``: (from_h, code), sticky until a later entry (code
        0: the exporter or driver restarted); ``xid_gone``: hours where the XID series is absent too
        (by default the driver's event stream keeps it while the GPU is off the bus); ``exporters``:
        (from_h, to_h, pod) of the node's dcgm-exporter pod, when the scrape does not honour its
        labels: the pod labels move to exported_* and pod/namespace/container name the exporter."""
        base = self._gpu_labels(node, index)
        uuid = base["UUID"]
        present = np.ones(self.T(), bool)
        if gone is not None:
            present &= ~self.between(*gone)
        # (samples, labels, where the XID outlives the GPU's other fields: None for a pod's labels).
        segments: list[tuple[np.ndarray, dict[str, str], np.ndarray | None]] = []
        covered = np.zeros(self.T(), bool)
        for a, b, ns, pod, ctr in attached:
            m = self.between(a, b) & present
            covered |= self.between(a, b)
            segments.append((m, {**base, "pod": pod, "namespace": ns, "container": ctr}, None))
        segments.append((present & ~covered, base, ~present))
        segments = self._scraped(segments, exporters)
        fb = np.clip(0.08 + 0.85 * (util > 5), 0, 1) * FB_MIB
        xid_v = np.zeros(self.T())
        for at, code in sorted(xid):
            xid_v[self.h >= at] = code
        fields = {
            "DCGM_FI_DEV_GPU_UTIL": np.clip(util, 0, 100),
            "DCGM_FI_DEV_FB_USED": fb,
            "DCGM_FI_DEV_FB_FREE": FB_MIB - fb,
            "DCGM_FI_DEV_GPU_TEMP": 38 + 0.35 * util + self.noise(0.5),
            "DCGM_FI_DEV_POWER_USAGE": 90 + 5.5 * util + self.noise(4),
            "DCGM_FI_DEV_XID_ERRORS": xid_v,
        }
        if self.spec.profile.exporter_garbage:  # in dcgm-exporter's default counters; 0 on a healthy GPU
            fields["DCGM_FI_DEV_ROW_REMAP_FAILURE"] = np.zeros(self.T())
            fields["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] = np.zeros(self.T())
        for name, v in fields.items():
            for m, labels, xid_only in segments:
                if name == "DCGM_FI_DEV_XID_ERRORS":
                    # The XID comes from the driver's event stream: it stays while the other
                    # fields of a GPU off the bus are gone.
                    m = m | xid_only if xid_only is not None else m
                    if xid_gone is not None:
                        m = m & ~self.between(*xid_gone)
                if not m.any():
                    continue
                if name == "DCGM_FI_DEV_XID_ERRORS" and self.spec.profile.xid_err_labels:
                    for code in np.unique(v[m]).tolist():
                        coded = {**labels, "err_code": str(int(code)), "err_msg": XID_MESSAGES.get(int(code), "Unknown Error")}
                        self.gauge(name, coded, np.where(m & (v == code), v, np.nan))
                else:
                    self.gauge(name, labels, np.where(m, v, np.nan))
        return uuid

    def _gpu_labels(self, node: str, index: int) -> dict[str, str]:
        """The labels dcgm-exporter puts on every field of GPU ``index`` of ``node``, its UUID among them."""
        uuid = f"GPU-{_hex(self.spec.seed, node, index, n=8)}-{_hex(2, node, index, n=4)}-4{_hex(3, node, index, n=3)}"
        return {"gpu": str(index), "UUID": uuid, "device": f"nvidia{index}", "modelName": GPU_MODEL, "Hostname": node}

    def _scraped(
        self, segments: list[tuple[np.ndarray, dict[str, str], np.ndarray | None]],
        exporters: list[tuple[float, float, str]] | None,
    ) -> list[tuple[np.ndarray, dict[str, str], np.ndarray | None]]:
        """A GPU's series as Prometheus stores them: without honor_labels (``exporters`` given)
        the pod labels move to exported_* and pod/namespace/container name the exporter's pod."""
        if exporters is None:
            return segments
        renamed = []
        for a, b, exporter in exporters:
            during = self.between(a, b)
            for m, labels, xid_only in segments:
                moved = {f"exported_{k}" if k in ("pod", "namespace", "container") else k: v for k, v in labels.items()}
                target = {"namespace": "gpu-operator", "pod": exporter, "container": "nvidia-dcgm-exporter"}
                renamed.append((m & during, {**moved, **target}, None if xid_only is None else xid_only & during))
        return renamed

    def mig_gpu(self, node: str, index: int, slices: list[tuple[str, str, str, str, np.ndarray]], *,
                exporters: list[tuple[float, float, str]] | None = None, mig_from: float | None = None,
                pods_from: float | None = None) -> str:
        """dcgm-exporter's fields of a GPU in MIG mode, one series per GPU instance (``GPU_I_ID``,
        ``GPU_I_PROFILE``) under the GPU's UUID, each with the pod on that slice: ``slices`` are
        (profile, namespace, pod, container, the slice's busy share 0-100). The framebuffer is the
        instance's own; temperature and power are the device's, the same on every instance; the
        utilisation is 0 on every instance whatever runs (NVIDIA/dcgm-exporter#216: not measured
        for MIG); the XID stays 0. ``mig_from``: switched into MIG mode then (hours), a whole idle
        GPU before (its series, utilisation among them, end there); ``pods_from``: the pods attach
        then (the instances report without a pod before)."""
        base = self._gpu_labels(node, index)
        uuid = base["UUID"]
        device = sum(share for *_, share in slices) / len(slices)
        temp, power = 38 + 0.35 * device + self.noise(0.5), 90 + 5.5 * device + self.noise(4)
        size = FB_MIB / len(slices)
        mig = self.h >= mig_from if mig_from is not None else np.ones(self.T(), bool)
        attached = mig & (self.h >= pods_from) if pods_from is not None else mig
        for gi, (profile, ns, pod, ctr, share) in enumerate(slices, 1):
            instance = {**base, "GPU_I_ID": str(gi), "GPU_I_PROFILE": profile}
            labels = {**instance, "pod": pod, "namespace": ns, "container": ctr}
            used = np.where(attached, (0.1 + 0.75 * np.clip(share, 0, 100) / 100) * size, 0.0)
            fields = {"DCGM_FI_DEV_GPU_UTIL": np.zeros(self.T()), "DCGM_FI_DEV_FB_USED": used,
                      "DCGM_FI_DEV_FB_FREE": size - used, "DCGM_FI_DEV_GPU_TEMP": temp,
                      "DCGM_FI_DEV_POWER_USAGE": power, "DCGM_FI_DEV_XID_ERRORS": np.zeros(self.T())}
            self._fields_on([(attached, labels, None), (mig & ~attached, instance, None)], fields, exporters)
        if mig_from is not None:  # the whole GPU before, idle: what the switch ends (drawn last: the rest as it was)
            used = np.full(self.T(), 0.6 * 1024.0)
            fields = {"DCGM_FI_DEV_GPU_UTIL": np.abs(self.noise(0.3)), "DCGM_FI_DEV_FB_USED": used,
                      "DCGM_FI_DEV_FB_FREE": FB_MIB - used, "DCGM_FI_DEV_GPU_TEMP": 32 + self.noise(0.5),
                      "DCGM_FI_DEV_POWER_USAGE": 68 + self.noise(3), "DCGM_FI_DEV_XID_ERRORS": np.zeros(self.T())}
            self._fields_on([(~mig, base, None)], fields, exporters)
        return uuid

    def _fields_on(
        self, segments: list[tuple[np.ndarray, dict[str, str], np.ndarray | None]], fields: dict[str, np.ndarray],
        exporters: list[tuple[float, float, str]] | None,
    ) -> None:
        """Each field on each segment as scraped (:meth:`_scraped`); a segment without a sample writes no series."""
        for m, labels, _ in self._scraped(segments, exporters):
            if m.any():
                for name, v in fields.items():
                    self.gauge(name, labels, np.where(m, v, np.nan))

    # -- vLLM -----------------------------------------------------------------------------
    def vllm(self, ns: str, model: str, pod: str, alive: np.ndarray, rps: np.ndarray, *, ttft_median: np.ndarray,
             waiting: np.ndarray, kv: np.ndarray, legacy: bool = False) -> None:
        """A vLLM server's /metrics. ``legacy``: an older release (before the V1 renames): KV cache as
        ``gpu_cache_usage_perc``, per-token latency as ``time_per_output_token_seconds``, shorter
        bucket lists, ``num_requests_swapped``, no ``engine`` label."""
        mask = np.where(alive, 1.0, np.nan)
        lab = {"namespace": ns, "pod": pod, "model_name": model} if legacy else {
            "namespace": ns, "pod": pod, "model_name": model, "engine": "0"}
        n = self.counted(ns, model, pod, np.where(alive, rps * self.spec.step_s, 0.0))
        self.gauge("vllm:num_requests_running", lab, np.minimum(rps * 4, 64) * mask)
        self.gauge("vllm:num_requests_waiting", lab, waiting * mask)
        if legacy:
            self.gauge("vllm:num_requests_swapped", lab, 0.0 * mask)
        self.gauge("vllm:gpu_cache_usage_perc" if legacy else "vllm:kv_cache_usage_perc", lab, np.clip(kv, 0, 1) * mask)
        # Counters start from zero with each new process (a new pod name: a new series).
        cum = np.cumsum(n)
        self.counter("vllm:request_success_total", {**lab, "finished_reason": "stop"}, cum * 0.97 * mask)
        self.counter("vllm:request_success_total", {**lab, "finished_reason": "length"}, cum * 0.03 * mask)
        self.counter("vllm:prompt_tokens_total", lab, cum * 850 * mask)
        self.counter("vllm:generation_tokens_total", lab, cum * 320 * mask)
        ttft_b, itl_b, e2e_b = (LEGACY_TTFT_BUCKETS, LEGACY_TPOT_BUCKETS, LEGACY_E2E_BUCKETS) if legacy else (
            TTFT_BUCKETS, ITL_BUCKETS, E2E_BUCKETS)
        itl_name = "vllm:time_per_output_token_seconds" if legacy else "vllm:inter_token_latency_seconds"
        self.histogram("vllm:time_to_first_token_seconds", lab, ttft_b, n, np.log(ttft_median), 0.55, alive)
        self.histogram(itl_name, lab, itl_b, n * 320, np.log(0.022 + 0.01 * self.load), 0.35, alive)
        # End-to-end grows with the output length: seconds by nature.
        self.histogram("vllm:e2e_request_latency_seconds", lab, e2e_b, n, np.log(6.5 + 2 * self.load), 0.8, alive)

    # -- classic model servers -------------------------------------------------------------
    def triton(self, ns: str, pod: str, model: str, alive: np.ndarray, rps: np.ndarray, latency: np.ndarray,
               queue: np.ndarray) -> None:
        """Triton's cumulative counters (no ``_total`` suffix; durations in microseconds), with the
        ``namespace``/``pod`` target labels Prometheus adds. A new pod counts from zero."""
        mask = np.where(alive, 1.0, np.nan)
        lab = {"namespace": ns, "pod": pod, "model": model, "version": "1"}
        n = self.counted(ns, model, pod, np.where(alive, rps * self.spec.step_s, 0.0))
        self.counter("nv_inference_request_success", lab, np.cumsum(n) * mask)
        self.counter("nv_inference_request_failure", {**lab, "reason": "REJECTED"}, 0.0 * mask)
        self.counter("nv_inference_count", lab, np.cumsum(n) * mask)
        self.counter("nv_inference_exec_count", lab, np.floor(np.cumsum(n) / 4) * mask)  # dynamic batching
        self.counter("nv_inference_request_duration_us", lab, np.cumsum(n * latency * 1e6) * mask)
        self.counter("nv_inference_queue_duration_us", lab, np.cumsum(n * queue * 1e6) * mask)
        self.counter("nv_inference_compute_infer_duration_us", lab, np.cumsum(n * (latency - queue) * 0.8e6) * mask)

    def torchserve(self, ns: str, pod: str, model: str, alive: np.ndarray, rps: np.ndarray, latency: np.ndarray) -> None:
        """TorchServe's Prometheus metrics (``ts_`` counters, microseconds), per model version."""
        mask = np.where(alive, 1.0, np.nan)
        lab = {"namespace": ns, "pod": pod, "uuid": _hex(4, pod, n=8), "model_name": model, "model_version": "1.0"}
        n = self.counted(ns, model, pod, np.where(alive, rps * self.spec.step_s, 0.0))
        self.counter("ts_inference_requests_total", lab, np.cumsum(n) * mask)
        self.counter("ts_inference_latency_microseconds", lab, np.cumsum(n * latency * 1e6) * mask)
        self.counter("ts_queue_latency_microseconds", lab, np.cumsum(n * latency * 0.1e6) * mask)

    # -- telemetry as it is during incidents ---------------------------------------------------
    def _matching(self, name_prefix: str, labels: dict[str, str]) -> Iterator[_Series | _Histogram]:
        for s in (*self.out.gauges, *self.out.counters, *self.out.histograms):
            if s.name.startswith(name_prefix) and all(s.labels.get(k) == v for k, v in labels.items()):
                yield s

    def overwrite(self, name: str, labels: dict[str, str], a: float, b: float, value: float) -> None:
        """The exporter wrote ``value`` in [a, b) hours on the matching series, where they report."""
        during = self.between(a, b)
        for s in self._matching(name, labels):
            if isinstance(s, _Series) and s.name == name:
                s.values = np.where(during & np.isfinite(s.values), value, s.values)
                s.exact = True

    def scrape_gap(self, name_prefix: str, labels: dict[str, str], a: float, b: float) -> None:
        """Missed scrapes: no sample in [a, b) hours for the matching series."""
        gap = self.between(a, b)
        for s in self._matching(name_prefix, labels):
            if isinstance(s, _Histogram):
                s.counts = np.where(gap[None, :], np.nan, s.counts)
                s.sums = np.where(gap, np.nan, s.sums)
            else:
                s.values = np.where(gap, np.nan, s.values)

    def counter_reset(self, name_prefix: str, labels: dict[str, str], at: float) -> None:
        """The process restarted in place (same labels): its counters count from zero again."""
        after = self.h >= at
        i = int(np.argmax(after))
        for s in self._matching(name_prefix, labels):
            if isinstance(s, _Histogram):
                s.counts = np.where(after[None, :], s.counts - s.counts[:, i:i + 1], s.counts)
                s.sums = np.where(after, s.sums - s.sums[i], s.sums)
            elif any(s is c for c in self.out.counters):
                s.values = np.where(after, s.values - s.values[i], s.values)

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
    """The cluster and its incidents; offsets in hours from ``spec.start`` (20:00 local by default)."""
    pf, tm = spec.profile, spec.profile.timing
    o = spec.incident_offset_h
    need = pf.needed_hours()
    if spec.hours < need + o:
        raise ValueError(f"the incidents of profile {pf.name!r} need {need:g} hours of history after incident_offset_h")
    if spec.cpu_nodes < 2:
        raise ValueError("cpu_nodes must be at least 2 (the bare pod and the batch job need their own)")
    if pf.gpu_nodes < 3 or pf.gpus_per_node < 4:
        raise ValueError("a profile needs at least 3 GPU nodes of 4 GPUs (the incidents use them)")
    if (pf.hpa_model or pf.classic_servers or pf.planned_drain_h is not None) and pf.gpu_nodes < 6:
        raise ValueError("the HPA model, the classic servers and the planned drain need 6 GPU nodes")
    b = _Builder(spec)
    out, h, s = b.out, b.h, spec.seed
    at = out.at
    gpu_names = [f"gpu-node-{i}" for i in range(pf.gpu_nodes)]

    # --- nodes: CPU nodes, GPU nodes ---------------------------------------------------------
    cpu_nodes = [f"cpu-node-{i}" for i in range(spec.cpu_nodes)]
    for n in cpu_nodes:
        b.node(n)
    # Disk fill on gpu-node-1: log spam on "/" (nodefs: DiskPressure at 90 % used, image GC frees
    # it 20 min later) or a pod writing to its writable layer on containerd's disk (imagefs:
    # DiskPressure at 85 %, the kubelet evicts the pod 5 min later).
    nodefs = pf.disk_mount == "/"
    fail, cap = (0.9, 0.905) if nodefs else (0.85, 0.855)
    fill = np.where(h < o + tm.disk_from_h, 0.45, 0.45 + (h - o - tm.disk_from_h) * tm.disk_fill_per_h)
    disk_fail_h = o + tm.disk_from_h + (fail - 0.45) / tm.disk_fill_per_h
    gc_at = disk_fail_h + (20 if nodefs else 5) / 60
    fill = np.where(h >= gc_at, 0.52, np.minimum(fill, cap)) + b.noise(0.0005)
    pressure = (fill >= fail) & (h < gc_at)
    b.node("gpu-node-0")
    b.node("gpu-node-1", disk_used=fill, disk_pressure=pressure, disk_mount=pf.disk_mount)
    # gpu-node-2 loses GPU 1 (XID 79); a human cordons it (+10 min by default), drains it (+20),
    # reboots it (GPU back at +50) and uncordons it (+60). The XID gauge stays 79, unless the
    # profile has it vanish with the GPU (then the driver reload brings it back at 0).
    xid_h = o + tm.xid_h
    r_cordon, r_drained, r_back, r_uncordon = tm.xid_response_min
    b.node("gpu-node-2", unschedulable=b.between(xid_h + r_cordon / 60, xid_h + r_uncordon / 60))
    drain_h = None if pf.planned_drain_h is None else o + pf.planned_drain_h
    inode_incident = None
    if tm.inode_from_h is not None:
        inode_incident = _inode_fill(b, "gpu-node-3", o + tm.inode_from_h, tm.inode_fill_per_h)
    for n in gpu_names[3:]:
        if n == "gpu-node-3" and inode_incident is not None:
            continue
        if n == "gpu-node-3" and drain_h is not None:
            # A planned kernel upgrade: cordoned, pods evicted one at a time (PDB), rebooted (the
            # kubelet stops posting: conditions Unknown), uncordoned. Routine, not an incident.
            b.node(n, unschedulable=b.between(drain_h, drain_h + 35 / 60),
                   unknown=b.between(drain_h + 20 / 60, drain_h + 27 / 60))
        else:
            b.node(n)

    # --- vLLM: llama-3-8b (2 replicas), qwen2-7b (1 replica) ---------------------------------
    load = b.load
    # A traffic surge on llama (a launch): surge_factor x over the ramp, holds 1 h.
    surge_from, surge_peak = o + tm.surge_from_h, o + tm.surge_peak_h
    surge = 1 + (tm.surge_factor - 1) * np.clip((h - surge_from) / (surge_peak - surge_from), 0, 1) * (h < surge_peak + 1.0)
    rps_llama = (4 + 10 * load) * surge
    rs_llama = _hex(s, "llama-rs", n=10)
    llama_a = _pod_name(s, "vllm-llama-3-8b", rs_llama, 0)
    llama_b = _pod_name(s, "vllm-llama-3-8b", rs_llama, 1)
    llama_c = _pod_name(s, "vllm-llama-3-8b", rs_llama, 2)  # the replacement after the drain
    alive_a = np.ones(b.T(), bool)
    crash = b.between(xid_h, xid_h + r_drained / 60)
    # llama_b on gpu-node-2's GPU 1 crash-loops until the drain evicts it; its server restarts
    # keep its vLLM series absent (nothing answers /metrics).
    alive_b = h < xid_h + r_drained / 60
    serving_b = h < xid_h
    alive_c = h >= xid_h + (r_drained + 2) / 60
    serving_c = h >= xid_h + (r_drained + 7) / 60  # model load takes five minutes: no /metrics before
    replicas = alive_a.astype(float) + serving_b + serving_c
    per_replica = rps_llama / np.maximum(replicas, 1)
    saturation = np.clip(per_replica / 9.0, 0, 3)
    queue = np.maximum(0, (saturation - 1.0) * 60) + np.abs(b.noise(0.3))
    kv = 0.25 + 0.5 * np.minimum(saturation, 1.0) + 0.1 * np.clip(saturation - 1, 0, 1) + b.noise(0.01)
    ttft = 0.11 * (1 + 0.3 * load) * (1 + 12 * np.clip(saturation - 1.0, 0, None))
    # Rough telemetry: llama_a's engine dies in the surge and restarts in place (same pod name,
    # counters from zero after a four-minute model load).
    engine_restart_h = surge_from + 0.5 if pf.rough_telemetry else None
    for pod, alive, serving in ((llama_a, alive_a, alive_a), (llama_b, alive_b, serving_b), (llama_c, alive_c, serving_c)):
        b.vllm("inference", "llama-3-8b", pod, serving, per_replica, ttft_median=ttft, waiting=queue, kv=kv,
               legacy=pf.legacy_vllm)
        restarts = np.where(crash, np.floor((h - xid_h) * 60 / 4), 0) if pod == llama_b else None
        if pod == llama_a and engine_restart_h is not None:
            restarts = (h >= engine_restart_h).astype(float)
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

    # --- a finished Job on gpu-node-2: an offline evaluation of llama-3-8b that ran three hours
    # before the XID and Succeeded. Its Job has no ttlSecondsAfterFinished, so kube-state-metrics
    # lists its pod (phase Succeeded) for the rest of the history. It holds nothing on the node and
    # needs no moving: once people have drained the node after the XID, nothing is left to evacuate.
    # Its own stream: every other series stays as it was.
    eval_job = "eval-llama-3-8b-29391000"
    eval_pod = f"{eval_job}-{_hex(s, eval_job, n=5)}"
    eval_from = max(0.0, xid_h - 3.0)
    with b.own_stream("eval-job"):
        b.pod("ml-eval", eval_pod, "gpu-node-2", "Job", eval_job, container="eval", limit=32 * GIB,
              usage=np.full(b.T(), 12 * GIB) + b.noise(64 * MIB), alive=b.between(eval_from, eval_from + 0.75),
              succeeded=h >= eval_from + 0.75)
    out.decoys.append(f"pod/ml-eval/{eval_pod}")

    # --- other workloads of larger profiles, on GPU nodes 3+ ------------------------------------
    # (node, gpu) -> pod attachments and utilisation, for the GPU loop below.
    placed: dict[tuple[str, int], tuple[list[tuple[float, float, str, str, str]], np.ndarray]] = {}
    busy = 35 + 50 * load
    if pf.hpa_model:
        _hpa_model(b, placed, drain_h)
    server_incidents: list[dict[str, Any]] = []
    if pf.classic_servers:
        server_incidents = _classic_servers(b, placed, None if tm.triton_surge_h is None else o + tm.triton_surge_h,
                                            None if tm.xid94_h is None else o + tm.xid94_h)
    if pf.training_job_h is not None:
        _training_job(b, placed, o + pf.training_job_h)
    if pf.autoscaled_pool:
        _autoscaled_pool(b, placed)

    # --- GPUs: pods attach and detach ---------------------------------------------------------
    xid_gone = None
    xid_events: list[tuple[float, int]] = [(xid_h, 79)]
    if pf.xid_series_vanish:
        # The exporter reports the XID, then loses the GPU: every field, XID included, is gone
        # until the reboot, after which the reloaded driver reports no XID.
        xid_gone = (xid_h + 2 / 60, xid_h + r_back / 60)
        xid_events.append((xid_h + r_back / 60, 0))
    rollout_h = None if pf.dcgm_rollout_h is None else o + pf.dcgm_rollout_h
    for k, node in enumerate(gpu_names):
        # A dcgm-exporter restart (DaemonSet rollout, node by node) clears the sticky XID.
        restart_at = None if rollout_h is None else rollout_h + 3 * k / 60
        exporters = None
        if not pf.dcgm_honor_labels:  # the scrape target's labels are the exporter pod's
            exporters = ([(-1.0, 1e9, _dcgm_pod(s, node, 0))] if restart_at is None else
                         [(-1.0, restart_at, _dcgm_pod(s, node, 0)), (restart_at, 1e9, _dcgm_pod(s, node, 1))])
            if restart_at is None:
                with b.own_stream("dcgm-exporter", node):
                    _dcgm_exporter(b, node, _dcgm_pod(s, node, 0), np.ones(b.T(), bool))
        for i in range(pf.gpus_per_node):
            attached: list[tuple[float, float, str, str, str]] = []
            util = np.full(b.T(), 0.0) + np.abs(b.noise(0.3))
            xid: list[tuple[float, int]] = []
            gone = None
            gone_xid = None
            if (node, i) == ("gpu-node-0", 0):
                attached, util = [(-1, 1e9, "inference", llama_a, "vllm")], busy + b.noise(3)
            elif (node, i) == ("gpu-node-2", 1):
                attached = [(-1, xid_h, "inference", llama_b, "vllm")]
                util = np.where(h < xid_h, busy + b.noise(3), 0.0)
                xid, gone, gone_xid = list(xid_events), (xid_h if xid_gone is None else xid_gone[0], xid_h + r_back / 60), xid_gone
            elif (node, i) == ("gpu-node-1", 0):
                attached, util = [(-1, 1e9, "inference", qwen, "vllm")], 25 + 40 * load + b.noise(3)
            elif (node, i) == ("gpu-node-1", 2):
                attached = [(xid_h + (r_drained + 2) / 60, 1e9, "inference", llama_c, "vllm")]
                util = np.where(h >= xid_h + (r_drained + 7) / 60, busy + b.noise(3), 0.0)
            elif (node, i) in placed:
                attached, util = placed[(node, i)]
            xid += b.xids.get((node, i), [])
            if restart_at is not None and xid and min(at for at, _ in xid) < restart_at:
                xid.append((restart_at + 1.5 / 60, 0))
            if (node, i) == pf.mig_gpu:
                assert not attached and not xid, f"{node}/{i} is in MIG mode: nothing else may run there"
                with b.own_stream("mig", node, i):
                    out.decoys += _mig_embedders(b, node, i, exporters, pf.mig_from_h)
                b.noise(0.5), b.noise(4)  # as b.gpu draws: the shared stream, and every later series, as they were
                continue
            b.gpu(node, i, util, attached=attached, xid=xid, gone=gone, xid_gone=gone_xid, exporters=exporters)
        if restart_at is not None:
            _daemonset_pod_rolled(b, node, restart_at)
    if pf.exporter_garbage:
        _exporter_garbage(b, "gpu-node-0", o)
    if drain_h is not None:
        # The reboot: node-exporter, cAdvisor and dcgm-exporter answer nothing, and the CPU
        # counters start again from the new boot.
        b.counter_reset("node_cpu_seconds_total", b.node_exporter("gpu-node-3"), drain_h + 28 / 60)
        for prefix, lab in _exporters_of("gpu-node-3", b):
            b.scrape_gap(prefix, lab, drain_h + 19.5 / 60, drain_h + 28 / 60)
        out.decoys.append("node/gpu-node-3")

    # --- model quality: accuracy of qwen2-7b drifts down (a bad data pipeline) until the
    # previous model is rolled back an hour after the static alert ------------------------------
    drift_from = o + tm.drift_from_h
    base_acc = 0.91
    drift_alert = drift_from + (base_acc * 0.05) / tm.drift_per_h  # accuracy 5 % below its baseline
    fixed_at = drift_alert + 1.0
    drifting = np.clip(np.minimum(h, fixed_at) - drift_from, 0, None) * (h < fixed_at)
    acc = base_acc - drifting * tm.drift_per_h + b.noise(0.002)
    b.gauge("model_accuracy", {"namespace": "inference", "model": "qwen2-7b", "pod": qwen}, acc)
    b.gauge("model_accuracy", {"namespace": "inference", "model": "llama-3-8b", "pod": llama_a}, 0.88 + b.noise(0.002))
    b.gauge("business_conversion_rate", {"namespace": "inference", "model": "qwen2-7b"},
            0.042 - np.clip(drifting - 0.5, 0, None) * 0.002 + b.noise(0.0004))

    # --- shop: ReplicaSet pods, one leaking; a rolling deployment -----------------------------
    rs_api = _hex(s, "api-rs", n=10)
    leak_pod = _pod_name(s, "api", rs_api, 0)
    limit = 2 * GIB
    # Working set climbs from leak_from_h at a steady rate and hits the limit (OOMKilled) at
    # oom_h; the container restarts under the same pod name with a fresh working set.
    oom_h = o + tm.oom_h
    leak = np.where(h < o + tm.leak_from_h, 0.45, 0.45 + (h - o - tm.leak_from_h) * (0.55 / (oom_h - o - tm.leak_from_h)))
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

    # --- batch: a nightly CronJob at 02:00 local reaching 92 % of its limit at its end --------
    # Each night's pod then Succeeds and stays listed until the CronJob's successfulJobsHistoryLimit
    # (3, the default) deletes its Job: three nights later, when the third newer run is done.
    job_limit = 8 * GIB
    start_local = spec.start.hour + spec.start.minute / 60
    first_run = (2 - pf.utc_offset_h - start_local) % 24
    for day in range(int(spec.hours // 24) + 2):
        start_h = first_run + 24 * day
        if start_h >= spec.hours:
            break
        job = f"nightly-report-{29390000 + day * 1440}"
        pod = f"{job}-{_hex(s, job, n=5)}"
        run = b.between(start_h, start_h + 50 / 60)
        frac = np.clip((h - start_h) / (50 / 60), 0, 1)
        b.pod("batch", pod, cpu_nodes[-1], "Job", job, container="report", limit=job_limit,
              usage=(0.3 + 0.62 * frac) * job_limit + b.noise(8 * MIB), alive=run,
              succeeded=b.between(start_h + 50 / 60, start_h + 72 + 50 / 60))
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
    if pf.protected_crashloop_h is not None:
        _kube_proxy_crashloop(b, cpu_nodes[1], o + pf.protected_crashloop_h)

    if pf.rough_telemetry:
        _rough_telemetry(b, leak_node=cpu_nodes[0], oom_h=oom_h, disk_fail_h=disk_fail_h, surge_peak=surge_peak,
                         engine_restart=(llama_a, engine_restart_h or 0.0))

    # --- incidents, with the time a static alert fires ----------------------------------------
    # The breach as an alert rule sees it: histogram_quantile over the exported buckets.
    ttft_p99 = _histogram_p99(b, "vllm:time_to_first_token_seconds", "llama-3-8b")
    disk_name = "disk fill -> DiskPressure (90 % used)" if nodefs else "imagefs fill -> DiskPressure (85 % used)"
    out.incidents = [
        {"name": "memory leak -> OOMKill", "entity": f"pod/shop/{leak_pod}", "failure_at": at(oom_h),
         "static_alert_at": at(oom_h), "resolved_at": at(oom_h + 1 / 60), "expected_action": "restart_pod",
         "signal": "pod_memory_usage_ratio",
         "trend": True},
        {"name": disk_name, "entity": "node/gpu-node-1",
         "failure_at": at(disk_fail_h), "static_alert_at": at(disk_fail_h), "resolved_at": at(gc_at),
         "expected_action": "advise", "trend": True, "signal": "node_filesystem_usage_ratio"},
        {"name": "XID 79: GPU fell off the bus", "entity": "node/gpu-node-2", "failure_at": at(xid_h),
         "static_alert_at": at(xid_h), "resolved_at": at(xid_h + r_uncordon / 60), "expected_action": "evacuate_node",
         # A GPU that falls off the bus gives no warning in the exporters' data: the action is
         # wanted in the cycle that sees it, not ahead of it.
         "window_before": "1h", "wanted_lead": "0m"},
        {"name": "traffic surge on llama-3-8b", "entity": "model/inference/llama-3-8b",
         "failure_at": at(_first(h, (ttft_p99 > 2.0) & (h >= surge_from))),
         "static_alert_at": at(_first_held(h, (ttft_p99 > 2.0) & (h >= surge_from), 5 / 60)),
         "resolved_at": at(surge_peak + 1.0), "expected_action": "scale_ahead"},
        {"name": "accuracy drift of qwen2-7b", "entity": "model/inference/qwen2-7b", "failure_at": at(drift_alert),
         "static_alert_at": at(drift_alert), "resolved_at": at(fixed_at), "expected_action": "rollback_model",
         "trend": True},
    ]
    out.incidents += server_incidents
    if inode_incident is not None:
        out.incidents.append(inode_incident)
    return out


# --- workloads and operations of the larger profiles ------------------------------------------
_Placed = dict[tuple[str, int], tuple[list[tuple[float, float, str, str, str]], np.ndarray]]


def _place(b: _Builder, placed: _Placed, node: str, gpu: int, interval: tuple[float, float, str, str, str],
           util: np.ndarray, busy: np.ndarray) -> None:
    """Attach a pod to a GPU for an interval; ``busy`` says when it drives the GPU's utilisation."""
    attached, base = placed.get((node, gpu), ([], np.abs(b.noise(0.3))))
    placed[(node, gpu)] = ([*attached, interval], np.where(busy, util, base))


def _mig_embedders(b: _Builder, node: str, index: int, exporters: list[tuple[float, float, str]] | None,
                   mig_from: float | None) -> list[str]:
    """A GPU in MIG mode (two 3g.40gb instances) serving two replicas of an embedding service
    (Deployment ``embedder``, namespace ``search``), busy with the day's traffic. Nothing is wrong
    with it: its utilisation reads 0 on every instance (not measured for MIG) while it draws power,
    and neither it nor its pods may be paged or acted on. ``mig_from``: an operator switched it into
    MIG mode then (hours; whole and idle before, the pods scheduled onto its slices 10 minutes
    later): its whole-GPU utilisation ends there, as a GPU off the bus would, while it reports on.
    Returns the decoys."""
    rs = _hex(b.spec.seed, "embedder-rs", n=10)
    pods_from = None if mig_from is None else mig_from + 10 / 60
    alive = np.ones(b.T(), bool) if pods_from is None else b.h >= pods_from
    slices = []
    for k in range(2):
        pod = _pod_name(b.spec.seed, "embedder", rs, k)
        b.pod("search", pod, node, "ReplicaSet", f"embedder-{rs}", container="embedder", limit=8 * GIB,
              usage=np.full(b.T(), 3 * GIB) + b.noise(0.03 * GIB), alive=alive)
        slices.append(("3g.40gb", "search", pod, "embedder", 20 + 50 * b.load + b.noise(3)))
    uuid = b.mig_gpu(node, index, slices, exporters=exporters, mig_from=mig_from, pods_from=pods_from)
    return [f"gpu/{uuid}", *(f"pod/search/{pod}" for _, _, pod, _, _ in slices)]


def _hpa_model(b: _Builder, placed: _Placed, drain_h: float | None) -> None:
    """mistral-7b (vLLM, namespace chat): two replicas on gpu-node-3, and an HPA that adds a third
    and a fourth on gpu-node-4 while traffic is high (new pod names each time, counters from zero,
    5-minute scale-down stabilisation). A planned drain of gpu-node-3 evicts the two base replicas
    one at a time (a PDB) onto gpu-node-5."""
    s, h, load = b.spec.seed, b.h, b.load
    rs = _hex(s, "mistral-rs", n=10)
    step_h = b.spec.step_s / 3600
    reps: list[tuple[str, str, int, np.ndarray, np.ndarray]] = []  # pod, node, gpu, alive, serving
    for k in range(2):
        pod = _pod_name(s, "vllm-mistral-7b", rs, k)
        if drain_h is None:
            reps.append((pod, "gpu-node-3", k, np.ones(b.T(), bool), np.ones(b.T(), bool)))
            continue
        evict = drain_h + (5 + 6 * k) / 60
        reps.append((pod, "gpu-node-3", k, h < evict, h < evict))
        new = _pod_name(s, "vllm-mistral-7b", rs, 10 + k)
        reps.append((new, "gpu-node-5", k, h >= evict + 0.5 / 60, h >= evict + 5.5 / 60))  # 5 min model load
    for k, threshold in ((2, 0.5), (3, 0.75)):
        on = load > threshold
        starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
        ends = np.flatnonzero(on & ~np.r_[on[1:], False])
        for j, (a, e) in enumerate(zip(starts, ends, strict=True)):
            pod = _pod_name(s, "vllm-mistral-7b", rs, 100 * k + j)
            alive = b.between(h[a], h[e] + 5 / 60)
            reps.append((pod, "gpu-node-4", k - 2, alive, alive & (h >= h[a] + 5 / 60)))
    serving = np.sum([r[4] for r in reps], axis=0).astype(float)
    per = (3 + 12 * load) / np.maximum(serving, 1)
    sat = np.clip(per / 9.0, 0, 3)
    ttft = 0.1 * (1 + 0.3 * load) * (1 + 12 * np.clip(sat - 1, 0, None))
    kv = 0.2 + 0.5 * np.minimum(sat, 1.0) + b.noise(0.01)
    for pod, node, gpu, alive, serv in reps:
        b.vllm("chat", "mistral-7b", pod, serv, per, ttft_median=ttft, waiting=np.abs(b.noise(0.2)), kv=kv)
        b.pod("chat", pod, node, "ReplicaSet", f"vllm-mistral-7b-{rs}", container="vllm", limit=48 * GIB,
              usage=np.full(b.T(), 30 * GIB) + b.noise(0.2 * GIB), alive=alive)
        live = h[alive]
        _place(b, placed, node, gpu, (float(live[0]) if live[0] > h[0] else -1.0, float(live[-1]) + step_h, "chat", pod,
                                      "vllm"), 30 + 45 * load + b.noise(3), serv)
    b.out.decoys += [f"pod/chat/vllm-mistral-7b-{rs}-*", "model/chat/mistral-7b"]


def _classic_servers(b: _Builder, placed: _Placed, surge_at: float | None, xid94_at: float | None) -> list[dict[str, Any]]:
    """Triton (resnet50, two replicas on gpu-node-5) and TorchServe (bert-intent on gpu-node-4).
    With ``surge_at``, Triton's traffic triples over 90 min and holds 45 min: requests queue and
    the mean request latency crosses its 100 ms objective. With ``xid94_at``, a contained ECC error
    (XID 94) hits TorchServe's GPU: its worker is wedged (no request served, the GPU idle) until a
    person deletes the pod 20 min later and the ReplicaSet's new pod is Ready on the same GPU 3 min
    after; the gauge keeps 94 (sticky). Returns these incidents."""
    s, h, load = b.spec.seed, b.h, b.load
    mult = np.ones(b.T())
    if surge_at is not None:
        mult = 1 + 2.0 * np.clip((h - surge_at) / 1.5, 0, 1) * (h < surge_at + 2.25)
    rps = (40 + 160 * load) * mult
    sat = rps / 300.0  # two replicas of 150 requests/s
    service = 0.018 * (1 + 0.1 * load)
    latency = service / (1 - np.minimum(sat, 0.95)) + np.maximum(sat - 0.95, 0) * 1.5
    rs = _hex(s, "triton-rs", n=10)
    for k in range(2):
        pod = _pod_name(s, "triton-resnet50", rs, k)
        b.triton("vision", pod, "resnet50", np.ones(b.T(), bool), rps / 2, latency, latency - service)
        b.pod("vision", pod, "gpu-node-5", "ReplicaSet", f"triton-resnet50-{rs}", container="triton", limit=16 * GIB,
              usage=np.full(b.T(), 6 * GIB) + b.noise(0.05 * GIB), alive=np.ones(b.T(), bool))
        _place(b, placed, "gpu-node-5", 2 + k, (-1, 1e9, "vision", pod, "triton"),
               20 + 60 * np.minimum(sat, 1) + b.noise(3), np.ones(b.T(), bool))
    rs_ts = _hex(s, "torchserve-rs", n=10)
    at = b.out.at
    incidents = []
    # (from_h, to_h, serving from_h, serving to_h) of each pod of bert-intent in turn.
    lives = [(-1.0, 1e9, -1.0, 1e9)]
    if xid94_at is not None:
        deleted, replaced = xid94_at + 20 / 60, xid94_at + 23 / 60
        lives = [(-1.0, deleted, -1.0, xid94_at), (deleted, 1e9, replaced, 1e9)]
        b.xids[("gpu-node-4", 3)] = [(xid94_at, 94)]
    for k, (since, until, serves_from, serves_to) in enumerate(lives):
        ts_pod = _pod_name(s, "torchserve-bert-intent", rs_ts, k)
        alive, serving = b.between(since, until), b.between(serves_from, serves_to)
        # The replacement draws from its own stream: the profile's other series stay as they were.
        with b.own_stream("torchserve", k) if k else nullcontext():
            b.torchserve("nlp", ts_pod, "bert-intent", alive, np.where(serving, 20 + 40 * load, 0.0),
                         0.035 * (1 + 0.2 * load))
            b.pod("nlp", ts_pod, "gpu-node-4", "ReplicaSet", f"torchserve-bert-intent-{rs_ts}", container="torchserve",
                  limit=12 * GIB, usage=np.full(b.T(), 5 * GIB) + b.noise(0.05 * GIB), alive=alive)
            _place(b, placed, "gpu-node-4", 3, (since, until, "nlp", ts_pod, "torchserve"), 15 + 30 * load + b.noise(3),
                   serving)
        if k == 0 and xid94_at is not None:
            incidents.append({"name": "XID 94: contained ECC error under TorchServe", "entity": f"pod/nlp/{ts_pod}",
                              "failure_at": at(xid94_at), "static_alert_at": at(xid94_at), "resolved_at": at(deleted),
                              "expected_action": "restart_pod", "window_before": "1h", "wanted_lead": "0m"})
    if surge_at is not None:
        # The breach as an alert rule sees it: Triton exports no latency, only the counters, so the
        # rule reads the mean over a rate window (the catalog's serving_request_latency_triton).
        mean = _mean_over_rate(b, "nv_inference_request_duration_us", "nv_inference_request_success",
                               {"namespace": "vision", "model": "resnet50"}, 1e-6)
        over = (np.nan_to_num(mean) > 0.1) & (h >= surge_at)
        incidents.append({"name": "traffic surge on resnet50 (Triton)", "entity": "model/vision/resnet50",
                          "failure_at": at(_first(h, over)), "static_alert_at": at(_first_held(h, over, 5 / 60)),
                          "resolved_at": at(surge_at + 2.25), "expected_action": "scale_ahead"})
    return incidents


def _autoscaled_pool(b: _Builder, placed: _Placed) -> None:
    """A GPU node pool under the cluster-autoscaler: a node joins while load is above 0.55 and a
    second above 0.8 (a new name each time; 4 min to join, then a gemma-2-9b replica loads for
    5 min). When load falls, the node stays 10 min (scale-down-unneeded-time), is tainted
    ``ToBeDeletedByClusterAutoscaler`` (not cordoned), its pod is evicted a minute later, the instance is
    terminated 3 min after the taint (its exporters vanish; the Node is Ready for the kubelet's
    40 s grace, then Unknown) and the Node object is deleted 2 min after that (its kube_node_*
    series vanish)."""
    s, h, load = b.spec.seed, b.h, b.load
    rs = _hex(s, "gemma-rs", n=10)
    pods: list[tuple[str, np.ndarray]] = []  # pod, serving
    nodes: list[tuple[str, float, float, float, float]] = []  # node, registered, joined, terminated, deleted
    for k, threshold in ((0, 0.55), (1, 0.8)):
        on = load > threshold
        starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
        ends = np.flatnonzero(on & ~np.r_[on[1:], False])
        for j, (a, e) in enumerate(zip(starts, ends, strict=True)):
            node = f"gpu-pool-{_hex(s, 'pool', k, j, n=5)}"

            def at(i: int, minutes: int) -> float:  # on the sample grid: no rounding between steps
                return float(h[min(i + round(minutes * 60 / b.spec.step_s), b.T() - 1)])

            registered, joined, tainted, evicted = at(a, 3), at(a, 4), at(e, 10), at(e, 11)
            terminated, deleted = at(e, 13), at(e, 15)
            # The first status the kubelet misses: 40 s after the instance went, by the next scrape.
            b.node(node, unknown=b.between(at(e, 14), deleted),
                   taints={("nvidia.com/gpu", "NoSchedule"): b.between(registered, deleted),
                           ("ToBeDeletedByClusterAutoscaler", "NoSchedule"): b.between(tainted, deleted)})
            pod = _pod_name(s, "vllm-gemma-2-9b", rs, 1 + 100 * k + j)
            alive = b.between(at(a, 5), evicted)
            serving = b.between(at(a, 10), evicted)
            pods.append((pod, serving))
            # The pod comes first: the scale-up creates it, it is Pending (unscheduled, so
            # kube_pod_info has node="") until the node joins, which is what made the autoscaler
            # add one; then Running but not Ready while the model loads.
            pending = b.between(float(h[a]), at(a, 5))
            uid = _hex(1, "inference", pod, n=8)  # as b.pod gives it
            b.gauge("kube_pod_info", {"namespace": "inference", "pod": pod, "node": "", "created_by_kind": "ReplicaSet",
                                      "created_by_name": f"vllm-gemma-2-9b-{rs}", "host_ip": "", "pod_ip": "",
                                      "uid": uid}, np.where(pending, 1.0, np.nan))
            exists = pending | alive
            for phase, on in (("Pending", pending), ("Running", alive)):
                b.gauge("kube_pod_status_phase", {"namespace": "inference", "pod": pod, "phase": phase, "uid": uid},
                        np.where(exists, on.astype(float), np.nan))
            for condition, on in (("true", serving), ("false", alive & ~serving)):
                b.gauge("kube_pod_status_ready", {"namespace": "inference", "pod": pod, "condition": condition,
                                                  "uid": uid},
                        np.where(alive, on.astype(float), np.nan))
            b.pod("inference", pod, node, "ReplicaSet", f"vllm-gemma-2-9b-{rs}", container="vllm", limit=48 * GIB,
                  usage=np.full(b.T(), 28 * GIB) + b.noise(0.2 * GIB), alive=alive, phase=False)
            for i in range(4):
                util = np.where(serving, 30 + 40 * load + b.noise(3), np.abs(b.noise(0.3))) if i == 0 else np.abs(b.noise(0.3))
                attached = [(at(a, 5), evicted, "inference", pod, "vllm")] if i == 0 else []
                b.gpu(node, i, util, attached=attached)
            nodes.append((node, registered, joined, terminated, deleted))
    # gemma-2-9b: one base replica on gpu-node-0's GPU 3, the rest on pool nodes.
    base = _pod_name(s, "vllm-gemma-2-9b", rs, 0)
    pods.append((base, np.ones(b.T(), bool)))
    serving_n = np.sum([p[1] for p in pods], axis=0).astype(float)
    per = (2 + 16 * load) / np.maximum(serving_n, 1)
    sat = np.clip(per / 9.0, 0, 3)
    ttft = 0.1 * (1 + 0.3 * load) * (1 + 12 * np.clip(sat - 1, 0, None))
    kv = 0.2 + 0.5 * np.minimum(sat, 1.0) + b.noise(0.01)
    for pod, serv in pods:
        b.vllm("inference", "gemma-2-9b", pod, serv, per, ttft_median=ttft, waiting=np.abs(b.noise(0.2)), kv=kv)
    b.pod("inference", base, "gpu-node-0", "ReplicaSet", f"vllm-gemma-2-9b-{rs}", container="vllm", limit=48 * GIB,
          usage=np.full(b.T(), 28 * GIB) + b.noise(0.2 * GIB), alive=np.ones(b.T(), bool))
    _place(b, placed, "gpu-node-0", 3, (-1, 1e9, "inference", base, "vllm"), 30 + 40 * load + b.noise(3),
           np.ones(b.T(), bool))
    for node, registered, joined, terminated, deleted in nodes:
        # Nothing answers before the node joined or after its instance is gone; the Node object
        # (kube_node_*) lasts until it is deleted.
        for prefix, lab in _exporters_of(node, b):
            b.scrape_gap(prefix, lab, -1.0, joined)
            b.scrape_gap(prefix, lab, terminated, 1e9)
        b.scrape_gap("kube_node_", {"node": node}, -1.0, registered)
        b.scrape_gap("kube_node_", {"node": node}, deleted, 1e9)
    b.out.decoys += ["node/gpu-pool-*", f"pod/inference/vllm-gemma-2-9b-{rs}-*", "model/inference/gemma-2-9b"]


def _training_job(b: _Builder, placed: _Placed, start: float) -> None:
    """A fine-tuning Job on two GPUs of gpu-node-0 for ten hours: memory climbs to 86 % of its
    limit while it loads, then grows 5 % between hourly checkpoints. Never to be restarted. Its
    Job has no ttlSecondsAfterFinished: the pod stays listed, Succeeded, after its run."""
    s, h = b.spec.seed, b.h
    job = "finetune-qwen-29391200"
    pod = f"{job}-{_hex(s, job, n=5)}"
    run = b.between(start, start + 10)
    limit = 192 * GIB
    t = h - start
    usage = (0.35 + 0.51 * np.clip(t / 1.5, 0, 1) + 0.05 * ((t - 1.5) % 1.0) * (t > 1.5)) * limit + b.noise(0.2 * GIB)
    b.pod("training", pod, "gpu-node-0", "Job", job, container="trainer", limit=limit, usage=usage, alive=run,
          succeeded=h >= start + 10)
    for gpu in (2, 3):
        _place(b, placed, "gpu-node-0", gpu, (start, start + 10, "training", pod, "trainer"), 96 + b.noise(1.5), run)
    b.out.decoys.append(f"pod/training/{pod}")


def _daemonset_pod_rolled(b: _Builder, node: str, at: float) -> None:
    """The dcgm-exporter DaemonSet's pod on ``node`` is replaced at ``at``: its GPU series miss
    90 s of scrapes (already cleared XIDs are set by the caller)."""
    s, h = b.spec.seed, b.h
    for k, alive in ((0, h < at), (1, h >= at + 0.5 / 60)):
        _dcgm_exporter(b, node, _dcgm_pod(s, node, k), alive)
    b.scrape_gap("DCGM_", {"Hostname": node}, at, at + 1.5 / 60)


def _inode_fill(b: _Builder, node: str, start: float, per_h: float) -> dict[str, Any]:
    """A pod on ``node`` writes small files to an emptyDir on "/" (a log shipper's spool that no
    longer drains): inodes climb from 45 % at ``per_h`` with space to spare, DiskPressure at 95 %
    (nodefs.inodesFree < 5%), and the kubelet evicts the pod 5 min later, which frees them."""
    h = b.h
    fail = start + 0.5 / per_h
    evicted = fail + 5 / 60
    used = np.where(h < start, 0.45, 0.45 + (h - start) * per_h)
    used = np.where(h >= evicted, 0.45, np.minimum(used, 0.952))
    b.node(node, inodes_used=used, disk_pressure=(h >= fail) & (h < evicted))
    with b.own_stream("inode-fill"):
        rs = _hex(b.spec.seed, "spool-rs", n=10)
        pod = _pod_name(b.spec.seed, "log-spool", rs, 0)
        b.pod("logging", pod, node, "ReplicaSet", f"log-spool-{rs}", container="spool", limit=512 * MIB,
              usage=np.full(b.T(), 120 * MIB) + b.noise(1 * MIB), alive=h < evicted)
    at = b.out.at
    return {"name": "inode exhaustion -> DiskPressure (95 % of inodes)", "entity": f"node/{node}",
            "failure_at": at(fail), "static_alert_at": at(fail), "resolved_at": at(evicted),
            "expected_action": "advise", "trend": True, "signal": "node_filesystem_inodes_usage_ratio"}


def _exporters_of(node: str, b: _Builder) -> list[tuple[str, dict[str, str]]]:
    """(series name prefix, labels) of what the node's own exporters export: node-exporter,
    cAdvisor (its kubelet, whose ``instance`` is the node's name here) and dcgm-exporter."""
    return [("node_", b.node_exporter(node)), ("container_", {"instance": node}), ("DCGM_", {"Hostname": node})]


def _dcgm_pod(seed: int, node: str, k: int) -> str:
    """The name of the k-th dcgm-exporter pod on ``node`` (a DaemonSet's: one per node)."""
    return f"nvidia-dcgm-exporter-{_hex(seed, 'dcgm', node, k, n=5)}"


def _dcgm_exporter(b: _Builder, node: str, pod: str, alive: np.ndarray) -> None:
    b.pod("gpu-operator", pod, node, "DaemonSet", "nvidia-dcgm-exporter", container="nvidia-dcgm-exporter",
          limit=1 * GIB, usage=np.full(b.T(), 300 * MIB) + b.noise(2 * MIB), alive=alive)
    if "pod/gpu-operator/nvidia-dcgm-exporter-*" not in b.out.decoys:
        b.out.decoys.append("pod/gpu-operator/nvidia-dcgm-exporter-*")


# dcgm_fields.h: what DCGM writes for a field it has no value for (written here from the header,
# not imported from aiops.config.signals, so the fixture checks the daemon's constants).
DCGM_INT32_BLANK = 0x7FFFFFF0
DCGM_INT64_NOT_SUPPORTED = 0x7FFFFFFFFFFFFFF2
DCGM_FP64_BLANK = 2.0**47
UINT32_MAX = 4294967295


def _exporter_garbage(b: _Builder, node: str, o: float) -> None:
    """Impossible values from dcgm-exporter on a healthy node, as real ones report them:
    GPU 1's utilisation reads UINT32_MAX three times and 151234 once (NVIDIA/DCGM#199), and its
    framebuffer use DCGM's int32 blank for 10 min; GPU 3's power draw reads the fp64 blank for
    18 min (under the fine-tuning Job, where a profile runs one); and the node's GPUs report the
    row-remap fields as "not supported" (int64) throughout, as GPUs without row remapping do. A blank
    ROW_REMAP_FAILURE read as a number once evacuated a healthy node. Nothing here is an incident."""
    gpu = {"Hostname": node}
    for at in (0.7, 3.2, 7.5):
        b.overwrite("DCGM_FI_DEV_GPU_UTIL", {**gpu, "gpu": "1"}, o + at, o + at + 1 / 60, UINT32_MAX)
    b.overwrite("DCGM_FI_DEV_GPU_UTIL", {**gpu, "gpu": "1"}, o + 5.1, o + 5.1 + 1 / 60, 151234)
    b.overwrite("DCGM_FI_DEV_FB_USED", {**gpu, "gpu": "1"}, o + 6.0, o + 6.0 + 10 / 60, DCGM_INT32_BLANK)
    b.overwrite("DCGM_FI_DEV_POWER_USAGE", {**gpu, "gpu": "3"}, o + 4.0, o + 4.0 + 18 / 60, DCGM_FP64_BLANK)
    for name in ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"):
        b.overwrite(name, gpu, -1.0, 1e9, float(DCGM_INT64_NOT_SUPPORTED))
    b.out.decoys.append(f"node/{node}")


def _kube_proxy_crashloop(b: _Builder, node: str, start: float) -> None:
    """kube-proxy (a DaemonSet pod in kube-system) crash-loops for 45 min with the kubelet's
    back-off (10 s doubling to 5 min), then a fixed config brings it back."""
    s, h = b.spec.seed, b.h
    pod = f"kube-proxy-{_hex(s, 'kube-proxy', node, n=5)}"
    times, gap, at = [], 10.0, start
    while at < start + 0.75:
        times.append(at)
        at += (gap + 5) / 3600
        gap = min(gap * 2, 300.0)
    restarts = np.searchsorted(np.asarray(times), h, side="right").astype(float)
    b.pod("kube-system", pod, node, "DaemonSet", "kube-proxy", container="kube-proxy", limit=256 * MIB,
          usage=np.full(b.T(), 40 * MIB) + b.noise(1 * MIB), alive=np.ones(b.T(), bool), restarts=restarts,
          crashloop=b.between(start + 0.5 / 60, start + 0.75))
    b.gauge("kube_pod_container_status_last_terminated_reason",
            {"namespace": "kube-system", "pod": pod, "container": "kube-proxy", "reason": "Error"},
            np.where(h >= start, 1.0, np.nan))
    b.out.decoys.append(f"pod/kube-system/{pod}")


def _rough_telemetry(b: _Builder, *, leak_node: str, oom_h: float, disk_fail_h: float, surge_peak: float,
                     engine_restart: tuple[str, float]) -> None:
    """Telemetry as it is during incidents: the kubelet of the node with the leaking pod misses
    cAdvisor scrapes; kube-state-metrics restarts; node-exporter on the filling node misses a few;
    a vLLM engine restarts in place (its counters reset under the same labels); /metrics of the
    surging model times out at the peak."""
    for a, minutes in ((oom_h - 1.25, 3), (oom_h - 0.75, 4), (oom_h - 0.3, 2)):
        b.scrape_gap("container_", {"instance": leak_node}, a, a + minutes / 60)
    b.scrape_gap("kube_", {}, disk_fail_h - 1.0, disk_fail_h - 1.0 + 3 / 60)
    b.scrape_gap("node_", b.node_exporter("gpu-node-1"), disk_fail_h - 0.5, disk_fail_h - 0.5 + 3 / 60)
    pod, at = engine_restart
    b.counter_reset("vllm:", {"pod": pod}, at + 4 / 60)
    b.scrape_gap("vllm:", {"pod": pod}, at, at + 4 / 60)
    b.scrape_gap("vllm:", {"model_name": "llama-3-8b"}, surge_peak - 0.2, surge_peak - 0.2 + 2 / 60)


def _histogram_p99(b: _Builder, name: str, model: str) -> np.ndarray:
    """``histogram_quantile(0.99, sum by (le) (rate(<name>_bucket{model_name=<model>}[5m])))`` per
    step, as Prometheus computes it: linear within a bucket, the highest finite bound past the last
    one. A series whose counters reset (or that is absent) inside the window adds nothing there."""
    total: np.ndarray | None = None
    bounds: tuple[float, ...] = ()
    for x in b.out.histograms:
        if x.name != name or x.labels.get("model_name") != model:
            continue
        bounds = x.buckets
        delta = _increase_5m(b, x.counts)
        total = delta if total is None else total + delta
    if total is None:
        raise AssertionError(f"no {name} histogram of {model}")
    rank = 0.99 * total[-1]
    upper = np.asarray(bounds)
    lower = np.r_[0.0, upper[:-1]]
    out = np.full(b.T(), np.nan)
    for i in np.flatnonzero(total[-1] > 0):
        k = int(np.searchsorted(total[:, i], rank[i], side="left"))
        if k >= len(upper):
            out[i] = upper[-1]
            continue
        below = total[k - 1, i] if k else 0.0
        span = total[k, i] - below
        out[i] = lower[k] + (upper[k] - lower[k]) * ((rank[i] - below) / span if span > 0 else 1.0)
    return out


def _increase_5m(b: _Builder, counts: np.ndarray) -> np.ndarray:
    """Per step (the last axis), what a counter grew by over the samples in (t - 5m, t], its first
    and last, as ``rate(...[5m])`` reads them; 0 where the window is not full or the counter
    reset (or is absent) inside it."""
    w = max(1, round(300 / b.spec.step_s) - 1)
    delta = np.full(counts.shape, np.nan)
    delta[..., w:] = counts[..., w:] - counts[..., :-w]
    return np.where(np.isfinite(delta) & (delta >= 0), delta, 0.0)


def _mean_over_rate(b: _Builder, duration: str, count: str, labels: dict[str, str], scale: float) -> np.ndarray:
    """``sum(rate(<duration>[5m])) / sum(rate(<count>[5m])) * scale`` per step over the series
    matching ``labels``, as Prometheus computes it (the window as in :func:`_histogram_p99`; a
    series that resets or is absent inside it adds nothing there); NaN where nothing was counted.
    A mean latency from cumulative counters, as Triton and TorchServe export it."""
    totals = []
    for name in (duration, count):
        total = np.zeros(b.T())
        for x in b.out.counters:
            if x.name == name and all(x.labels.get(k) == v for k, v in labels.items()):
                total += _increase_5m(b, x.values)
        totals.append(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals[1] > 0, totals[0] / totals[1] * scale, np.nan)


def _first_held(h: np.ndarray, cond: np.ndarray, hold_h: float) -> float:
    """When an alert with ``for: hold_h`` fires: the condition has held that long."""
    idx = np.flatnonzero(cond)
    for i in idx:
        window = (h >= h[i]) & (h <= h[i] + hold_h + 1e-9)
        if cond[window].all():
            return float(h[i] + hold_h)
    raise AssertionError("the scenario's incident never happens")


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
