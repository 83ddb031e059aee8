"""From history to advice: usage tables, then each analysis adds its recommendations."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiops.advisor.autoscaling import analyse_hpa
from aiops.advisor.records import Advice, History, HpaSummary, Kind, LatencyCurve, Recommendation
from aiops.advisor.sizing import sizing_recommendations
from aiops.advisor.usage import by_node, by_workload, gpu_class_of, idle_recommendations, unallocated, unobserved_requests
from aiops.config.advisor import AdvisorConfig

MONTH = timedelta(days=30)


def analyze(history: History, config: AdvisorConfig, generated_at: datetime) -> Advice:
    # Savings are measured over the hours that have data, so they extrapolate from those.
    covered = history.covered_hours or history.window_hours
    month_factor = MONTH.total_seconds() / 3600 / covered
    workloads = by_workload(history, config)
    recommendations: list[Recommendation] = idle_recommendations(workloads, config, month_factor)
    # Moving to CPU supersedes any GPU right-sizing of the same workload.
    on_cpu = {r.target for r in recommendations if r.kind == Kind.MOVE_TO_CPU}
    sizing, packings, tiering = sizing_recommendations([u for u in workloads if u.entity not in on_cpu], config, month_factor)
    recommendations += sizing
    curves: list[LatencyCurve] = []
    notes: list[str] = unobserved_requests(history, workloads)
    hpas: list[HpaSummary] = []
    for hpa in history.hpas:
        model_names = [
            t.model_name
            for t in history.gpus
            if t.workload is not None and (t.workload.namespace, t.workload.name) == (hpa.target.namespace, hpa.target.name)
        ]
        cls = gpu_class_of(model_names[0], config.gpu_classes) if model_names else None
        price = cls.price_per_hour if cls is not None else None
        result = analyse_hpa(hpa, history, config, price, month_factor)
        recommendations += result.recommendations
        notes += result.notes
        if result.summary is not None:
            hpas.append(result.summary)
        if result.curve is not None:
            curves.append(result.curve)
    order = {kind: i for i, kind in enumerate(Kind)}
    recommendations.sort(
        key=lambda r: (-(r.saving.cost or 0.0), -r.saving.gpu_hours, -r.saving.breach_minutes, order[r.kind], r.target.key)
    )
    return Advice(
        generated_at=generated_at,
        history=history,
        currency=config.currency,
        latency_slo_seconds=config.autoscaling.latency_slo.total_seconds(),
        idle_threshold=config.idle_utilization_percent,
        workloads=tuple(workloads),
        nodes=tuple(by_node(history, config)),
        unallocated=tuple(unallocated(history, config)),
        recommendations=tuple(recommendations),
        packings=tuple(packings),
        curves=tuple(curves),
        hpas=tuple(hpas),
        tiering=tiering,
        notes=tuple(notes),
    )
