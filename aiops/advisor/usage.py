"""GPU usage per workload, node and unallocated GPU; idle GPUs and GPUs that do no GPU work."""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np

from aiops.advisor.records import GpuTrack, History, Kind, Recommendation, Saving, Usage
from aiops.advisor.snippets import release_gpu_change, remove_gpu_change
from aiops.config.advisor import AdvisorConfig, GpuClass
from aiops.model import Entity, EntityKind


def gpu_class_of(model_name: str, classes: Sequence[GpuClass]) -> GpuClass | None:
    """The first configured class whose pattern matches dcgm-exporter's ``modelName``."""
    name = model_name.lower()
    for cls in classes:
        if fnmatch.fnmatchcase(name, cls.match.lower()):
            return cls
    return None


def summarize(entity: Entity, tracks: Sequence[GpuTrack], history: History, config: AdvisorConfig) -> Usage:
    util = np.vstack([t.utilization for t in tracks])
    fb = np.vstack([t.fb_used_gib for t in tracks])
    valid = np.isfinite(util)
    values = util[valid]
    idle_steps = int(np.count_nonzero(values < config.idle_utilization_percent))
    gpu_hours = int(values.size) * history.step_hours
    idle_hours = idle_steps * history.step_hours
    # The most distinct GPUs held at one step: a pod's GPUs, or a Deployment's replicas x GPUs.
    uuids = np.array([t.uuid for t in tracks])
    held = np.vstack([valid[uuids == uuid].any(axis=0) for uuid in np.unique(uuids)])
    gpus = int(held.sum(axis=0).max()) if held.size else 0
    model_name = Counter(t.model_name for t in tracks).most_common(1)[0][0]
    cls = gpu_class_of(model_name, config.gpu_classes)
    fb_finite = fb[np.isfinite(fb)]
    peak = float(np.quantile(values, config.compute_peak_quantile)) if values.size else math.nan
    peak_compute, source = peak, "DCGM_FI_DEV_GPU_UTIL"
    sm_tracks = [t.sm_active for t in tracks if t.sm_active is not None]
    if len(sm_tracks) == len(tracks):  # every GPU exports SM activity
        sm = np.vstack(sm_tracks)
        sm = sm[np.isfinite(sm)]
        if sm.size:
            peak_compute, source = float(np.quantile(sm, config.compute_peak_quantile)), "DCGM_FI_PROF_SM_ACTIVE"
    totals = [t.fb_total_gib for t in tracks if math.isfinite(t.fb_total_gib)]
    price = cls.price_per_hour if cls is not None else None
    return Usage(
        entity=entity,
        gpu_class=cls.name if cls is not None else "",
        model_name=model_name,
        gpus=gpus,
        gpu_hours=gpu_hours,
        idle_gpu_hours=idle_hours,
        mean_utilization=float(values.mean()) if values.size else math.nan,
        peak_utilization=peak,
        peak_fb_gib=float(fb_finite.max()) if fb_finite.size else math.nan,
        mean_fb_gib=float(fb_finite.mean()) if fb_finite.size else math.nan,
        fb_total_gib=max(totals) if totals else math.nan,
        price_per_hour=price,
        peak_compute=peak_compute,
        compute_source=source,
    )


_Key = TypeVar("_Key", bound=Hashable)


def _group(tracks: Iterable[GpuTrack], key: Callable[[GpuTrack], _Key | None]) -> dict[_Key, list[GpuTrack]]:
    """Tracks by ``key``; a track whose key is None (a GPU no workload held) is left out."""
    groups: dict[_Key, list[GpuTrack]] = {}
    for t in tracks:
        k = key(t)
        if k is not None:
            groups.setdefault(k, []).append(t)
    return groups


def by_workload(history: History, config: AdvisorConfig) -> list[Usage]:
    groups = _group(history.gpus, lambda t: t.workload)
    usages = []
    for entity, tracks in groups.items():
        usage = summarize(entity, tracks, history, config)
        requested = history.requested.get(entity)
        if requested is not None:
            usage = replace(usage, requested_gpu_hours=float(np.nansum(requested)) * history.step_hours)
        usages.append(usage)
    return sorted(usages, key=lambda u: (-u.idle_gpu_hours, u.entity.key))


def unobserved_requests(history: History, workloads: Sequence[Usage]) -> list[str]:
    """Workloads that requested GPUs that dcgm-exporter never attributed to their pods."""
    seen = {u.entity for u in workloads}
    notes = []
    for entity, requested in sorted(history.requested.items(), key=lambda kv: kv[0].key):
        hours = float(np.nansum(requested)) * history.step_hours
        if entity not in seen and hours > 0:
            notes.append(
                f"{entity} requested {hours:.0f} GPU-hours (nvidia.com/gpu) but no dcgm-exporter series names its "
                "pods: check dcgm-exporter's pod mapping on its nodes (MIG slices need per-instance metrics)."
            )
    return notes


def by_node(history: History, config: AdvisorConfig) -> list[Usage]:
    groups = _group(history.gpus, lambda t: t.node)
    usages = [summarize(Entity(EntityKind.NODE, str(node)), tracks, history, config) for node, tracks in groups.items()]
    return sorted(usages, key=lambda u: u.entity.key)


def unallocated(history: History, config: AdvisorConfig) -> list[Usage]:
    """GPUs while no pod held them: capacity paid for and offered to nobody."""
    groups = _group((t for t in history.gpus if not t.allocated), lambda t: t.uuid)
    usages = [
        summarize(Entity(EntityKind.GPU, str(uuid), attributes=(("node", tracks[0].node), ("gpu", tracks[0].gpu))), tracks, history, config)
        for uuid, tracks in groups.items()
    ]
    return sorted(usages, key=lambda u: -u.gpu_hours)


def idle_recommendations(usages: Sequence[Usage], config: AdvisorConfig, month_factor: float) -> list[Recommendation]:
    """A workload that does no GPU work moves to CPU; one that mostly idles releases or shares its GPU."""
    out: list[Recommendation] = []
    thr = config.idle_utilization_percent
    for u in usages:
        if not u.gpu_hours or not math.isfinite(u.peak_utilization):
            continue
        facts = {
            "gpu_hours": round(u.gpu_hours, 2),
            "idle_gpu_hours": round(u.idle_gpu_hours, 2),
            "idle_share": round(u.idle_share, 3),
            "mean_utilization_percent": round(u.mean_utilization, 1),
            "peak_utilization_percent": round(u.peak_utilization, 1),
            "peak_fb_gib": round(u.peak_fb_gib, 2),
            "fb_total_gib": round(u.fb_total_gib, 1),
            "gpus": u.gpus,
        }
        where = f"{u.gpus} x {u.gpu_class or u.model_name}"
        if u.peak_utilization <= config.cpu_max_utilization_percent and u.peak_fb_gib <= config.cpu_max_memory_gib:
            cost = u.cost_of(u.gpu_hours)
            out.append(
                Recommendation(
                    kind=Kind.MOVE_TO_CPU,
                    target=u.entity,
                    title=f"{u.entity}: no GPU work observed; run it on CPU nodes",
                    evidence=(
                        f"over {u.gpu_hours:.1f} GPU-hours on {where}, utilisation peaked at {u.peak_utilization:.1f} % "
                        f"(p{config.compute_peak_quantile * 100:g}) and framebuffer at {u.peak_fb_gib:.2f} GiB: below "
                        f"{config.cpu_max_utilization_percent:g} % and {config.cpu_max_memory_gib:g} GiB."
                    ),
                    saving=Saving(gpu_hours=u.gpu_hours, cost=cost, per_month_factor=month_factor),
                    change=remove_gpu_change(u.entity),
                    command=f"kubectl -n {u.entity.namespace} edit {u.entity.kind} {u.entity.name}",
                    facts=facts,
                )
            )
        elif u.idle_share >= config.idle_share_to_recommend:
            # Dormant: no real GPU work at all, so the GPU can go; otherwise sharing it frees the
            # part of its hours the work does not need at the utilisation a moved workload may run at.
            dormant = u.peak_utilization <= config.cpu_max_utilization_percent
            needed = min(1.0, u.mean_utilization / config.max_utilization_after_move_percent)
            freed = u.gpu_hours if dormant else u.gpu_hours * (1.0 - needed)
            out.append(
                Recommendation(
                    kind=Kind.IDLE_GPU,
                    target=u.entity,
                    title=(
                        f"{u.entity}: GPU idle {u.idle_share:.0%} of the time; "
                        + ("release it" if dormant else "share it (MIG or time-slicing)")
                    ),
                    evidence=(
                        f"{u.idle_gpu_hours:.1f} of {u.gpu_hours:.1f} GPU-hours on {where} were below {thr:g} % "
                        f"utilisation (mean {u.mean_utilization:.1f} %, p{config.compute_peak_quantile * 100:g} "
                        f"{u.peak_utilization:.1f} %); "
                        + (
                            f"framebuffer used {u.mean_fb_gib:.1f} GiB on average, {u.peak_fb_gib:.1f} GiB at peak, "
                            f"of {u.fb_total_gib:.0f} GiB allocated."
                            if math.isfinite(u.peak_fb_gib)
                            else "framebuffer use unknown (no DCGM_FI_DEV_FB_USED)."
                        )
                        + (
                            f" It never exceeded {config.cpu_max_utilization_percent:g} %: releasing frees all its GPU-hours."
                            if dormant
                            else f" Shared up to {config.max_utilization_after_move_percent:g} % utilisation, its work needs "
                            f"{u.gpu_hours - freed:.1f} of them."
                        )
                    ),
                    saving=Saving(gpu_hours=freed, cost=u.cost_of(freed), per_month_factor=month_factor),
                    change=release_gpu_change(u.entity, dormant),
                    command=(
                        f"kubectl -n {u.entity.namespace} scale {u.entity.kind}/{u.entity.name} --replicas=0"
                        if dormant and u.entity.kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET)
                        else ""
                    ),
                    facts=facts,
                )
            )
    return out

