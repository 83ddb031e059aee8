"""Synthetic cluster history as OpenMetrics text, for tests, benchmarks and ``aiops demo``.

A :class:`Scenario` (seeded, so the same scenario always gives the same bytes for the same end
time) describes a cluster — nodes, GPUs, workload pods, vLLM model servers — and the faults to
inject. :func:`write_openmetrics` streams its history to a file that ``promtool tsdb
create-blocks-from openmetrics`` accepts: one ``# TYPE`` line per family, each family's samples
together, counters monotonic except at injected resets, ``# EOF`` at the end.

Metric names and labels are exactly those that :mod:`aiops.config.catalog` queries
(kube-state-metrics, cAdvisor, node-exporter scraped at its address with ``node_uname_info``
naming the node, dcgm-exporter, vLLM
V1, model quality gauges), plus ``kube_pod_info``/``kube_pod_owner``/``kube_replicaset_owner``
for topology. Values follow a diurnal load curve with noise; every fault is anchored to the end
of the data so a detector run "now" sees it at a known distance.

Generation is vectorised per metric family over all its series (numpy), and rows are formatted
in chunks, so the 100k-series benchmark streams to disk without holding the history in memory.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO, TypeVar

import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator
from scipy.special import ndtr

from aiops.config.base import Duration, StrictModel
from aiops.errors import PermanentError

if TYPE_CHECKING:
    from aiops.demo.prometheus import PrometheusServer

__all__ = [
    "AccuracyDrift",
    "CounterReset",
    "CrashLoop",
    "ExporterGarbage",
    "FilesystemFill",
    "GpuRemappedRows",
    "GpuXid",
    "LatencyRegression",
    "MemoryLeak",
    "OomKill",
    "Scenario",
    "ScenarioError",
    "SynthResult",
    "Topology",
    "demo_scenario",
    "load_scenario",
    "start_demo_prometheus",
    "write_openmetrics",
]

GIB = 1024**3
MIB = 1024**2
DAY = 86400.0
GPU_FB_MIB = 81920.0  # A100/H100 80 GB, in MiB as dcgm-exporter reports it
GPU_MODEL = "NVIDIA A100-SXM4-80GB"
# Finer than vLLM's default buckets (which start at 0.3 s) so a p99 around 100 ms is resolvable.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_SIGMA = 0.3  # lognormal shape: p99 ≈ 2 × median
# vLLM V1's own inter-token latency buckets (vllm/v1/metrics/loggers.py).
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0)
# Median gap between streamed tokens at the daily mean load (p99 ≈ 2 × median), and how many
# tokens a request streams: each gap is one observation.
ITL_MEDIAN = 0.025
TOKENS_PER_REQUEST = 200
CPU_MODES = ("idle", "user", "system", "iowait")
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
MOUNTS = (  # (mountpoint, device, fstype, size)
    ("/", "/dev/nvme0n1p1", "ext4", 200 * GIB),
    ("/var/lib/containerd", "/dev/nvme1n1", "xfs", 1024 * GIB),
    ("/run", "tmpfs", "tmpfs", 16 * GIB),
)
WORKLOAD_NAMESPACE = "shop"
MODEL_NAMESPACE = "inference"
_APPS = ("api", "web", "worker", "cache", "ingest", "search", "auth", "billing")
_MODELS = ("llama-3-8b", "qwen2-7b", "mistral-7b", "gemma-2-9b", "phi-3-mini", "deepseek-7b")


class ScenarioError(PermanentError, ValueError):
    """A scenario file or fault refers to something that does not exist; says what does."""


# --- faults ---------------------------------------------------------------------------------
# Targets are an index into the generated list (0 = first) or an exact generated name.
Target = int | str
_Spec = TypeVar("_Spec")  # NodeSpec, PodSpec, GpuSpec or ModelSpec


class MemoryLeak(StrictModel):
    """A container's working set climbs linearly and reaches its limit after the data ends."""

    kind: Literal["memory_leak"] = "memory_leak"
    pod: Target
    starts_before_end: Duration = timedelta(hours=3)
    crosses_limit_after_end: Duration = timedelta(minutes=45)


class GpuXid(StrictModel):
    """dcgm-exporter reports an XID (79 = fallen off the bus); the GPU stops working."""

    kind: Literal["gpu_xid"] = "gpu_xid"
    gpu: Target
    xid: int = 79
    at_before_end: Duration = timedelta(minutes=20)


class GpuRemappedRows(StrictModel):
    """Uncorrectable ECC errors: remapped rows (and DBE counters) rise from a point on."""

    kind: Literal["gpu_remapped_rows"] = "gpu_remapped_rows"
    gpu: Target
    starts_before_end: Duration = timedelta(hours=2)
    rows_per_hour: float = Field(default=2.0, gt=0)


class LatencyRegression(StrictModel):
    """A model's p99 latency (time to first token, and end-to-end with it) ramps up to
    ``p99_seconds`` at the end of the data."""

    kind: Literal["latency_regression"] = "latency_regression"
    model: Target
    starts_before_end: Duration = timedelta(minutes=90)
    p99_seconds: float = Field(default=0.25, gt=0)


class AccuracyDrift(StrictModel):
    """Accuracy drifts down by ``drop`` (relative) and conversion by ``conversion_drop`` with it.

    ``replicas`` (indexes among the model's serving pods) limits the drift to those replicas, as
    when one replica sits on a sick node; conversion then drops by the share of replicas hit.
    """

    kind: Literal["accuracy_drift"] = "accuracy_drift"
    model: Target
    starts_before_end: Duration = timedelta(hours=4)
    drop: float = Field(default=0.07, gt=0, lt=1)
    conversion_drop: float = Field(default=0.05, ge=0, lt=1)
    replicas: list[int] | None = None


class FilesystemFill(StrictModel):
    """A node filesystem fills linearly and is full after the data ends."""

    kind: Literal["filesystem_fill"] = "filesystem_fill"
    node: Target
    mountpoint: str = "/var/lib/containerd"
    starts_before_end: Duration = timedelta(hours=6)
    full_after_end: Duration = timedelta(minutes=50)


class CrashLoop(StrictModel):
    """A container exits with Error and restarts with kubelet's back-off (10 s doubling to 5 min)."""

    kind: Literal["crash_loop"] = "crash_loop"
    pod: Target
    starts_before_end: Duration = timedelta(minutes=40)


class OomKill(StrictModel):
    """The working set climbs to the limit and the container is OOMKilled, then restarts."""

    kind: Literal["oom_kill"] = "oom_kill"
    pod: Target
    at_before_end: Duration = timedelta(minutes=30)
    climb: Duration = timedelta(hours=1)  # how long the working set climbs before the kill


class CounterReset(StrictModel):
    """The node's exporters and vLLM pods restart: their counters start again from zero."""

    kind: Literal["counter_reset"] = "counter_reset"
    node: Target
    at_before_end: Duration = timedelta(hours=2)


class ExporterGarbage(StrictModel):
    """A healthy GPU whose dcgm-exporter writes values no GPU can have: one DCGM_FI_DEV_GPU_UTIL
    of 4294967295 (NVIDIA/DCGM#199), and DCGM's blanks for fields it has no value for (the fp64
    blank 2^47 for the power draw, the int64 "not supported" for the row remap flag) throughout.
    Nothing is wrong with the GPU: the daemon must neither page nor act (aiops/collect/plausible.py)."""

    kind: Literal["exporter_garbage"] = "exporter_garbage"
    gpu: Target
    at_before_end: Duration = timedelta(minutes=10)


# DCGM's sentinels as dcgm-exporter writes them (dcgm_fields.h).
DCGM_FP64_BLANK = 140737488355328.0
DCGM_INT64_NOT_SUPPORTED = 0x7FFFFFFFFFFFFFF2
UINT32_MAX = 0xFFFFFFFF

Fault = Annotated[
    MemoryLeak
    | GpuXid
    | GpuRemappedRows
    | LatencyRegression
    | AccuracyDrift
    | FilesystemFill
    | CrashLoop
    | OomKill
    | CounterReset
    | ExporterGarbage,
    Field(discriminator="kind"),
]


class Scenario(StrictModel):
    """A synthetic cluster and its faults. ``end`` None means now, aligned down to ``step``."""

    seed: int = 7
    nodes: int = Field(default=3, ge=1)
    gpu_nodes: int = Field(default=2, ge=0)  # the first ``gpu_nodes`` nodes carry GPUs
    gpus_per_node: int = Field(default=2, ge=0)
    cpus_per_node: int = Field(default=4, ge=1)
    pods: int = Field(default=6, ge=0)  # workload pods (namespace "shop"), spread over nodes
    models: int = Field(default=2, ge=0)
    replicas_per_model: int = Field(default=2, ge=1)  # vLLM pods, one GPU each while GPUs last
    duration: Duration = timedelta(hours=8)
    step: Duration = timedelta(minutes=1)
    end: datetime | None = None
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.gpu_nodes > self.nodes:
            raise ValueError(f"gpu_nodes ({self.gpu_nodes}) cannot exceed nodes ({self.nodes})")
        if self.step.total_seconds() < 1 or self.duration < self.step:
            raise ValueError("step must be at least 1s and duration at least one step")
        if self.end is not None and self.end.tzinfo is None:
            raise ValueError("end must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
        return self

    def end_time(self) -> datetime:
        """The last sample's time: ``end`` or now, aligned down to a multiple of ``step``."""
        end = self.end or datetime.now(UTC)
        step = self.step.total_seconds()
        return datetime.fromtimestamp(math.floor(end.timestamp() / step) * step, UTC)

    def timestamps(self) -> np.ndarray:
        step = self.step.total_seconds()
        end = self.end_time().timestamp()
        n = int(self.duration.total_seconds() // step) + 1
        return end - step * np.arange(n - 1, -1, -1, dtype=np.float64)

    @classmethod
    def sized(cls, series: int, **overrides: Any) -> Scenario:
        """A scenario of about ``series`` series, grown by adding nodes (each with GPUs and pods)."""
        base = {"gpus_per_node": 8, "cpus_per_node": 8, **overrides}
        one = cls(nodes=1, gpu_nodes=1, pods=20, models=1, replicas_per_model=8, **base)
        per_node = Topology.build(one).series_count()
        nodes = max(1, round(series / per_node))
        models = max(1, min(len(_MODELS) * 4, nodes))
        replicas = max(1, 8 * nodes // models)
        sized = cls(nodes=nodes, gpu_nodes=nodes, pods=20 * nodes, models=models, replicas_per_model=replicas, **base)
        got = Topology.build(sized).series_count()
        if got > 1.1 * series and replicas > 1:
            # Whole nodes are coarse steps at small sizes: trim serving replicas (their histograms
            # are the largest share) to land closer.
            replicas = max(1, round(replicas * series / got))
            sized = sized.model_copy(update={"replicas_per_model": replicas})
        return sized


def load_scenario(source: str | Path | dict[str, Any]) -> Scenario:
    """Load a scenario from a YAML file or a mapping; errors name the offending key."""
    data = source
    if not isinstance(source, dict):
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ScenarioError(f"invalid scenario {source if not isinstance(source, dict) else ''}: {problems}") from None


# --- topology ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpus: int
    memory_bytes: float
    phase: float  # of the diurnal curve, in days


@dataclass(frozen=True)
class GpuSpec:
    node: str
    index: int
    uuid: str
    pod: PodSpec | None = None


@dataclass(frozen=True)
class PodSpec:
    namespace: str
    name: str
    container: str
    node: str
    replicaset: str
    deployment: str
    memory_limit: float
    cpu_limit: float
    memory_fraction: float  # typical working set / limit
    model: str | None = None  # served model for vLLM pods
    rps: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    namespace: str
    name: str
    accuracy: float
    conversion: float
    median_latency: float


def _hexname(seed: int, *parts: object, length: int = 10) -> str:
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()
    return digest[:length]


def _pod_suffix(seed: int, *parts: object) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated names
    n = int(_hexname(seed, *parts, length=12), 16)
    return "".join(alphabet[(n // len(alphabet) ** i) % len(alphabet)] for i in range(5))


@dataclass(frozen=True)
class Topology:
    """The generated cluster: names and per-entity parameters, deterministic in the seed."""

    scenario: Scenario
    nodes: tuple[NodeSpec, ...]
    gpus: tuple[GpuSpec, ...]
    pods: tuple[PodSpec, ...]
    models: tuple[ModelSpec, ...]

    @classmethod
    def build(cls, sc: Scenario) -> Topology:
        rng = np.random.default_rng([sc.seed, 1])
        nodes = tuple(
            NodeSpec(
                name=f"node-{i}",
                cpus=sc.cpus_per_node,
                memory_bytes=(512 if i < sc.gpu_nodes else 64) * GIB,
                phase=float(rng.uniform(-0.02, 0.02)),
            )
            for i in range(sc.nodes)
        )
        models = tuple(
            ModelSpec(
                namespace=MODEL_NAMESPACE,
                name=_MODELS[i % len(_MODELS)] + (f"-{i // len(_MODELS)}" if i >= len(_MODELS) else ""),
                accuracy=float(rng.uniform(0.90, 0.95)),
                conversion=float(rng.uniform(0.03, 0.05)),
                median_latency=float(rng.uniform(0.03, 0.04)),
            )
            for i in range(sc.models)
        )
        pods: list[PodSpec] = []
        limits = np.array([256, 512, 1024, 2048, 4096]) * MIB
        for i in range(sc.pods):
            deployment = _APPS[i % len(_APPS)] + (f"-{i // len(_APPS)}" if i >= len(_APPS) else "")
            rs = f"{deployment}-{_hexname(sc.seed, deployment)}"
            pods.append(
                PodSpec(
                    namespace=WORKLOAD_NAMESPACE,
                    name=f"{rs}-{_pod_suffix(sc.seed, 'pod', i)}",
                    container=deployment.split("-")[0],
                    node=nodes[i % sc.nodes].name,
                    replicaset=rs,
                    deployment=deployment,
                    memory_limit=float(limits[rng.integers(len(limits))]),
                    cpu_limit=float(rng.choice([0.5, 1.0, 2.0])),
                    memory_fraction=float(rng.uniform(0.3, 0.6)),
                )
            )
        gpu_slots = [(n.name, g) for n in nodes[: sc.gpu_nodes] for g in range(sc.gpus_per_node)]
        model_pods: list[PodSpec] = []
        for m, model in enumerate(models):
            rs = f"{model.name}-{_hexname(sc.seed, model.name)}"
            for r in range(sc.replicas_per_model):
                k = len(model_pods)
                node = gpu_slots[k][0] if k < len(gpu_slots) else nodes[k % sc.nodes].name
                model_pods.append(
                    PodSpec(
                        namespace=MODEL_NAMESPACE,
                        name=f"{rs}-{_pod_suffix(sc.seed, 'vllm', m, r)}",
                        container="vllm",
                        node=node,
                        replicaset=rs,
                        deployment=model.name,
                        memory_limit=64.0 * GIB,
                        cpu_limit=8.0,
                        memory_fraction=float(rng.uniform(0.35, 0.5)),
                        model=model.name,
                        rps=float(rng.uniform(4.0, 12.0)),
                    )
                )
        gpus = tuple(
            GpuSpec(
                node=node,
                index=g,
                uuid="GPU-"
                + "-".join(
                    _hexname(sc.seed, "gpu", node, g, length=32)[a:b]
                    for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
                ),
                pod=model_pods[k] if k < len(model_pods) else None,
            )
            for k, (node, g) in enumerate(gpu_slots)
        )
        return cls(sc, nodes, gpus, tuple(pods + model_pods), models)

    # --- lookups for fault targets --------------------------------------------------------
    def _pick(self, what: str, items: Sequence[_Spec], target: Target, key: Callable[[_Spec], str]) -> _Spec:
        if isinstance(target, int):
            if 0 <= target < len(items):
                return items[target]
            raise ScenarioError(f"{what} index {target} is out of range: the scenario has {len(items)} {what}s")
        for item in items:
            if key(item) == target:
                return item
        names = ", ".join(key(i) for i in items[:8])
        raise ScenarioError(f"no {what} named {target!r}; use an index or one of: {names}")

    def node(self, target: Target) -> NodeSpec:
        return self._pick("node", self.nodes, target, lambda n: n.name)

    def pod(self, target: Target) -> PodSpec:
        return self._pick("pod", self.pods, target, lambda p: p.name)

    def gpu(self, target: Target) -> GpuSpec:
        return self._pick("gpu", self.gpus, target, lambda g: g.uuid)

    def model(self, target: Target) -> ModelSpec:
        return self._pick("model", self.models, target, lambda m: m.name)

    @property
    def model_pods(self) -> tuple[PodSpec, ...]:
        return tuple(p for p in self.pods if p.model is not None)

    def series_count(self) -> int:
        return sum(len(f.entities) * f.rows_per_entity for f in _families(_Context.of(self, np.zeros(1))))


# --- value generation ---------------------------------------------------------------------------
def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


@dataclass
class _Context:
    topo: Topology
    t: np.ndarray  # epoch seconds, shape (T,)
    end: float
    seed: int
    faults: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, topo: Topology, t: np.ndarray) -> _Context:
        end = float(t[-1])
        return cls(topo, t, end, topo.scenario.seed, list(topo.scenario.faults))

    @property
    def step(self) -> float:
        return float(self.t[1] - self.t[0]) if len(self.t) > 1 else 60.0

    def rng(self, family: str, chunk: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(_hexname(0, family, length=8), 16), chunk])

    def index_at(self, before_end: timedelta) -> int:
        """Index of the first sample at or after ``end - before_end``."""
        return int(np.searchsorted(self.t, self.end - before_end.total_seconds() - 1e-6))

    def ramp(self, before_end: timedelta, after_end: timedelta = timedelta(0)) -> np.ndarray:
        """0 before ``end - before_end``, rising linearly to 1 at ``end + after_end``."""
        t0 = self.end - before_end.total_seconds()
        t1 = self.end + after_end.total_seconds()
        ramp: np.ndarray = np.clip((self.t - t0) / max(t1 - t0, 1e-9), 0.0, 1.0)
        return ramp

    def load(self, phases: np.ndarray) -> np.ndarray:
        """Diurnal load in [0.2, 0.9] peaking mid-afternoon UTC, one row per phase."""
        day = self.t[None, :] / DAY - np.asarray(phases, dtype=float)[:, None]
        load: np.ndarray = 0.55 + 0.3 * np.sin(2 * np.pi * (day - 0.375)) + 0.05 * np.sin(4 * np.pi * day)
        return load

    def faults_of(self, kind: type) -> list[Any]:
        return [f for f in self.faults if isinstance(f, kind)]

    def node_phase(self, name: str) -> float:
        return next(n.phase for n in self.topo.nodes if n.name == name)


@dataclass
class _Family:
    """One metric family: ``rows_per_entity`` series per entity, values computed per chunk."""

    name: str
    type: Literal["gauge", "counter", "histogram", "unknown"]
    help: str
    entities: Sequence[Any]
    rows: Callable[[Any], list[str]]  # sample name + labels of each series of one entity
    values: Callable[[_Context, Sequence[Any], np.random.Generator], np.ndarray]  # (rows, T)
    decimals: int | None = 4  # None: integers

    @property
    def rows_per_entity(self) -> int:
        return len(self.rows(self.entities[0])) if self.entities else 0


def _const(value: float | Callable[[Any], float], rows_per_entity: int = 1) -> Callable[..., np.ndarray]:
    def fn(ctx: _Context, ents: Sequence[Any], rng: np.random.Generator) -> np.ndarray:
        vals = [value(e) if callable(value) else value for e in ents for _ in range(rows_per_entity)]
        return np.repeat(np.asarray(vals, dtype=float)[:, None], len(ctx.t), axis=1)

    return fn


def _counter_from_increments(inc: np.ndarray, start: np.ndarray | float = 0.0) -> np.ndarray:
    counter: np.ndarray = np.cumsum(inc, axis=1) + np.asarray(start, dtype=float).reshape(-1, 1)
    return counter


def _apply_reset(values: np.ndarray, at: int) -> None:
    """A process restart at index ``at``: the counter starts again from its increment there."""
    if 0 < at < values.shape[1]:
        values[:, at:] -= values[:, at - 1 : at]


def _reset_index(ctx: _Context, node: str) -> int | None:
    for fault in ctx.faults_of(CounterReset):
        if ctx.topo.node(fault.node).name == node:
            return ctx.index_at(fault.at_before_end)
    return None


# pods ------------------------------------------------------------------------------------------
def _pod_working_set(ctx: _Context, pods: Sequence[PodSpec], rng: np.random.Generator) -> np.ndarray:
    phases = np.array([ctx.node_phase(p.node) for p in pods])
    limit = np.array([p.memory_limit for p in pods])[:, None]
    frac = np.array([p.memory_fraction for p in pods])[:, None]
    load = ctx.load(phases)
    ws: np.ndarray = limit * frac * (1 + 0.15 * (load - 0.55)) * (1 + 0.01 * rng.standard_normal((len(pods), len(ctx.t))))
    names = [p.name for p in pods]
    for leak in ctx.faults_of(MemoryLeak):
        target = ctx.topo.pod(leak.pod)
        if target.name in names:
            i = names.index(target.name)
            ramp = ctx.ramp(leak.starts_before_end, leak.crosses_limit_after_end)
            noise = 1 + 0.003 * rng.standard_normal(len(ctx.t))
            leaking = (frac[i, 0] + (1 - frac[i, 0]) * ramp) * limit[i, 0] * noise
            ws[i] = np.where(ramp > 0, np.minimum(leaking, 0.999 * limit[i, 0]), ws[i])
    for crash in ctx.faults_of(CrashLoop):
        target = ctx.topo.pod(crash.pod)
        if target.name in names:
            i = names.index(target.name)
            start = ctx.index_at(crash.starts_before_end)
            ws[i, start:] = limit[i, 0] * rng.uniform(0.02, 0.1, len(ctx.t) - start)
    for oom in ctx.faults_of(OomKill):
        target = ctx.topo.pod(oom.pod)
        if target.name in names:
            i = names.index(target.name)
            ramp = ctx.ramp(oom.at_before_end + oom.climb, -oom.at_before_end)
            climbing = (ramp > 0) & (ctx.t < ctx.end - oom.at_before_end.total_seconds())
            ws[i] = np.where(climbing, (frac[i, 0] + (1 - frac[i, 0]) * ramp) * limit[i, 0], ws[i])
    return ws


def _crash_restart_times(ctx: _Context, crash: CrashLoop) -> np.ndarray:
    """Kubelet back-off: restarts after 10 s, 20 s, 40 s … capped at 5 min (+ ~5 s run time)."""
    t = ctx.end - crash.starts_before_end.total_seconds()
    times, delay = [], 10.0
    while t <= ctx.end:
        t += 5.0 + delay
        times.append(t)
        delay = min(delay * 2, 300.0)
    return np.asarray(times)


def _pod_restarts(ctx: _Context, pods: Sequence[PodSpec], rng: np.random.Generator) -> np.ndarray:
    # Most pods never restarted; some carry a few restarts from before the window.
    base = np.where(rng.random(len(pods)) < 0.2, rng.integers(1, 4, len(pods)), 0).astype(float)
    out = np.repeat(base[:, None], len(ctx.t), axis=1)
    names = [p.name for p in pods]
    for crash in ctx.faults_of(CrashLoop):
        target = ctx.topo.pod(crash.pod)
        if target.name in names:
            times = _crash_restart_times(ctx, crash)
            out[names.index(target.name)] += np.searchsorted(times, ctx.t, side="right")
    for oom in ctx.faults_of(OomKill):
        target = ctx.topo.pod(oom.pod)
        if target.name in names:
            out[names.index(target.name), ctx.index_at(oom.at_before_end) :] += 1
    return out


@dataclass(frozen=True)
class _Termination:
    """A container's last termination: kube-state-metrics reports its reason from then on."""

    pod: PodSpec
    reason: str
    since: timedelta  # before the end of the data


def _terminations(ctx: _Context) -> list[_Termination]:
    return [
        *(_Termination(ctx.topo.pod(f.pod), "Error", f.starts_before_end) for f in ctx.faults_of(CrashLoop)),
        *(_Termination(ctx.topo.pod(f.pod), "OOMKilled", f.at_before_end) for f in ctx.faults_of(OomKill)),
    ]


def _since_flag(ctx: _Context, items: Sequence[_Termination], rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((len(items), len(ctx.t)))
    for i, item in enumerate(items):
        out[i, ctx.index_at(item.since) :] = 1.0
    return out


def _pod_families(ctx: _Context) -> list[_Family]:
    pods = ctx.topo.pods
    terminations = _terminations(ctx)
    crash_loops = [t for t in terminations if t.reason == "Error"]

    def ids(p: PodSpec) -> dict[str, str]:
        return {"namespace": p.namespace, "pod": p.name}

    return [
        _Family(
            "kube_pod_info",
            "gauge",
            "Information about pod.",
            pods,
            lambda p: [
                f"kube_pod_info{{{_labels(**ids(p), node=p.node, created_by_kind='ReplicaSet', created_by_name=p.replicaset)}}}"
            ],
            _const(1.0),
            None,
        ),
        _Family(
            "kube_pod_owner",
            "gauge",
            "Information about the Pod's owner.",
            pods,
            lambda p: [
                f"kube_pod_owner{{{_labels(**ids(p), owner_kind='ReplicaSet', owner_name=p.replicaset, owner_is_controller='true')}}}"
            ],
            _const(1.0),
            None,
        ),
        _Family(
            "kube_replicaset_owner",
            "gauge",
            "Information about the ReplicaSet's owner.",
            list({p.replicaset: p for p in pods}.values()),
            lambda p: [
                f"kube_replicaset_owner{{{_labels(namespace=p.namespace, replicaset=p.replicaset, owner_kind='Deployment', owner_name=p.deployment, owner_is_controller='true')}}}"
            ],
            _const(1.0),
            None,
        ),
        _Family(
            "kube_pod_container_resource_limits",
            "gauge",
            "The number of requested limit resource by a container.",
            pods,
            lambda p: [
                f"kube_pod_container_resource_limits{{{_labels(**ids(p), container=p.container, node=p.node, resource='memory', unit='byte')}}}",
                f"kube_pod_container_resource_limits{{{_labels(**ids(p), container=p.container, node=p.node, resource='cpu', unit='core')}}}",
            ],
            lambda ctx, ents, rng: np.repeat(
                np.array([[p.memory_limit, p.cpu_limit][k] for p in ents for k in (0, 1)])[:, None], len(ctx.t), axis=1
            ),
            3,
        ),
        _Family(
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set of the container in bytes.",
            pods,
            lambda p: [
                f"container_memory_working_set_bytes{{{_labels(**ids(p), container=p.container, node=p.node)}}}"
            ],
            _pod_working_set,
            None,
        ),
        _Family(
            "kube_pod_container_status_restarts",
            "counter",
            "The number of container restarts per container.",
            pods,
            lambda p: [f"kube_pod_container_status_restarts_total{{{_labels(**ids(p), container=p.container)}}}"],
            _pod_restarts,
            None,
        ),
        _Family(
            "kube_pod_container_status_waiting_reason",
            "gauge",
            "Describes the reason the container is waiting.",
            crash_loops,
            lambda t: [
                f"kube_pod_container_status_waiting_reason{{{_labels(**ids(t.pod), container=t.pod.container, reason='CrashLoopBackOff')}}}"
            ],
            _since_flag,
            None,
        ),
        _Family(
            "kube_pod_container_status_last_terminated_reason",
            "gauge",
            "Describes the last reason the container was terminated.",
            terminations,
            lambda t: [
                f"kube_pod_container_status_last_terminated_reason{{{_labels(**ids(t.pod), container=t.pod.container, reason=t.reason)}}}"
            ],
            _since_flag,
            None,
        ),
    ]


# nodes -----------------------------------------------------------------------------------------
def _node_conditions(ctx: _Context, nodes: Sequence[NodeSpec], rng: np.random.Generator) -> np.ndarray:
    rows: list[float] = []
    for _ in nodes:
        for cond in NODE_CONDITIONS:
            healthy = "true" if cond == "Ready" else "false"
            rows.extend(1.0 if status == healthy else 0.0 for status in ("true", "false", "unknown"))
    return np.repeat(np.asarray(rows)[:, None], len(ctx.t), axis=1)


def _node_mem_available(ctx: _Context, nodes: Sequence[NodeSpec], rng: np.random.Generator) -> np.ndarray:
    total = np.array([n.memory_bytes for n in nodes])[:, None]
    used = 0.35 + 0.15 * (ctx.load(np.array([n.phase for n in nodes])) - 0.55)
    used = used + 0.01 * rng.standard_normal(used.shape)
    return total * (1 - used)


def _fs_used_fraction(ctx: _Context, node: NodeSpec, mount: str, rng: np.random.Generator) -> np.ndarray:
    base = 0.3 + 0.3 * (int(_hexname(ctx.seed, node.name, mount, length=4), 16) / 0xFFFF)
    # Slow wander (logs, images) that never trends towards full on its own.
    wander = np.cumsum(rng.standard_normal(len(ctx.t))) * 0.0005
    used = base + wander - np.linspace(0, wander[-1], len(ctx.t))
    for fill in ctx.faults_of(FilesystemFill):
        if ctx.topo.node(fill.node).name == node.name and fill.mountpoint == mount:
            ramp = ctx.ramp(fill.starts_before_end, fill.full_after_end)
            used = np.where(ramp > 0, base + (1 - base) * ramp + 0.0005 * rng.standard_normal(len(ctx.t)), used)
    return np.clip(used, 0.0, 0.999)


def _fs_avail(ctx: _Context, nodes: Sequence[NodeSpec], rng: np.random.Generator) -> np.ndarray:
    rows = [size * (1 - _fs_used_fraction(ctx, n, mp, rng)) for n in nodes for mp, _, _, size in MOUNTS]
    return np.vstack(rows)


def _inodes(size_bytes: float) -> float:
    """Inodes of a filesystem of this size, as mkfs.ext4 makes them (one per 16 KiB)."""
    return float(size_bytes // (16 * 1024))


def _fs_files_free(ctx: _Context, nodes: Sequence[NodeSpec], rng: np.random.Generator) -> np.ndarray:
    """Free inodes: each filesystem uses a few percent of its inodes, creeping with small files."""
    rows = []
    for _n in nodes:
        for _mp, _, _, size in MOUNTS:
            used = rng.uniform(0.03, 0.2) + np.cumsum(rng.normal(0.0, 1e-5, len(ctx.t)))
            rows.append(np.floor(_inodes(size) * (1 - np.clip(used, 0.0, 1.0))))
    return np.vstack(rows)


def _cpu_seconds(ctx: _Context, nodes: Sequence[NodeSpec], rng: np.random.Generator) -> np.ndarray:
    out = []
    for node in nodes:
        load = ctx.load(np.array([node.phase]))[0]
        busy = np.clip(load[None, :] * 0.8 + 0.05 * rng.standard_normal((node.cpus, len(ctx.t))), 0.02, 0.98)
        uptime = float(rng.uniform(3, 30) * DAY)
        shares = {"idle": 1 - busy, "user": busy * 0.75, "system": busy * 0.2, "iowait": busy * 0.05}
        block = np.vstack(
            [
                _counter_from_increments(shares[mode][c : c + 1] * ctx.step, uptime * float(shares[mode][c].mean()))
                for c in range(node.cpus)
                for mode in CPU_MODES
            ]
        )
        reset = _reset_index(ctx, node.name)
        if reset is not None:
            _apply_reset(block, reset)
        out.append(block)
    return np.vstack(out)


def node_exporter_instance(index: int) -> str:
    """Where node-exporter of the ``index``-th node is scraped: its pod's address (hostNetwork, so
    the node's IP) and port, as kube-prometheus-stack's ServiceMonitor leaves ``instance``."""
    return f"10.0.{index // 250}.{index % 250 + 10}:9100"


def _node_families(ctx: _Context) -> list[_Family]:
    nodes = ctx.topo.nodes
    address = {n.name: node_exporter_instance(i) for i, n in enumerate(nodes)}

    def inst(n: NodeSpec) -> str:
        return _labels(instance=address[n.name], job="node-exporter")

    def fs_rows(metric: str) -> Callable[[NodeSpec], list[str]]:
        return lambda n: [
            f"{metric}{{{inst(n)},{_labels(device=dev, fstype=fs, mountpoint=mp)}}}" for mp, dev, fs, _ in MOUNTS
        ]

    return [
        _Family(
            "kube_node_status_condition",
            "gauge",
            "The condition of a cluster node.",
            nodes,
            lambda n: [
                f"kube_node_status_condition{{{_labels(node=n.name, condition=c, status=s)}}}"
                for c in NODE_CONDITIONS
                for s in ("true", "false", "unknown")
            ],
            _node_conditions,
            None,
        ),
        _Family(
            "kube_node_spec_unschedulable",
            "gauge",
            "Whether a node can schedule new pods.",
            nodes,
            lambda n: [f"kube_node_spec_unschedulable{{{_labels(node=n.name)}}}"],
            _const(0.0),
            None,
        ),
        _Family(
            "node_uname_info",
            "gauge",
            "Labeled system information as provided by the uname system call.",
            nodes,
            lambda n: [f"node_uname_info{{{inst(n)},{_labels(nodename=n.name, sysname='Linux', machine='x86_64', release='6.8.0-1015-nvidia')}}}"],
            _const(1.0),
            None,
        ),
        _Family(
            "node_memory_MemTotal_bytes",
            "gauge",
            "Memory information field MemTotal_bytes.",
            nodes,
            lambda n: [f"node_memory_MemTotal_bytes{{{inst(n)}}}"],
            _const(lambda n: n.memory_bytes),
            None,
        ),
        _Family(
            "node_memory_MemAvailable_bytes",
            "gauge",
            "Memory information field MemAvailable_bytes.",
            nodes,
            lambda n: [f"node_memory_MemAvailable_bytes{{{inst(n)}}}"],
            _node_mem_available,
            None,
        ),
        _Family(
            "node_filesystem_size_bytes",
            "gauge",
            "Filesystem size in bytes.",
            nodes,
            fs_rows("node_filesystem_size_bytes"),
            lambda ctx, ents, rng: np.repeat(
                np.array([m[3] for _ in ents for m in MOUNTS], dtype=float)[:, None], len(ctx.t), axis=1
            ),
            None,
        ),
        _Family(
            "node_filesystem_avail_bytes",
            "gauge",
            "Filesystem space available to non-root users in bytes.",
            nodes,
            fs_rows("node_filesystem_avail_bytes"),
            _fs_avail,
            None,
        ),
        _Family(
            "node_filesystem_files",
            "gauge",
            "Filesystem total file nodes.",
            nodes,
            fs_rows("node_filesystem_files"),
            lambda ctx, ents, rng: np.repeat(
                np.array([_inodes(m[3]) for _ in ents for m in MOUNTS], dtype=float)[:, None], len(ctx.t), axis=1
            ),
            None,
        ),
        _Family(
            "node_filesystem_files_free",
            "gauge",
            "Filesystem total free file nodes.",
            nodes,
            fs_rows("node_filesystem_files_free"),
            _fs_files_free,
            None,
        ),
        _Family(
            "node_cpu_seconds",
            "counter",
            "Seconds the CPUs spent in each mode.",
            nodes,
            lambda n: [
                f"node_cpu_seconds_total{{{inst(n)},{_labels(cpu=str(c), mode=m)}}}"
                for c in range(n.cpus)
                for m in CPU_MODES
            ],
            _cpu_seconds,
            2,
        ),
    ]


# GPUs ------------------------------------------------------------------------------------------
@dataclass
class _GpuState:
    util: np.ndarray  # percent, (G, T)
    xid: np.ndarray
    uncorrectable_rows: np.ndarray


def _gpu_state(ctx: _Context, gpus: Sequence[GpuSpec], rng: np.random.Generator) -> _GpuState:
    T = len(ctx.t)
    phases = np.array([ctx.node_phase(g.node) for g in gpus])
    load = ctx.load(phases)
    # Training/batch GPUs run flat out; serving GPUs follow their traffic.
    serving = np.array([g.pod is not None for g in gpus])[:, None]
    util = np.where(serving, 100 * (0.2 + 0.7 * load), 93.0) + 3 * rng.standard_normal((len(gpus), T))
    xid = np.zeros((len(gpus), T))
    rows = np.zeros((len(gpus), T))
    uuids = [g.uuid for g in gpus]
    for fault in ctx.faults_of(GpuXid):
        target = ctx.topo.gpu(fault.gpu)
        if target.uuid in uuids:
            i, at = uuids.index(target.uuid), ctx.index_at(fault.at_before_end)
            xid[i, at:] = fault.xid
            if fault.xid == 79:  # fallen off the bus: no work gets done any more
                util[i, at:] = 0.0
    for fault in ctx.faults_of(GpuRemappedRows):
        target = ctx.topo.gpu(fault.gpu)
        if target.uuid in uuids:
            i, at = uuids.index(target.uuid), ctx.index_at(fault.starts_before_end)
            # The error rate itself accelerates: a failing HBM stack.
            rate = fault.rows_per_hour * ctx.step / 3600 * (1 + 2 * ctx.ramp(fault.starts_before_end)[at:])
            rows[i, at:] = np.cumsum(rng.poisson(rate))
    return _GpuState(np.clip(util, 0, 100), xid, rows)


def _gpu_metric(kind: str) -> Callable[[_Context, Sequence[GpuSpec], np.random.Generator], np.ndarray]:
    def fn(ctx: _Context, gpus: Sequence[GpuSpec], rng: np.random.Generator) -> np.ndarray:
        return _garbage(ctx, gpus, kind, measured(ctx, gpus, rng))

    def measured(ctx: _Context, gpus: Sequence[GpuSpec], rng: np.random.Generator) -> np.ndarray:
        # Same latent state for every GPU family: the state RNG depends only on the chunk.
        chunk = int(_hexname(0, *(g.uuid for g in gpus[:1]), length=8), 16)
        state = _gpu_state(ctx, gpus, ctx.rng("gpu-state", chunk))
        u, shape = state.util, state.util.shape
        serving = np.array([g.pod is not None for g in gpus])[:, None]
        fb_used = np.where(serving, 0.9 * GPU_FB_MIB, 0.7 * GPU_FB_MIB) + 200 * rng.standard_normal(shape)
        match kind:
            case "util":
                return np.round(u)
            case "temp":
                return np.round(32 + 0.45 * u + rng.standard_normal(shape))
            case "power":
                return 65 + 3.3 * u + 5 * rng.standard_normal(shape)
            case "fb_used":
                return np.round(fb_used)
            case "fb_free":
                return np.round(GPU_FB_MIB - fb_used)
            case "xid":
                return state.xid
            case "uncorrectable_rows" | "dbe":
                return state.uncorrectable_rows
            case "correctable_rows":
                return np.repeat(rng.integers(0, 3, len(gpus)).astype(float)[:, None], shape[1], axis=1)
            case "remap_failure":
                return np.zeros(shape)
            case "clock_reasons":  # bitmask: 0x1 idle, 0x4 software power cap
                power = 65 + 3.3 * u
                return (u < 5) * 0x1 + (power > 370) * 0x4
        raise AssertionError(kind)

    return fn


def _garbage(ctx: _Context, gpus: Sequence[GpuSpec], kind: str, values: np.ndarray) -> np.ndarray:
    """``values`` of one GPU family with the scenario's :class:`ExporterGarbage` written over them."""
    faults = ctx.faults_of(ExporterGarbage)
    if not faults or kind not in ("util", "power", "remap_failure"):
        return values
    uuids = [g.uuid for g in gpus]
    values = np.array(values, dtype=float)
    for fault in faults:
        target = ctx.topo.gpu(fault.gpu)
        if target.uuid not in uuids:
            continue
        i = uuids.index(target.uuid)
        if kind == "util":
            values[i, ctx.index_at(fault.at_before_end)] = UINT32_MAX
        else:
            values[i, :] = DCGM_FP64_BLANK if kind == "power" else float(DCGM_INT64_NOT_SUPPORTED)
    return values


def _gpu_families(ctx: _Context) -> list[_Family]:
    gpus = ctx.topo.gpus

    def rows(metric: str) -> Callable[[GpuSpec], list[str]]:
        def fn(g: GpuSpec) -> list[str]:
            labels = _labels(
                gpu=str(g.index), UUID=g.uuid, device=f"nvidia{g.index}", modelName=GPU_MODEL, Hostname=g.node
            )
            if g.pod is not None:  # dcgm-exporter's pod mapping
                labels += "," + _labels(namespace=g.pod.namespace, pod=g.pod.name, container=g.pod.container)
            return [f"{metric}{{{labels}}}"]

        return fn

    # dcgm-exporter calls the remapped-row and ECC fields counters, but their names lack the
    # OpenMetrics "_total" suffix, so they are declared "unknown" to keep the names unchanged.
    spec: list[tuple[str, Literal["gauge", "unknown"], str, str, int]] = [
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "util", 0),
        ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "fb_used", 0),
        ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "fb_free", 0),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "temp", 0),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power", 3),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", "xid", 0),
        (
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
            "unknown",
            "Number of remapped rows for uncorrectable errors.",
            "uncorrectable_rows",
            0,
        ),
        (
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
            "unknown",
            "Number of remapped rows for correctable errors.",
            "correctable_rows",
            0,
        ),
        ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed.", "remap_failure", 0),
        (
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
            "gauge",
            "Current clock event (throttle) reasons bitmask.",
            "clock_reasons",
            0,
        ),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "unknown", "Total number of double-bit volatile ECC errors.", "dbe", 0),
    ]
    return [
        _Family(name, typ, hlp, gpus, rows(name), _gpu_metric(kind), None if dec == 0 else dec)
        for name, typ, hlp, kind, dec in spec
    ]


# inference -------------------------------------------------------------------------------------
@dataclass
class _ServingState:
    requests: np.ndarray  # finished requests per step, (P, T)
    median: np.ndarray  # median latency (s), (P, T)
    pressure: np.ndarray  # 0..1 how far into a latency regression, (P, T)
    load: np.ndarray  # the daily load curve (0.55 on average), (P, T)


def _serving_state(ctx: _Context, pods: Sequence[PodSpec]) -> _ServingState:
    chunk = int(_hexname(0, *(p.name for p in pods[:1]), length=8), 16)
    rng = ctx.rng("serving-state", chunk)
    load = ctx.load(np.array([ctx.node_phase(p.node) for p in pods]))
    rate = np.array([p.rps for p in pods])[:, None] * load / 0.55
    requests = rng.poisson(rate * ctx.step).astype(float)
    models = {m.name: m for m in ctx.topo.models}
    median = np.array([models[p.model].median_latency for p in pods if p.model])[:, None] * (1 + 0.2 * (load - 0.55))
    pressure = np.zeros_like(median)
    for fault in ctx.faults_of(LatencyRegression):
        target = ctx.topo.model(fault.model)
        for i, pod in enumerate(pods):
            if pod.model == target.name:
                ramp = ctx.ramp(fault.starts_before_end)
                end_median = fault.p99_seconds / math.exp(2.326 * LATENCY_SIGMA)
                median[i] = median[i] + (end_median - median[i, -1]) * ramp
                pressure[i] = ramp
    # Counter resets: the vLLM pods on a restarted node lose their counters.
    return _ServingState(requests, median, pressure, np.broadcast_to(load, median.shape))


def _vllm_counters(ctx: _Context, pods: Sequence[PodSpec], values: np.ndarray, rows_per_pod: int) -> np.ndarray:
    for i, pod in enumerate(pods):
        reset = _reset_index(ctx, pod.node)
        if reset is not None:
            _apply_reset(values[i * rows_per_pod : (i + 1) * rows_per_pod], reset)
    return values


def _vllm_success(ctx: _Context, pods: Sequence[PodSpec], rng: np.random.Generator) -> np.ndarray:
    return _vllm_counters(ctx, pods, np.cumsum(_serving_state(ctx, pods).requests, axis=1), 1)


def _latency_histogram(
    buckets: tuple[float, ...], median_of: Callable[[_ServingState], np.ndarray], per_request: int = 1
) -> Callable[[_Context, Sequence[PodSpec], np.random.Generator], np.ndarray]:
    """Cumulative bucket counters, ``_count`` and ``_sum`` of a lognormal latency per pod;
    ``per_request`` observations for each finished request (one per streamed token for ITL)."""

    def fn(ctx: _Context, pods: Sequence[PodSpec], rng: np.random.Generator) -> np.ndarray:
        state = _serving_state(ctx, pods)
        medians = median_of(state)
        observations = state.requests * per_request
        edges = np.log(np.asarray(buckets))
        blocks = []
        for i in range(len(pods)):
            cdf = ndtr((edges[None, :] - np.log(medians[i])[:, None]) / LATENCY_SIGMA)  # (T, B)
            probs = np.diff(np.concatenate([np.zeros((len(ctx.t), 1)), cdf, np.ones((len(ctx.t), 1))], axis=1), axis=1)
            counts = rng.multinomial(observations[i].astype(np.int64), np.clip(probs, 0, None))  # (T, B+1)
            cumulative = np.cumsum(np.cumsum(counts, axis=1), axis=0).T.astype(float)  # (B+1, T) by le, over time
            total = cumulative[-1:]
            mean = medians[i] * math.exp(LATENCY_SIGMA**2 / 2)
            latency_sum = np.cumsum(observations[i] * mean)[None, :]
            blocks.append(np.vstack([cumulative, total, latency_sum]))
        return _vllm_counters(ctx, pods, np.vstack(blocks), len(buckets) + 3)

    return fn


def _itl_median(state: _ServingState) -> np.ndarray:
    # Decoding slows a little with the batch size (load), and by half at the height of a latency
    # regression: the queue (time to first token) takes the brunt, streaming stays within 100 ms.
    return ITL_MEDIAN * (1 + 0.2 * (state.load - 0.55)) * (1 + 0.5 * state.pressure)


def _vllm_gauge(kind: str) -> Callable[[_Context, Sequence[PodSpec], np.random.Generator], np.ndarray]:
    def fn(ctx: _Context, pods: Sequence[PodSpec], rng: np.random.Generator) -> np.ndarray:
        state = _serving_state(ctx, pods)
        load = state.requests / np.maximum(np.array([p.rps for p in pods])[:, None] * ctx.step / 0.55, 1e-9)
        if kind == "waiting":
            waiting: np.ndarray = rng.poisson(0.3 + 4 * np.clip(load - 0.75, 0, None) + 12 * state.pressure).astype(float)
            return waiting
        usage: np.ndarray = np.clip(0.2 + 0.35 * load + 0.35 * state.pressure + 0.02 * rng.standard_normal(load.shape), 0, 1)
        return usage

    return fn


def _drift(ctx: _Context, model: str, replica: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy drift, conversion drift) ramps of one replica (``None``: the model as a whole)."""
    accuracy = np.zeros(len(ctx.t))
    conversion = np.zeros(len(ctx.t))
    replicas = sum(1 for p in ctx.topo.model_pods if p.model == model)
    for fault in ctx.faults_of(AccuracyDrift):
        if ctx.topo.model(fault.model).name != model:
            continue
        hit = fault.replicas if fault.replicas is not None else list(range(replicas))
        ramp = ctx.ramp(fault.starts_before_end)
        if replica is None or replica in hit:
            accuracy = fault.drop * ramp
        conversion = fault.conversion_drop * ramp * len(set(hit) & set(range(replicas))) / max(replicas, 1)
    return accuracy, conversion


def _replica_accuracy(ctx: _Context, pods: Sequence[PodSpec], rng: np.random.Generator) -> np.ndarray:
    """Each serving replica exports its own online accuracy (a ``pod`` label)."""
    models = {m.name: m for m in ctx.topo.models}
    out = np.empty((len(pods), len(ctx.t)))
    for i, pod in enumerate(pods):
        assert pod.model is not None
        replica = [p.name for p in ctx.topo.model_pods if p.model == pod.model].index(pod.name)
        drift, _ = _drift(ctx, pod.model, replica)
        out[i] = models[pod.model].accuracy * (1 - drift) + 0.003 * rng.standard_normal(len(ctx.t))
    return np.clip(out, 0, 1)


def _conversion(ctx: _Context, models: Sequence[ModelSpec], rng: np.random.Generator) -> np.ndarray:
    daily = 1 + 0.1 * (ctx.load(np.zeros(1))[0] - 0.55)
    out = np.empty((len(models), len(ctx.t)))
    for i, model in enumerate(models):
        _, drift = _drift(ctx, model.name, None)
        out[i] = model.conversion * daily * (1 - drift) + 0.0008 * rng.standard_normal(len(ctx.t))
    return np.clip(out, 0, 1)


def _inference_families(ctx: _Context) -> list[_Family]:
    pods = ctx.topo.model_pods

    def ids(p: PodSpec) -> str:
        return _labels(namespace=p.namespace, pod=p.name, model_name=p.model or "")

    def histogram_rows(name: str, buckets: Sequence[float]) -> Callable[[PodSpec], list[str]]:
        def rows(p: PodSpec) -> list[str]:
            return [
                *(f'{name}_bucket{{{ids(p)},le="{le}"}}' for le in (*map(str, buckets), "+Inf")),
                f"{name}_count{{{ids(p)}}}",
                f"{name}_sum{{{ids(p)}}}",
            ]

        return rows

    hist = "vllm:e2e_request_latency_seconds"
    return [
        _Family(
            "vllm:num_requests_waiting",
            "gauge",
            "Number of requests waiting to be processed.",
            pods,
            lambda p: [f"vllm:num_requests_waiting{{{ids(p)}}}"],
            _vllm_gauge("waiting"),
            None,
        ),
        _Family(
            "vllm:kv_cache_usage_perc",
            "gauge",
            "KV-cache usage. 1 means 100 percent usage.",
            pods,
            lambda p: [f"vllm:kv_cache_usage_perc{{{ids(p)}}}"],
            _vllm_gauge("kv"),
            4,
        ),
        _Family(
            "vllm:request_success",
            "counter",
            "Count of successfully processed requests.",
            pods,
            lambda p: [f'vllm:request_success_total{{{ids(p)},finished_reason="stop"}}'],
            _vllm_success,
            None,
        ),
        *(
            _Family(
                name,
                "histogram",
                text,
                pods,
                histogram_rows(name, buckets),
                values,
                3,
            )
            # The same latency drives the first two: the regression shows in TTFT (the objective)
            # and in end-to-end latency (context). Inter-token latency is the streaming objective.
            for name, text, buckets, values in (
                (hist, "Histogram of e2e request latency in seconds.", LATENCY_BUCKETS,
                 _latency_histogram(LATENCY_BUCKETS, lambda s: s.median)),
                ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", LATENCY_BUCKETS,
                 _latency_histogram(LATENCY_BUCKETS, lambda s: s.median)),
                ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS,
                 _latency_histogram(ITL_BUCKETS, _itl_median, TOKENS_PER_REQUEST)),
            )
        ),
        _Family(
            "model_accuracy",
            "gauge",
            "Online accuracy of the served model, per serving replica.",
            pods,
            lambda p: [f"model_accuracy{{{_labels(namespace=p.namespace, model=p.model or '', pod=p.name)}}}"],
            _replica_accuracy,
            5,
        ),
        _Family(
            "business_conversion_rate",
            "gauge",
            "Conversion rate driven by the model.",
            ctx.topo.models,
            lambda m: [f"business_conversion_rate{{{_labels(namespace=m.namespace, model=m.name)}}}"],
            _conversion,
            5,
        ),
    ]


def _families(ctx: _Context) -> list[_Family]:
    return [*_node_families(ctx), *_pod_families(ctx), *_gpu_families(ctx), *_inference_families(ctx)]


# --- writing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthResult:
    path: Path
    series: int
    samples: int
    start: datetime
    end: datetime
    topology: Topology


def _format_rows(
    prefixes: Sequence[str], values: np.ndarray, ts_suffixes: list[str], decimals: int | None, group: int = 1
) -> Iterator[str]:
    """Sample lines, series after series; or, with ``group`` > 1 (a histogram's buckets, count
    and sum), time after time within each group of rows, as OpenMetrics requires."""
    # Formatting dominates generation; tolist() + str concatenation is ~5x faster than np.char.
    if decimals is None:
        whole = np.rint(values)
        # Past int64 (DCGM's int64 blanks, about 2^63, as a float): Python's ints, not a wrap to -2^63.
        rows = [[int(v) for v in row] for row in whole.tolist()] if (np.abs(whole) >= 2.0**63).any() else (
            whole.astype(np.int64).tolist())
    else:
        rows = np.round(values, decimals).tolist()
    heads = [p + " " for p in prefixes]
    if group == 1:
        for head, row in zip(heads, rows, strict=True):
            yield "".join([head + str(v) + ts for v, ts in zip(row, ts_suffixes)])
        return
    for g in range(0, len(rows), group):
        block = list(zip(heads[g : g + group], rows[g : g + group]))
        yield "".join([head + str(row[i]) + ts for i, ts in enumerate(ts_suffixes) for head, row in block])


def write_openmetrics(
    scenario: Scenario, out: str | Path | TextIO, *, chunk_entities: int = 256, part: int = 0, parts: int = 1
) -> SynthResult:
    """Stream the scenario's history as OpenMetrics text to ``out`` (a path or a text file).

    With ``parts`` > 1, only every ``parts``-th chunk of entities (starting at ``part``) is
    written: the parts hold disjoint series whose union is the whole scenario, with the same
    values (values depend on the seed and ``chunk_entities``). promtool holds a whole block in memory (~150 bytes a sample), so large histories are
    backfilled part by part.
    """
    if not 0 <= part < parts:
        raise ValueError(f"part must be within [0, {parts}), got {part}")
    topo = Topology.build(scenario)
    t = scenario.timestamps()
    ctx = _Context.of(topo, t)
    for fault in scenario.faults:  # fail on a bad target before writing anything
        for attr, lookup in (("pod", topo.pod), ("node", topo.node), ("gpu", topo.gpu), ("model", topo.model)):
            if hasattr(fault, attr):
                lookup(getattr(fault, attr))
    ts_suffixes = [f" {int(x)}\n" for x in t]
    series = 0
    close = False
    if isinstance(out, (str, Path)):
        path = Path(out)
        fh: TextIO = open(path, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
        close = True
    else:
        fh, path = out, Path(getattr(out, "name", "<stream>"))
    try:
        for fam in _families(ctx):
            if len(fam.entities) <= part * chunk_entities:
                continue  # nothing of this family in this part: no empty family either
            fh.write(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} {fam.type}\n")
            for c in range(part * chunk_entities, len(fam.entities), parts * chunk_entities):
                ents = fam.entities[c : c + chunk_entities]
                prefixes = [row for e in ents for row in fam.rows(e)]
                values = fam.values(ctx, ents, ctx.rng(fam.name, c))
                if values.shape != (len(prefixes), len(t)):
                    raise AssertionError(f"{fam.name}: values {values.shape} for {len(prefixes)} rows")
                group = fam.rows_per_entity if fam.type == "histogram" else 1
                for text in _format_rows(prefixes, values, ts_suffixes, fam.decimals, group):
                    fh.write(text)
                series += len(prefixes)
        fh.write("# EOF\n")
    finally:
        if close:
            fh.close()
    return SynthResult(
        path=path,
        series=series,
        samples=series * len(t),
        start=datetime.fromtimestamp(float(t[0]), UTC),
        end=datetime.fromtimestamp(float(t[-1]), UTC),
        topology=topo,
    )


# --- the bundled demo -----------------------------------------------------------------------
def demo_scenario(**overrides: Any) -> Scenario:
    """The scenario shipped in ``aiops/data/demo/scenario.yaml`` (``overrides`` replace keys)."""
    from importlib.resources import files

    text = files("aiops").joinpath("data/demo/scenario.yaml").read_text(encoding="utf-8")
    return load_scenario({**yaml.safe_load(text), **overrides})


def write_demo_history(workdir: str | Path, *, end: datetime | None = None) -> Path:
    """The demo history ending at ``end`` (default now), as ``workdir/demo.om``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return write_openmetrics(demo_scenario(end=end), workdir / "demo.om").path


def start_demo_prometheus(
    workdir: str | Path,
    *,
    end: datetime | None = None,
    port: int | None = None,
    history: Path | None = None,
    rule_files: Sequence[Path] = (),
    scrape_configs: Sequence[dict[str, object]] = (),
) -> PrometheusServer:
    """Backfill the demo history (``history``, or a new one ending at ``end``) and start Prometheus.

    Everything lives under ``workdir`` (``demo.om`` and ``prometheus/``); an earlier demo's TSDB
    there is replaced, since its history ended at another time. ``rule_files`` and
    ``scrape_configs`` go into its config (``aiops demo --serve``). The caller stops the server.
    """
    from aiops.demo.prometheus import PrometheusServer

    workdir = Path(workdir)
    data_dir = workdir / "prometheus"
    history = history or write_demo_history(workdir, end=end)
    shutil.rmtree(data_dir, ignore_errors=True)
    return PrometheusServer(
        data_dir, openmetrics=history, port=port, rule_files=rule_files, scrape_configs=scrape_configs
    ).start()
