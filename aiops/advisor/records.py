"""The advisor's records: history read from Prometheus, usage figures, and recommendations.

Arrays share one step-aligned time grid (``History.timestamps``); a missing sample is NaN, so
a GPU that changed hands mid-window is two tracks, each NaN outside its own time.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from aiops.model import Entity, EntityKind

MIB_PER_GIB = 1024.0


@dataclass(frozen=True)
class GpuTrack:
    """One GPU as held by one pod (``pod`` empty: the GPU was not allocated to any pod)."""

    uuid: str
    node: str
    gpu: str
    model_name: str
    namespace: str
    pod: str
    workload: Entity | None
    utilization: np.ndarray  # percent, per grid step (mean over the step)
    fb_used_gib: np.ndarray  # peak over the step
    fb_total_gib: float
    # DCGM_FI_PROF_SM_ACTIVE in percent (share of SMs busy), when the profiling metrics are exported:
    # a truer measure of the compute a workload needs than GPU_UTIL (share of time any kernel ran).
    sm_active: np.ndarray | None = None

    @property
    def allocated(self) -> bool:
        return bool(self.pod)


@dataclass(frozen=True)
class HpaTrack:
    namespace: str
    name: str
    target: Entity  # the scaled workload (scaleTargetRef), or a deployment named like the HPA
    current_replicas: np.ndarray
    min_replicas: int
    max_replicas: int
    # The HPA's configured target for its first metric, when kube-state-metrics exports it.
    target_value: float | None = None
    target_metric: str = ""

    @property
    def entity(self) -> Entity:
        return Entity(EntityKind.HPA, self.name, self.namespace)


@dataclass(frozen=True)
class LatencyTrack:
    """p99 latency of one model, and the workloads whose pods serve it."""

    namespace: str
    model: str
    p99_seconds: np.ndarray
    workloads: frozenset[Entity]


@dataclass(frozen=True)
class History:
    start: datetime
    end: datetime
    step_seconds: float
    timestamps: np.ndarray
    gpus: tuple[GpuTrack, ...]
    hpas: tuple[HpaTrack, ...] = ()
    latencies: tuple[LatencyTrack, ...] = ()
    # GPUs requested (kube_pod_container_resource_requests, nvidia.com/gpu) per workload and step.
    requested: Mapping[Entity, np.ndarray] = field(default_factory=dict)
    # What was asked for and came back empty (metric not exported), in words for the report.
    gaps: tuple[str, ...] = ()

    @property
    def step_hours(self) -> float:
        return self.step_seconds / 3600.0

    @property
    def window_hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0

    @property
    def covered_hours(self) -> float:
        """From the first to the last step with any GPU sample: what savings are measured over."""
        seen = np.zeros(self.timestamps.shape, dtype=bool)
        for t in self.gpus:
            seen |= np.isfinite(t.utilization)
        idx = np.flatnonzero(seen)
        return float(idx[-1] - idx[0] + 1) * self.step_hours if idx.size else 0.0


@dataclass(frozen=True)
class Usage:
    """GPU usage of one workload, node or GPU over the window."""

    entity: Entity
    gpu_class: str  # the configured class its GPUs belong to ("" when none matches)
    model_name: str
    gpus: int  # most GPUs held at once
    gpu_hours: float
    idle_gpu_hours: float
    mean_utilization: float  # percent
    peak_utilization: float  # percent, at the configured quantile
    peak_fb_gib: float  # the largest framebuffer use of any one of its GPUs
    mean_fb_gib: float
    fb_total_gib: float  # framebuffer of one of its GPUs (what each GPU allocates)
    price_per_hour: float | None = None  # of its GPU class, when configured
    # The compute it needs at peak, percent of one GPU, for sizing; and the metric it came from.
    peak_compute: float = math.nan
    compute_source: str = "DCGM_FI_DEV_GPU_UTIL"
    # GPU-hours its pods requested (kube-state-metrics); NaN when requests were not exported.
    requested_gpu_hours: float = math.nan

    @property
    def idle_share(self) -> float:
        return self.idle_gpu_hours / self.gpu_hours if self.gpu_hours else 0.0

    def cost_of(self, gpu_hours: float) -> float | None:
        return None if self.price_per_hour is None else gpu_hours * self.price_per_hour

    @property
    def idle_cost(self) -> float | None:
        return self.cost_of(self.idle_gpu_hours)


class Kind(enum.StrEnum):
    MOVE_TO_CPU = "move_to_cpu"
    IDLE_GPU = "idle_gpu"
    SMALLER_GPU = "smaller_gpu"
    MIG = "mig"
    HPA_TARGET = "hpa_target"
    HPA_SCALE_DOWN = "hpa_scale_down"
    PRESCALE = "prescale"


@dataclass(frozen=True)
class Saving:
    """Expected saving over the analysed window, and the same rate over 30 days."""

    gpu_hours: float = 0.0
    cost: float | None = None
    breach_minutes: float = 0.0
    per_month_factor: float = 1.0  # 30 days / window

    @property
    def gpu_hours_per_month(self) -> float:
        return self.gpu_hours * self.per_month_factor

    @property
    def cost_per_month(self) -> float | None:
        return None if self.cost is None else self.cost * self.per_month_factor


@dataclass(frozen=True)
class Recommendation:
    kind: Kind
    target: Entity
    title: str
    evidence: str  # the numbers that justify it, in words an engineer can check
    saving: Saving
    change: str  # the exact change: a values/manifest snippet
    command: str = ""  # the kubectl equivalent, when there is one
    change_format: str = "yaml"  # "yaml" (a manifest/values snippet) or "sh" (commands)
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target.key}"


@dataclass(frozen=True)
class MigPacking:
    """Workloads of one GPU class that fit MIG slices, and what packing them together would give."""

    gpu_class: str
    profile: str  # the profiles involved, comma-separated
    workloads: tuple[Entity, ...]
    gpus_now: int
    gpus_packed: int
    utilization_now: float  # mean utilisation of the GPUs they hold now, percent
    utilization_packed: float  # estimated, of the GPUs after packing


@dataclass(frozen=True)
class LatencyCurve:
    """p99 latency as a function of GPU utilisation, fitted (monotone) from one HPA's history."""

    hpa: Entity
    model: str
    utilization: np.ndarray  # the observed pairs
    p99_seconds: np.ndarray
    grid: np.ndarray  # 0..100
    fitted_p99_seconds: np.ndarray
    knee_utilization: float | None  # where the fitted p99 first exceeds the SLO


@dataclass(frozen=True)
class HpaSummary:
    """One HPA as history shows it, whatever is recommended for it."""

    hpa: Entity
    target: Entity
    min_replicas: int
    max_replicas: int
    metric: str
    target_value: float | None
    knee_utilization: float | None
    recommended_target: int | None
    breach_minutes: float  # NaN without latency history
    wasted_gpu_hours: float


@dataclass(frozen=True)
class Advice:
    """The whole report: usage tables, recommendations, and the history figures for charts."""

    generated_at: datetime
    history: History
    currency: str
    latency_slo_seconds: float
    idle_threshold: float
    workloads: tuple[Usage, ...]
    nodes: tuple[Usage, ...]
    unallocated: tuple[Usage, ...]
    recommendations: tuple[Recommendation, ...]
    packings: tuple[MigPacking, ...] = ()
    curves: tuple[LatencyCurve, ...] = ()
    hpas: tuple[HpaSummary, ...] = ()
    # Per workload: which classes it fits and which it needs ("needs H100-80GB").
    tiering: Mapping[str, str] = field(default_factory=dict)
    # What the analyses could not judge and why (gaps in the history are in ``history.gaps``).
    notes: tuple[str, ...] = ()

    @property
    def caveats(self) -> tuple[str, ...]:
        return (*self.history.gaps, *self.notes)

    def of_kind(self, kind: Kind) -> list[Recommendation]:
        return [r for r in self.recommendations if r.kind == kind]

    def for_target(self, target: Entity) -> list[Recommendation]:
        return [r for r in self.recommendations if r.target == target]

    @property
    def total_saving(self) -> Saving:
        """Savings summed over targets; alternatives for one target (MIG or a smaller GPU) count once."""
        gpu_hours: dict[Entity, float] = {}
        costs: dict[Entity, float] = {}
        breach: dict[Entity, float] = {}
        for r in self.recommendations:
            gpu_hours[r.target] = max(gpu_hours.get(r.target, 0.0), r.saving.gpu_hours)
            breach[r.target] = max(breach.get(r.target, 0.0), r.saving.breach_minutes)
            if r.saving.cost is not None:
                costs[r.target] = max(costs.get(r.target, 0.0), r.saving.cost)
        factor = self.recommendations[0].saving.per_month_factor if self.recommendations else 1.0
        return Saving(
            gpu_hours=sum(gpu_hours.values()),
            cost=sum(costs.values()) if costs else None,
            breach_minutes=sum(breach.values()),
            per_month_factor=factor,
        )
