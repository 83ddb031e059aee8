"""The persistent outbox: every notification for every channel is a row in the Store before any send.

Life of a row: ``pending`` → (claimed with a batch id) ``sending`` → ``delivered`` | ``pending``
again with a backoff | ``failed`` after the retry budget (attempts or age). A newer notification
with the same key for the same channel ``supersedes`` an older one still waiting, so an outage
ends with the latest state, not a replay of every cycle.

Crash safety. A batch is marked ``sending`` in its own committed transaction before the transport
is called, and ``delivered`` right after. A crash in between leaves rows in ``sending``; on restart
:meth:`Outbox.recover` asks each channel whether a repeat is harmless (``redeliver_after_crash``):

- Alertmanager: yes, alerts with the same labels are the same alert.
- Email: yes, the resend is the same batch with the same Message-ID, which receivers de-duplicate.
- DingTalk: no, the robot API has no idempotency key; such rows are recorded as failed with
  result ``unknown`` rather than risk a duplicate page.

A transport timeout after the peer accepted the request is indistinguishable from a lost request;
that case is retried (at-least-once), which is the one place a duplicate can still happen.

Given up. A row that fails for good (spent retry budget, permanent error, no fallback took it) was
never told, yet the de-dup ledger recorded it as told when it was queued; ``on_given_up`` (the
stage's :func:`~aiops.notify.dedup.forget_undelivered`) clears that in the same transaction, so a
condition still firing after a long outage is queued again next cycle instead of after
``repeat_interval``, and a "cleared" is queued again while its condition stays clear. An ``unknown`` outcome (crash while sending to DingTalk) is not given up: it
may have arrived, and a repeat is what that rule avoids. ``on_delivered`` (the stage's
:func:`~aiops.notify.dedup.mark_delivered`) is its counterpart: the ledger learns what arrived,
an ``unknown`` outcome included.

Withdrawn. A condition that clears before anything of it was delivered is not resolved; the
stage :meth:`~Outbox.withdraw_in` its waiting rows instead, so the channel hears nothing of it.

Fallback. A channel with a ``fallback`` hands over a row still undelivered ``fallback_after`` past
the time it became *due* (``due_at``: the end of its route's group window or the storm window, else
when it was queued), never past its creation: a hold is aiops's own choice, not delivery trouble,
and a healthy channel must get what it held. What does count is the channel's trouble after that:
failed attempts and their backoff, a rate limit, a backlog. Retries do not move ``due_at``.

Fair share. One flush sends at most ``_MAX_BATCHES_PER_FLUSH`` batches. Within a severity the rows
due longest go first, and a row that supersedes one still waiting keeps that row's ``due_at``: a
channel re-sent every active condition each cycle (Alertmanager's refresh) with more due than one
flush carries serves those the last flush left behind first, instead of the same winners every
time. A channel whose receiver takes many per request says so (``Notifier.max_batch``; Alertmanager
takes a list of alerts in one POST), so it rarely needs more than one batch at all.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiops import metrics
from aiops.config.notify import OutboxConfig
from aiops.model import Notification
from aiops.state.codec import notification_from_json, notification_to_json
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store
from aiops.state.migrations import add_column, migrate

log = logging.getLogger(__name__)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notify_outbox (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    grp TEXT NOT NULL,
    key TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    notification TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    batch_id TEXT,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (channel, state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS notify_outbox_done ON notify_outbox (state, updated_at)",
    "CREATE INDEX IF NOT EXISTS notify_outbox_key ON notify_outbox (channel, key, state)",
    (
        "CREATE TABLE IF NOT EXISTS notify_groups (channel TEXT NOT NULL, grp TEXT NOT NULL, last_sent_at REAL NOT NULL, "
        "PRIMARY KEY (channel, grp))"
    ),
)
# Numbered steps (aiops.state.migrations): append-only.
_MIGRATIONS = (
    ";\n".join(_SCHEMA),
    # When the row first became due (see Fallback above); NULL on rows from before it: created_at.
    add_column("notify_outbox", "due_at", "REAL"),
)

PENDING, SENDING, DELIVERED, FAILED, SUPERSEDED = "pending", "sending", "delivered", "failed", "superseded"
# Handed to the channel's fallback (a copy is queued there).
REROUTED = "rerouted"
_FALLBACK_GROUP = "fallback:"
# What one channel may do in one flush, so a slow but working channel cannot stretch the cycle:
# at most this many batches, and no new batch after this many seconds.
_MAX_BATCHES_PER_FLUSH = 20
_FLUSH_BUDGET_SECONDS = 20.0

# (transaction, channel the notification was meant for, the notification): called when a row fails
# for good (``on_given_up``), or when it was delivered (``on_delivered``).
Settled = Callable[[sqlite3.Connection, str, Notification], None]


@dataclass(frozen=True)
class Envelope:
    """One notification addressed to one channel, within a group (the route) for digests."""

    channel: str
    group: str
    notification: Notification
    # Earliest send time (epoch seconds): the route's group window.
    not_before: float = 0.0


@dataclass
class ChannelReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    rerouted: int = 0
    pending: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class Batch:
    channel: str
    batch_id: str
    row_ids: tuple[str, ...]
    notifications: tuple[Notification, ...]


class Outbox:
    def __init__(self, store: Store, config: OutboxConfig | None = None, *,
                 fallbacks: Mapping[str, tuple[str, float]] | None = None, on_given_up: Settled | None = None,
                 on_delivered: Settled | None = None) -> None:
        self.store = store
        self.on_given_up = on_given_up
        self.on_delivered = on_delivered
        self.config = config or OutboxConfig()
        # channel -> (fallback channel, seconds a row may wait before it is handed over)
        self.fallbacks = dict(fallbacks or {})
        migrate(store, "notify_outbox", _MIGRATIONS)

    # --- writing -------------------------------------------------------------------------
    def enqueue(self, envelopes: Sequence[Envelope], now: datetime) -> None:
        """Persist envelopes in one transaction; older waiting rows with the same key are superseded."""
        with self.store.transaction() as conn:
            self.enqueue_in(conn, envelopes, now)

    def enqueue_in(self, conn: sqlite3.Connection, envelopes: Sequence[Envelope], now: datetime) -> None:
        """:meth:`enqueue` inside the caller's transaction (the stage commits its de-dup ledger with it)."""
        t = now.timestamp()
        for env in envelopes:
            n = env.notification
            due = max(t, env.not_before)
            # The key has waited to be told here since the oldest row it supersedes was due.
            waiting = conn.execute(
                "SELECT MIN(COALESCE(due_at, created_at)) AS since FROM notify_outbox "
                "WHERE channel = ? AND key = ? AND state = ? AND batch_id IS NULL",
                (env.channel, n.key, PENDING),
            ).fetchone()["since"]
            if waiting is not None:
                due = min(due, float(waiting))
            self._supersede(conn, env.channel, n.key, t, "superseded by a newer notification")
            conn.execute(
                "INSERT OR IGNORE INTO notify_outbox (id, channel, grp, key, severity_rank, notification, state, "
                "created_at, next_attempt_at, due_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"{n.id}:{env.channel}", env.channel, env.group, n.key, n.severity.rank, notification_to_json(n), PENDING,
                 t, max(t, env.not_before), due, t),
            )

    def withdraw_in(self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str]], now: datetime) -> None:
        """Drop the waiting rows of these (channel, key)s with nothing in their place (see Withdrawn above)."""
        for channel, key in keys:
            self._supersede(conn, channel, key, now.timestamp(), "withdrawn: cleared before anything of it was delivered")

    @staticmethod
    def _supersede(conn: sqlite3.Connection, channel: str, key: str, t: float, reason: str) -> None:
        conn.execute(
            "UPDATE notify_outbox SET state = ?, updated_at = ?, last_error = ?, notification = '' "
            "WHERE channel = ? AND key = ? AND state = ? AND batch_id IS NULL",
            (SUPERSEDED, t, reason, channel, key, PENDING),
        )

    def keys_in_batch(self, channel: str) -> frozenset[str]:
        """The conditions that rows in a batch already speak for (their own keys, and those a storm
        summary groups): being sent, or an interrupted batch to be resent. They may have arrived,
        and cannot be withdrawn."""
        rows = self.store.query(
            "SELECT key, notification FROM notify_outbox WHERE channel = ? AND state IN (?, ?) AND batch_id IS NOT NULL",
            (channel, PENDING, SENDING),
        )
        keys: set[str] = set()
        for r in rows:
            keys.add(r["key"])
            try:
                keys.update(notification_from_json(r["notification"]).condition_keys)
            except (ValueError, KeyError, TypeError):
                continue  # damaged: _claim fails it
        return frozenset(keys)

    def waiting(self, channel: str, key_prefix: str) -> list[Notification]:
        """The notifications on ``channel`` whose key starts with ``key_prefix`` that still wait
        (not in a batch, so they can be withdrawn)."""
        rows = self.store.query(
            "SELECT notification FROM notify_outbox WHERE channel = ? AND state = ? AND batch_id IS NULL "
            "AND substr(key, 1, ?) = ?",
            (channel, PENDING, len(key_prefix), key_prefix),
        )
        waiting = []
        for r in rows:
            try:
                waiting.append(notification_from_json(r["notification"]))
            except (ValueError, KeyError, TypeError):
                continue  # damaged: _claim fails it
        return waiting

    def group_last_sent(self, channel: str, group: str) -> float | None:
        rows = self.store.query("SELECT last_sent_at FROM notify_groups WHERE channel = ? AND grp = ?", (channel, group))
        return float(rows[0]["last_sent_at"]) if rows else None

    # --- recovery ------------------------------------------------------------------------
    def recover(self, notifiers: Mapping[str, Notifier], now: datetime) -> None:
        """Settle rows a previous process left in ``sending`` (it stopped between send and mark)."""
        t = now.timestamp()
        rows = self.store.query("SELECT DISTINCT channel FROM notify_outbox WHERE state = ?", (SENDING,))
        for row in rows:
            channel = row["channel"]
            notifier = notifiers.get(channel)
            if notifier is not None and notifier.redeliver_after_crash:
                with self.store.transaction() as conn:
                    conn.execute(
                        "UPDATE notify_outbox SET state = ?, updated_at = ? WHERE channel = ? AND state = ?",
                        (PENDING, t, channel, SENDING),
                    )
                log.warning("outbox: resending an interrupted batch on channel %s (the receiver de-duplicates it)", channel)
                continue
            with self.store.transaction() as conn:
                # It may have arrived: for the ledger it did (a condition that then clears is resolved).
                for r in conn.execute("SELECT grp, notification FROM notify_outbox WHERE channel = ? AND state = ?",
                                      (channel, SENDING)).fetchall():
                    self._settled(self.on_delivered, conn, channel, r["grp"], r["notification"])
                cur = conn.execute(
                    "UPDATE notify_outbox SET state = ?, updated_at = ?, last_error = ? WHERE channel = ? AND state = ?",
                    (FAILED, t, "outcome unknown: the daemon stopped while sending; not resent to avoid a duplicate",
                     channel, SENDING),
                )
            metrics.NOTIFICATIONS.labels(channel=channel, result="unknown").inc(cur.rowcount)
            log.error(
                "outbox: %d notification(s) on channel %s may or may not have been delivered before a restart; "
                "not resent because the channel cannot de-duplicate", cur.rowcount, channel,
            )
        orphans = self.store.query(
            "SELECT channel, COUNT(*) AS n FROM notify_outbox WHERE state = ? GROUP BY channel", (PENDING,)
        )
        for row in orphans:
            if row["channel"] not in notifiers:
                with self.store.transaction() as conn:
                    conn.execute(
                        "UPDATE notify_outbox SET state = ?, updated_at = ?, last_error = ? WHERE channel = ? AND state = ?",
                        (FAILED, t, "channel is no longer configured", row["channel"], PENDING),
                    )
                metrics.NOTIFICATIONS.labels(channel=row["channel"], result="failed").inc(row["n"])
                log.error("outbox: %d notification(s) for removed channel %s recorded as failed", row["n"], row["channel"])

    # --- sending -------------------------------------------------------------------------
    def flush(self, notifiers: Mapping[str, Notifier], now: datetime) -> dict[str, ChannelReport]:
        """Send what is due, each channel in its own thread so one slow channel delays no other."""
        if not notifiers:
            return {}
        with ThreadPoolExecutor(max_workers=len(notifiers), thread_name_prefix="notify") as pool:
            futures = {name: pool.submit(self._flush_channel, name, n, now) for name, n in notifiers.items()}
            reports = {name: fut.result() for name, fut in futures.items()}
        # What was handed to a fallback this flush goes out now, not a cycle later.
        handed = {self.fallbacks[name][0] for name, r in reports.items() if r.rerouted and name in self.fallbacks}
        for target in sorted(handed & set(notifiers)):
            again = self._flush_channel(target, notifiers[target], now)
            first = reports[target]
            first.delivered += again.delivered
            first.retried += again.retried
            first.failed += again.failed
            first.pending = again.pending
            first.last_error = again.last_error or first.last_error
        self._prune(now)
        return reports

    def _flush_channel(self, channel: str, notifier: Notifier, now: datetime) -> ChannelReport:
        report = ChannelReport()
        report.rerouted += self._reroute_waiting(channel, now)
        started = time.monotonic()
        for _ in range(_MAX_BATCHES_PER_FLUSH):
            if time.monotonic() - started > _FLUSH_BUDGET_SECONDS:
                break
            if notifier.wait_seconds() > 0:
                break  # rate limited: rows stay pending, no attempt is spent
            batch = self._claim(channel, now, notifier.max_batch)
            if batch is None:
                break
            delivery = self._send(notifier, batch)
            self._settle(batch, delivery, now, report)
            if delivery.status is DeliveryStatus.RETRY:
                break  # the channel is struggling; the rest waits for the next flush
        report.pending = self.pending(channel)
        metrics.OUTBOX_PENDING.labels(channel=channel).set(report.pending)
        return report

    def _claim(self, channel: str, now: datetime, limit: int | None = None) -> Batch | None:
        """The next batch due on ``channel``: at most ``limit`` rows (the channel's own), else ``max_batch``."""
        t = now.timestamp()
        with self.store.transaction() as conn:
            head = conn.execute(
                "SELECT grp, batch_id FROM notify_outbox WHERE channel = ? AND state = ? AND next_attempt_at <= ? "
                "ORDER BY batch_id IS NULL, severity_rank DESC, COALESCE(due_at, created_at), created_at LIMIT 1",
                (channel, PENDING, t),
            ).fetchone()
            if head is None:
                return None
            if head["batch_id"] is not None:
                # A batch interrupted by a crash is resent unchanged (same id, same Message-ID).
                batch_id = head["batch_id"]
                rows = conn.execute(
                    "SELECT id, notification FROM notify_outbox WHERE channel = ? AND batch_id = ? AND state = ? ORDER BY severity_rank DESC, created_at",
                    (channel, batch_id, PENDING),
                ).fetchall()
            else:
                batch_id = uuid.uuid4().hex
                rows = conn.execute(
                    "SELECT id, notification FROM notify_outbox WHERE channel = ? AND grp = ? AND state = ? AND batch_id IS NULL "
                    "AND next_attempt_at <= ? ORDER BY severity_rank DESC, COALESCE(due_at, created_at), created_at LIMIT ?",
                    (channel, head["grp"], PENDING, t, limit or self.config.max_batch),
                ).fetchall()
            ids: list[str] = []
            notifications: list[Notification] = []
            for r in rows:
                try:
                    notifications.append(notification_from_json(r["notification"]))
                    ids.append(r["id"])
                except (ValueError, KeyError, TypeError) as exc:  # a damaged row must not block the rest
                    conn.execute("UPDATE notify_outbox SET state = ?, updated_at = ?, last_error = ? WHERE id = ?",
                                 (FAILED, t, f"unreadable payload: {type(exc).__name__}", r["id"]))
                    metrics.NOTIFICATIONS.labels(channel=channel, result="failed").inc()
            conn.executemany(
                "UPDATE notify_outbox SET state = ?, batch_id = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                [(SENDING, batch_id, t, i) for i in ids],
            )
        if not ids:
            return self._claim(channel, now, limit)  # every row of that group was damaged: try the next group
        return Batch(channel, batch_id, tuple(ids), tuple(notifications))

    @staticmethod
    def _send(notifier: Notifier, batch: Batch) -> Delivery:
        try:
            return notifier.send_batch(batch.notifications, batch_id=batch.batch_id)
        except Exception as exc:  # noqa: BLE001 - a notifier bug must not lose the batch; the type only (messages may hold URLs with tokens)
            log.error("outbox: notifier %s raised %s; the batch will be retried", batch.channel, type(exc).__name__)
            return Delivery(DeliveryStatus.RETRY, f"notifier raised {type(exc).__name__}")

    def _reroute(self, conn: sqlite3.Connection, channel: str, row_ids: Sequence[str], reason: str, t: float) -> int:
        """Queue copies of rows on the channel's fallback and mark them rerouted; 0 without a fallback.

        A copy keeps the notification id, so one already queued there directly is not duplicated,
        and rows that are themselves fallbacks are never handed on again (no loops)."""
        fallback = self.fallbacks.get(channel)
        if fallback is None or not row_ids:
            return 0
        target = fallback[0]
        marks = ",".join("?" * len(row_ids))
        rows = conn.execute(
            f"SELECT id, key, severity_rank, notification FROM notify_outbox WHERE id IN ({marks}) AND grp NOT LIKE ?",
            (*row_ids, _FALLBACK_GROUP + "%"),
        ).fetchall()
        for row in rows:
            notification_id = row["id"].rsplit(":", 1)[0]
            conn.execute(
                "INSERT OR IGNORE INTO notify_outbox (id, channel, grp, key, severity_rank, notification, state, "
                "created_at, next_attempt_at, due_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"{notification_id}:{target}", target, _FALLBACK_GROUP + channel, row["key"], row["severity_rank"],
                 row["notification"], PENDING, t, t, t, t),
            )
            conn.execute(
                "UPDATE notify_outbox SET state = ?, batch_id = NULL, updated_at = ?, last_error = ? WHERE id = ?",
                (REROUTED, t, f"handed to {target}: {reason}"[:500], row["id"]),
            )
        if rows:
            metrics.NOTIFICATIONS.labels(channel=channel, result="rerouted").inc(len(rows))
            log.warning("outbox: %d notification(s) of channel %s handed to fallback %s (%s)", len(rows), channel, target, reason)
        return len(rows)

    def _reroute_waiting(self, channel: str, now: datetime) -> int:
        fallback = self.fallbacks.get(channel)
        if fallback is None:
            return 0
        t = now.timestamp()
        with self.store.transaction() as conn:
            ids = [r["id"] for r in conn.execute(
                "SELECT id FROM notify_outbox WHERE channel = ? AND state = ? AND batch_id IS NULL "
                "AND COALESCE(due_at, created_at) <= ? AND grp NOT LIKE ?",
                (channel, PENDING, t - fallback[1], _FALLBACK_GROUP + "%"),
            ).fetchall()]
            return self._reroute(conn, channel, ids, f"still undelivered {fallback[1]:.0f}s after it was due", t)

    @staticmethod
    def _settled(hook: Settled | None, conn: sqlite3.Connection, channel: str, grp: str, payload: str) -> None:
        if hook is None:
            return
        try:
            n = notification_from_json(payload)
        except (ValueError, KeyError, TypeError):
            return
        hook(conn, _meant_for(channel, grp), n)

    def backoff_seconds(self, attempts: int) -> float:
        base = self.config.backoff_initial.total_seconds() * 2.0 ** max(0, attempts - 1)
        capped = min(base, self.config.backoff_max.total_seconds())
        return capped * random.uniform(0.8, 1.0)  # jitter: replicas and channels do not retry in lockstep

    def _settle(self, batch: Batch, delivery: Delivery, now: datetime, report: ChannelReport) -> None:
        t = now.timestamp()
        n = len(batch.row_ids)
        marks = ",".join("?" * n)
        with self.store.transaction() as conn:
            if delivery.status is DeliveryStatus.DELIVERED:
                conn.execute(
                    # The payload is dropped once delivered: the audit log keeps what was told.
                    f"UPDATE notify_outbox SET state = ?, updated_at = ?, last_error = '', notification = '' WHERE id IN ({marks})",
                    (DELIVERED, t, *batch.row_ids),
                )
                grp = conn.execute("SELECT grp FROM notify_outbox WHERE id = ?", (batch.row_ids[0],)).fetchone()["grp"]
                if self.on_delivered is not None:
                    for delivered in batch.notifications:
                        self.on_delivered(conn, _meant_for(batch.channel, grp), delivered)
                conn.execute(
                    "INSERT INTO notify_groups (channel, grp, last_sent_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(channel, grp) DO UPDATE SET last_sent_at = excluded.last_sent_at",
                    (batch.channel, grp, t),
                )
                report.delivered += n
                metrics.NOTIFICATIONS.labels(channel=batch.channel, result="delivered").inc(n)
                return
            report.last_error = delivery.detail
            rows = conn.execute(
                f"SELECT id, grp, attempts, created_at, notification FROM notify_outbox WHERE id IN ({marks})", batch.row_ids
            ).fetchall()
            max_age = self.config.max_age.total_seconds()
            for row in rows:
                exhausted = row["attempts"] >= self.config.max_attempts or t - row["created_at"] >= max_age
                if delivery.status is DeliveryStatus.GIVE_UP or exhausted:
                    reason = delivery.detail if delivery.status is DeliveryStatus.GIVE_UP else (
                        f"retry budget spent after {row['attempts']} attempts: {delivery.detail}"
                    )
                    if self._reroute(conn, batch.channel, [row["id"]], reason, t):
                        report.rerouted += 1
                        continue
                    conn.execute(
                        "UPDATE notify_outbox SET state = ?, updated_at = ?, last_error = ? WHERE id = ?",
                        (FAILED, t, reason, row["id"]),
                    )
                    report.failed += 1
                    metrics.NOTIFICATIONS.labels(channel=batch.channel, result="failed").inc()
                    self._settled(self.on_given_up, conn, batch.channel, row["grp"], row["notification"])
                else:
                    delay = max(self.backoff_seconds(row["attempts"]), delivery.retry_after_seconds or 0.0)
                    conn.execute(
                        # Back to the pool without its batch id: it may be superseded or join a new digest.
                        "UPDATE notify_outbox SET state = ?, batch_id = NULL, next_attempt_at = ?, updated_at = ?, last_error = ? "
                        "WHERE id = ?",
                        (PENDING, t + delay, t, delivery.detail, row["id"]),
                    )
                    report.retried += 1
                    metrics.NOTIFICATIONS.labels(channel=batch.channel, result="retry").inc()
        level = logging.ERROR if report.failed else logging.WARNING
        log.log(level, "notify channel %s: %s (%s)", batch.channel, delivery.status.value, delivery.detail)

    # --- reading -------------------------------------------------------------------------
    def pending(self, channel: str | None = None) -> int:
        sql = "SELECT COUNT(*) AS n FROM notify_outbox WHERE state IN (?, ?)"
        params: tuple[str, ...] = (PENDING, SENDING)
        if channel is not None:
            sql += " AND channel = ?"
            params += (channel,)
        return int(self.store.query(sql, params)[0]["n"])

    def rows(self, channel: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows for inspection (``aiops history``, tests), newest first."""
        sql = "SELECT id, channel, grp, key, state, attempts, batch_id, created_at, next_attempt_at, last_error FROM notify_outbox WHERE 1=1"
        params: list[object] = []
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return [dict(r) for r in self.store.query(sql + " ORDER BY created_at DESC", tuple(params))]

    def _prune(self, now: datetime) -> None:
        t = now.timestamp()
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM notify_outbox WHERE state IN (?, ?) AND updated_at < ?",
                (DELIVERED, SUPERSEDED, t - self.config.keep_delivered.total_seconds()),
            )
            conn.execute(
                "DELETE FROM notify_outbox WHERE state IN (?, ?) AND updated_at < ?",
                (FAILED, REROUTED, t - self.config.keep_failed.total_seconds()),
            )


def _meant_for(channel: str, grp: str) -> str:
    """The channel a row speaks for: a fallback copy's outcome is the original channel's."""
    return grp[len(_FALLBACK_GROUP):] if grp.startswith(_FALLBACK_GROUP) else channel
