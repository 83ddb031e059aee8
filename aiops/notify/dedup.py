"""Dedup: a ledger per (channel, key) remembers what was last sent there.

The same state is not repeated within the route's ``repeat_interval`` (or the channel's own,
shorter refresh, which Alertmanager needs); a new severity or a new action outcome is sent at once,
except a severity below the one told, which is the same episode until it has lasted the route's
``resolve_after`` (a critical forecast that reads a warning for a cycle does not page again), and
an outcome that went away (its decision moved to the breach the forecast was about). A channel
whose alerts expire unless re-posted (Alertmanager) hears a held condition again on its own
refresh (:func:`refresh_held`), so that it does not end before the daemon's "cleared".
A follower replica keeps its ledger in step without sending: what the leader has not delivered yet
stays due there, so a new leader repeats rather than loses it.

The ledger is written when a notification is queued, not when it arrives: most are delivered
within the cycle, and the outbox retries the rest. One the outbox gives up on was never told, so
:func:`forget_undelivered` makes its row due again: still firing, it is queued again at the next
cycle; a given-up "cleared" makes the condition active again, so the next cycle queues the
"cleared" again (the channel still believes it fires). The ledger also records
whether anything of a condition's current episode was *delivered* there (:func:`mark_delivered`,
the outbox's ``on_delivered``): one that clears before any of it arrived is not resolved. An
episode begun before the last one's "cleared" arrived counts as delivered: the channel still
believes it fires.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from aiops.config.notify import RouteConfig
from aiops.model import Notification, NotificationKind, new_id
from aiops.notify.batch import StageBatch
from aiops.notify.routing import Router, Target, decorate
from aiops.plugins import Notifier
from aiops.state import Store
from aiops.state.codec import notification_from_json, notification_to_json
from aiops.state.migrations import add_column, migrate

LEDGER_SCHEMA = """CREATE TABLE IF NOT EXISTS notify_ledger (
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    route TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resolvable INTEGER NOT NULL,
    active INTEGER NOT NULL,
    last_sent_at REAL NOT NULL,
    notification TEXT NOT NULL,
    PRIMARY KEY (channel, key)
)"""
# Numbered steps (aiops.state.migrations): append-only.
_MIGRATIONS = (
    LEDGER_SCHEMA,
    # Rows from before it were queued by a release that did not track delivery: taken as delivered.
    add_column("notify_ledger", "delivered", "INTEGER NOT NULL DEFAULT 1"),
    # When the condition was last found at (or above) the severity told (a row from before it:
    # when it was last sent).
    add_column("notify_ledger", "last_seen_at", "REAL NOT NULL DEFAULT 0"),
)


def ensure_ledger(store: Store) -> None:
    migrate(store, "notify_ledger", _MIGRATIONS)


@dataclass(frozen=True)
class Sent:
    """The ledger's row for one (channel, key): what was last told there, and when."""

    route: str
    fingerprint: str
    resolvable: bool
    active: bool
    last_sent_at: float
    notification: str
    # The channel was told the condition fires (something of this episode arrived, or of an earlier
    # one whose "cleared" never did).
    delivered: bool = True
    # When the condition was last found on this channel at (or above) the severity last told there:
    # resolve_after counts from it, for its absence and for a dip below that severity.
    last_seen_at: float = 0.0

    @property
    def last_at_told_severity(self) -> float:
        """When the condition was last found at (or above) the severity told (a row from before
        ``last_seen_at``: when it was last sent). A refresh of a held condition (:func:`refresh_held`)
        moves ``last_sent_at`` only, so it never prolongs the hold."""
        return self.last_seen_at or self.last_sent_at


Ledger = Mapping[tuple[str, str], Sent]


def read_ledger(store: Store) -> dict[tuple[str, str], Sent]:
    rows = store.query(
        "SELECT channel, key, route, fingerprint, resolvable, active, last_sent_at, notification, delivered, last_seen_at"
        " FROM notify_ledger"
    )
    return {
        (r["channel"], r["key"]): Sent(r["route"], r["fingerprint"], bool(r["resolvable"]), bool(r["active"]),
                                       r["last_sent_at"], r["notification"], bool(r["delivered"]), r["last_seen_at"])
        for r in rows
    }


def fingerprint(n: Notification) -> str:
    """What makes a notification worth repeating at once: its severity and its action outcomes."""
    parts = [n.severity.value, "resolved" if n.resolved else "firing"]
    parts += sorted(f"{r.action}={r.status.value}" for r in n.results)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _told(prior: Sent) -> Notification | None:
    """What was last told (None for a row that cannot say)."""
    try:
        return notification_from_json(prior.notification)
    except (ValueError, KeyError, TypeError):
        return None


def _outcomes(n: Notification) -> set[str]:
    return {f"{r.action}={r.status.value}" for r in n.results}


def _outcomes_gone(last: Notification | None, n: Notification) -> bool:
    """``n`` differs from what was told only by action outcomes that went away (a decision that
    moved to the breach it forecast): not news."""
    return (last is not None and last.severity is n.severity and last.resolved == n.resolved
            and _outcomes(n) < _outcomes(last))


def repeat_seconds(notifier: Notifier | None, route: RouteConfig) -> float:
    own = notifier.repeat_interval if notifier is not None else None
    interval = route.repeat_interval
    if own is not None:
        interval = min(interval, own)
    return interval.total_seconds()


def dedup(
    routed: Sequence[tuple[Notification, Target]],
    batch: StageBatch,
    ledger: Ledger,
    told: set[tuple[str, str, str]] | None,
    t: float,
    *,
    notifiers: Mapping[str, Notifier],
    links: Mapping[str, str],
) -> None:
    """Keep what is new, changed or due for a repeat on each routed channel, decorated for it.
    ``told``: on a follower, what the leader delivered (None on the leader)."""
    for n, target in routed:
        # Actions and digests are events, not conditions: they never "resolve".
        resolvable = n.kind.resolvable
        batch.seen.add((target.channel, n.key))
        prior = ledger.get((target.channel, n.key))
        fp = fingerprint(n)
        # What was last told, where it differs from this and is not due again anyway (a row whose
        # message was given up has no fingerprint).
        last = _told(prior) if prior is not None and prior.active and prior.fingerprint not in (fp, "") else None
        if (last is not None and prior is not None and prior.delivered and resolvable and last.severity.rank > n.severity.rank
                and t - prior.last_at_told_severity < target.route.resolve_after.total_seconds()):
            continue  # below the severity told for less than resolve_after: the same episode
        # Found at the severity told, or at one told now (a dip that lasted): the hold counts from here.
        batch.sighted.add((target.channel, n.key))
        due = (
            prior is None or not prior.active or (prior.fingerprint != fp and not _outcomes_gone(last, n))
            or t - prior.last_sent_at >= repeat_seconds(notifiers.get(target.channel), target.route)
        )
        if not due:
            continue
        if told is not None and (target.channel, n.key, n.severity.value) not in told:
            continue  # not delivered by the leader (yet): it stays due here
        decorated = decorate(n, target.route, links)
        batch.add(target, decorated)
        batch.ledger_rows.append((target.channel, n.key, target.route.name, fp, int(resolvable), 1, t,
                                  notification_to_json(decorated)))


def refresh_held(
    batch: StageBatch, ledger: Ledger, resolved_keys: Iterable[tuple[str, str]], t: float, *,
    notifiers: Mapping[str, Notifier], router: Router,
) -> None:
    """A channel whose alerts expire unless re-posted (``Notifier.repeat_interval``: Alertmanager
    ends one after its resolve_timeout) hears what it was told again while the condition is held:
    gone for less than ``resolve_after``, below the severity told for less than that, or about an
    entity nothing measures now. Without it, Alertmanager resolved the alert before the daemon's
    "cleared", and a condition back in between fired anew there. Only what arrived is refreshed
    (a message still waiting carries the condition when it goes)."""
    expiring = {name: n for name, n in notifiers.items() if n.repeat_interval is not None}
    if not expiring:
        return  # no channel's alerts expire (no Alertmanager): the ledger need not be read again
    closing = set(resolved_keys)
    for (channel, key), prior in ledger.items():
        notifier = expiring.get(channel)
        if notifier is None or (channel, key) in batch.sighted or (channel, key) in closing:
            continue
        if not (prior.active and prior.resolvable and prior.delivered) or prior.fingerprint == "":
            continue
        route = router.route(prior.route) or (router.routes[0] if router.routes else None)
        if route is None or t - prior.last_sent_at < repeat_seconds(notifier, route):
            continue
        last = _told(prior)
        if last is None:
            continue
        batch.add(Target(channel, route), replace(last, id=new_id()))
        batch.refreshed.append((t, prior.last_at_told_severity, channel, key))


def record(
    conn: sqlite3.Connection, ledger_rows: list[tuple[object, ...]], resolved_keys: list[tuple[str, str]], t: float,
    *, delivered: bool, seen: Iterable[tuple[str, str]] = (), refreshed: Iterable[tuple[float, float, str, str]] = (),
) -> None:
    """The de-duplication ledger: what was told on which channel, what was found this cycle
    (``seen``), and what is resolved. ``delivered``: the rows are known to have arrived (a follower
    records what the leader delivered); the leader's are queued only, and :func:`mark_delivered`
    says when they arrive."""
    conn.executemany(
        "INSERT INTO notify_ledger (channel, key, route, fingerprint, resolvable, active, last_sent_at, notification, "
        "delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(channel, key) DO UPDATE SET route = excluded.route, "
        "fingerprint = excluded.fingerprint, resolvable = excluded.resolvable, active = excluded.active, "
        "last_sent_at = excluded.last_sent_at, notification = excluded.notification, "
        # What arrived stays arrived until the channel hears it cleared (mark_delivered): a condition
        # that fires again before its "cleared" arrived is one the channel still believes firing.
        "delivered = MAX(notify_ledger.delivered, excluded.delivered)",
        [(*row, int(delivered)) for row in ledger_rows],
    )
    conn.executemany("UPDATE notify_ledger SET last_seen_at = ? WHERE channel = ? AND key = ?",
                     [(t, channel, key) for channel, key in seen])
    # A held condition told again: sent now, its hold still counting from its last sighting.
    conn.executemany("UPDATE notify_ledger SET last_sent_at = ?, last_seen_at = ? WHERE channel = ? AND key = ?", refreshed)
    conn.executemany("UPDATE notify_ledger SET active = 0 WHERE channel = ? AND key = ?", resolved_keys)
    # Action notifications never resolve; their rows only serve de-duplication, so old ones go.
    conn.execute("DELETE FROM notify_ledger WHERE (active = 0 OR resolvable = 0) AND last_sent_at < ?", (t - 7 * 86400,))


def mark_delivered(conn: sqlite3.Connection, channel: str, n: Notification) -> None:
    """The outbox delivered ``n`` for ``channel``: the condition's current episode was told there,
    or (a "cleared") the channel knows it is over, so its next episode starts with nothing told."""
    if n.test:
        return
    if n.resolved:
        conn.execute("UPDATE notify_ledger SET delivered = 0 WHERE channel = ? AND key = ? AND active = 0", (channel, n.key))
        return
    conn.executemany("UPDATE notify_ledger SET delivered = 1 WHERE channel = ? AND key = ? AND active = 1",
                     [(channel, key) for key in n.condition_keys])


def forget_undelivered(conn: sqlite3.Connection, channel: str, n: Notification) -> None:
    """The outbox gave up on ``n`` for ``channel``: what it told is no longer recorded as told there.

    Only ledger rows that still hold ``n`` (or, for a storm summary, one of the notifications it
    grouped, matched by finding) are made due again; a row a later notification replaced stands.
    The row stays, ``delivered`` included: an earlier message of the episode that arrived still
    did, and its condition is still owed a "cleared". A given-up "cleared" reopens its condition
    (unless it fired again since), so the next cycle that finds it absent queues the "cleared" again."""
    if n.test:
        return
    if n.resolved:
        conn.execute("UPDATE notify_ledger SET active = 1 WHERE channel = ? AND key = ? AND active = 0", (channel, n.key))
        return
    finding_ids = {f.id for f in n.findings} if n.kind is NotificationKind.STORM else set()
    for key in n.condition_keys:
        row = conn.execute("SELECT notification FROM notify_ledger WHERE channel = ? AND key = ? AND active = 1",
                           (channel, key)).fetchone()
        if row is None:
            continue
        try:
            told = json.loads(row["notification"])
            mine = told["id"] == n.id or any(f.get("id") in finding_ids for f in told.get("findings", ()))
        except (ValueError, KeyError, TypeError, AttributeError):
            mine = True  # unreadable: the row cannot say it holds something newer
        if mine:
            # No fingerprint matches '': dedup finds it due at the next cycle.
            conn.execute("UPDATE notify_ledger SET fingerprint = '' WHERE channel = ? AND key = ?", (channel, key))
