"""Profiles of the replay fixture: how one GPU/LLM cluster differs from another.

The defaults of the daemon were first checked against one cluster (:data:`DEFAULT`: UTC+8, an
afternoon traffic peak, vLLM V1 only, three GPU nodes). A default that only holds there is fitted
to that fixture. Each other profile here is a cluster that a real platform team could run, and
that differs from the first in ways the defaults must survive:

- :data:`US_EAST`: UTC-5 with a business-hours traffic shape; a runtime mix (Triton and
  TorchServe models beside vLLM, and an older vLLM that still exports
  ``vllm:time_per_output_token_seconds`` and ``vllm:gpu_cache_usage_perc``); six GPU nodes of
  eight GPUs; an HPA that scales a model out and in (new pod names, counters from zero); a planned
  drain of a node for a kernel upgrade (cordon, evictions, reboot: not an incident); a rollout of
  the dcgm-exporter DaemonSet (GPU series gap, the sticky XID gauge back to 0), scraped without
  honor_labels (the GPUs' pod labels arrive as exported_*); node-exporter scraped at its address
  (``instance`` is 10.x.y.z:9100; node_uname_info names the node); an XID 94 under the TorchServe pod; the
  image filesystem filling instead of the root one; a Triton traffic surge; other incident timings.
- :data:`EU_ROUGH`: UTC+1 with an evening peak; telemetry as it is during incidents (cAdvisor
  scrapes missed on a node under pressure, kube-state-metrics restarting, a vLLM container that
  restarts in place so its counters reset under the same labels, /metrics timeouts at the
  surge's peak); a GPU that falls off the bus whose every series, XID included, vanishes, with a
  slower human response; a kube-system pod crash-looping; a fine-tuning Job running for ten hours
  near its memory limit; a pod's small files exhausting a node's inodes with space to spare
  (DiskPressure at nodefs.inodesFree < 5%); other incident timings.
- :data:`AP_AUTOSCALE`: UTC+9 with business hours; a GPU node pool under the cluster-autoscaler.
  A node joins when traffic rises (a new node name, its GPUs and exporters new series, a gemma-2-9b
  replica on it); when traffic falls the autoscaler taints it ``ToBeDeletedByClusterAutoscaler``
  (it does not cordon), evicts its pod, terminates the instance (node-exporter, cAdvisor and dcgm
  vanish while the Node still says Ready for the kubelet's 40 s grace, then Unknown) and deletes
  the Node (every ``kube_node_*`` series of it vanishes). Whole nodes appear and vanish by design:
  routine, not an incident. GPU nodes carry the GPU operator's ``nvidia.com/gpu`` taint throughout;
  node-exporter is scraped at its address, as in us-east (each new node a new IP).

Times are hours after ``HistorySpec.incident_offset_h``. A profile only describes the cluster;
nothing in it is chosen so that the daemon passes. One constraint is kept so that the targets mean
something: every traffic surge takes over an hour from its start to its breach of the objective
(a surge that breaches 20 min after it starts cannot be warned 30 min ahead from any data). The
exception is us-east's Triton surge (traffic triples in 90 min): it breaches 37 min after it
starts and alerts at 42, so its 30-minute warning must come in its first 12 minutes, when demand
runs ~20 % over the usual for the hour. Request counters carry the same noise in every profile
(per-scrape Poisson counts, each model's level differing from day to day, drawn from the seed; see
:mod:`aiops.testing.cluster_history`): a profile does not choose it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AP_AUTOSCALE", "DEFAULT", "EU_ROUGH", "PROFILES", "US_EAST", "IncidentTimes", "Profile", "TrafficShape", "profile"]

# afternoon_peak: trough 04:00, peak 16:00 local (a cosine); business_hours: two humps (10:30 and
# 15:00) with a lunch dip and quiet nights; evening_peak: a consumer app, busiest at 20:30.
TrafficShape = Literal["afternoon_peak", "business_hours", "evening_peak"]


@dataclass(frozen=True)
class IncidentTimes:
    """When each incident builds up and fails, in hours after the incident offset."""

    leak_from_h: float = 5.0  # working set starts climbing
    oom_h: float = 8.5  # reaches the limit: OOMKilled
    disk_from_h: float = 5.0  # log spam / writable layer starts filling the disk
    disk_fill_per_h: float = 0.1  # share of the filesystem per hour
    xid_h: float = 7.0  # the GPU falls off the bus (XID 79)
    # A person cordons, the node is drained, the GPU is back after a reboot, the node is
    # uncordoned: minutes after the XID.
    xid_response_min: tuple[float, float, float, float] = (10.0, 20.0, 50.0, 60.0)
    surge_from_h: float = 9.0  # traffic on llama-3-8b starts climbing
    surge_peak_h: float = 10.5  # and peaks (it holds an hour)
    surge_factor: float = 4.5
    drift_from_h: float = 8.0  # qwen2-7b's accuracy starts dropping
    drift_per_h: float = 0.03
    triton_surge_h: float | None = None  # a surge on the Triton model (profiles with classic servers)
    # XID 94 (a contained ECC error) under the TorchServe pod (profiles with classic servers): its
    # worker is wedged until a person deletes the pod 20 min later (the ReplicaSet replaces it).
    xid94_h: float | None = None
    # A pod's small files exhaust gpu-node-3's inodes (DiskPressure at 95 %), from this hour.
    inode_from_h: float | None = None
    inode_fill_per_h: float = 0.1

    def last_h(self) -> float:
        """The latest instant the incidents need, with their aftermath."""
        ends = [self.oom_h + 0.5, self.xid_h + self.xid_response_min[3] / 60 + 1.0, self.surge_peak_h + 1.5,
                self.drift_from_h + 0.05 / self.drift_per_h + 1.5, self.disk_from_h + 0.5 / self.disk_fill_per_h + 0.5]
        if self.triton_surge_h is not None:
            ends.append(self.triton_surge_h + 3.0)
        if self.xid94_h is not None:
            ends.append(self.xid94_h + 1.5)
        if self.inode_from_h is not None:
            ends.append(self.inode_from_h + 0.5 / self.inode_fill_per_h + 0.5)
        return max(ends)


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    utc_offset_h: float = 8.0  # the cluster's local time: traffic and the nightly CronJob follow it
    traffic: TrafficShape = "afternoon_peak"
    gpu_nodes: int = 3
    gpus_per_node: int = 4
    timing: IncidentTimes = field(default_factory=IncidentTimes)
    # Which filesystem fills: the root (nodefs: DiskPressure at 90 % used, then image GC frees it)
    # or containerd's own disk (imagefs: DiskPressure at 85 %, the culprit pod is evicted).
    disk_mount: Literal["/", "/var/lib/containerd"] = "/"
    # llama-3-8b's servers run an older vLLM: time_per_output_token_seconds,
    # gpu_cache_usage_perc, num_requests_swapped, the older (shorter) bucket lists, no engine label.
    legacy_vllm: bool = False
    # The XID series vanishes with the GPU's other fields a few minutes after the event, and comes
    # back at 0 after the reboot (the driver reloaded).
    xid_series_vanish: bool = False
    classic_servers: bool = False  # a Triton and a TorchServe model
    hpa_model: bool = False  # mistral-7b, scaled between 2 and 4 replicas by an HPA
    planned_drain_h: float | None = None  # kernel upgrade: cordon, evict (PDB: one at a time), reboot, uncordon
    dcgm_rollout_h: float | None = None  # the dcgm-exporter DaemonSet is rolled, node by node
    training_job_h: float | None = None  # a fine-tuning Job starts, runs ten hours near its memory limit
    protected_crashloop_h: float | None = None  # kube-proxy crash-loops for 45 min (kube-system)
    # Scrape gaps and counter resets during the incidents (see the module docstring).
    rough_telemetry: bool = False
    # False: dcgm-exporter is scraped without honor_labels (a plain ServiceMonitor), so Prometheus
    # renames its pod/namespace/container labels to exported_* and sets pod/namespace/container to
    # the exporter's own pod, on every GPU series.
    dcgm_honor_labels: bool = True
    # How node-exporter's ``instance`` reads. "node": relabelled to the node's name, the uname
    # collector off (no node_uname_info). "address": as kube-prometheus-stack scrapes it, the pod's
    # address (hostNetwork: the node's IP and port 9100), with node_uname_info{nodename} naming the node.
    node_exporter_instance: Literal["node", "address"] = "node"
    # A GPU node pool under the cluster-autoscaler: nodes (new names each time) join while traffic
    # is high, serving gemma-2-9b replicas, and are removed when it falls (see AP_AUTOSCALE).
    autoscaled_pool: bool = False
    # dcgm-exporter's impossible values on gpu-node-0, a healthy node (see _exporter_garbage): DCGM's
    # blank sentinels and NVIDIA/DCGM#199's utilisations, with the row-remap fields every GPU exports.
    exporter_garbage: bool = False
    # dcgm-exporter 3.3.6 and later also put the XID code in labels (err_code, err_msg): each new
    # code is a new series, and the one before it stops.
    xid_err_labels: bool = False
    # A GPU in MIG mode (node, index), two slices serving an embedding service: utilisation 0 on
    # every instance (not measured for MIG), framebuffer per instance (see _mig_embedders).
    mig_gpu: tuple[str, int] | None = None
    # When an operator switched that GPU into MIG mode (hours from the start): a whole, idle GPU
    # before, its instances from then on and their pods 10 minutes later. None: MIG throughout.
    mig_from_h: float | None = None

    def needed_hours(self) -> float:
        decoys = [x + 2.0 for x in (self.planned_drain_h, self.dcgm_rollout_h, self.protected_crashloop_h, self.mig_from_h)
                  if x is not None]
        if self.training_job_h is not None:
            decoys.append(self.training_job_h + 10.5)
        return max(12.0, self.timing.last_h(), *decoys)


DEFAULT = Profile()

US_EAST = Profile(
    name="us-east",
    utc_offset_h=-5.0,
    traffic="business_hours",
    gpu_nodes=6,
    gpus_per_node=8,
    timing=IncidentTimes(
        leak_from_h=2.0, oom_h=4.5,  # a faster leak, over 2.5 h
        disk_from_h=6.0, disk_fill_per_h=0.08,  # imagefs: 0.45 -> 0.85 in 5 h
        xid_h=0.5, xid_response_min=(15.0, 30.0, 55.0, 70.0),
        surge_from_h=1.0, surge_peak_h=4.0, surge_factor=3.5,  # a launch at 08:00 local, ramping all morning
        drift_from_h=1.0, drift_per_h=0.02,
        triton_surge_h=5.5,
        xid94_h=9.5,
    ),
    disk_mount="/var/lib/containerd",
    dcgm_honor_labels=False,
    node_exporter_instance="address",
    legacy_vllm=True,
    classic_servers=True,
    hpa_model=True,
    planned_drain_h=13.5,  # 20:30 local
    dcgm_rollout_h=6.5,
    mig_gpu=("gpu-node-4", 6),
    mig_from_h=9.0,
)

EU_ROUGH = Profile(
    name="eu-rough",
    utc_offset_h=1.0,
    traffic="evening_peak",
    gpu_nodes=4,
    gpus_per_node=4,
    timing=IncidentTimes(
        leak_from_h=6.0, oom_h=10.0,  # a slow leak, over 4 h
        disk_from_h=1.0, disk_fill_per_h=0.15,
        xid_h=2.0, xid_response_min=(25.0, 40.0, 80.0, 90.0),
        surge_from_h=3.0, surge_peak_h=7.0, surge_factor=4.0,  # from 16:00 local into the evening peak
        drift_from_h=3.0, drift_per_h=0.04,
        inode_from_h=4.0, inode_fill_per_h=0.12,  # 45 % -> 95 % of the inodes in 4 h 10 min
    ),
    xid_series_vanish=True,
    training_job_h=0.5,
    protected_crashloop_h=2.0,
    rough_telemetry=True,
    exporter_garbage=True,
)

AP_AUTOSCALE = Profile(
    name="ap-autoscale",
    utc_offset_h=9.0,
    traffic="business_hours",
    timing=IncidentTimes(
        leak_from_h=3.0, oom_h=6.0,  # a 3 h leak
        disk_from_h=2.5, disk_fill_per_h=0.12,
        xid_h=4.0, xid_response_min=(5.0, 15.0, 45.0, 55.0),
        surge_from_h=10.5, surge_peak_h=14.0, surge_factor=4.0,  # from 07:30 local, into the morning hump
        drift_from_h=5.0, drift_per_h=0.025,
    ),
    autoscaled_pool=True,
    node_exporter_instance="address",
    xid_err_labels=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (DEFAULT, US_EAST, EU_ROUGH, AP_AUTOSCALE)}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"no replay fixture profile {name!r}; choose one of {', '.join(PROFILES)}") from None
