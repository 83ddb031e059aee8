"""Resolve: findings that were notified and are gone now are sent as resolved.

Only conditions resolve (``NotificationKind.resolvable``), once absent for their route's
``resolve_after`` (one that returns before then is the same episode) while their entity is
measured (a GPU off the bus takes its findings with it: not healed), and only on routes that send
resolutions; on the others what still waits of a cleared condition is withdrawn. The stage skips this step when the cycle is degraded: a partial picture never
resolves anything. A condition of which nothing reached the channel (its first message still
waits in the outbox) is not resolved there: its waiting message is withdrawn instead, and so is a
waiting storm summary once every condition it tells of has cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from aiops.model import new_id
from aiops.notify import formatting as fmt
from aiops.notify import storm
from aiops.notify.batch import StageBatch
from aiops.notify.dedup import Ledger
from aiops.notify.routing import Router, Target
from aiops.plugins import Notifier
from aiops.state.codec import notification_from_json


def resolve(
    batch: StageBatch, ledger: Ledger, *, router: Router, notifiers: Mapping[str, Notifier], cycle_id: str, now: datetime,
    unseen: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """A condition told before and absent now is resolved; returns the (channel, key) rows to close.
    ``unseen``: keys of entities nothing measures now, whose conditions are not resolved."""
    resolved_keys: list[tuple[str, str]] = []
    in_batch: dict[str, frozenset[str]] = {}  # per channel, read once a pass and only when asked
    t = now.timestamp()
    for (channel, key), prior in ledger.items():
        if not (prior.active and prior.resolvable) or (channel, key) in batch.seen or channel not in notifiers:
            continue
        route = router.route(prior.route)
        if route is not None and t - prior.last_at_told_severity < route.resolve_after.total_seconds():
            continue  # absent for less than resolve_after: still the same episode
        last = notification_from_json(prior.notification)
        if last.entity is not None and last.entity.key in unseen:
            continue  # nothing measures it now (a GPU off the bus): gone for want of data, not healed
        resolved_keys.append((channel, key))
        # Nobody was told (the channel was down the whole time): a "cleared" would be news of something
        # never seen, and the waiting firing message would be news of something over. Neither is sent;
        # a message already in a batch may have arrived, so that one is resolved as usual.
        if not prior.delivered:
            if channel not in in_batch:
                in_batch[channel] = batch.outbox.keys_in_batch(channel)
            if key not in in_batch[channel]:
                batch.withdrawn.append((channel, key))
                continue
        if route is not None and not route.send_resolved:
            # No "cleared" supersedes what still waits (a change, a repeat): withdrawn, not sent about something over.
            batch.withdrawn.append((channel, key))
            continue
        what = f"{last.findings[0].signal} cleared" if last.findings else "cleared"
        gone = replace(last, id=new_id(), resolved=True, cycle_id=cycle_id, results=(),
                       title=f"{last.entity or last.key}: {what}",
                       summary=f"no longer detected (last notified {fmt.clock(datetime.fromtimestamp(prior.last_sent_at, now.tzinfo))})",
                       labels={k: v for k, v in last.labels.items() if not k.startswith("__mention")})
        if route is None:  # the route was removed from the config: resolve through the first one
            if not router.routes:
                continue
            route = router.routes[0]
        batch.add(Target(channel, route), gone, keep_first=True)
    _withdraw_storms_over(batch, ledger, resolved_keys)
    return resolved_keys


def _withdraw_storms_over(batch: StageBatch, ledger: Ledger, resolved_keys: list[tuple[str, str]]) -> None:
    """A waiting storm summary whose conditions have all cleared (this pass or before) is withdrawn
    (see :func:`~aiops.notify.storm.over`)."""
    cleared = set(resolved_keys)
    still = batch.seen | ({ck for ck, prior in ledger.items() if prior.active} - cleared)
    for channel in sorted({channel for channel, _ in cleared}):
        active = {key for c, key in still if c == channel}
        batch.withdrawn += [(channel, s.key) for s in batch.outbox.waiting(channel, storm.KEY_PREFIX) if storm.over(s, active)]
