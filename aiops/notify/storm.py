"""Storm: many problems at once are told as one grouped message per channel.

When more than ``notify.storm.threshold`` notifications are due for a channel in one pass, they
are replaced by one storm summary; for the storm window after it, what follows is held back and
goes out when the window ends. Channels that group by themselves (``Notifier.groups_itself``,
Alertmanager) are exempt.

A summary still waiting when every condition it tells of has cleared is withdrawn, as a single
message would be (:func:`over`), unless it tells what aiops did: that is news even once the storm
is over, which it may be because of it. One that waits while only some cleared goes out as it
was written, a record of that cycle; those that cleared before it arrived get no "cleared".

A summary is retried like any outbox row. One the outbox gives up on told nobody of the storm, so
it ends its window (:func:`end_window`): the ledger makes its conditions due again, and the next
cycle groups them again at once instead of holding them for a window nobody was told about.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from aiops.config.notify import StormConfig
from aiops.model import Notification, NotificationKind
from aiops.notify.outbox import Envelope
from aiops.plugins import Notifier
from aiops.state import Store
from aiops.text import listed

log = logging.getLogger(__name__)

KEY_PREFIX = "storm:"


def group_storms(
    envelopes: list[Envelope],
    t: float,
    cycle_id: str,
    queued: dict[str, Notification],
    *,
    config: StormConfig,
    store: Store,
    notifiers: Mapping[str, Notifier],
) -> list[Envelope]:
    """Collapse a storm into one message per channel; hold what follows it for the window.
    ``queued`` (what this pass tells) loses the grouped notifications and gains the summary."""
    window = config.window.total_seconds()
    out: list[Envelope] = []
    by_channel: dict[str, list[Envelope]] = {}
    for e in envelopes:
        by_channel.setdefault(e.channel, []).append(e)
    for channel, items in by_channel.items():
        notifier = notifiers.get(channel)
        if notifier is None or notifier.groups_itself:
            out += items  # the receiver groups and silences per alert itself
            continue
        key = _marker(channel)
        started = _started(store.get(key))
        fresh = [e for e in items if not e.notification.resolved]
        if started is not None and t - started < window:
            hold = started + window
            out += [replace(e, not_before=max(e.not_before, hold)) for e in items]
        elif len(fresh) > config.threshold:
            storm = storm_notification([e.notification for e in fresh], cycle_id, config.list_first)
            for e in fresh:
                queued.pop(e.notification.id, None)
            queued[storm.id] = storm
            out += [e for e in items if e.notification.resolved]
            out.append(Envelope(channel, fresh[0].group, storm))
            # Joins the stage's transaction: the storm marker commits with the outbox rows.
            store.put(key, {"at": t, "summary": storm.key})
            log.warning("notification storm grouped", extra={"channel": channel, "notifications": len(fresh)})
        else:
            out += items
    return out


def over(summary: Notification, active: Collection[str]) -> bool:
    """Whether a waiting storm ``summary`` is news of something over: it tells of conditions only
    and none of them (by key) is ``active`` any more."""
    return bool(summary.findings) and not summary.results and not any(f.key in active for f in summary.findings)


def end_window(store: Store, channel: str, n: Notification) -> None:
    """The outbox gave up on ``n`` for ``channel``: a storm summary ends the window it opened
    (not a later storm's). Called inside the outbox's transaction, which :meth:`Store.put` joins."""
    if n.kind is not NotificationKind.STORM:
        return
    marker = store.get(_marker(channel))
    if isinstance(marker, dict) and marker.get("summary") == n.key:
        store.put(_marker(channel), None)


def _marker(channel: str) -> str:
    return f"notify.storm.{channel}"


def _started(marker: object) -> float | None:
    """When the channel's storm window began; a marker from before summaries were named in it is
    the bare start time."""
    if isinstance(marker, dict):
        return float(marker["at"])
    return None if marker is None else float(marker)  # type: ignore[arg-type]


def storm_notification(items: Sequence[Notification], cycle_id: str, list_first: int) -> Notification:
    """One message for a storm: what is wrong (counts by signal and kind), what was done or refused."""
    severity = max((n.severity for n in items), key=lambda s: s.rank)
    findings = [f for n in items for f in n.findings]
    results = [r for n in items for r in n.results]
    by_signal = Counter(f"{f.signal} on {f.entity.kind}s" for f in findings)
    by_outcome = Counter(f"{r.status.value}" + (f" ({r.rail})" if r.rail else "") for r in results)
    entities = sorted({f.entity.key for f in findings})
    lines = [f"{len(findings)} findings across {len(entities)} objects in one cycle:"]
    lines += [f"- {n} × {what}" for what, n in by_signal.most_common()]
    if by_outcome:
        lines.append("What aiops did (safety rails cap a storm):")
        lines += [f"- {n} × {what}" for what, n in by_outcome.most_common()]
    if entities and list_first:
        lines.append("First affected: " + listed(entities, list_first))
    lines.append("Full list: `aiops history --cycle " + cycle_id + "`. Further messages are held for the storm window.")
    top = ", ".join(what for what, _ in by_signal.most_common(2))
    return Notification(
        key=f"{KEY_PREFIX}{cycle_id}",
        severity=severity,
        title=f"STORM: {len(findings)} problems at once ({top})",
        summary="\n".join(lines),
        # What it tells of: the ledger marks its conditions told when it arrives, due again if it
        # is given up; a summary of conditions only is withdrawn once all of them cleared.
        findings=tuple(findings),
        results=tuple(results),
        cycle_id=cycle_id,
        labels={"severity": severity.value, "kind": NotificationKind.STORM.value},
        kind=NotificationKind.STORM,
    )
