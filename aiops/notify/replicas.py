"""Several replicas, one voice: only the leader sends, and it publishes what it *delivered* where
every replica sees it (``aiops.kube.notified``).

A follower marks a notification as told only once the leader delivered it; one the leader queued
but never delivered (it died with the message in its outbox) stays due, and the next leader sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from aiops.errors import AiopsError
from aiops.notify.outbox import DELIVERED
from aiops.state import Store
from aiops.state.codec import notification_from_json

log = logging.getLogger(__name__)

PUBLISHED_KEY = "notify.shared.published_at"


class SharedLedger(Protocol):
    """What the leader delivered, where every replica sees it (``aiops.kube.notified``)."""

    def delivered(self) -> set[tuple[str, str, str]]: ...

    def publish(self, delivered: Iterable[tuple[str, str, str]], now: datetime) -> None: ...


def told_by_leader(shared: SharedLedger | None) -> set[tuple[str, str, str]] | None:
    """A follower's view of what the leader delivered; None without a shared ledger."""
    if shared is None:
        return None
    try:
        return shared.delivered()
    except AiopsError as exc:  # unknown: mark nothing, so a new leader rather repeats than loses
        log.warning("cannot read what the leader delivered: %s", exc)
        return set()


def publish_delivered(store: Store, shared: SharedLedger | None, now: datetime) -> None:
    """The leader records its deliveries since the last publication in the shared ledger."""
    if shared is None:
        return
    since = float(store.get(PUBLISHED_KEY, 0.0) or 0.0)
    # A delivered row keeps no payload: its severity is the one the ledger queued (a resolved
    # key is inactive there and is not published: followers only need what fired).
    rows = store.query(
        "SELECT o.channel, o.key, o.updated_at, l.notification, l.active FROM notify_outbox o "
        "LEFT JOIN notify_ledger l ON l.channel = o.channel AND l.key = o.key "
        "WHERE o.state = ? AND o.updated_at > ? ORDER BY o.updated_at", (DELIVERED, since))
    if not rows:
        return
    entries = []
    for r in rows:
        if not r["active"]:
            continue
        try:
            n = notification_from_json(r["notification"])
        except (ValueError, KeyError, TypeError):
            continue
        entries.append((r["channel"], r["key"], n.severity.value))
    try:
        shared.publish(entries, now)
    except AiopsError as exc:  # told again next flush; a follower meanwhile keeps them due
        log.warning("cannot record the delivered notifications for the other replicas: %s", exc)
        return
    store.put(PUBLISHED_KEY, float(rows[-1]["updated_at"]))
