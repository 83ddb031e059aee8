"""Right-sizing: which workloads fit a smaller GPU class or a MIG slice, and which need the big ones.

A workload fits a target when its peak framebuffer times ``headroom`` fits the target's memory and
its peak compute, rescaled by relative compute, stays under ``max_utilization_after_move_percent``.
Peak compute is DCGM_FI_PROF_SM_ACTIVE where exported, else GPU_UTIL (share of time any kernel ran),
which overstates the SMs a workload needs, so fits then err on the safe side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aiops.advisor.records import Kind, MigPacking, Recommendation, Saving, Usage
from aiops.advisor.snippets import mig_change, node_selector_change
from aiops.config.advisor import AdvisorConfig, GpuClass, MigProfile


def _fits(u: Usage, memory_gib: float, compute_ratio: float, config: AdvisorConfig) -> bool:
    """``compute_ratio``: the target's compute over the current GPU's (1/7 for a 1g slice)."""
    utilization_after = u.peak_compute / compute_ratio
    return u.peak_fb_gib * config.headroom <= memory_gib and utilization_after <= config.max_utilization_after_move_percent


def _sizable(u: Usage) -> bool:
    return u.gpu_hours > 0 and math.isfinite(u.peak_fb_gib) and math.isfinite(u.peak_compute)


def smallest_mig_profile(u: Usage, cls: GpuClass, config: AdvisorConfig) -> MigProfile | None:
    for p in sorted(cls.mig_profiles, key=lambda p: (p.compute_slices, p.memory_gib)):
        if _fits(u, p.memory_gib, p.compute_slices / cls.compute_slices, config):
            return p
    return None


def _smaller(candidate: GpuClass, current: GpuClass) -> bool:
    if candidate.price_per_hour is not None and current.price_per_hour is not None:
        return candidate.price_per_hour < current.price_per_hour
    no_bigger = candidate.memory_gib <= current.memory_gib and candidate.relative_compute <= current.relative_compute
    return no_bigger and (candidate.memory_gib, candidate.relative_compute) != (current.memory_gib, current.relative_compute)


def fitting_classes(u: Usage, current: GpuClass, config: AdvisorConfig) -> list[GpuClass]:
    """Classes this workload fits, cheapest (or smallest) first."""
    fit = [c for c in config.gpu_classes if _fits(u, c.memory_gib, c.relative_compute / current.relative_compute, config)]
    def cheapest(c: GpuClass) -> tuple[float, float, float]:
        return (c.price_per_hour if c.price_per_hour is not None else math.inf, c.relative_compute, c.memory_gib)

    return sorted(fit, key=cheapest)


def sizing_recommendations(
    usages: Sequence[Usage], config: AdvisorConfig, month_factor: float
) -> tuple[list[Recommendation], list[MigPacking], dict[str, str]]:
    classes = {c.name: c for c in config.gpu_classes}
    recs: list[Recommendation] = []
    tiering: dict[str, str] = {}
    mig_groups: dict[str, list[tuple[Usage, MigProfile]]] = {}
    for u in usages:
        current = classes.get(u.gpu_class)
        if current is None:
            tiering[u.entity.key] = f"unknown: GPU {u.model_name or '(no modelName)'} matches no advisor.gpu_classes entry"
            continue
        if not _sizable(u):
            tiering[u.entity.key] = "unknown: no framebuffer history (DCGM_FI_DEV_FB_USED) to size it by"
            continue
        peak = f"peak framebuffer {u.peak_fb_gib:.1f} GiB, {_compute(u, config)}"
        fit = fitting_classes(u, current, config)
        smaller = [c for c in fit if _smaller(c, current)]
        profile = smallest_mig_profile(u, current, config)
        if not smaller and profile is None:
            tiering[u.entity.key] = f"needs {current.name}: no smaller class or MIG slice fits ({peak})"
        else:
            options = [c.name for c in smaller] + ([f"MIG {profile.name}"] if profile else [])
            tiering[u.entity.key] = f"fits {', '.join(options)} ({peak})"
        if smaller:
            recs.append(_tier(u, current, smaller[0], config, month_factor))
        if profile is not None:
            recs.append(_mig(u, current, profile, config, month_factor))
            mig_groups.setdefault(current.name, []).append((u, profile))
    packings = [_packing(classes[name], group) for name, group in sorted(mig_groups.items())]
    return recs, packings, tiering


def _compute(u: Usage, config: AdvisorConfig) -> str:
    what = "SM activity" if u.compute_source == "DCGM_FI_PROF_SM_ACTIVE" else "utilisation"
    return f"p{config.compute_peak_quantile * 100:g} {what} {u.peak_compute:.0f} %"


def _facts(u: Usage, config: AdvisorConfig) -> dict[str, float | str]:
    return {
        "gpu_class": u.gpu_class,
        "gpus": u.gpus,
        "gpu_hours": round(u.gpu_hours, 2),
        "peak_fb_gib": round(u.peak_fb_gib, 2),
        "peak_utilization_percent": round(u.peak_utilization, 1),
        "peak_compute_percent": round(u.peak_compute, 1),
        "compute_source": u.compute_source,
        "mean_utilization_percent": round(u.mean_utilization, 1),
        "headroom": config.headroom,
    }


def _tier(u: Usage, current: GpuClass, target: GpuClass, config: AdvisorConfig, month_factor: float) -> Recommendation:
    util_after = u.peak_compute * current.relative_compute / target.relative_compute
    cost = None
    if current.price_per_hour is not None and target.price_per_hour is not None:
        cost = (current.price_per_hour - target.price_per_hour) * u.gpu_hours
    change, command = node_selector_change(u.entity, target.node_selector, target.name)
    return Recommendation(
        kind=Kind.SMALLER_GPU,
        target=u.entity,
        title=f"{u.entity}: move from {current.name} to {target.name}",
        evidence=(
            f"peak framebuffer {u.peak_fb_gib:.1f} GiB (x{config.headroom:g} headroom = "
            f"{u.peak_fb_gib * config.headroom:.1f} GiB) fits {target.name}'s {target.memory_gib:g} GiB; "
            f"{_compute(u, config)} of a {current.name} "
            f"would be about {util_after:.0f} % of a {target.name} (limit {config.max_utilization_after_move_percent:g} %)."
            f" Frees {u.gpu_hours:.0f} {current.name} GPU-hours per window for workloads that need them."
        ),
        saving=Saving(gpu_hours=0.0, cost=cost, per_month_factor=month_factor),
        change=change,
        command=command,
        facts={**_facts(u, config), "to_class": target.name, "utilization_after_percent": round(util_after, 1)},
    )


def _mig(u: Usage, current: GpuClass, profile: MigProfile, config: AdvisorConfig, month_factor: float) -> Recommendation:
    share = profile.compute_slices / current.compute_slices
    saved = u.gpu_hours * (1.0 - 1.0 / profile.max_instances)
    return Recommendation(
        kind=Kind.MIG,
        target=u.entity,
        title=f"{u.entity}: fits a MIG {profile.name} slice of {current.name}; {profile.max_instances} can share one GPU",
        evidence=(
            f"peak framebuffer {u.peak_fb_gib:.1f} GiB (x{config.headroom:g} = {u.peak_fb_gib * config.headroom:.1f} GiB) "
            f"fits {profile.name}'s {profile.memory_gib:g} GiB; {_compute(u, config)} of a whole GPU is "
            f"{u.peak_compute / share:.0f} % of the slice's "
            f"{profile.compute_slices}/{current.compute_slices} compute (limit {config.max_utilization_after_move_percent:g} %). "
            f"Mean utilisation {u.mean_utilization:.0f} % today; about {min(100.0, u.mean_utilization / share):.0f} % "
            "of the slice after the move."
        ),
        saving=Saving(gpu_hours=saved, cost=u.cost_of(saved), per_month_factor=month_factor),
        change=mig_change(u.entity, profile.name),
        facts={**_facts(u, config), "profile": profile.name, "per_gpu": profile.max_instances},
    )


def _packing(cls: GpuClass, group: list[tuple[Usage, MigProfile]]) -> MigPacking:
    """First-fit decreasing of every replica's slice onto GPUs of the class: compute slices, memory
    and each profile's instance limit must fit. Real placement rules differ per GPU (see
    ``nvidia-smi mig -lgipp``), so the count is an estimate, not a layout."""
    slices = sorted(((p, u) for u, p in group for _ in range(max(1, u.gpus))), key=lambda x: -x[0].compute_slices)
    bins: list[list[MigProfile]] = []
    for profile, _ in slices:
        for b in bins:
            fits = (
                sum(p.compute_slices for p in b) + profile.compute_slices <= cls.compute_slices
                and sum(p.memory_gib for p in b) + profile.memory_gib <= cls.memory_gib
                and sum(p.name == profile.name for p in b) < profile.max_instances
            )
            if fits:
                b.append(profile)
                break
        else:
            bins.append([profile])
    usages = [u for u, _ in group]
    gpus_now = sum(max(1, u.gpus) for u in usages)
    hours = sum(u.gpu_hours for u in usages)
    util_now = sum(u.mean_utilization * u.gpu_hours for u in usages) / hours if hours else 0.0
    # The work stays the same; it runs on fewer GPUs.
    util_packed = min(100.0, sum(u.mean_utilization * max(1, u.gpus) for u in usages) / len(bins))
    return MigPacking(
        gpu_class=cls.name,
        profile=", ".join(sorted({p.name for _, p in group})),
        workloads=tuple(u.entity for u in usages),
        gpus_now=gpus_now,
        gpus_packed=len(bins),
        utilization_now=util_now,
        utilization_packed=util_packed,
    )
