"""HPA advice from history: where latency breaks, the target to scale at, scale-down, daily peaks.

The latency/utilisation relation is fitted as a monotone (isotonic) curve over per-bin medians, so
one slow request at low load cannot move the knee, and the knee is where the fitted p99 first
exceeds the SLO.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sklearn.isotonic import IsotonicRegression

from aiops.advisor.records import History, HpaSummary, HpaTrack, Kind, LatencyCurve, LatencyTrack, Recommendation, Saving
from aiops.advisor.snippets import hpa_scale_down_change, hpa_target_change, prescale_change
from aiops.config.advisor import AdvisorConfig
from aiops.model import Entity

BIN_PERCENT = 2.0
MIN_PAIRS = 24  # fewer (utilisation, latency) pairs than this says nothing about a knee
MIN_WASTED_GPU_HOURS = 1.0
DEFAULT_METRIC = "DCGM_FI_DEV_GPU_UTIL"


@dataclass(frozen=True)
class HpaAdvice:
    curve: LatencyCurve | None
    recommendations: list[Recommendation]
    notes: list[str]
    summary: HpaSummary | None = None


def _same_workload(a: Entity, b: Entity) -> bool:
    # An HPA names its target's kind; a pod name only suggests one, so match on namespace and name.
    return (a.namespace, a.name) == (b.namespace, b.name)


def workload_utilization(history: History, target: Entity) -> tuple[np.ndarray, float]:
    """Mean GPU utilisation over the target's GPUs per step, and its GPUs per replica."""
    tracks = [t for t in history.gpus if t.workload is not None and _same_workload(t.workload, target)]
    if not tracks:
        return np.full(history.timestamps.shape, np.nan), 1.0
    util = np.vstack([t.utilization for t in tracks])
    counts = np.isfinite(util).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, np.nansum(util, axis=0) / np.maximum(counts, 1), np.nan)
    pods = {t.pod for t in tracks}
    return mean, max(1.0, len(tracks) / max(1, len(pods)))


def latency_for(history: History, target: Entity) -> LatencyTrack | None:
    served = [lt for lt in history.latencies if any(_same_workload(w, target) for w in lt.workloads)]
    if not served:
        return None
    return max(served, key=lambda lt: int(np.isfinite(lt.p99_seconds).sum()))


def fit_curve(util: np.ndarray, p99: np.ndarray, slo_seconds: float) -> tuple[np.ndarray, np.ndarray, float | None] | None:
    # histogram_quantile answers +Inf when the quantile is past the largest bucket: slower than
    # anything measurable, so it sits above every finite value (and above the SLO) in the fit.
    finite = p99[np.isfinite(p99)]
    ceiling = max(float(finite.max()) if finite.size else 0.0, 2.0 * slo_seconds)
    p99 = np.where(np.isposinf(p99), ceiling, p99)
    ok = np.isfinite(util) & np.isfinite(p99)
    if np.count_nonzero(ok) < MIN_PAIRS:
        return None
    u, y = util[ok], p99[ok]
    bins = np.floor(u / BIN_PERCENT)
    centers, medians, weights = [], [], []
    for b in np.unique(bins):
        sel = bins == b
        centers.append(float(u[sel].mean()))
        medians.append(float(np.median(y[sel])))
        weights.append(int(sel.sum()))
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip")
    iso.fit(centers, medians, sample_weight=weights)
    grid = np.arange(0.0, 101.0)
    fitted = iso.predict(grid)
    over = np.flatnonzero((fitted > slo_seconds) & (grid <= u.max()))
    knee = float(grid[over[0]]) if over.size else None
    return grid, fitted, knee


def analyse_hpa(
    hpa: HpaTrack, history: History, config: AdvisorConfig, price_per_hour: float | None, month_factor: float
) -> HpaAdvice:
    auto = config.autoscaling
    slo = auto.latency_slo.total_seconds()
    util, gpus_per_replica = workload_utilization(history, hpa.target)
    latency = latency_for(history, hpa.target)
    step_min = history.step_seconds / 60.0
    recs: list[Recommendation] = []
    notes: list[str] = []
    if not np.isfinite(util).any():
        notes.append(f"{hpa.entity}: no GPU series from pods of {hpa.target}, so no autoscaling advice for it.")
        return HpaAdvice(None, recs, notes)
    if latency is None:
        notes.append(
            f"{hpa.entity}: no model latency from pods of {hpa.target} (see advisor.autoscaling.model_pods_query), "
            "so no latency-based target or pre-scale advice."
        )
    curve: LatencyCurve | None = None
    knee: float | None = None
    breach = np.zeros(util.shape, dtype=bool)
    if latency is not None:
        with np.errstate(invalid="ignore"):
            breach = latency.p99_seconds > slo
        fitted = fit_curve(util, latency.p99_seconds, slo)
        if fitted is None:
            notes.append(f"{hpa.entity}: fewer than {MIN_PAIRS} steps with both latency and utilisation; no knee fitted.")
        else:
            grid, fit, knee = fitted
            ok = np.isfinite(util) & ~np.isnan(latency.p99_seconds)
            curve = LatencyCurve(hpa.entity, latency.model, util[ok], latency.p99_seconds[ok], grid, fit, knee)

    recommended: int | None = None
    if knee is not None:
        if knee <= float(np.nanmin(util)) + BIN_PERCENT:
            notes.append(
                f"{hpa.entity}: p99 latency is above the SLO even at the lowest utilisation seen, so more replicas "
                "would not fix it; look at the model server instead."
            )
        else:
            recommended = max(1, math.floor(knee - auto.target_margin_percent))
    # Only a GPU-metric target is comparable with a GPU-utilisation knee.
    on_gpu = bool(hpa.target_metric) and any(k in hpa.target_metric.lower() for k in ("gpu", "dcgm"))
    current = hpa.target_value if on_gpu else None
    sizing_target = recommended or current
    metric = hpa.target_metric if on_gpu else DEFAULT_METRIC

    if recommended is not None and (current is None or current > recommended + 1):
        assert latency is not None
        with np.errstate(invalid="ignore"):
            above = breach & (util >= recommended)
        minutes = float(np.count_nonzero(above)) * step_min
        change, command = hpa_target_change(hpa.entity, metric, recommended)
        if current is not None:
            now = f"{current:g}"
        elif hpa.target_metric:
            at = f" at {hpa.target_value:g}" if hpa.target_value is not None else ""
            now = f"scales on {hpa.target_metric}{at}"
        else:
            now = "unknown: kube_horizontalpodautoscaler_spec_target_metric not exported"
        recs.append(
            Recommendation(
                kind=Kind.HPA_TARGET,
                target=hpa.entity,
                title=f"{hpa.entity}: scale out at {recommended} % GPU utilisation (now {now})",
                evidence=(
                    f"p99 latency of model {latency.model} crosses {slo * 1000:g} ms above ~{knee:.0f} % GPU utilisation "
                    f"of {hpa.target} (monotone fit over {curve.utilization.size if curve else 0} steps); "
                    f"{minutes:.0f} min of breach happened at or above {recommended} %, which the new target "
                    f"would have scaled out for. Target = knee - {auto.target_margin_percent:g} points."
                ),
                saving=Saving(breach_minutes=minutes, per_month_factor=month_factor),
                change=change,
                command=command,
                facts={"knee_utilization_percent": knee, "recommended_target": recommended, "current_target": hpa.target_value,
                       "current_metric": hpa.target_metric, "breach_minutes": minutes},
            )
        )

    waste = _scale_down_waste(hpa, util, sizing_target, history, config) if sizing_target is not None else 0.0
    gpu_hours = waste * gpus_per_replica
    if sizing_target is not None and gpu_hours >= MIN_WASTED_GPU_HOURS:
        stab = int(auto.scale_down_stabilization.total_seconds())
        change, command = hpa_scale_down_change(hpa.entity, stab, sizing_target)
        recs.append(
            Recommendation(
                kind=Kind.HPA_SCALE_DOWN,
                target=hpa.entity,
                title=f"{hpa.entity}: scale down after {stab // 60} min stabilisation, not later",
                evidence=(
                    f"replicas stayed above what a {sizing_target:g} % target needs while GPU utilisation was under "
                    f"{auto.scale_down_utilization_percent:g} % for more than {auto.scale_down_after.total_seconds() / 60:g} min: "
                    f"{waste:.1f} replica-hours ({gpu_hours:.1f} GPU-hours) held for nothing in the window."
                ),
                saving=Saving(
                    gpu_hours=gpu_hours,
                    cost=gpu_hours * price_per_hour if price_per_hour is not None else None,
                    per_month_factor=month_factor,
                ),
                change=change,
                command=command,
                facts={"wasted_replica_hours": round(waste, 2), "gpus_per_replica": gpus_per_replica},
            )
        )

    if latency is not None and sizing_target is not None:
        prescale = _prescale(hpa, history, breach, util, sizing_target, config, month_factor)
        if prescale is not None:
            recs.append(prescale)
    summary = HpaSummary(
        hpa=hpa.entity,
        target=hpa.target,
        min_replicas=hpa.min_replicas,
        max_replicas=hpa.max_replicas,
        metric=hpa.target_metric,
        target_value=hpa.target_value,
        knee_utilization=knee,
        recommended_target=recommended,
        breach_minutes=float(np.count_nonzero(breach)) * step_min if latency is not None else math.nan,
        wasted_gpu_hours=gpu_hours,
    )
    return HpaAdvice(curve, recs, notes, summary)


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each step, how many consecutive steps up to and including it satisfy ``mask``."""
    out = np.zeros(mask.shape, dtype=np.int64)
    run = 0
    for i, m in enumerate(mask):
        run = run + 1 if m else 0
        out[i] = run
    return out


def _desired(current: np.ndarray, util: np.ndarray, target: float, hpa: HpaTrack) -> np.ndarray:
    # The HPA formula: desired = ceil(current * currentMetric / target), within [min, max].
    with np.errstate(invalid="ignore"):
        desired = np.ceil(current * util / target)
    clipped: np.ndarray = np.clip(desired, hpa.min_replicas, hpa.max_replicas)
    return clipped


def _scale_down_waste(hpa: HpaTrack, util: np.ndarray, target: float, history: History, config: AdvisorConfig) -> float:
    auto = config.autoscaling
    with np.errstate(invalid="ignore"):
        low = util < auto.scale_down_utilization_percent
    needed_steps = math.ceil((auto.scale_down_after + auto.scale_down_stabilization).total_seconds() / history.step_seconds)
    settled = _run_lengths(low) > needed_steps
    current = hpa.current_replicas
    excess = current - _desired(current, util, target, hpa)
    ok = settled & np.isfinite(excess) & (excess > 0)
    return float(excess[ok].sum()) * history.step_hours


def _recurring(breach: np.ndarray, keys: np.ndarray, periods: np.ndarray, min_periods: int) -> list[int]:
    """Keys (hour of day, or hour of week) with a breach in at least ``min_periods`` distinct periods."""
    return sorted(int(k) for k in np.unique(keys[breach]) if len(set(periods[breach & (keys == k)])) >= min_periods)


def _prescale(
    hpa: HpaTrack,
    history: History,
    breach: np.ndarray,
    util: np.ndarray,
    target: float,
    config: AdvisorConfig,
    month_factor: float,
) -> Recommendation | None:
    auto = config.autoscaling
    if not breach.any():
        return None
    times = [datetime.fromtimestamp(float(t), UTC) for t in history.timestamps]
    hour_of_day = np.array([t.hour for t in times])
    hour_of_week = np.array([t.weekday() * 24 + t.hour for t in times])
    day = np.array([t.date().toordinal() for t in times])
    week = np.array([t.isocalendar()[0] * 100 + t.isocalendar()[1] for t in times])
    weekly = False
    peak_keys = _recurring(breach, hour_of_day, day, auto.min_peak_days)
    keys, periods = hour_of_day, day
    if not peak_keys:
        # A weekly pattern needs min_peak_days weeks of history; with less this finds nothing.
        weekly = True
        peak_keys = _recurring(breach, hour_of_week, week, auto.min_peak_days)
        keys, periods = hour_of_week, week
    if not peak_keys:
        return None
    in_peak = breach & np.isin(keys, peak_keys)
    minutes = float(np.count_nonzero(in_peak)) * history.step_seconds / 60.0
    desired = _desired(hpa.current_replicas, util, target, hpa)[in_peak]
    desired = desired[np.isfinite(desired)]
    peak_replicas = math.ceil(float(np.quantile(desired, 0.9))) if desired.size else hpa.max_replicas
    peak_replicas = max(peak_replicas, hpa.min_replicas + 1)
    lead_min = int(auto.prescale_lead.total_seconds() // 60)
    windows = [(_schedule(begin * 60 - lead_min, weekly), _schedule(end * 60, weekly)) for begin, end in _contiguous(peak_keys)]
    seen = len(set(periods[in_peak]))
    capped = " (at maxReplicas; raise it too)" if peak_replicas >= hpa.max_replicas else ""
    every = "weekly" if weekly else "daily"
    hours_text = ", ".join(_hour_label(k, weekly) for k in peak_keys)
    return Recommendation(
        kind=Kind.PRESCALE,
        target=hpa.entity,
        title=f"{hpa.entity}: pre-scale to {peak_replicas} replicas before the {every} peak "
        + ", ".join(f"{b[0]}-{e[0]}" for b, e in windows)
        + " UTC",
        evidence=(
            f"p99 latency breached {auto.latency_slo.total_seconds() * 1000:g} ms in the same hours "
            f"({hours_text} UTC) in {seen} different {'weeks' if weekly else 'days'}; {minutes:.0f} min of breach "
            f"in the window fell in those hours and would have been avoided by adding replicas {lead_min} min "
            f"ahead. {peak_replicas} replicas is the p90 of what a {target:g} % target needed then{capped}."
        ),
        saving=Saving(breach_minutes=minutes, per_month_factor=month_factor),
        change=prescale_change(hpa.entity, windows, peak_replicas, hpa.min_replicas),
        change_format="sh",
        facts={
            "period": every,
            "peak_hours_utc": peak_keys,
            "peak_replicas": peak_replicas,
            "breach_minutes_avoidable": minutes,
            "periods_seen": seen,
        },
    )


def _schedule(minute: int, weekly: bool) -> tuple[str, str]:
    """(label, cron) of a minute of the day, or of the week (Monday 00:00 = 0), in UTC."""
    span = 7 * 1440 if weekly else 1440
    m = minute % span
    hh, mm = (m % 1440) // 60, m % 60
    if not weekly:
        return f"{hh:02d}:{mm:02d}", f"{mm} {hh} * * *"
    wd = m // 1440
    return f"{_DAYS[wd]} {hh:02d}:{mm:02d}", f"{mm} {hh} * * {(wd + 1) % 7}"


def _hour_label(key: int, weekly: bool) -> str:
    return f"{_DAYS[key // 24]} {key % 24:02d}:00" if weekly else f"{key:02d}:00"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _contiguous(hours: Sequence[int]) -> list[tuple[int, int]]:
    """[9, 10, 14] -> [(9, 11), (14, 15)]: [begin, end) ranges of whole hours."""
    out: list[tuple[int, int]] = []
    for h in hours:
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + 1)
        else:
            out.append((h, h + 1))
    return out
