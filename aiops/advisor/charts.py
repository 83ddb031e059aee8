"""PNG charts for the report: utilisation distributions, latency vs utilisation, idle-hours heatmap.

Figures are built with ``matplotlib.figure.Figure`` (Agg canvas) rather than pyplot, so charting
never touches the process-wide backend or pyplot's global figure list (safe in the daemon).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from aiops.advisor.records import Advice, LatencyCurve
from aiops.model import Entity

MAX_WORKLOADS = 20
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def utilization_distributions(advice: Advice, path: Path) -> Path:
    tracks_by: dict[Entity, list[np.ndarray]] = {}
    for t in advice.history.gpus:
        if t.workload is not None:
            tracks_by.setdefault(t.workload, []).append(t.utilization)
    order = [u.entity for u in sorted(advice.workloads, key=lambda u: -u.gpu_hours)[:MAX_WORKLOADS]]
    data = []
    for e in order:
        values = np.concatenate(tracks_by[e])
        data.append(values[np.isfinite(values)])
    fig = Figure(figsize=(9, 1.2 + 0.45 * max(1, len(order))), layout="constrained")
    ax = fig.add_subplot()
    if data:
        ax.boxplot(data, orientation="horizontal", tick_labels=[e.key for e in order], showfliers=False, whis=(1, 99))
    ax.axvline(advice.idle_threshold, color="tab:red", linestyle="--", label=f"idle below {advice.idle_threshold:g} %")
    ax.set_xlim(0, 100)
    ax.set_xlabel("GPU utilisation (%) per step; whiskers p1-p99")
    ax.set_title("GPU utilisation by workload")
    ax.legend(loc="best")
    fig.savefig(path, dpi=100)
    return path


def idle_heatmap(advice: Advice, path: Path) -> Path:
    """Idle GPU-hours (allocated or not) by weekday and UTC hour, summed over the window."""
    h = advice.history
    times = [datetime.fromtimestamp(float(t), UTC) for t in h.timestamps]
    weekday = np.array([t.weekday() for t in times])
    hour = np.array([t.hour for t in times])
    grid = np.zeros((7, 24))
    for t in h.gpus:
        with np.errstate(invalid="ignore"):
            idle = t.utilization < advice.idle_threshold
        np.add.at(grid, (weekday[idle], hour[idle]), h.step_hours)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="Reds", origin="upper")
    ax.set_yticks(range(7), DAYS)
    ax.set_xticks(range(0, 24, 2), [f"{x:02d}" for x in range(0, 24, 2)])
    ax.set_xlabel("hour of day (UTC)")
    ax.set_title(f"Idle GPU-hours (< {advice.idle_threshold:g} % utilisation) by weekday and hour")
    fig.colorbar(image, ax=ax, label="GPU-hours")
    fig.savefig(path, dpi=100)
    return path


def latency_vs_utilization(curve: LatencyCurve, slo_seconds: float, path: Path) -> Path:
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(curve.utilization, curve.p99_seconds * 1000, s=6, alpha=0.35, label="5-min steps")
    ax.plot(curve.grid, curve.fitted_p99_seconds * 1000, color="black", label="monotone fit")
    ax.axhline(slo_seconds * 1000, color="tab:red", linestyle="--", label=f"SLO {slo_seconds * 1000:g} ms")
    if curve.knee_utilization is not None:
        ax.axvline(curve.knee_utilization, color="tab:orange", label=f"knee ~{curve.knee_utilization:.0f} %")
    ax.set_xlim(0, 100)
    ax.set_xlabel("GPU utilisation of the scaled workload (%)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title(f"{curve.hpa}: p99 latency of {curve.model} vs GPU utilisation")
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=100)
    return path


def draw_all(advice: Advice, out_dir: Path) -> dict[str, Path]:
    """Every chart of the report by name ("latency:<hpa key>" per HPA); paths are inside ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        "utilization": utilization_distributions(advice, out_dir / "utilization.png"),
        "idle_heatmap": idle_heatmap(advice, out_dir / "idle_heatmap.png"),
    }
    for curve in advice.curves:
        path = out_dir / f"latency_{_slug(curve.hpa.namespace)}_{_slug(curve.hpa.name)}.png"
        charts[f"latency:{curve.hpa.key}"] = latency_vs_utilization(curve, advice.latency_slo_seconds, path)
    return charts
