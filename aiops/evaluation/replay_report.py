"""The replay's timeline report: what the daemon saw and did, its noise, and its lead on incidents.

Figures (all from one replay, nothing tuned here):

- *pages per day*: distinct critical notifications (by key) first sent per replayed day, and the
  same per 1,000 series outside incidents; *actions per day*: decisions other than ``advise``
  started per day;
- *noisiest* rules (by decision episodes and cycles) and signals (by warning-or-worse findings);
- *decisions that never stop*: still standing when the replay ended, or standing longer than
  ``long_decision``;
- *impossible samples dropped*: what the collector left out as impossible (a DCGM blank, a
  utilisation of 4294967295), by signal and reason, with the first series named; the replay
  silences the log line that says so live;
- per incident (an entity pattern and the time it failed): the first warning, the first action
  and their lead before the static alert (or the failure); decisions still standing an hour after
  the incident resolved; and every action outside any incident.

Written as ``report.json`` (machine-readable), ``report.md`` and ``report.html`` with PNG plots.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field, ValidationError

from aiops.config.base import Duration, StrictModel
from aiops.errors import PermanentError
from aiops.evaluation.cluster_replay import Episode, Event, ReplayRun
from aiops.model import ADVISE

__all__ = ["Incident", "IncidentsError", "load_incidents", "replay_figures", "write_report"]

LONG_DECISION = timedelta(hours=6)
STANDING_AFTER_RESOLVED = timedelta(hours=1)


class IncidentsError(PermanentError, ValueError):
    """The incidents file cannot be used; the message names the entry and the field."""


class Incident(StrictModel):
    """One failure the daemon should have seen coming.

    ``entity`` is a glob over entity keys (``pod/shop/api-*``, ``node/gpu-node-2``,
    ``model/inference/llama-3-8b``); a GPU or pod finding also matches its node's key.
    """

    name: str = Field(min_length=1)
    entity: str = Field(min_length=1)
    # Which signals' findings count as its warning (a glob; a disk fill on a node is not warned
    # by a temperature wobble on one of its GPUs).
    signal: str = "*"
    failure_at: datetime
    # When a static alert (threshold rule) would have fired; the lead is measured against it.
    static_alert_at: datetime | None = None
    resolved_at: datetime | None = None
    # The action that answers it (restart_pod, evacuate_node, scale_ahead, rollback_model, advise).
    expected_action: str | None = None
    # A slow trend (leak, fill) needs a longer lead than a sudden event.
    trend: bool = False
    # Findings and actions this long before the failure still belong to the incident.
    window_before: Duration = timedelta(hours=6)
    # How much warning is wanted (default: 60 min for a trend, 30 min for an event); 0 for a
    # sudden failure with no precursor in the data, where acting in the cycle that sees it is right.
    wanted_lead: Duration | None = None

    @property
    def alert_at(self) -> datetime:
        return self.static_alert_at or self.failure_at

    @property
    def lead_wanted(self) -> timedelta:
        if self.wanted_lead is not None:
            return self.wanted_lead
        return timedelta(minutes=60 if self.trend else 30)

    @property
    def ends_at(self) -> datetime:
        return self.resolved_at or self.failure_at + timedelta(hours=1)

    def matches(self, keys: Sequence[str]) -> bool:
        return any(fnmatchcase(k, self.entity) for k in keys)

    def warns(self, ep: Episode) -> bool:
        """A finding that counts as this incident's warning."""
        return fnmatchcase(ep.signal, self.signal) and self.covers(ep)

    def covers(self, ep: Episode) -> bool:
        return self.matches(ep.related or (ep.entity,)) and (
            self.failure_at - self.window_before <= ep.first_at <= self.ends_at + STANDING_AFTER_RESOLVED
        )


class _IncidentsFile(StrictModel):
    incidents: list[Incident]


def load_incidents(path: Path) -> list[Incident]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IncidentsError(f"{path}: cannot read the file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise IncidentsError(f"{path}: not valid YAML or JSON: {exc}") from None
    if isinstance(data, list):
        data = {"incidents": data}
    try:
        return _IncidentsFile.model_validate(data).incidents
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise IncidentsError(
            f"{path}: {problems}. Each incident needs name, entity (a glob over entity keys) and failure_at"
        ) from None


def _minutes(d: timedelta | None) -> float | None:
    return None if d is None else round(d.total_seconds() / 60, 1)


def _is_action(ep: Episode) -> bool:
    return ep.action not in ("", ADVISE)


def incident_rows(run: ReplayRun, incidents: Sequence[Incident]) -> list[dict[str, Any]]:
    rows = []
    for inc in incidents:
        findings = sorted((e for e in run.timeline.findings if inc.warns(e)), key=lambda e: e.first_at)
        decisions = sorted((e for e in run.timeline.decisions if inc.covers(e)), key=lambda e: e.first_at)
        warning = findings[0] if findings else None
        wanted = [d for d in decisions if (d.action == inc.expected_action if inc.expected_action else _is_action(d))]
        action = wanted[0] if wanted else None
        # Decisions on this incident still decided an hour after it was resolved.
        late = inc.ends_at + STANDING_AFTER_RESOLVED
        standing = [d for d in decisions if d.last_at > late] if inc.resolved_at else []
        warn_lead = inc.alert_at - warning.first_at if warning else None
        action_lead = inc.alert_at - action.first_at if action else None
        # The replay began after the warning was due: it cannot say whether the daemon would have
        # given it (an operator replaying from the middle of an incident).
        judged = inc.alert_at - inc.lead_wanted >= run.started
        rows.append({
            "name": inc.name, "entity": inc.entity, "failure_at": inc.failure_at.isoformat(),
            "static_alert_at": inc.alert_at.isoformat(), "trend": inc.trend,
            "expected_action": inc.expected_action or "",
            "first_warning_at": warning.first_at.isoformat() if warning else None,
            "first_warning": f"{warning.detector} on {warning.signal} ({warning.entity})" if warning else "",
            "warning_lead_min": _minutes(warn_lead),
            "first_action_at": action.first_at.isoformat() if action else None,
            "first_action": f"{action.action} on {action.entity} ({action.rule})" if action else "",
            "action_lead_min": _minutes(action_lead),
            "wanted_lead_min": _minutes(inc.lead_wanted),
            "judged": judged,
            # Warned early enough, and the expected action came no later than the static alert
            # (None: not judged).
            "met": bool(
                warn_lead is not None and warn_lead >= inc.lead_wanted
                and (not inc.expected_action or (action_lead is not None and action_lead >= timedelta(0)))
            ) if judged else None,
            "standing_after_resolved": [d.key for d in standing],
        })
    return rows


def replay_figures(run: ReplayRun, incidents: Sequence[Incident] = (), *, long_decision: timedelta = LONG_DECISION) -> dict[str, Any]:
    tl = run.timeline
    days = max((run.ended - run.started).total_seconds() / 86400, 1 / 1440)
    series = sorted(c.series for c in tl.cycles)
    median_series = series[len(series) // 2] if series else 0
    pages = [e for e in tl.events if e.kind == "notification" and e.severity == "critical" and e.what == "firing"]

    def inside(entity_keys: Sequence[str], at: datetime) -> bool:
        return any(
            i.matches(entity_keys) and i.failure_at - i.window_before <= at <= i.ends_at + STANDING_AFTER_RESOLVED
            for i in incidents
        )

    by_day: dict[tuple[date, str], list[Event]] = {}
    for e in pages:
        by_day.setdefault((e.at.date(), e.entity), []).append(e)
    healthy_pages = [k for k, evs in by_day.items() if not any(inside(ev.related or (ev.entity,), ev.at) for ev in evs)]
    actions = [d for d in tl.decisions if _is_action(d)]
    outside = [d for d in actions if not any(i.covers(d) for i in incidents)]
    end = run.ended
    # Long-standing, or still standing at the end after an hour: either way nothing made it stop.
    never_stop = [
        d for d in tl.decisions
        if d.duration >= long_decision or (d.last_at >= end - run.every and d.duration >= STANDING_AFTER_RESOLVED)
    ]
    rules: Counter[str] = Counter()
    rule_cycles: Counter[str] = Counter()
    for d in tl.decisions:
        rules[d.rule or d.action] += 1
        rule_cycles[d.rule or d.action] += d.cycles
    signals: Counter[str] = Counter()
    for f in tl.findings:
        signals[f.signal] += 1
    walls = sorted(c.wall_seconds for c in tl.cycles)
    rows = incident_rows(run, incidents)
    return {
        "from": run.started.isoformat(), "to": run.ended.isoformat(), "every_s": run.every.total_seconds(),
        "cycles": run.cycles, "degraded_cycles": sum(1 for c in tl.cycles if c.degraded),
        "median_series": median_series, "days": round(days, 3),
        "wall_seconds": round(run.wall_seconds, 1),
        "cycle_seconds_median": walls[len(walls) // 2] if walls else 0.0,
        "mode": str(run.config.safety.mode), "dry_run": True,
        "finding_episodes": len(tl.findings), "decision_episodes": len(tl.decisions),
        "notifications": sum(1 for e in tl.events if e.kind == "notification"),
        "refusals": sum(1 for e in tl.events if e.kind == "refusal"),
        "pages_per_day": round(len(by_day) / days, 2),
        "healthy_pages_per_day_per_1000_series": round(len(healthy_pages) / days * 1000 / max(median_series, 1), 2),
        "pages_outside_incidents": [
            {"day": str(day), "entity": ent, "first": by_day[(day, ent)][0].detail} for day, ent in sorted(healthy_pages)
        ],
        "actions_per_day": round(len(actions) / days, 2),
        "noisiest_rules": [{"rule": r, "episodes": n, "cycles": rule_cycles[r]} for r, n in rules.most_common(5)],
        "noisiest_signals": [{"signal": s, "episodes": n} for s, n in signals.most_common(5)],
        "decisions_that_never_stop": [d.as_dict() for d in sorted(never_stop, key=lambda d: -d.cycles)],
        "incidents": rows,
        "incidents_met": sum(1 for r in rows if r["met"]),
        "incidents_judged": sum(1 for r in rows if r["judged"]),
        "actions_outside_incidents": [d.as_dict() for d in outside],
        "standing_after_resolved": sum(len(r["standing_after_resolved"]) for r in rows),
        "samples_rejected": [r.as_dict() for r in run.rejected],
    }


# --- rendering ----------------------------------------------------------------------------
def _plots(run: ReplayRun, figures: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    names = []
    tl = run.timeline
    # An array of datetime objects: matplotlib converts it as it would the list (its stubs take arrays, not lists of datetimes).
    times = np.array([c.at for c in tl.cycles], dtype=object)
    if times.size:
        fig, ax = plt.subplots(figsize=(11, 3.2))
        ax.step(times, [c.findings for c in tl.cycles], where="post", label="findings (warning+)")
        ax.step(times, [c.actions for c in tl.cycles], where="post", label="actions decided")
        ax.step(times, [c.notifications for c in tl.cycles], where="post", label="notifications")
        ax.set_title("per cycle")
        ax.legend(loc="upper left", fontsize=8)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(out / "cycles.png", dpi=90)
        plt.close(fig)
        names.append("cycles.png")
    decisions = sorted(tl.decisions, key=lambda d: d.first_at)[:60]
    if decisions:
        fig, ax = plt.subplots(figsize=(11, 0.3 * len(decisions) + 1.2))
        for i, d in enumerate(decisions):
            color = "tab:red" if _is_action(d) else "tab:gray"
            width = max(d.duration, run.every)
            ax.barh(i, mdates.date2num(d.first_at + width) - mdates.date2num(d.first_at),
                    left=mdates.date2num(d.first_at), color=color, height=0.6)
        for inc in figures["incidents"]:
            ax.axvline(mdates.date2num(datetime.fromisoformat(inc["static_alert_at"])), color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(decisions)), [f"{d.action} {d.entity}"[:60] for d in decisions], fontsize=7)
        ax.xaxis_date()
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
        ax.set_title("decisions (red: actions, grey: advice; dashed: static alert of an incident)")
        fig.tight_layout()
        fig.savefig(out / "decisions.png", dpi=90)
        plt.close(fig)
        names.append("decisions.png")
    rows = figures["incidents"]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
        y = range(len(rows))
        ax.barh([i + 0.2 for i in y], [r["warning_lead_min"] or 0 for r in rows], height=0.4, label="first warning")
        ax.barh([i - 0.2 for i in y], [r["action_lead_min"] or 0 for r in rows], height=0.4, label="first action")
        for i, r in enumerate(rows):
            ax.plot([r["wanted_lead_min"]] * 2, [i - 0.45, i + 0.45], color="black", lw=1)
        ax.set_yticks(list(y), [r["name"] for r in rows], fontsize=8)
        ax.set_xlabel("minutes before the static alert (black: wanted)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "incidents.png", dpi=90)
        plt.close(fig)
        names.append("incidents.png")
    return names


def incidents_warned(f: dict[str, Any]) -> str:
    """``3 of 4``, and how many the replay could not judge (their warning was due before it began)."""
    before = len(f["incidents"]) - f["incidents_judged"]
    return f"{f['incidents_met']} of {f['incidents_judged']}" + (
        f" ({before} began before the replay: not judged)" if before else "")


def _summary_lines(f: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("replayed", f"{f['from']} → {f['to']}, every {f['every_s']:.0f} s, {f['cycles']} cycles "
                     f"({f['degraded_cycles']} degraded), mode {f['mode']} + dry-run"),
        ("series (median per cycle)", str(f["median_series"])),
        ("wall time", f"{f['wall_seconds']} s (median cycle {f['cycle_seconds_median']:.3f} s)"),
        ("pages per day", f"{f['pages_per_day']} (outside incidents: {f['healthy_pages_per_day_per_1000_series']} "
                          f"per 1,000 of the {f['median_series']} series the daemon sees per cycle)"),
        ("actions per day", str(f["actions_per_day"])),
        ("finding / decision episodes", f"{f['finding_episodes']} / {f['decision_episodes']}"),
        ("notifications / refusals", f"{f['notifications']} / {f['refusals']}"),
        ("incidents warned in time", incidents_warned(f)),
        ("actions outside incidents", str(len(f["actions_outside_incidents"]))),
        ("decisions standing 1 h after their incident resolved", str(f["standing_after_resolved"])),
        ("decisions that never stop", str(len(f["decisions_that_never_stop"]))),
        ("impossible samples dropped", _rejected_line(f["samples_rejected"])),
    ]


def _rejected_line(rejected: Sequence[dict[str, Any]]) -> str:
    if not rejected:
        return "none"
    signals = sorted({r["signal"] for r in rejected})
    return f"{sum(r['samples'] for r in rejected)} samples of {', '.join(signals)} (table below)"


def _met(met: bool | None) -> str:
    return "before the replay" if met is None else "yes" if met else "NO"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _sections(run: ReplayRun, f: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    tl = run.timeline
    return [
        ("Incidents", ["incident", "static alert", "first warning", "lead (min)", "first action", "lead (min)", "wanted", "met"],
         [[r["name"], r["static_alert_at"], r["first_warning"] or "none", r["warning_lead_min"], r["first_action"] or "none",
           r["action_lead_min"], r["wanted_lead_min"], _met(r["met"])] for r in f["incidents"]]),
        ("Pages outside incidents", ["day", "entity", "first message"],
         [[p["day"], p["entity"], p["first"]] for p in f["pages_outside_incidents"]]),
        ("Actions outside incidents", ["first", "last", "action", "target", "rule"],
         [[d["first_at"], d["last_at"], d["action"], d["entity"], d.get("rule", "")] for d in f["actions_outside_incidents"]]),
        ("Decisions that never stop", ["first", "last", "cycles", "action", "target", "rule"],
         [[d["first_at"], d["last_at"], d["cycles"], d["action"], d["entity"], d.get("rule", "")] for d in f["decisions_that_never_stop"]]),
        ("Impossible samples dropped (fix the exporter, or set signals.<name>.valid if such values are real)",
         ["signal", "reason", "samples", "first series"],
         [[r["signal"], r["reason"], r["samples"], "; ".join(r["series"])] for r in f["samples_rejected"]]),
        ("Noisiest rules", ["rule", "episodes", "cycles"], [[r["rule"], r["episodes"], r["cycles"]] for r in f["noisiest_rules"]]),
        ("Noisiest signals", ["signal", "finding episodes"], [[s["signal"], s["episodes"]] for s in f["noisiest_signals"]]),
        ("Decisions", ["first", "last", "cycles", "action", "mode", "target", "outcomes", "reason"],
         [[d.first_at.isoformat(), d.last_at.isoformat(), d.cycles, d.action, d.mode, d.entity,
           ", ".join(f"{k}×{v}" for k, v in sorted(d.statuses.items())), d.summary[:160]]
          for d in sorted(tl.decisions, key=lambda d: d.first_at)]),
        ("Findings (warning or critical)", ["first", "last", "cycles", "severity", "detector", "signal", "entity", "evidence"],
         [[e.first_at.isoformat(), e.last_at.isoformat(), e.cycles, e.severity, e.detector, e.signal, e.entity, e.summary[:120]]
          for e in sorted(tl.findings, key=lambda e: e.first_at)]),
        ("Refusals and notifications", ["at", "kind", "what", "entity", "detail"],
         [[e.at.isoformat(), e.kind, e.what, e.entity, e.detail[:160]] for e in sorted(tl.events, key=lambda e: e.at)]),
    ]


def write_report(run: ReplayRun, out: Path, incidents: Sequence[Incident] = ()) -> dict[str, Any]:
    """Write report.json, report.md, report.html and the PNGs into ``out``; returns the figures."""
    out.mkdir(parents=True, exist_ok=True)
    figures = replay_figures(run, incidents)
    tl = run.timeline
    data = {
        "figures": figures,
        "findings": [e.as_dict() for e in tl.findings],
        "decisions": [e.as_dict() for e in tl.decisions],
        "events": [e.as_dict() for e in tl.events],
        "cycles": [c.as_dict() for c in tl.cycles],
    }
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    images = _plots(run, figures, out)
    sections = _sections(run, figures)
    md = ["# aiops replay", "", _table(["", ""], _summary_lines(figures)), ""]
    md += [f"![{n}]({n})" for n in images]
    for title, headers, rows in sections:
        md += ["", f"## {title}", "", _table(headers, rows) if rows else "none"]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>aiops replay</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style>",
             "<h1>aiops replay</h1><table>"]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _summary_lines(figures)]
    parts.append("</table>")
    parts += [f"<p><img src='{esc(n)}' alt='{esc(n)}'></p>" for n in images]
    for title, headers, rows in sections:
        parts.append(f"<h2>{esc(title)}</h2>")
        if not rows:
            parts.append("<p>none</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    (out / "report.html").write_text("\n".join(parts), encoding="utf-8")
    return figures
