"""What one pass through the notify stages gathers before it is written: the envelopes per channel
and route (held behind the route's ``group_interval``), the de-dup ledger rows, what was seen, and
what is withdrawn."""

from __future__ import annotations

from aiops.model import Notification
from aiops.notify.outbox import Envelope, Outbox
from aiops.notify.routing import Target


class StageBatch:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.envelopes: list[Envelope] = []
        self.ledger_rows: list[tuple[object, ...]] = []
        self.queued: dict[str, Notification] = {}
        self.seen: set[tuple[str, str]] = set()
        # (channel, key)s found at (or above) the severity last told there: resolve_after counts from them.
        self.sighted: set[tuple[str, str]] = set()
        # Held conditions told again on a channel that needs it: (sent at, last sighting, channel, key).
        self.refreshed: list[tuple[float, float, str, str]] = []
        # (channel, key)s cleared before anything of them was delivered: their waiting rows are dropped.
        self.withdrawn: list[tuple[str, str]] = []
        self._last_sent: dict[tuple[str, str], float | None] = {}

    def add(self, target: Target, n: Notification, *, keep_first: bool = False) -> None:
        group = (target.channel, target.route.name)
        if group not in self._last_sent:
            self._last_sent[group] = self.outbox.group_last_sent(*group)
        last = self._last_sent[group]
        window = target.route.group_interval.total_seconds()
        self.envelopes.append(
            Envelope(target.channel, target.route.name, n, not_before=(last + window) if last and window else 0.0)
        )
        if keep_first:
            self.queued.setdefault(n.id, n)
        else:
            self.queued[n.id] = n
