"""Config of the capacity and cost advisor (``aiops advise`` and the weekly digest).

    advisor:
      window: 7d
      idle_utilization_percent: 30
      currency: EUR
      gpu_classes:              # replaces the built-in list; prices make savings money
        - {name: H100-80GB, match: "*H100*", memory_gib: 80, relative_compute: 989, price_per_hour: 6.9,
           mig_profiles: [{name: 1g.10gb, compute_slices: 1, memory_gib: 10, max_instances: 7}]}
        - {name: L4, match: "*L4", memory_gib: 24, relative_compute: 121, price_per_hour: 0.8,
           node_selector: {nvidia.com/gpu.product: NVIDIA-L4}}
      autoscaling: {latency_slo: 100ms, scale_down_utilization_percent: 20, scale_down_after: 10m}
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from aiops.config.base import Duration, StrictModel


class MigProfile(StrictModel):
    """One MIG instance profile of a GPU class, e.g. ``1g.10gb`` on an A100 80GB."""

    name: str = Field(min_length=1)
    # Compute slices out of ``GpuClass.compute_slices`` (the "1g" in 1g.10gb).
    compute_slices: int = Field(ge=1)
    memory_gib: float = Field(gt=0)
    # How many instances of this profile one GPU can hold.
    max_instances: int = Field(ge=1)


class GpuClass(StrictModel):
    """A GPU class the cluster offers (or could offer): what it holds and what it costs."""

    name: str = Field(min_length=1)
    # fnmatch pattern (case-insensitive) against dcgm-exporter's ``modelName`` label.
    match: str = Field(min_length=1)
    memory_gib: float = Field(gt=0)
    # Any consistent throughput scale (dense FP16 tensor TFLOPS by default): a workload at u % of a
    # class with compute c would run at u * c / c' % of a class with compute c'.
    relative_compute: float = Field(gt=0)
    price_per_hour: float | None = Field(default=None, ge=0)
    # The node label value that selects this class (nodeSelector in the suggested change).
    node_selector: dict[str, str] = Field(default_factory=dict)
    compute_slices: int = Field(default=7, ge=1)
    mig_profiles: list[MigProfile] = Field(default_factory=list)


def _mig(*profiles: tuple[str, int, float, int]) -> list[MigProfile]:
    return [MigProfile(name=n, compute_slices=g, memory_gib=m, max_instances=k) for n, g, m, k in profiles]


def default_gpu_classes() -> list[GpuClass]:
    # Profiles from NVIDIA's MIG user guide ("Supported MIG profiles"); compute is dense FP16 tensor
    # TFLOPS from the vendor data sheets. Prices are left unset: they differ per cloud and contract.
    product = "nvidia.com/gpu.product"
    return [
        GpuClass(
            name="H200",
            match="*H200*",
            memory_gib=141,
            relative_compute=989,
            node_selector={product: "NVIDIA-H200"},
            mig_profiles=_mig(("1g.18gb", 1, 18, 7), ("2g.35gb", 2, 35, 3), ("3g.71gb", 3, 71, 2), ("4g.71gb", 4, 71, 1)),
        ),
        GpuClass(
            name="H100-80GB",
            match="*H100*",
            memory_gib=80,
            relative_compute=989,
            node_selector={product: "NVIDIA-H100-80GB-HBM3"},
            mig_profiles=_mig(("1g.10gb", 1, 10, 7), ("2g.20gb", 2, 20, 3), ("3g.40gb", 3, 40, 2), ("4g.40gb", 4, 40, 1)),
        ),
        GpuClass(
            name="A100-80GB",
            match="*A100*80GB*",
            memory_gib=80,
            relative_compute=312,
            node_selector={product: "NVIDIA-A100-SXM4-80GB"},
            mig_profiles=_mig(("1g.10gb", 1, 10, 7), ("2g.20gb", 2, 20, 3), ("3g.40gb", 3, 40, 2), ("4g.40gb", 4, 40, 1)),
        ),
        GpuClass(
            name="A100-40GB",
            match="*A100*40GB*",
            memory_gib=40,
            relative_compute=312,
            node_selector={product: "NVIDIA-A100-SXM4-40GB"},
            mig_profiles=_mig(("1g.5gb", 1, 5, 7), ("2g.10gb", 2, 10, 3), ("3g.20gb", 3, 20, 2), ("4g.20gb", 4, 20, 1)),
        ),
        GpuClass(
            name="L40S", match="*L40S*", memory_gib=48, relative_compute=362, node_selector={product: "NVIDIA-L40S"}
        ),
        GpuClass(name="L4", match="*L4", memory_gib=24, relative_compute=121, node_selector={product: "NVIDIA-L4"}),
        GpuClass(name="T4", match="*T4", memory_gib=16, relative_compute=65, node_selector={product: "Tesla-T4"}),
    ]


class AutoscalingAdvice(StrictModel):
    """How HPA history is judged."""

    # Latency objective on the p99 of the signal below (the users' SLO: 100 ms).
    latency_slo: Duration = timedelta(milliseconds=100)
    # A signal name from the catalog (or the config's signals) giving p99 latency in seconds per model.
    latency_signal: str = "inference_latency_p99"
    # Which pods serve which model (labels: namespace, pod, and the latency signal's model label);
    # it ties a model's latency to the workload an HPA scales.
    model_pods_query: str = "max by (namespace, pod, model_name) (vllm:e2e_request_latency_seconds_count)"
    # The recommended scale-up target sits this many utilisation points below the breach knee.
    target_margin_percent: float = Field(default=10.0, ge=0, le=50)
    # The users' lesson: scale down after < 20 % for 10 min, with a 5-minute stabilisation window.
    scale_down_utilization_percent: float = Field(default=20.0, gt=0, le=100)
    scale_down_after: Duration = timedelta(minutes=10)
    scale_down_stabilization: Duration = timedelta(minutes=5)
    # A breach hour-of-day that recurs on at least this many distinct days is a predictable peak.
    min_peak_days: int = Field(default=3, ge=2)
    # How long before a predictable peak the scale-ahead remediation should add replicas.
    prescale_lead: Duration = timedelta(minutes=15)


class DigestSchedule(StrictModel):
    """When the weekly digest is due: the first cycle at or after this weekday and hour (UTC)."""

    enabled: bool = True
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = "monday"
    hour_utc: int = Field(default=9, ge=0, le=23)

    @property
    def weekday_index(self) -> int:
        return ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday").index(self.weekday)


class AdvisorConfig(StrictModel):
    # How much history one report covers, and the resolution it reads it at.
    window: Duration = timedelta(days=7)
    step: Duration = timedelta(minutes=5)
    # Each query reads at most this much of the window, so one query stays under Prometheus's
    # --query.max-samples on a large fleet (lower it if Prometheus says "too many samples").
    query_chunk: Duration = timedelta(days=1)
    # A GPU-step below this utilisation counts as idle.
    idle_utilization_percent: float = Field(default=30.0, gt=0, le=100)
    # A workload idle for at least this share of its GPU-hours gets a "release the GPU" recommendation.
    idle_share_to_recommend: float = Field(default=0.8, gt=0, le=1)
    # Observed peaks are multiplied by this before checking that they fit a smaller GPU or MIG slice.
    headroom: float = Field(default=1.2, ge=1.0, le=3.0)
    # The peak compute utilisation a workload may reach on its new, smaller GPU class.
    max_utilization_after_move_percent: float = Field(default=80.0, gt=0, le=100)
    # Below both of these peaks, a workload does no GPU work worth a GPU: it can run on CPU nodes.
    cpu_max_utilization_percent: float = Field(default=5.0, ge=0, le=100)
    cpu_max_memory_gib: float = Field(default=1.0, ge=0)
    # Peaks use this quantile of the step values (1.0 = the maximum; framebuffer always uses the max).
    compute_peak_quantile: float = Field(default=0.99, gt=0.5, le=1.0)
    currency: str = "USD"
    # Labels that carry the pod holding a GPU on dcgm-exporter series ("exported_" + these, set
    # when the scrape config does not honor labels, take precedence).
    gpu_pod_label: str = "pod"
    gpu_namespace_label: str = "namespace"
    gpu_classes: list[GpuClass] = Field(default_factory=default_gpu_classes)
    autoscaling: AutoscalingAdvice = AutoscalingAdvice()
    # Where ``aiops advise`` writes report.md, report.html, advice.json and the charts.
    output_dir: Path = Path("aiops-advice")
    # The weekly digest lists at most this many recommendations (largest saving first).
    digest_max_items: int = Field(default=10, ge=1, le=100)
    digest: DigestSchedule = DigestSchedule()

    @model_validator(mode="after")
    def _check(self) -> AdvisorConfig:
        if self.step.total_seconds() < 15:
            raise ValueError("advisor.step must be at least 15s")
        if self.window < self.step * 12:
            raise ValueError("advisor.window must cover at least 12 steps")
        if self.query_chunk < self.step:
            raise ValueError("advisor.query_chunk must be at least one step")
        names = [c.name for c in self.gpu_classes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"advisor.gpu_classes names must be unique, repeated: {', '.join(dupes)}")
        return self
