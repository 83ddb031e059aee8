"""Read the advisor's history from Prometheus onto one step-aligned grid.

Every query asks for the step's mean (utilisation) or peak (framebuffer) with ``*_over_time``, so a
5-minute step neither hides a spike nor depends on which scrape lands on the grid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from aiops.advisor.records import MIB_PER_GIB, GpuTrack, History, HpaTrack, LatencyTrack
from aiops.collect.decode import RawSeries
from aiops.collect.prometheus import PrometheusError
from aiops.config import AiopsConfig
from aiops.config.advisor import AdvisorConfig
from aiops.config.promql import scoped
from aiops.config.signals import DCGM_INT32_BLANKS, DCGM_MIG_INSTANCE, unit_range
from aiops.errors import AiopsError
from aiops.model import Entity, EntityKind, from_epoch
from aiops.text import listed


class AdvisorError(AiopsError):
    """The advice cannot be computed; the message says why and what to do (``temporary`` for outages)."""


# Runs one query over the window; returns (labels, values on the grid) per series.
Fetch = Callable[[str], list[tuple[dict[str, str], np.ndarray]]]


class RangeQuerier(Protocol):
    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]: ...


# Kubernetes' random suffixes use this alphabet (no vowels, no 0/1/3), which tells a
# Deployment's "<name>-<template hash>-<id>" from a name that merely has dashes.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")
_GENERATED_POD = re.compile(rf"^(?P<name>.+)-{_SAFE}{{5}}$")  # DaemonSet, Job, bare ReplicaSet
_STATEFUL_POD = re.compile(r"^(?P<name>.+)-\d+$")


def workload_of(namespace: str, pod: str) -> Entity:
    """The workload that owns ``pod``, from its name (kube_pod_owner needs a join per pod)."""
    if m := _DEPLOYMENT_POD.match(pod):
        return Entity(EntityKind.DEPLOYMENT, m["name"], namespace)
    if m := _STATEFUL_POD.match(pod):
        return Entity(EntityKind.STATEFULSET, m["name"], namespace)
    if m := _GENERATED_POD.match(pod):
        return Entity(EntityKind.POD, m["name"], namespace, attributes=(("generated", "true"),))
    return Entity(EntityKind.POD, pod, namespace)


def _scale_target(labels: Mapping[str, str]) -> Entity:
    """An HPA's scale target; one of a kind aiops does not model (an Argo Rollout) keeps its kind
    as an attribute. Matching the target's pods goes by namespace and name only."""
    kind = labels.get("scaletargetref_kind") or "Deployment"
    name, namespace = labels["scaletargetref_name"], labels.get("namespace", "")
    if kind.lower() in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET, EntityKind.REPLICASET):
        return Entity(EntityKind(kind.lower()), name, namespace)
    return Entity(EntityKind.WORKLOAD, name, namespace, attributes=(("kind", kind),))


def _without_userinfo(url: str) -> str:
    """A URL fit for a message: credentials a user put in it are not repeated."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _range(seconds: float) -> str:
    return f"{int(seconds)}s"


class HistoryReader:
    """Runs the advisor's queries through a range client and assembles a :class:`History`."""

    def __init__(self, config: AiopsConfig, client: RangeQuerier) -> None:
        self.config = config
        self.advisor: AdvisorConfig = config.advisor
        self.client = client

    def read(self, now: datetime) -> History:
        cfg = self.advisor
        step = cfg.step
        step_s = step.total_seconds()
        end = now.astimezone(UTC)
        start = end - cfg.window
        t0 = math.ceil(start.timestamp() / step_s) * step_s
        t1 = math.floor(end.timestamp() / step_s) * step_s
        grid = np.arange(t0, t1 + step_s / 2, step_s)
        with ThreadPoolExecutor(self.config.prometheus.max_concurrency, thread_name_prefix="advisor") as pool:
            return self._read(start, end, grid, self._fetcher(step, grid, pool))

    def _read(self, start: datetime, end: datetime, grid: np.ndarray, fetch: Fetch) -> History:
        cfg = self.advisor
        step_s = cfg.step.total_seconds()
        gaps: list[str] = []

        gpus = self._gpus(fetch, step_s)
        mig = self._mig_gpus(fetch)
        if not gpus and mig:
            raise AdvisorError(
                f"every GPU seen ({listed(mig)}) is in MIG mode, and dcgm-exporter reports no utilisation "
                "(DCGM_FI_DEV_GPU_UTIL) for MIG instances: the advisor has nothing to judge idle time or size on",
                hint="no advice is the answer here; the daemon's detectors still watch these GPUs",
            )
        if mig:
            gaps.append(
                f"{listed(mig)}: in MIG mode, where dcgm-exporter reports no utilisation (DCGM_FI_DEV_GPU_UTIL); "
                "the workloads on their slices get no idle or sizing advice."
            )
        if not gpus:
            raise AdvisorError(
                f"no dcgm-exporter series (DCGM_FI_DEV_GPU_UTIL) between {start:%Y-%m-%d %H:%M} and "
                f"{end:%Y-%m-%d %H:%M} UTC in the Prometheus at {_without_userinfo(str(self.config.prometheus.url))}. "
                "Check that dcgm-exporter is scraped "
                "by this Prometheus and that its retention covers advisor.window."
            )
        if not any(g.allocated for g in gpus):
            gaps.append(
                f"no GPU series carries the '{cfg.gpu_pod_label}' label, so usage cannot be tied to workloads: "
                "enable dcgm-exporter's pod mapping (or set advisor.gpu_pod_label if it uses another label)."
            )
        covered = History(start, end, step_s, grid, tuple(gpus)).covered_hours
        window = cfg.window.total_seconds() / 3600
        if covered < 0.9 * window:
            gaps.append(
                f"GPU history covers {covered:.0f} h of the {window:.0f} h window (Prometheus retention, or dcgm-exporter "
                "was not scraped the whole time); monthly figures are extrapolated from what was seen."
            )
        requested = self._requests(fetch)
        hpas = self._hpas(fetch)
        if not hpas:
            gaps.append("no kube-state-metrics HPA series (kube_horizontalpodautoscaler_*): no autoscaling advice.")
        latencies = self._latencies(fetch) if hpas else []
        if hpas and not latencies:
            gaps.append(
                f"no latency series for signal {cfg.autoscaling.latency_signal!r}: HPA targets cannot be derived "
                "from latency."
            )
        return History(
            start=start,
            end=end,
            step_seconds=step_s,
            timestamps=grid,
            gpus=tuple(gpus),
            hpas=tuple(hpas),
            latencies=tuple(latencies),
            requested=requested,
            gaps=tuple(gaps),
        )

    # -- fetching -------------------------------------------------------------------------------
    def _fetcher(self, step: timedelta, grid: np.ndarray, pool: ThreadPoolExecutor) -> Fetch:
        # A week of *_over_time over a large fleet can load more samples than one query may
        # (--query.max-samples), so the window is read in advisor.query_chunk pieces.
        chunks = max(1, round(grid.size / max(1, int(self.advisor.query_chunk / step))))
        bounds = [(float(grid[part[0]]), float(grid[part[-1]])) for part in np.array_split(np.arange(grid.size), chunks)]

        scope = self.config.prometheus.scope

        def fetch(query: str) -> list[tuple[dict[str, str], np.ndarray]]:
            # This cluster's series only, on a store that holds several (prometheus.scope), as the
            # daemon's signal queries are held to it.
            query = scoped(query, scope)
            # Chunks run in parallel (up to prometheus.max_concurrency), as the collector's queries do.
            futures = [pool.submit(self.client.query_range, query, from_epoch(lo), from_epoch(hi), step) for lo, hi in bounds]
            merged: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], np.ndarray]] = {}
            for future in futures:
                try:
                    raw = future.result()
                except PrometheusError as exc:
                    for f in futures:
                        f.cancel()
                    what = "try again later" if exc.temporary else "check the query and prometheus.* in the config"
                    raise AdvisorError(
                        f"Prometheus query failed ({what}): {exc}\n  query: {query}", temporary=exc.temporary
                    ) from None
                for s in raw:
                    key = tuple(sorted(s.labels.items()))
                    values = _on_grid(s, grid)
                    if key in merged:
                        prior = merged[key][1]
                        merged[key] = (s.labels, np.where(np.isnan(values), prior, values))
                    else:
                        merged[key] = (s.labels, values)
            return list(merged.values())

        return fetch

    def _gpus(self, fetch: Fetch, step_s: float) -> list[GpuTrack]:
        cfg = self.advisor
        pod_l, ns_l = cfg.gpu_pod_label, cfg.gpu_namespace_label
        # Without honor_labels, Prometheus renames dcgm-exporter's pod/namespace to exported_*, and
        # pod/namespace then name the exporter's own pod: the exported_* pair wins when present.
        by = f"Hostname, gpu, UUID, modelName, {ns_l}, {pod_l}, exported_{ns_l}, exported_{pod_l}"
        window = _range(step_s)
        # A window holding an impossible sample (a utilisation of UINT32_MAX, a DCGM blank in a
        # framebuffer field: aiops/config/signals.py) is left out, as the daemon's collector drops
        # the sample: the sizing must not read a glitch as a full GPU.
        top, blank = unit_range("percent")[1], f"{DCGM_INT32_BLANKS[0]:.0f}"
        # A MIG instance has no utilisation (DCGM_MIG_INSTANCE). Read as 0, every workload on a
        # slice was "idle, release it"; such GPUs are left out and named instead (:meth:`_mig_gpus`).
        whole = f'DCGM_FI_DEV_GPU_UTIL{{{DCGM_MIG_INSTANCE}=""}}'
        util = fetch(
            f"avg by ({by}) (avg_over_time({whole}[{window}])"
            f" and max_over_time({whole}[{window}]) <= {top:g})"
        )
        used = fetch(f"max by ({by}) (max_over_time(DCGM_FI_DEV_FB_USED[{window}]) < {blank})")
        total = fetch(f"max by ({by}) ((DCGM_FI_DEV_FB_USED < {blank}) + (DCGM_FI_DEV_FB_FREE < {blank}))")
        # Profiling metrics are off by default in dcgm-exporter; an empty answer is normal.
        sm = fetch(f"100 * avg by ({by}) (avg_over_time(DCGM_FI_PROF_SM_ACTIVE[{window}]))")

        def holder(labels: dict[str, str]) -> tuple[str, str]:
            if labels.get(f"exported_{pod_l}"):
                return labels.get(f"exported_{ns_l}", ""), labels[f"exported_{pod_l}"]
            return labels.get(ns_l, ""), labels.get(pod_l, "")

        def key(labels: dict[str, str]) -> tuple[str, str, str]:
            return (labels.get("UUID", ""), *holder(labels))

        used_by = {key(lb): v for lb, v in used}
        total_by = {key(lb): v for lb, v in total}
        sm_by = {key(lb): np.clip(v, 0.0, 100.0) for lb, v in sm}
        tracks: list[GpuTrack] = []
        for labels, values in util:
            k = key(labels)
            if not np.isfinite(values).any():
                continue
            fb_used = used_by.get(k, np.full_like(values, np.nan)) / MIB_PER_GIB
            fb_total = total_by.get(k)
            has_total = fb_total is not None and bool(np.isfinite(fb_total).any())
            fb_total_gib = float(np.nanmax(fb_total)) / MIB_PER_GIB if fb_total is not None and has_total else math.nan
            namespace, pod = k[1], k[2]
            tracks.append(
                GpuTrack(
                    uuid=k[0],
                    node=labels.get("Hostname", ""),
                    gpu=labels.get("gpu", ""),
                    model_name=labels.get("modelName", ""),
                    namespace=namespace,
                    pod=pod,
                    workload=workload_of(namespace, pod) if pod else None,
                    # dcgm reports 0..100; clip so a glitch cannot push a mean out of range.
                    utilization=np.clip(values, 0.0, 100.0),
                    fb_used_gib=fb_used,
                    fb_total_gib=fb_total_gib,
                    sm_active=sm_by.get(k),
                )
            )
        return sorted(tracks, key=lambda t: (t.node, t.gpu, t.namespace, t.pod))

    def _mig_gpus(self, fetch: Fetch) -> list[str]:
        """UUIDs of the GPUs with MIG instances in the window (their framebuffer is reported per instance)."""
        found = fetch(f'max by (UUID) (DCGM_FI_DEV_FB_USED{{{DCGM_MIG_INSTANCE}!=""}})')
        return sorted({labels["UUID"] for labels, values in found if labels.get("UUID") and np.isfinite(values).any()})

    def _requests(self, fetch: Fetch) -> dict[Entity, np.ndarray]:
        out: dict[Entity, np.ndarray] = {}
        query = 'sum by (namespace, pod) (kube_pod_container_resource_requests{resource="nvidia.com/gpu"})'
        for labels, values in fetch(query):
            if labels.get("pod"):
                w = workload_of(labels.get("namespace", ""), labels["pod"])
                prior = out.get(w)
                out[w] = values if prior is None else np.where(np.isnan(prior), values, prior + np.nan_to_num(values))
        return out

    def _hpas(self, fetch: Fetch) -> list[HpaTrack]:
        hpa = "namespace, horizontalpodautoscaler"
        current = fetch(f"max by ({hpa}) (kube_horizontalpodautoscaler_status_current_replicas)")
        if not current:
            return []
        mins = _last_by_hpa(fetch(f"max by ({hpa}) (kube_horizontalpodautoscaler_spec_min_replicas)"))
        maxs = _last_by_hpa(fetch(f"max by ({hpa}) (kube_horizontalpodautoscaler_spec_max_replicas)"))
        targets: dict[tuple[str, str], Entity] = {}
        for labels, _ in fetch(
            f"max by ({hpa}, scaletargetref_kind, scaletargetref_name) (kube_horizontalpodautoscaler_info)"
        ):
            if labels.get("scaletargetref_name"):
                targets[_hpa_key(labels)] = _scale_target(labels)
        metric_targets: dict[tuple[str, str], tuple[str, float]] = {}
        for labels, values in fetch(
            f"max by ({hpa}, metric_name, metric_target_type) (kube_horizontalpodautoscaler_spec_target_metric)"
        ):
            finite = values[np.isfinite(values)]
            if finite.size and _hpa_key(labels) not in metric_targets:
                metric_targets[_hpa_key(labels)] = (labels.get("metric_name", ""), float(finite[-1]))
        out: list[HpaTrack] = []
        for labels, values in current:
            k = _hpa_key(labels)
            namespace, name = k
            metric, target_value = metric_targets.get(k, ("", None))
            out.append(
                HpaTrack(
                    namespace=namespace,
                    name=name,
                    target=targets.get(k, Entity(EntityKind.DEPLOYMENT, name, namespace)),
                    current_replicas=values,
                    min_replicas=int(mins.get(k, 1)),
                    max_replicas=int(maxs.get(k, np.nanmax(values) if np.isfinite(values).any() else 1)),
                    target_value=target_value,
                    target_metric=metric,
                )
            )
        return sorted(out, key=lambda h: (h.namespace, h.name))

    def _latencies(self, fetch: Fetch) -> list[LatencyTrack]:
        auto = self.advisor.autoscaling
        signals = self.config.resolved_signals()
        if auto.latency_signal not in signals:
            raise AdvisorError(
                f"advisor.autoscaling.latency_signal {auto.latency_signal!r} is not a known signal; use one of "
                f"{', '.join(sorted(signals))} or define it under signals:"
            )
        signal = signals[auto.latency_signal]
        model_l = signal.entity_labels.get("name", "model_name")
        ns_l = signal.entity_labels.get("namespace", "namespace")
        # One coarse query is enough to learn which pods serve which model.
        served: dict[tuple[str, str], set[Entity]] = {}
        for labels, values in fetch(auto.model_pods_query):
            if labels.get("pod") and np.isfinite(values).any():
                ns = labels.get("namespace", "")
                served.setdefault((ns, labels.get(model_l, "")), set()).add(workload_of(ns, labels["pod"]))
        out: list[LatencyTrack] = []
        for labels, values in fetch(signal.query):
            ns, model = labels.get(ns_l, ""), labels.get(model_l, "")
            out.append(LatencyTrack(ns, model, values, frozenset(served.get((ns, model), set()))))
        return out


def _hpa_key(labels: dict[str, str]) -> tuple[str, str]:
    return labels.get("namespace", ""), labels.get("horizontalpodautoscaler", "")


def _last_by_hpa(series: Sequence[tuple[dict[str, str], np.ndarray]]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for labels, values in series:
        finite = values[np.isfinite(values)]
        if finite.size:
            out[_hpa_key(labels)] = float(finite[-1])
    return out


def _on_grid(series: RawSeries, grid: np.ndarray) -> np.ndarray:
    """Place a series' samples on the grid; steps without a sample are NaN."""
    out = np.full(grid.shape, np.nan)
    if len(series) == 0 or grid.size == 0:
        return out
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    idx = np.rint((series.timestamps - grid[0]) / step).astype(np.int64)
    ok = (idx >= 0) & (idx < grid.size)
    out[idx[ok]] = series.values[ok]
    return out
