"""The notify stage: graded findings and action results -> notifications -> routes -> outbox -> channels.

Per cycle:

1. Findings at or above ``policy.notify_min_severity`` become one notification each (key =
   ``Finding.key``), carrying the action results that target the same entity (or its node).
   Results that match no finding become notifications of their own (an applied, blocked or failed
   action is always worth telling).
2. Routes pick the channels. A ledger per (channel, key) remembers what was last sent: the same
   state is not repeated within the route's ``repeat_interval`` (or the channel's own, shorter
   refresh, which Alertmanager needs); a new severity or a new action outcome is sent at once.
3. Findings that were notified and are gone now are sent as resolved, unless the cycle is
   degraded: a partial picture never resolves anything.
4. Ledger and outbox rows are written in one transaction, then the outbox is flushed; every
   channel is flushed in its own thread and none waits for another.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import string
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from aiops import metrics, plugins
from aiops.config import AiopsConfig
from aiops.config.notify import NotifyConfig, RouteConfig
from aiops.errors import AiopsError
from aiops.model import (
    ActionResult,
    ActionStatus,
    Entity,
    Finding,
    Notification,
    NotificationKind,
    Severity,
    new_id,
    utcnow,
)
from aiops.notify import formatting as fmt
from aiops.state.codec import notification_from_json, notification_to_json
from aiops.notify.outbox import DELIVERED, ChannelReport, Envelope, Outbox
from aiops.notify.routing import Router, Target
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store

log = logging.getLogger(__name__)

_LEDGER = """CREATE TABLE IF NOT EXISTS notify_ledger (
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

# Results that tell nothing beyond their finding, when no finding carries them.
_QUIET = {ActionStatus.OBSERVED}
_RESULT_SEVERITY = {
    ActionStatus.FAILED: Severity.CRITICAL,
    ActionStatus.APPLIED: Severity.WARNING,
    ActionStatus.BLOCKED: Severity.WARNING,
    ActionStatus.DEFERRED: Severity.WARNING,
    ActionStatus.DRY_RUN: Severity.WARNING,
    ActionStatus.SUGGESTED: Severity.WARNING,
    ActionStatus.SKIPPED: Severity.INFO,
}


def check_channels(config: NotifyConfig) -> list[tuple[str, str]]:
    """(config key, problem) for each enabled channel whose params or secrets are wrong, for
    ``aiops check-config``. Constructing a notifier does no network I/O."""
    problems: list[tuple[str, str]] = []
    for name, ch in config.channels.items():
        if not ch.enabled:
            continue
        try:
            plugins.instantiate(plugins.NOTIFIERS, ch.plugin, dict(ch.params)).close()
        except plugins.PluginError as exc:
            problems.append((f"notify.channels.{name}.params", str(exc)))
    return problems


def build_notifiers(config: NotifyConfig) -> dict[str, Notifier]:
    """Instantiate the enabled channels; a bad channel config raises PluginError naming the channel."""
    out: dict[str, Notifier] = {}
    for name, ch in config.channels.items():
        if not ch.enabled:
            continue
        try:
            out[name] = plugins.instantiate(plugins.NOTIFIERS, ch.plugin, dict(ch.params))
        except plugins.PluginError as exc:
            for n in out.values():
                n.close()
            raise plugins.PluginError(f"notify.channels.{name}: {exc}") from None
    return out


# --- building notifications ---------------------------------------------------------------
def entity_labels(entity: Entity) -> dict[str, str]:
    labels = {"kind": entity.kind, "name": entity.name}
    if entity.namespace:
        labels["namespace"] = entity.namespace
    labels[entity.kind] = entity.name
    for attr in ("node", "container", "gpu", "model"):
        if entity.attr(attr) and attr not in labels:
            labels[attr] = entity.attr(attr)
    return labels


def link_fields(n: Notification, finding: Finding | None) -> dict[str, str]:
    fields = {k: "" for k in ("severity", "detector", "signal", "kind", "name", "namespace", "pod", "node", "gpu", "model")}
    fields.update({k: v for k, v in n.labels.items() if k in fields})
    fields.update(entity=str(n.entity or ""), key=n.key, cycle_id=n.cycle_id, severity=n.severity.value)
    if finding is not None:
        start = finding.observed_at - timedelta(hours=1)
        end = finding.predicted_failure_at or finding.observed_at + timedelta(minutes=15)
        fields.update(from_ms=str(int(start.timestamp() * 1000)), to_ms=str(int(max(end, finding.observed_at).timestamp() * 1000)))
    else:
        fields.update(from_ms="now-1h", to_ms="now")
    return fields


def render_links(templates: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """Links whose every placeholder has a value (a runbook link without a signal helps no one)."""
    safe = {k: urllib.parse.quote(v, safe="") for k, v in fields.items()}
    out = {}
    for name, template in templates.items():
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        if all(safe.get(f) for f in used):
            out[f"{fmt.LINK_LABEL_PREFIX}{name}__"] = template.format_map(safe)
    return out


def finding_title(f: Finding) -> str:
    if f.confirmed:
        what = "failure observed"
    elif f.lead_time is not None:
        what = f"failure predicted in {fmt.duration(f.lead_time)}"
    else:
        what = f"anomaly, score {f.score:.2f}"
    return f"{f.entity}: {f.signal}, {what}"


def _related(result: ActionResult, finding: Finding) -> bool:
    t, e = result.target, finding.entity
    if getattr(finding, "cause", None) == t:  # root-cause correlation sent the action to the cause
        return True
    return t == e or (t.kind == "node" and e.attr("node") == t.name) or (e.kind == "node" and t.attr("node") == e.name) or (
        t.name == e.name and t.namespace == e.namespace
    )


def build_notifications(
    findings: Sequence[Finding], results: Sequence[ActionResult], *, cycle_id: str, min_severity: Severity,
    degraded: bool = False,
) -> list[Notification]:
    told = [f for f in findings if (f.severity or Severity.INFO).rank >= min_severity.rank]
    told.sort(key=lambda f: (-(f.severity or Severity.INFO).rank, -f.score))
    attached: dict[str, list[ActionResult]] = {f.id: [] for f in told}
    loose: list[ActionResult] = []
    for r in results:
        owner = next((f for f in told if _related(r, f)), None)
        if owner is not None:
            attached[owner.id].append(r)
        elif r.status not in _QUIET:
            loose.append(r)
    note = "partial data this cycle (a stage degraded); nothing is resolved or acted on from it" if degraded else ""
    out: list[Notification] = []
    for f in told:
        labels = {"severity": (f.severity or Severity.INFO).value, "detector": f.detector, "signal": f.signal,
                  **entity_labels(f.entity)}
        rs = tuple(attached[f.id])
        if rs:
            labels["action"] = ",".join(sorted({r.action for r in rs}))
        out.append(Notification(
            key=f.key, severity=f.severity or Severity.INFO, title=finding_title(f), summary=note, entity=f.entity,
            findings=(f,), results=rs, cycle_id=cycle_id, labels=labels,
        ))
    for r in loose:
        sev = _RESULT_SEVERITY.get(r.status, Severity.WARNING)
        if sev.rank < min_severity.rank:
            continue
        labels = {"severity": sev.value, "action": r.action, "status": r.status.value, **entity_labels(r.target)}
        out.append(Notification(
            key=f"action:{r.action}:{r.target.key}:{r.status.value}", severity=sev,
            title=f"{r.target}: {r.action} {r.status.value}", summary=note, entity=r.target,
            results=(r,), cycle_id=cycle_id, labels=labels, kind=NotificationKind.ACTION,
        ))
    return out


def fingerprint(n: Notification) -> str:
    """What makes a notification worth repeating at once: its severity and its action outcomes."""
    parts = [n.severity.value, "resolved" if n.resolved else "firing"]
    parts += sorted(f"{r.action}={r.status.value}" for r in n.results)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Sent:
    route: str
    fingerprint: str
    resolvable: bool
    active: bool
    last_sent_at: float
    notification: str


class _Batch:
    """What one pass through the stages has gathered: envelopes per channel and route (grouped
    behind the route's group_interval), the ledger rows to write, and what was seen."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.envelopes: list[Envelope] = []
        self.ledger_rows: list[tuple[object, ...]] = []
        self.queued: dict[str, Notification] = {}
        self.seen: set[tuple[str, str]] = set()
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


# --- the stage ------------------------------------------------------------------------------
class SharedLedger(Protocol):
    """What the leader delivered, where every replica sees it (``aiops.kube.notified``)."""

    def delivered(self) -> set[tuple[str, str, str]]: ...

    def publish(self, delivered: Iterable[tuple[str, str, str]], now: datetime) -> None: ...


class NotifyStage:
    """``is_leader``: with several replicas only the leader tells people (one message, one rate
    limit per robot). A follower keeps its de-dup ledger in step without sending, so that when it
    takes over it does not repeat what the old leader already told.

    ``shared``: where the leader publishes what it *delivered*. With it, a follower marks a
    notification as told only once the leader delivered it; one the leader queued but never
    delivered (it died with the message in its outbox) stays due, and the next leader sends it."""

    PUBLISHED_KEY = "notify.shared.published_at"

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
        self.outbox = Outbox(store, config.notify.outbox, fallbacks=fallbacks)
        store.ensure_schema(_LEDGER)
        self.outbox.recover(self.notifiers, now or utcnow())
        for name in self.notifiers:
            metrics.OUTBOX_PENDING.labels(channel=name).set(self.outbox.pending(name))
        self.last_reports: dict[str, ChannelReport] = {}

    @classmethod
    def from_config(cls, config: AiopsConfig, store: Store, *, is_leader: Callable[[], bool] | None = None,
                    shared: SharedLedger | None = None) -> NotifyStage:
        return cls(config, store, build_notifiers(config.notify), is_leader=is_leader, shared=shared)

    def _decorate(self, n: Notification, route: RouteConfig) -> Notification:
        """Add the route's context (reserved labels) that channels need: route, mentions, links."""
        labels = dict(n.labels)
        labels[fmt.ROUTE_LABEL] = route.name
        m = route.mentions
        if n.severity.rank >= m.min_severity.rank and not n.resolved:
            if m.mobiles:
                labels[fmt.MENTION_MOBILES_LABEL] = ",".join(m.mobiles)
            if m.user_ids:
                labels[fmt.MENTION_USER_IDS_LABEL] = ",".join(m.user_ids)
            if m.all:
                labels[fmt.MENTION_ALL_LABEL] = "true"
        labels.update(render_links(self.notify_config.links, link_fields(n, n.findings[0] if n.findings else None)))
        return replace(n, labels=labels)

    def _repeat(self, channel: str, route: RouteConfig) -> float:
        own = getattr(self.notifiers.get(channel), "repeat_interval", None)
        interval = route.repeat_interval
        if isinstance(own, timedelta):
            interval = min(interval, own)
        return interval.total_seconds()

    def _ledger(self) -> dict[tuple[str, str], _Sent]:
        rows = self.store.query(
            "SELECT channel, key, route, fingerprint, resolvable, active, last_sent_at, notification FROM notify_ledger"
        )
        return {
            (r["channel"], r["key"]): _Sent(r["route"], r["fingerprint"], bool(r["resolvable"]), bool(r["active"]),
                                            r["last_sent_at"], r["notification"])
            for r in rows
        }

    def notify(
        self,
        findings: Sequence[Finding],
        results: Sequence[ActionResult],
        *,
        cycle_id: str,
        now: datetime,
        degraded: bool,
        extra: Sequence[Notification] = (),
    ) -> list[Notification]:
        """This cycle's notifications through the stages: build → route → dedup → resolve → storm →
        outbox. ``extra`` carries ready-made ones from outside the cycle's findings."""
        current = build_notifications(findings, results, cycle_id=cycle_id,
                                      min_severity=self.config.policy.notify_min_severity, degraded=degraded)
        return self._deliver([*current, *extra], cycle_id=cycle_id, now=now, resolve=not degraded)

    def send_events(self, notifications: Sequence[Notification], *, now: datetime, cycle_id: str = "") -> list[Notification]:
        """Ready-made event messages (the weekly digest) outside a cycle: routed, de-duplicated,
        storm-grouped and queued like the cycle's, but nothing is resolved by their absence."""
        return self._deliver(notifications, cycle_id=cycle_id, now=now, resolve=False)

    def _deliver(
        self, current: Sequence[Notification], *, cycle_id: str, now: datetime, resolve: bool
    ) -> list[Notification]:
        with self._delivering:
            return self._deliver_locked(current, cycle_id=cycle_id, now=now, resolve=resolve)

    def _deliver_locked(
        self, current: Sequence[Notification], *, cycle_id: str, now: datetime, resolve: bool
    ) -> list[Notification]:
        t = now.timestamp()
        leading = self.is_leader is None or self.is_leader()
        batch = _Batch(self.outbox)
        ledger = self._ledger()
        self._route_and_dedup(current, batch, ledger, self._told_by_leader() if not leading else None, t)
        resolved_keys = self._resolve(batch, ledger, cycle_id, now) if resolve else []
        with self.store.transaction() as conn:
            self._record(conn, batch.ledger_rows, resolved_keys, t)
            if not leading:
                return []
            envelopes = self._storm(batch.envelopes, t, cycle_id, batch.queued)
            self.outbox.enqueue_in(conn, envelopes, now)
        self.last_reports = self.outbox.flush(self.notifiers, now)
        self._publish(now)
        return list(batch.queued.values())

    def _route_and_dedup(
        self,
        current: Sequence[Notification],
        batch: _Batch,
        ledger: Mapping[tuple[str, str], _Sent],
        told: set[tuple[str, str, str]] | None,
        t: float,
    ) -> None:
        """Route each notification to its channels; keep what is new, changed or due for a repeat."""
        for n in current:
            # Actions and digests are events, not conditions: they never "resolve".
            resolvable = n.kind.resolvable
            for target in self.router.targets(n):
                batch.seen.add((target.channel, n.key))
                prior = ledger.get((target.channel, n.key))
                fp = fingerprint(n)
                due = (
                    prior is None or not prior.active or prior.fingerprint != fp
                    or t - prior.last_sent_at >= self._repeat(target.channel, target.route)
                )
                if not due:
                    continue
                if told is not None and (target.channel, n.key, n.severity.value) not in told:
                    continue  # not delivered by the leader (yet): it stays due here
                decorated = self._decorate(n, target.route)
                batch.add(target, decorated)
                batch.ledger_rows.append((target.channel, n.key, target.route.name, fp, int(resolvable), 1, t,
                                          notification_to_json(decorated)))

    def _resolve(
        self, batch: _Batch, ledger: Mapping[tuple[str, str], _Sent], cycle_id: str, now: datetime
    ) -> list[tuple[str, str]]:
        """A condition told before and absent now is resolved (on routes that send resolutions)."""
        resolved_keys: list[tuple[str, str]] = []
        for (channel, key), prior in ledger.items():
            if not (prior.active and prior.resolvable) or (channel, key) in batch.seen or channel not in self.notifiers:
                continue
            resolved_keys.append((channel, key))
            route = self.router.route(prior.route)
            if route is not None and not route.send_resolved:
                continue
            last = notification_from_json(prior.notification)
            what = f"{last.findings[0].signal} cleared" if last.findings else "cleared"
            gone = replace(last, id=new_id(), resolved=True, cycle_id=cycle_id, results=(),
                           title=f"{last.entity or last.key}: {what}",
                           summary=f"no longer detected (last notified {fmt.clock(datetime.fromtimestamp(prior.last_sent_at, now.tzinfo))})",
                           labels={k: v for k, v in last.labels.items() if not k.startswith("__mention")})
            if route is None:  # the route was removed from the config: resolve through the first one
                if not self.router.routes:
                    continue
                route = self.router.routes[0]
            batch.add(Target(channel, route), gone, keep_first=True)
        return resolved_keys

    @staticmethod
    def _record(
        conn: sqlite3.Connection, ledger_rows: list[tuple[object, ...]], resolved_keys: list[tuple[str, str]], t: float
    ) -> None:
        """The de-duplication ledger: what was told on which channel, and what is resolved."""
        conn.executemany(
            "INSERT INTO notify_ledger (channel, key, route, fingerprint, resolvable, active, last_sent_at, notification) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(channel, key) DO UPDATE SET route = excluded.route, "
            "fingerprint = excluded.fingerprint, resolvable = excluded.resolvable, active = excluded.active, "
            "last_sent_at = excluded.last_sent_at, notification = excluded.notification",
            ledger_rows,
        )
        conn.executemany("UPDATE notify_ledger SET active = 0 WHERE channel = ? AND key = ?", resolved_keys)
        # Action notifications never resolve; their rows only serve de-duplication, so old ones go.
        conn.execute("DELETE FROM notify_ledger WHERE (active = 0 OR resolvable = 0) AND last_sent_at < ?", (t - 7 * 86400,))

    def _told_by_leader(self) -> set[tuple[str, str, str]] | None:
        """A follower's view of what the leader delivered; None without a shared ledger."""
        if self.shared is None:
            return None
        try:
            return self.shared.delivered()
        except AiopsError as exc:  # unknown: mark nothing, so a new leader rather repeats than loses
            log.warning("cannot read what the leader delivered: %s", exc)
            return set()

    def _publish(self, now: datetime) -> None:
        """The leader records its deliveries since the last publication in the shared ledger."""
        if self.shared is None:
            return
        since = float(self.store.get(self.PUBLISHED_KEY, 0.0) or 0.0)
        # A delivered row keeps no payload: its severity is the one the ledger queued (a resolved
        # key is inactive there and is not published: followers only need what fired).
        rows = self.store.query(
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
            self.shared.publish(entries, now)
        except AiopsError as exc:  # told again next flush; a follower meanwhile keeps them due
            log.warning("cannot record the delivered notifications for the other replicas: %s", exc)
            return
        self.store.put(self.PUBLISHED_KEY, float(rows[-1]["updated_at"]))

    def _storm(
        self, envelopes: list[Envelope], t: float, cycle_id: str, queued: dict[str, Notification]
    ) -> list[Envelope]:
        """Collapse a storm into one message per channel; hold what follows it for the window."""
        cfg = self.config.notify.storm
        window = cfg.window.total_seconds()
        out: list[Envelope] = []
        by_channel: dict[str, list[Envelope]] = {}
        for e in envelopes:
            by_channel.setdefault(e.channel, []).append(e)
        for channel, items in by_channel.items():
            notifier = self.notifiers.get(channel)
            if notifier is None or notifier.groups_itself:
                out += items  # the receiver groups and silences per alert itself
                continue
            key = f"notify.storm.{channel}"
            started = self.store.get(key)
            fresh = [e for e in items if not e.notification.resolved]
            if started is not None and t - float(started) < window:
                hold = float(started) + window
                out += [replace(e, not_before=max(e.not_before, hold)) for e in items]
            elif len(fresh) > cfg.threshold:
                storm = storm_notification([e.notification for e in fresh], cycle_id, cfg.list_first)
                for e in fresh:
                    queued.pop(e.notification.id, None)
                queued[storm.id] = storm
                out += [e for e in items if e.notification.resolved]
                out.append(Envelope(channel, fresh[0].group, storm))
                # Joins the stage's transaction: the storm marker commits with the outbox rows.
                self.store.put(key, t)
                log.warning("notification storm grouped", extra={"channel": channel, "notifications": len(fresh)})
            else:
                out += items
        return out

    def flush(self, now: datetime) -> dict[str, ChannelReport]:
        """Send what is due without new input (between cycles, or at shutdown)."""
        if self.is_leader is not None and not self.is_leader():
            return {}
        self.last_reports = self.outbox.flush(self.notifiers, now)
        self._publish(now)
        return self.last_reports

    def close(self) -> None:
        for n in self.notifiers.values():
            try:
                n.close()
            except Exception:  # closing must not stop the others from closing
                log.warning("closing notifier %s failed", n.name, exc_info=True)


# --- `aiops notify --test` ------------------------------------------------------------------
def storm_notification(items: Sequence[Notification], cycle_id: str, list_first: int) -> Notification:
    """One message for a storm: what is wrong (counts by signal and kind), what was done or refused."""
    from collections import Counter

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
        more = f" and {len(entities) - list_first} more" if len(entities) > list_first else ""
        lines.append("First affected: " + ", ".join(entities[:list_first]) + more)
    lines.append("Full list: `aiops history --cycle " + cycle_id + "`. Further messages are held for the storm window.")
    top = ", ".join(what for what, _ in by_signal.most_common(2))
    return Notification(
        key=f"storm:{cycle_id}",
        severity=severity,
        title=f"STORM: {len(findings)} problems at once ({top})",
        summary="\n".join(lines),
        cycle_id=cycle_id,
        labels={"severity": severity.value, "kind": "storm"},
        kind=NotificationKind.STORM,
    )


def make_test_notification(route: RouteConfig | None = None) -> Notification:
    when = utcnow().strftime("%Y-%m-%d %H:%M:%S UTC")
    labels = {"severity": "info", "test": "true"}
    if route is not None:
        labels[fmt.ROUTE_LABEL] = route.name
    return Notification(
        key=f"test:{new_id()}",
        severity=Severity.INFO,
        title=f"[TEST] aiops notification test{f' (route {route.name})' if route else ''}",
        summary=f"This is a test message sent by `aiops notify --test` at {when}. No action is needed.",
        labels=labels,
        test=True,
        kind=NotificationKind.TEST,
    )


def send_test(notifiers: Mapping[str, Notifier], routes: Sequence[RouteConfig], route_name: str | None = None) -> dict[str, Delivery]:
    """Send one clearly marked test message through each channel (of one route); no outbox, no retries."""
    if route_name is not None:
        route = next((r for r in routes if r.name == route_name), None)
        if route is None:
            known = ", ".join(r.name for r in routes) or "none configured"
            raise KeyError(f"no notify route named {route_name!r} (routes: {known})")
        channels = [c for c in route.channels if c in notifiers]
    else:
        route = None
        channels = list(notifiers)
    out: dict[str, Delivery] = {}
    for name in channels:
        n = make_test_notification(route)
        try:
            out[name] = notifiers[name].send([n])
        except Exception as exc:  # noqa: BLE001 - a plugin bug is reported as that channel's result
            out[name] = Delivery(DeliveryStatus.GIVE_UP, f"notifier raised {type(exc).__name__}")
        result = "delivered" if out[name].status is DeliveryStatus.DELIVERED else "failed"
        metrics.NOTIFICATIONS.labels(channel=name, result=result).inc()
    return out
