"""The weekly digest: the advice as one notification the notify stage can route and send."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops.advisor.advise import advise
from aiops.advisor.history import AdvisorError, RangeQuerier
from aiops.advisor.records import Advice
from aiops.advisor.render import describe_saving
from aiops.config import AiopsConfig
from aiops.model import Notification, NotificationKind, Severity
from aiops.state import Store

# Routes select the digest with `match: {source: advisor}` (it is INFO: give that route min_severity: info).
LABELS = {"source": "advisor"}
LAST_WEEK_KEY = "advisor.digest.last_week"


def _key(now: datetime) -> str:
    return f"advisor:digest:{_week(now)}"


def digest_notification(advice: Advice, max_items: int = 10) -> Notification:
    """Fleet figures and the recommendations with the largest savings, as Markdown."""
    fleet_hours = sum(u.gpu_hours for u in advice.nodes)
    fleet_idle = sum(u.idle_gpu_hours for u in advice.nodes)
    days = advice.history.window_hours / 24
    recs = advice.recommendations
    lines = [
        f"Last {days:g} days: {fleet_hours:.0f} GPU-hours, {fleet_idle:.0f} of them "
        f"({fleet_idle / fleet_hours:.0%}) below {advice.idle_threshold:g} % utilisation."
        if fleet_hours
        else f"Last {days:g} days: no GPU-hours recorded.",
    ]
    if recs:
        lines.append(f"Expected saving if all are applied: {describe_saving(advice.total_saving, advice.currency)}.")
        lines.append("")
        for r in recs[:max_items]:
            lines.append(f"- **{r.title}**: {describe_saving(r.saving, advice.currency)}")
        if len(recs) > max_items:
            lines.append(f"- … and {len(recs) - max_items} more: run `aiops advise` for the full report.")
    else:
        lines.append("No changes recommended: every workload is sized to its use.")
    for gap in advice.caveats:
        lines.append(f"\nNote: {gap}")
    return Notification(
        key=_key(advice.generated_at),
        severity=Severity.INFO,
        title=f"Weekly GPU capacity advice: {len(recs)} recommendation{'s' if len(recs) != 1 else ''}",
        summary="\n".join(lines),
        labels=dict(LABELS),
        kind=NotificationKind.DIGEST,
    )


def _week(now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


def digest_due(config: AiopsConfig, store: Store, now: datetime) -> bool:
    """True from the configured weekday and hour until this week's digest was made."""
    schedule = config.advisor.digest
    if not schedule.enabled:
        return False
    now = now.astimezone(UTC)
    started = (now.weekday(), now.hour) >= (schedule.weekday_index, schedule.hour_utc)
    return started and store.get(LAST_WEEK_KEY) != _week(now)


def weekly_digest(config: AiopsConfig, store: Store, now: datetime, client: RangeQuerier | None = None) -> list[Notification]:
    """The digest once a week, for the daemon's cycle to hand to the notify stage.

    A week counts as done only when the advice was computed; after an outage the next cycle tries
    again (the warning it returns meanwhile has the week's key, so channels see it once).
    """
    if not digest_due(config, store, now):
        return []
    notes = digest(config, now, client)
    if all(n.severity is Severity.INFO for n in notes):
        store.put(LAST_WEEK_KEY, _week(now.astimezone(UTC)))
    return notes


def digest(config: AiopsConfig, now: datetime, client: RangeQuerier | None = None) -> list[Notification]:
    """The weekly digest for ``now``. When history cannot be read, one warning says why instead,
    so a broken digest is noticed rather than silently missing."""
    try:
        advice = advise(config, now, client)
    except AdvisorError as exc:
        return [
            Notification(
                key=_key(now),
                severity=Severity.WARNING,
                title="Weekly GPU capacity advice could not be computed",
                summary=f"{exc}\nRun `aiops advise` by hand once the problem is fixed.",
                labels=dict(LABELS),
                kind=NotificationKind.DIGEST,
            )
        ]
    return [digest_notification(advice, config.advisor.digest_max_items)]
