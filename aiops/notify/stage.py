"""The notify stage: graded findings and action results -> notifications -> routes -> outbox -> channels.

Per cycle, one stage each, in this order (Alertmanager's route → group → dedup → notify, in
aiops's terms):

1. :mod:`~aiops.notify.build` — findings at or above ``policy.notify_min_severity`` become
   notifications, carrying their action results; loose results become notifications of their own.
2. :mod:`~aiops.notify.routing` — routes pick the channels and add their context (mentions, links).
3. :mod:`~aiops.notify.dedup` — a ledger per (channel, key) keeps what is new, changed or due again.
4. :mod:`~aiops.notify.resolve` — conditions told before and gone now are sent as resolved, unless
   the cycle is degraded: a partial picture never resolves anything. One of which nothing was
   delivered yet is withdrawn from the outbox instead: no "cleared" for what nobody saw. Those
   held instead are told again to a channel whose alerts expire (``dedup.refresh_held``).
5. :mod:`~aiops.notify.storm` — many at once become one message per channel.
6. :mod:`~aiops.notify.outbox` — ledger and outbox rows are written in one transaction, then the
   outbox is flushed; every channel is flushed in its own thread and none waits for another.

This module only runs them in that order, for the leader (:mod:`~aiops.notify.replicas`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from aiops import metrics
from aiops.config import AiopsConfig
from aiops.model import ActionResult, Finding, Notification, utcnow
from aiops.notify.batch import StageBatch
from aiops.notify.build import build_notifications
from aiops.notify.channels import build_notifiers
from aiops.notify.dedup import (
    dedup,
    ensure_ledger,
    forget_undelivered,
    mark_delivered,
    read_ledger,
    record,
    refresh_held,
)
from aiops.notify.outbox import ChannelReport, Outbox
from aiops.notify.replicas import SharedLedger, publish_delivered, told_by_leader
from aiops.notify.resolve import resolve
from aiops.notify.routing import Router
from aiops.notify.storm import end_window, group_storms
from aiops.plugins import Notifier
from aiops.state import Store

log = logging.getLogger(__name__)


class NotifyStage:
    """``is_leader``: with several replicas only the leader tells people (one message, one rate
    limit per robot). A follower keeps its de-dup ledger in step without sending, so that when it
    takes over it does not repeat what the old leader already told.

    ``shared``: where the leader publishes what it *delivered*. With it, a follower marks a
    notification as told only once the leader delivered it; one the leader queued but never
    delivered (it died with the message in its outbox) stays due, and the next leader sends it."""

    def __init__(self, config: AiopsConfig, store: Store, notifiers: Mapping[str, Notifier], *,
                 now: datetime | None = None, is_leader: Callable[[], bool] | None = None,
                 shared: SharedLedger | None = None) -> None:
        self.config = config
        self.is_leader = is_leader
        self.shared = shared
        # The cycle and the digest job deliver from different threads: one pass at a time.
        self._delivering = threading.Lock()
        self.notify_config = config.notify
        self.store = store
        self.notifiers = dict(notifiers)
        self.router = Router(config.notify.routes, list(self.notifiers), config.policy.notify_min_severity)
        fallbacks = {
            name: (ch.fallback, ch.fallback_after.total_seconds())
            for name, ch in config.notify.channels.items()
            if ch.fallback is not None and name in self.notifiers and ch.fallback in self.notifiers
        }
        ensure_ledger(store)
        self.outbox = Outbox(store, config.notify.outbox, fallbacks=fallbacks, on_given_up=self._given_up,
                             on_delivered=mark_delivered)
        self.outbox.recover(self.notifiers, now or utcnow())
        for name in self.notifiers:
            metrics.OUTBOX_PENDING.labels(channel=name).set(self.outbox.pending(name))
        self.last_reports: dict[str, ChannelReport] = {}

    @classmethod
    def from_config(cls, config: AiopsConfig, store: Store, *, is_leader: Callable[[], bool] | None = None,
                    shared: SharedLedger | None = None) -> NotifyStage:
        return cls(config, store, build_notifiers(config.notify), is_leader=is_leader, shared=shared)

    def notify(
        self,
        findings: Sequence[Finding],
        results: Sequence[ActionResult],
        *,
        cycle_id: str,
        now: datetime,
        degraded: bool,
        extra: Sequence[Notification] = (),
        unseen: Collection[str] = (),
    ) -> list[Notification]:
        """This cycle's notifications through the stages: build → route → dedup → resolve → storm →
        outbox. ``extra`` carries ready-made ones from outside the cycle's findings. ``unseen``: keys
        of the entities nothing measures this cycle (:func:`aiops.engine.correlate.unseen_entities`):
        a condition about one of them is gone for want of data, not cleared."""
        current = build_notifications(findings, results, cycle_id=cycle_id,
                                      min_severity=self.config.policy.notify_min_severity, degraded=degraded)
        return self._deliver([*current, *extra], cycle_id=cycle_id, now=now, resolve_gone=not degraded, unseen=unseen,
                             cycle=True)

    def send_events(self, notifications: Sequence[Notification], *, now: datetime, cycle_id: str = "") -> list[Notification]:
        """Ready-made event messages (the weekly digest) outside a cycle: routed, de-duplicated,
        storm-grouped and queued like the cycle's, but nothing is resolved by their absence."""
        return self._deliver(notifications, cycle_id=cycle_id, now=now, resolve_gone=False)

    def _deliver(
        self, current: Sequence[Notification], *, cycle_id: str, now: datetime, resolve_gone: bool,
        unseen: Collection[str] = (), cycle: bool = False,
    ) -> list[Notification]:
        with self._delivering:
            return self._deliver_locked(current, cycle_id=cycle_id, now=now, resolve_gone=resolve_gone, unseen=unseen,
                                        cycle=cycle)

    def _deliver_locked(
        self, current: Sequence[Notification], *, cycle_id: str, now: datetime, resolve_gone: bool,
        unseen: Collection[str], cycle: bool,
    ) -> list[Notification]:
        t = now.timestamp()
        leading = self.is_leader is None or self.is_leader()
        batch = StageBatch(self.outbox)
        ledger = read_ledger(self.store)
        routed = [(n, target) for n in current for target in self.router.targets(n)]
        dedup(routed, batch, ledger, told_by_leader(self.shared) if not leading else None, t,
              notifiers=self.notifiers, links=self.notify_config.links)
        resolved_keys = (
            resolve(batch, ledger, router=self.router, notifiers=self.notifiers, cycle_id=cycle_id, now=now,
                    unseen=frozenset(unseen))
            if resolve_gone else []
        )
        if cycle and leading:
            # A cycle, degraded or not, is what tells a channel its held conditions still fire.
            refresh_held(batch, ledger, resolved_keys, t, notifiers=self.notifiers, router=self.router)
        with self.store.transaction() as conn:
            # A follower records only what the leader told (or, without a shared ledger, takes it as told).
            record(conn, batch.ledger_rows, resolved_keys, t, delivered=not leading, seen=batch.sighted,
                   refreshed=batch.refreshed)
            if not leading:
                return []
            self.outbox.withdraw_in(conn, batch.withdrawn, now)
            envelopes = group_storms(batch.envelopes, t, cycle_id, batch.queued, config=self.config.notify.storm,
                                     store=self.store, notifiers=self.notifiers)
            self.outbox.enqueue_in(conn, envelopes, now)
        self.last_reports = self.outbox.flush(self.notifiers, now)
        publish_delivered(self.store, self.shared, now)
        return list(batch.queued.values())

    def _given_up(self, conn: sqlite3.Connection, channel: str, n: Notification) -> None:
        """The outbox gave up on ``n``: nobody was told, so neither the ledger nor a storm window
        may act as if they were."""
        forget_undelivered(conn, channel, n)
        end_window(self.store, channel, n)

    def flush(self, now: datetime) -> dict[str, ChannelReport]:
        """Send what is due without new input (between cycles, or at shutdown)."""
        if self.is_leader is not None and not self.is_leader():
            return {}
        self.last_reports = self.outbox.flush(self.notifiers, now)
        publish_delivered(self.store, self.shared, now)
        return self.last_reports

    def close(self) -> None:
        for n in self.notifiers.values():
            try:
                n.close()
            except Exception:  # closing must not stop the others from closing
                log.warning("closing notifier %s failed", n.name, exc_info=True)
