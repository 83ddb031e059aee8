"""The advice as a terminal summary, Markdown, HTML (both with PNG charts) and JSON.

Markdown and HTML render one document model, so the two reports cannot drift apart.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops.advisor.records import Advice, Recommendation, Saving, Usage

# --- shared wording -------------------------------------------------------------------------


def describe_saving(s: Saving, currency: str) -> str:
    parts = []
    if s.gpu_hours:
        parts.append(f"{s.gpu_hours:,.0f} GPU-hours (~{s.gpu_hours_per_month:,.0f} per month)")
    if s.cost is not None and s.cost:
        parts.append(f"{s.cost:,.0f} {currency} (~{s.cost_per_month or 0:,.0f} {currency} per month)")
    if s.breach_minutes:
        per_month = s.breach_minutes * s.per_month_factor
        parts.append(f"{s.breach_minutes:,.0f} min of latency-SLO breach (~{per_month:,.0f} per month)")
    return ", ".join(parts) or "no direct saving; frees capacity for workloads that need it"


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _usage_rows(usages: Sequence[Usage], currency: str) -> list[list[str]]:
    return [
        [
            u.entity.key,
            u.gpu_class or u.model_name,
            str(u.gpus),
            _num(u.gpu_hours),
            _num(u.requested_gpu_hours),
            f"{_num(u.idle_gpu_hours)} ({u.idle_share:.0%})",
            _num(u.mean_utilization, "{:.0f} %"),
            _num(u.peak_utilization, "{:.0f} %"),
            f"{_num(u.peak_fb_gib)} / {_num(u.fb_total_gib, '{:.0f}')}",
            _num(u.idle_cost, "{:,.0f} " + currency) if u.idle_cost is not None else "-",
        ]
        for u in usages
    ]


USAGE_HEADER = [
    "", "GPU", "GPUs", "GPU-hours", "requested GPU-hours", "idle GPU-hours", "mean util", "peak util", "peak FB GiB / GPU", "idle cost"
]

# --- document model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = "yaml"


@dataclass(frozen=True)
class Image:
    src: str  # relative to the report
    alt: str


Block = Heading | Paragraph | Table | Code | Image


def build_document(advice: Advice, charts: dict[str, Path]) -> list[Block]:
    h = advice.history
    days = h.window_hours / 24
    fleet_hours = sum(u.gpu_hours for u in advice.nodes)
    fleet_idle = sum(u.idle_gpu_hours for u in advice.nodes)
    doc: list[Block] = [
        Heading("GPU capacity and cost advice", 1),
        Paragraph(
            f"Window: {h.start:%Y-%m-%d %H:%M} to {h.end:%Y-%m-%d %H:%M} UTC ({days:g} days, {h.step_seconds / 60:g}-minute steps). "
            f"{fleet_hours:.0f} GPU-hours on {sum(1 for _ in {t.uuid for t in h.gpus})} GPUs; {fleet_idle:.0f} GPU-hours "
            f"({(fleet_idle / fleet_hours if fleet_hours else 0):.0%}) below {advice.idle_threshold:g} % utilisation."
        ),
    ]
    if advice.recommendations:
        total = describe_saving(advice.total_saving, advice.currency)
        doc.append(Paragraph(f"Expected saving if all recommendations are applied: {total}."))
    for gap in advice.caveats:
        doc.append(Paragraph(f"Note: {gap}"))
    doc += [Heading("Recommendations"), *_recommendation_blocks(advice)]
    doc += [Heading("Idle and wasted GPU"), Heading("By workload", 3)]
    doc.append(Table(USAGE_HEADER, _usage_rows(advice.workloads, advice.currency)))
    doc += [Heading("By node", 3), Table(USAGE_HEADER, _usage_rows(advice.nodes, advice.currency))]
    if advice.unallocated:
        doc += [
            Heading("GPUs no pod held", 3),
            Paragraph("Hours in which dcgm-exporter reported a GPU without a pod: capacity paid for and used by nobody."),
            Table(USAGE_HEADER, _usage_rows(advice.unallocated, advice.currency)),
        ]
    if "utilization" in charts:
        doc.append(Image(charts["utilization"].name, "GPU utilisation distribution by workload"))
    if "idle_heatmap" in charts:
        doc.append(Image(charts["idle_heatmap"].name, "Idle GPU-hours by weekday and hour"))
    doc += [Heading("Tiering"), Table(["workload", "fits"], [[k, v] for k, v in sorted(advice.tiering.items())])]
    if advice.packings:
        doc.append(Heading("MIG packing"))
        doc.append(
            Table(
                ["GPU class", "profile", "workloads", "GPUs now", "GPUs packed", "mean util now", "est. util packed"],
                [
                    [p.gpu_class, p.profile, ", ".join(e.key for e in p.workloads), str(p.gpus_now), str(p.gpus_packed),
                     f"{p.utilization_now:.0f} %", f"{p.utilization_packed:.0f} %"]
                    for p in advice.packings
                ],
            )
        )
    if advice.hpas:
        slo_ms = advice.latency_slo_seconds * 1000
        doc.append(Heading("Autoscaling"))
        doc.append(
            Table(
                [
                    "HPA", "scales", "replicas", "target now", "p99 knee", "recommended target",
                    f"min p99 > {slo_ms:g} ms", "GPU-hours held when idle",
                ],
                [
                    [
                        s.hpa.key,
                        s.target.key,
                        f"{s.min_replicas}-{s.max_replicas}",
                        f"{s.metric or '?'} = {_num(s.target_value, '{:g}')}",
                        _num(s.knee_utilization, "{:.0f} %"),
                        _num(s.recommended_target, "{:d} %"),
                        _num(s.breach_minutes, "{:.0f}"),
                        _num(s.wasted_gpu_hours, "{:.1f}"),
                    ]
                    for s in advice.hpas
                ],
            )
        )
    if advice.curves:
        doc.append(Heading("Autoscaling: latency vs utilisation"))
        for curve in advice.curves:
            slo = f"{advice.latency_slo_seconds * 1000:g} ms"
            if curve.knee_utilization is not None:
                knee = f"p99 crosses {slo} above ~{curve.knee_utilization:.0f} % GPU utilisation"
            else:
                knee = f"p99 stayed under {slo} at every utilisation seen"
            doc.append(Paragraph(f"{curve.hpa} (model {curve.model}): {knee}."))
            chart = charts.get(f"latency:{curve.hpa.key}")
            if chart is not None:
                doc.append(Image(chart.name, f"p99 latency vs utilisation for {curve.hpa}"))
    return doc


def _recommendation_blocks(advice: Advice) -> list[Block]:
    if not advice.recommendations:
        return [Paragraph("No changes recommended: every workload is sized to its use.")]
    blocks: list[Block] = [
        Table(
            ["#", "kind", "target", "expected saving"],
            [[str(i), str(r.kind), r.target.key, describe_saving(r.saving, advice.currency)]
             for i, r in enumerate(advice.recommendations, 1)],
        )
    ]
    for i, r in enumerate(advice.recommendations, 1):
        blocks.append(Heading(f"{i}. {r.title}", 3))
        blocks.append(Paragraph(f"Evidence: {r.evidence}"))
        blocks.append(Paragraph(f"Expected saving: {describe_saving(r.saving, advice.currency)}."))
        blocks.append(Code(r.change, r.change_format))
        if r.command:
            blocks.append(Code(r.command, "sh"))
    return blocks


def to_markdown(doc: Sequence[Block]) -> str:
    out: list[str] = []
    for b in doc:
        match b:
            case Heading(text, level):
                out.append(f"{'#' * level} {text}\n")
            case Paragraph(text):
                out.append(f"{text}\n")
            case Table(header, rows):
                cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("| " + " | ".join(map(cell, header)) + " |")
                out.append("|" + "---|" * len(header))
                out.extend("| " + " | ".join(map(cell, row)) + " |" for row in rows)
                out.append("")
            case Code(text, lang):
                out.append(f"```{lang}\n{text.rstrip()}\n```\n")
            case Image(src, alt):
                out.append(f"![{alt}]({src})\n")
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    "th{background:#f3f3f3}pre{background:#f6f8fa;padding:10px;overflow-x:auto}img{max-width:100%}"
)


def to_html(doc: Sequence[Block], title: str) -> str:
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style></head><body>"]
    for b in doc:
        match b:
            case Heading(text, level):
                out.append(f"<h{level}>{e(text)}</h{level}>")
            case Paragraph(text):
                out.append(f"<p>{e(text)}</p>")
            case Table(header, rows):
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in header) + "</tr>")
                out.extend("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
                out.append("</table>")
            case Code(text, _):
                out.append(f"<pre><code>{e(text.rstrip())}</code></pre>")
            case Image(src, alt):
                out.append(f"<p><img src='{e(src)}' alt='{e(alt)}'></p>")
    out.append("</body></html>")
    return "\n".join(out)


# --- JSON -----------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _usage_dict(u: Usage) -> dict[str, Any]:
    return {
        "entity": u.entity.key,
        "gpu_class": u.gpu_class,
        "model_name": u.model_name,
        "gpus": u.gpus,
        "gpu_hours": u.gpu_hours,
        "requested_gpu_hours": u.requested_gpu_hours,
        "idle_gpu_hours": u.idle_gpu_hours,
        "idle_share": u.idle_share,
        "mean_utilization_percent": u.mean_utilization,
        "peak_utilization_percent": u.peak_utilization,
        "peak_fb_gib": u.peak_fb_gib,
        "mean_fb_gib": u.mean_fb_gib,
        "fb_total_gib": u.fb_total_gib,
        "idle_cost": u.idle_cost,
    }


def _saving_dict(s: Saving) -> dict[str, Any]:
    return {
        "gpu_hours": s.gpu_hours,
        "gpu_hours_per_month": s.gpu_hours_per_month,
        "cost": s.cost,
        "cost_per_month": s.cost_per_month,
        "breach_minutes": s.breach_minutes,
    }


def _recommendation_dict(r: Recommendation) -> dict[str, Any]:
    return {
        "kind": str(r.kind),
        "target": {"kind": r.target.kind.value, "namespace": r.target.namespace, "name": r.target.name},
        "title": r.title,
        "evidence": r.evidence,
        "saving": _saving_dict(r.saving),
        "change": r.change,
        "change_format": r.change_format,
        "command": r.command,
        "facts": dict(r.facts),
    }


def to_json(advice: Advice) -> dict[str, Any]:
    h = advice.history
    data: dict[str, Any] = _clean(
        {
            "generated_at": advice.generated_at.isoformat(),
            "window": {"start": h.start.isoformat(), "end": h.end.isoformat(), "step_seconds": h.step_seconds},
            "currency": advice.currency,
            "latency_slo_seconds": advice.latency_slo_seconds,
            "idle_threshold_percent": advice.idle_threshold,
            "caveats": list(advice.caveats),
            "total_saving": _saving_dict(advice.total_saving),
            "recommendations": [_recommendation_dict(r) for r in advice.recommendations],
            "workloads": [_usage_dict(u) for u in advice.workloads],
            "nodes": [_usage_dict(u) for u in advice.nodes],
            "unallocated_gpus": [_usage_dict(u) for u in advice.unallocated],
            "tiering": dict(advice.tiering),
            "mig_packing": [
                {
                    "gpu_class": p.gpu_class,
                    "profile": p.profile,
                    "workloads": [e.key for e in p.workloads],
                    "gpus_now": p.gpus_now,
                    "gpus_packed": p.gpus_packed,
                    "utilization_now_percent": p.utilization_now,
                    "utilization_packed_percent": p.utilization_packed,
                }
                for p in advice.packings
            ],
            "hpas": [
                {
                    "hpa": x.hpa.key,
                    "target": x.target.key,
                    "min_replicas": x.min_replicas,
                    "max_replicas": x.max_replicas,
                    "metric": x.metric,
                    "target_value": x.target_value,
                    "knee_utilization_percent": x.knee_utilization,
                    "recommended_target": x.recommended_target,
                    "breach_minutes": x.breach_minutes,
                    "wasted_gpu_hours": x.wasted_gpu_hours,
                }
                for x in advice.hpas
            ],
            "latency_curves": [
                {"hpa": c.hpa.key, "model": c.model, "knee_utilization_percent": c.knee_utilization, "points": int(c.utilization.size)}
                for c in advice.curves
            ],
        }
    )
    return data


# --- terminal and files ---------------------------------------------------------------------


def terminal_summary(advice: Advice) -> str:
    h = advice.history
    fleet_hours = sum(u.gpu_hours for u in advice.nodes)
    fleet_idle = sum(u.idle_gpu_hours for u in advice.nodes)
    lines = [
        f"GPU capacity advice, {h.start:%Y-%m-%d %H:%M} to {h.end:%Y-%m-%d %H:%M} UTC",
        f"  {fleet_hours:.0f} GPU-hours, {fleet_idle:.0f} idle (< {advice.idle_threshold:g} %), "
        f"{len(advice.workloads)} workloads on {len(advice.nodes)} nodes",
    ]
    for gap in advice.caveats:
        lines.append(f"  note: {gap}")
    if not advice.recommendations:
        lines.append("  No changes recommended: every workload is sized to its use.")
        return "\n".join(lines)
    total = describe_saving(advice.total_saving, advice.currency)
    lines.append(f"  {len(advice.recommendations)} recommendations; all together: {total}")
    lines.append("")
    for i, r in enumerate(advice.recommendations, 1):
        lines.append(f"{i:>3}. [{r.kind}] {r.title}")
        lines.append(f"     saving: {describe_saving(r.saving, advice.currency)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    json: Path
    charts: dict[str, Path]


def write_reports(advice: Advice, out_dir: str | Path) -> ReportFiles:
    """Write report.md, report.html, advice.json and the PNG charts into ``out_dir``."""
    from aiops.advisor.charts import draw_all  # matplotlib loads only when a report is drawn

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    charts = draw_all(advice, out)
    doc = build_document(advice, charts)
    md, page, data = out / "report.md", out / "report.html", out / "advice.json"
    md.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc, "GPU capacity and cost advice"), encoding="utf-8")
    data.write_text(json.dumps(to_json(advice), indent=2, allow_nan=False), encoding="utf-8")
    return ReportFiles(md, page, data, charts)
