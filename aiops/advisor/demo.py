"""Known-answer GPU/HPA history for the advisor, as OpenMetrics for a real Prometheus.

Used by the tests (each answer below is asserted) and by ``aiops advise --demo``.

Four workloads, each built so exactly one answer is right:

- ``research/notebook``: holds an A100 80GB at 1-4 % utilisation with 3 GiB loaded -> idle GPU.
- ``serving/embedder``: 12 GiB framebuffer, 10-21 % utilisation -> fits MIG 2g.20gb, 3 per GPU.
- ``serving/chat`` (HPA ``chat``, target 90): p99 latency crosses 100 ms above ~82 % GPU
  utilisation; the 08:00-11:00 UTC peak breaches every day; replicas stay at 8 until 18:00 while
  utilisation sits at 15 % -> HPA target, scale-down and pre-scale advice.
- ``serving/ranker``: 2 GPUs at 55-90 % with 62 GiB loaded -> well sized, no advice.

Plus one GPU no pod holds (unallocated capacity), and ``training/trainer-0`` which requests a GPU
that dcgm-exporter never attributes to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aiops.demo.prometheus import PrometheusServer

SCRAPE_SECONDS = 120
DAYS = 4
A100 = "NVIDIA A100-SXM4-80GB"
FB_TOTAL_MIB = 81920.0
BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0)
SLO = 0.1


@dataclass(frozen=True)
class Gpu:
    uuid: str
    node: str
    index: int
    namespace: str = ""
    pod: str = ""


GPUS = (
    Gpu("GPU-a0", "gpu-node-a", 0, "research", "notebook-6c8d9b7f5d-q2w4z"),
    Gpu("GPU-a1", "gpu-node-a", 1, "serving", "embedder-7f9c8d6b5d-k4x2p"),
    Gpu("GPU-a2", "gpu-node-a", 2, "serving", "chat-5b8d7c9f6d-xk2zq"),
    Gpu("GPU-a3", "gpu-node-a", 3, "serving", "chat-5b8d7c9f6d-r7t9v"),
    Gpu("GPU-b0", "gpu-node-b", 0, "serving", "ranker-8d6f5c7b9d-m2n4p"),
    Gpu("GPU-b1", "gpu-node-b", 1, "serving", "ranker-8d6f5c7b9d-w5x6z"),
    Gpu("GPU-b2", "gpu-node-b", 2),
)


def chat_utilization(hour: np.ndarray) -> np.ndarray:
    """Percent by fractional UTC hour of day: ramp 08-09 to 95, hold to 11, 15 % until 18, else 40."""
    u = np.full(hour.shape, 40.0)
    ramp = (hour >= 8) & (hour < 9)
    u[ramp] = 40 + 55 * (hour[ramp] - 8)
    u[(hour >= 9) & (hour < 11)] = 95
    u[(hour >= 11) & (hour < 18)] = 15
    return u


def chat_p99(util: np.ndarray) -> np.ndarray:
    """Seconds: 50-80 ms up to 80 %, then +10 ms per point (100 ms at 82 %)."""
    return np.where(util <= 80, 0.05 + 0.0015 * np.clip(util - 60, 0, None), 0.08 + 0.01 * (util - 80))


def chat_replicas(hour: np.ndarray) -> np.ndarray:
    """Scales out late (09:30) and back only at 18:00."""
    return np.where((hour >= 9.5) & (hour < 18), 8.0, 3.0)


@dataclass(frozen=True)
class Written:
    path: Path
    start: datetime
    end: datetime


def write_scenario(path: Path, end: datetime, days: int = DAYS, seed: int = 7) -> Written:
    rng = np.random.default_rng(seed)
    end_s = int(end.timestamp()) // SCRAPE_SECONDS * SCRAPE_SECONDS
    t = np.arange(end_s - days * 86400, end_s + 1, SCRAPE_SECONDS, dtype=np.int64)
    hour = (t % 86400) / 3600.0
    n = t.size

    def noise(scale: float) -> np.ndarray:
        return rng.uniform(-scale, scale, n)

    daily = np.sin(2 * np.pi * (hour - 6) / 24)  # peaks at 12:00
    chat_u = chat_utilization(hour)
    util: dict[str, np.ndarray] = {
        "GPU-a0": 2.5 + noise(1.5),
        "GPU-a1": 15.5 + 4.5 * daily + noise(1.0),
        "GPU-a2": chat_u + noise(1.0),
        "GPU-a3": chat_u + noise(1.0),
        "GPU-b0": 72.5 + 15 * daily + noise(2.0),
        "GPU-b1": 72.5 + 15 * daily + noise(2.0),
        "GPU-b2": np.zeros(n),
    }
    fb_gib: dict[str, np.ndarray] = {
        "GPU-a0": 3.0 + noise(0.05),
        "GPU-a1": 11.5 + noise(0.5),
        "GPU-a2": 40 + noise(1.0),
        "GPU-a3": 40 + noise(1.0),
        "GPU-b0": 61 + noise(1.0),
        "GPU-b1": 61 + noise(1.0),
        "GPU-b2": np.zeros(n),
    }
    lines: list[str] = []

    def family(name: str, kind: str, rows: list[tuple[str, np.ndarray]], fmt: Callable[[float], str] = "{:.2f}".format) -> None:
        lines.append(f"# TYPE {name} {kind}\n")
        for labels, values in rows:
            lines.extend(f"{labels} {fmt(v)} {ts}\n" for v, ts in zip(values.tolist(), t.tolist(), strict=True))

    def gpu_labels(metric: str, g: Gpu) -> str:
        pod = f',namespace="{g.namespace}",pod="{g.pod}",container="main"' if g.pod else ""
        return f'{metric}{{gpu="{g.index}",UUID="{g.uuid}",modelName="{A100}",Hostname="{g.node}"{pod}}}'

    util = {g.uuid: np.clip(util[g.uuid], 0, 100) for g in GPUS}
    used = {g.uuid: np.clip(fb_gib[g.uuid], 0, None) * 1024 for g in GPUS}
    free = {g.uuid: FB_TOTAL_MIB - used[g.uuid] for g in GPUS}
    # dcgm-exporter's glitches, as real fleets show them: one utilisation read as UINT32_MAX
    # (NVIDIA/DCGM#199) on the idle notebook's GPU, and a framebuffer field DCGM could not read
    # for one scrape, its int32 blank, on the embedder's. Neither may change any advice.
    util["GPU-a0"][n // 2] = 4294967295.0
    used["GPU-a1"][n // 3] = 2147483632.0
    family("DCGM_FI_DEV_GPU_UTIL", "gauge", [(gpu_labels("DCGM_FI_DEV_GPU_UTIL", g), util[g.uuid]) for g in GPUS], "{:.2f}".format)
    family("DCGM_FI_DEV_FB_USED", "gauge", [(gpu_labels("DCGM_FI_DEV_FB_USED", g), used[g.uuid]) for g in GPUS], "{:.0f}".format)
    family(
        "DCGM_FI_DEV_FB_FREE", "gauge",
        [(gpu_labels("DCGM_FI_DEV_FB_FREE", g), free[g.uuid]) for g in GPUS], "{:.0f}".format,
    )

    hpa = 'namespace="serving",horizontalpodautoscaler="chat"'
    family("kube_horizontalpodautoscaler_status_current_replicas", "gauge",
           [(f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", chat_replicas(hour))], "{:.0f}".format)
    family("kube_horizontalpodautoscaler_spec_min_replicas", "gauge",
           [(f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}}", np.full(n, 2.0))], "{:.0f}".format)
    family("kube_horizontalpodautoscaler_spec_max_replicas", "gauge",
           [(f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", np.full(n, 10.0))], "{:.0f}".format)
    family("kube_horizontalpodautoscaler_info", "gauge", [(
        f'kube_horizontalpodautoscaler_info{{{hpa},scaletargetref_api_version="apps/v1",'
        f'scaletargetref_kind="Deployment",scaletargetref_name="chat"}}', np.ones(n))], "{:.0f}".format)
    family("kube_horizontalpodautoscaler_spec_target_metric", "gauge", [(
        f'kube_horizontalpodautoscaler_spec_target_metric{{{hpa},metric_name="DCGM_FI_DEV_GPU_UTIL",'
        f'metric_target_type="average"}}', np.full(n, 90.0))], "{:.0f}".format)

    requests = [(g.namespace, g.pod) for g in GPUS if g.pod] + [("training", "trainer-0")]
    family("kube_pod_container_resource_requests", "gauge", [(
        f'kube_pod_container_resource_requests{{namespace="{ns}",pod="{pod}",container="main",'
        f'resource="nvidia.com/gpu",unit="integer"}}', np.ones(n)) for ns, pod in requests], "{:.0f}".format)

    _latency_histogram(lines, t, chat_p99(chat_u))
    lines.append("# EOF\n")
    path.write_text("".join(lines), encoding="utf-8")
    return Written(path, datetime.fromtimestamp(int(t[0]), UTC), datetime.fromtimestamp(int(t[-1]), UTC))


def _latency_histogram(lines: list[str], t: np.ndarray, p99: np.ndarray) -> None:
    """98 % of requests fast, 2 % at the target latency: histogram_quantile(0.99) lands in the
    target's bucket (its midpoint), so the p99 Prometheus computes tracks ``p99``."""
    name = "vllm:e2e_request_latency_seconds"
    ids = 'namespace="serving",pod="chat-5b8d7c9f6d-xk2zq",model_name="chat-model"'
    per_scrape = 50.0 * SCRAPE_SECONDS
    edges = np.array(BUCKETS)
    slow_bucket = np.searchsorted(edges, p99)  # first bucket whose le >= p99
    fast = np.cumsum(np.full(t.size, per_scrape * 0.98))
    slow_inc = per_scrape * 0.02
    count = np.cumsum(np.full(t.size, per_scrape))
    total = np.cumsum(per_scrape * 0.98 * 0.02 + slow_inc * p99)
    slow_cum = {i: np.cumsum(np.where(slow_bucket <= i, slow_inc, 0.0)) for i in range(len(BUCKETS))}
    lines.append(f"# TYPE {name} histogram\n")
    for k, ts in enumerate(t.tolist()):
        for i, le in enumerate(BUCKETS):
            fast_part = fast[k] if le >= 0.025 else 0.0
            lines.append(f'{name}_bucket{{{ids},le="{le}"}} {fast_part + slow_cum[i][k]:.0f} {ts}\n')
        lines.append(f'{name}_bucket{{{ids},le="+Inf"}} {count[k]:.0f} {ts}\n')
        lines.append(f"{name}_count{{{ids}}} {count[k]:.0f} {ts}\n")
        lines.append(f"{name}_sum{{{ids}}} {total[k]:.3f} {ts}\n")


def start_demo_prometheus(workdir: Path, end: datetime) -> PrometheusServer:
    """Write the demo history ending at ``end`` under ``workdir`` and start a Prometheus on it."""
    from aiops.demo.prometheus import PrometheusServer

    written = write_scenario(workdir / "advisor-demo.om", end)
    return PrometheusServer(workdir / "prometheus", openmetrics=written.path).start()


def scenario_end(now: datetime | None = None) -> datetime:
    """An hour-aligned end time safely in the past, so the data never overlaps Prometheus's head."""
    now = now or datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
