"""Render a cycle report for people (terminal) and machines (JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiops.model import ActionStatus, CycleReport, Finding, Severity
from aiops.state.codec import plain
from aiops.text import sparkline

def _when(finding: Finding, now: datetime) -> str:
    if finding.confirmed:
        return "failing now"
    if finding.predicted_failure_at is None:
        return ""
    lead = finding.predicted_failure_at - now
    minutes = lead.total_seconds() / 60
    at = finding.predicted_failure_at.strftime("%H:%M UTC")
    if minutes <= 0:
        return f"limit reached ({at})"
    span = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    if finding.failure_interval:
        lo, hi = finding.failure_interval
        span += f" (between {lo.strftime('%H:%M')} and {hi.strftime('%H:%M')})"
    return f"predicted failure in {span}, at {at}"


def render_text(report: CycleReport, *, limit: int = 30) -> str:
    now = report.finished_at or report.started_at
    lines: list[str] = []
    mode = f"{report.mode.value}{' + dry-run' if report.dry_run else ''}"
    state = "DEGRADED" if report.degraded else "ok"
    lines.append(
        f"aiops cycle {report.cycle_id}  {report.started_at:%Y-%m-%d %H:%M:%S} UTC  [{state}]  mode: {mode}"
    )
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in report.stage_seconds.items())
    lines.append(f"  {report.series_count} series, {report.points} points; {stages}; total {report.duration_seconds:.2f}s")
    # The header already says DEGRADED: here is why, each cause once, and what that means.
    for e in report.errors:
        lines.append(f"  ! {e.stage}: {e.message}")
    if report.degraded:
        lines.append("  ! no action is taken on a partial picture")

    shown = [f for f in report.findings if (f.severity or Severity.INFO) is not Severity.INFO]
    shown.sort(key=lambda f: (-(f.severity or Severity.INFO).rank, -f.score))
    lines.append("")
    plural = "s" if len(shown) != 1 else ""
    if not shown and report.degraded:
        # Never an all-clear on a partial picture: what could not be seen may be failing.
        lines.append("No finding at warning or above in what could be seen; the picture is partial, so this is no all-clear.")
    elif not shown:
        lines.append("Nothing looks wrong: no finding at warning or above.")
    else:
        partial = " in what could be seen" if report.degraded else ""
        lines.append(f"What looks wrong{partial} ({len(shown)} finding{plural}):")
        for f in shown[:limit]:
            sev = (f.severity or Severity.INFO).value.upper()
            lines.append(f"  [{sev}] {f.entity.key}  {f.signal}  score {f.score:.2f}  ({f.detector})")
            when = _when(f, now)
            if when:
                lines.append(f"      {when}")
            lines.append(f"      why: {f.evidence.summary}")
            spark = sparkline(f.evidence.recent)
            if spark:
                lines.append(f"      recent: {spark}")
        if len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more (see `aiops history` or --json)")

    if report.results:
        lines.append("")
        lines.append("What aiops did or would do:")
        for r in report.results:
            icon = {ActionStatus.APPLIED: "✔", ActionStatus.BLOCKED: "✋", ActionStatus.FAILED: "✘"}.get(r.status, "→")
            lines.append(f"  {icon} {r.action} {r.target.key}: {r.status.value} — {r.detail}")
            if r.rail:
                lines.append(f"      blocked by rail: {r.rail}")
            if r.plan is not None and r.plan.command:
                command = r.plan.command.strip().replace("\n", "\n               ")
                lines.append(f"      command: {command}")
    return "\n".join(lines)


def report_dict(report: CycleReport) -> dict[str, Any]:
    out: dict[str, Any] = plain(report)  # a record becomes a mapping
    out["degraded"] = report.degraded
    out["duration_seconds"] = report.duration_seconds
    for f, src in zip(out["findings"], report.findings, strict=True):
        f["lead_time_seconds"] = src.lead_time.total_seconds() if src.lead_time is not None else None
        f["entity"]["key"] = src.entity.key
    return out
