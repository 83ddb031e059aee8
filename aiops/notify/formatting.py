"""What a message says, independent of the channel: one digest of one or more notifications.

A digest is rendered as DingTalk markdown, plain text and HTML from the same :class:`Digest`, so
every channel carries the same facts: severity and entity in the title, what was seen (score,
recent values, predicted failure time and lead time), what the daemon did or would do, the audit
ids and the links built from the config's templates.

Routing context travels in reserved labels (``__route__``, ``__mention_mobiles__``,
``__link_<name>__``) so that it survives the outbox and needs nothing beyond the Notifier contract;
channels never show reserved labels.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiops.model import ActionResult, ActionStatus, Finding, Notification, NotificationKind, Severity
from aiops.text import sparkline

ROUTE_LABEL = "__route__"
MENTION_MOBILES_LABEL = "__mention_mobiles__"
MENTION_USER_IDS_LABEL = "__mention_user_ids__"
MENTION_ALL_LABEL = "__mention_all__"
LINK_LABEL_PREFIX = "__link_"

_ICON = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
_STATUS_WORDS = {
    ActionStatus.OBSERVED: "observe mode: decision recorded, nothing proposed",
    ActionStatus.SUGGESTED: "suggested to a human",
    ActionStatus.DRY_RUN: "dry-run: would have applied",
    ActionStatus.APPLIED: "APPLIED",
    ActionStatus.BLOCKED: "blocked by a safety rail",
    ActionStatus.DEFERRED: "deferred, will retry",
    ActionStatus.FAILED: "FAILED, needs a human",
    ActionStatus.SKIPPED: "skipped: partial data this cycle",
}


def public_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith("__")}


def links_of(n: Notification) -> list[tuple[str, str]]:
    return [(k[len(LINK_LABEL_PREFIX):-2], v) for k, v in n.labels.items() if k.startswith(LINK_LABEL_PREFIX) and v]


def number(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"


def duration(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m"
    return f"{sign}{secs}s"


def clock(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def recent_values(values: Sequence[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    gaps = len(values) - len(finite)
    text = f"{sparkline(values)} {number(finite[0])} → {number(finite[-1])} (min {number(min(finite))}, max {number(max(finite))}, {len(values)} pts"
    return text + (f", {gaps} missing)" if gaps else ")")


def prediction(f: Finding) -> str:
    if f.confirmed:
        return "failure observed now (confirmed)"
    if f.predicted_failure_at is None or f.lead_time is None:
        return ""
    text = f"{clock(f.predicted_failure_at)}, in {duration(f.lead_time)}"
    if f.failure_interval:
        early, late = f.failure_interval
        text += f" (between {duration(early - f.observed_at)} and {duration(late - f.observed_at)})"
    return text


def action_line(r: ActionResult) -> str:
    """One line, each fact once: the action and target, the status (with its rail), the detail the
    remediation or rail wrote, then the command. The detail never repeats the others."""
    if r.rail and r.status is ActionStatus.BLOCKED:
        words = f"blocked by the {r.rail} rail"
    elif r.rail and r.status is ActionStatus.DEFERRED:
        words = f"deferred by the {r.rail} rail, will retry"
    else:
        words = _STATUS_WORDS.get(r.status, r.status.value)
    text = f"{r.action} on {r.target}: {words}"
    if r.detail:
        text += f" — {r.detail.rstrip('. ')}"
    if r.plan is not None and r.plan.command and r.status in (ActionStatus.SUGGESTED, ActionStatus.DRY_RUN, ActionStatus.FAILED, ActionStatus.BLOCKED):
        commands = [c.strip() for c in r.plan.command.splitlines() if c.strip()]
        text += " · run: " + ", then ".join(f"`{c}`" for c in commands)
    return text


def title_for(n: Notification) -> str:
    """``[CRITICAL] pod ml/llama-0: pod_memory_usage_ratio, failure in 42m``; resolved and tests are marked."""
    if n.test:
        return n.title
    state = "RESOLVED" if n.resolved else n.severity.value.upper()
    return f"[{state}] {n.title}"


@dataclass(frozen=True)
class Item:
    heading: str
    lines: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Digest:
    title: str
    severity: Severity
    items: tuple[Item, ...]
    route: str = ""
    omitted: int = 0
    test: bool = False
    mention_mobiles: tuple[str, ...] = field(default=())
    mention_user_ids: tuple[str, ...] = field(default=())
    mention_all: bool = False


def item_for(n: Notification) -> Item:
    icon = "✅" if n.resolved else ("🧪" if n.test else _ICON[n.severity])
    heading = f"{icon} {title_for(n)}"
    lines: list[tuple[str, str]] = []
    if n.summary:
        lines.append(("What", n.summary))
    # A storm summary counts its findings and results in its summary; it carries them for the ledger.
    findings, results = ((), ()) if n.kind is NotificationKind.STORM else (n.findings, n.results)
    for f in findings:
        seen = f"{f.signal} via {f.detector}, score {f.score:.2f}"
        if f.evidence.summary:
            seen += f": {f.evidence.summary}"
        lines.append(("Seen", seen))
        cause = getattr(f, "cause", None)
        if cause is not None:
            lines.append(("Cause", f"explained by {cause}; any action goes there"))
        if f.evidence.recent:
            lines.append(("Recent", recent_values(f.evidence.recent)))
        pred = prediction(f)
        if pred and not n.resolved:
            lines.append(("Failure", pred))
    for r in results:
        lines.append(("Action", action_line(r)))
    audit = []
    if n.cycle_id:
        audit.append(f"cycle {n.cycle_id}")
    audit += [f"decision {r.decision_id}" for r in results if r.decision_id]
    audit += [f"finding {f.id}" for f in findings]
    if audit:
        lines.append(("Audit", " · ".join(audit)))
    return Item(heading=heading, lines=tuple(lines), links=tuple(links_of(n)))


def digest(batch: Sequence[Notification], *, max_items: int | None = None) -> Digest:
    """One message for a batch: the most severe first; beyond ``max_items`` only a count."""
    if not batch:
        raise ValueError("cannot format an empty batch")
    ordered = sorted(batch, key=lambda n: (n.resolved, -n.severity.rank))
    shown = ordered[:max_items] if max_items else ordered
    top = ordered[0]
    worst = max((n.severity for n in batch if not n.resolved), key=lambda s: s.rank, default=top.severity)
    if len(batch) == 1:
        title = title_for(top)
    else:
        firing = sum(1 for n in batch if not n.resolved)
        resolved = len(batch) - firing
        parts = [f"{firing} firing"] if firing else []
        parts += [f"{resolved} resolved"] if resolved else []
        lead = f"[{worst.value.upper()}]" if firing else "[RESOLVED]"
        names = ", ".join(str(n.entity) if n.entity else n.key for n in ordered[:2])
        title = f"{lead} {' / '.join(parts)}: {names}" + (f" +{len(batch) - 2} more" if len(batch) > 2 else "")
    labels = top.labels

    def split(key: str) -> tuple[str, ...]:
        values: list[str] = []
        for n in batch:
            if n.resolved:
                continue
            values += [v for v in n.labels.get(key, "").split(",") if v and v not in values]
        return tuple(values)

    return Digest(
        title=title,
        severity=worst,
        items=tuple(item_for(n) for n in shown),
        route=labels.get(ROUTE_LABEL, ""),
        omitted=len(ordered) - len(shown),
        test=any(n.test for n in batch),
        mention_mobiles=split(MENTION_MOBILES_LABEL),
        mention_user_ids=split(MENTION_USER_IDS_LABEL),
        mention_all=any(n.labels.get(MENTION_ALL_LABEL) == "true" and not n.resolved for n in batch),
    )


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def to_markdown(d: Digest, *, max_bytes: int = 18000) -> str:
    """DingTalk markdown, kept under ``max_bytes`` of UTF-8 (DingTalk rejects very long messages;
    whole items are dropped from the end and counted, never cut in the middle)."""
    blocks: list[str] = []
    for item in d.items:
        rows = [f"#### {item.heading}"]
        rows += [f"- **{label}**: {text}" for label, text in item.lines]
        if item.links:
            rows.append("- " + " · ".join(f"[{name}]({url})" for name, url in item.links))
        blocks.append("\n".join(rows))
    tail = f"\n\n_+{d.omitted} more in this digest; see the audit log (`aiops history`)_" if d.omitted else ""
    text = "\n\n".join(blocks)
    if _size(text) + _size(tail) <= max_bytes:
        return text + tail
    kept: list[str] = []
    budget = max_bytes - 200  # room for the "+N more" line
    for b in blocks:
        if _size(b) + 2 > budget:
            break
        kept.append(b)
        budget -= _size(b) + 2
    dropped = len(blocks) - len(kept) + d.omitted
    tail = f"\n\n_+{dropped} more not shown (message size limit); see `aiops history`_"
    if not kept:  # a single huge item: cut it at a character boundary
        kept = [blocks[0].encode("utf-8")[: max_bytes - 300].decode("utf-8", errors="ignore")]
    return "\n\n".join(kept) + tail


def to_text(d: Digest) -> str:
    out = [d.title, "=" * min(len(d.title), 78), ""]
    for item in d.items:
        out.append(item.heading)
        out += [f"  {label}: {text}" for label, text in item.lines]
        out += [f"  {name}: {url}" for name, url in item.links]
        out.append("")
    if d.omitted:
        out.append(f"+{d.omitted} more in this digest; see the audit log (aiops history).")
    return "\n".join(out).rstrip() + "\n"


def to_html(d: Digest) -> str:
    e = html.escape
    parts = [f"<html><body><h2>{e(d.title)}</h2>"]
    for item in d.items:
        parts.append(f"<h3>{e(item.heading)}</h3><table>")
        for label, text in item.lines:
            parts.append(f"<tr><th align='left' valign='top'>{e(label)}</th><td>{e(text)}</td></tr>")
        parts.append("</table>")
        if item.links:
            parts.append("<p>" + " · ".join(f"<a href='{e(url, quote=True)}'>{e(name)}</a>" for name, url in item.links) + "</p>")
    if d.omitted:
        parts.append(f"<p>+{d.omitted} more in this digest; see the audit log (aiops history).</p>")
    parts.append("</body></html>")
    return "".join(parts)
