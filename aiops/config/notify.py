"""The ``notify`` section: channels (plugins), routes (who hears what), links, and the outbox.

A route matches notifications by severity and labels and sends them to channels, one digest per
route and window. The first matching route wins unless it says ``continue: true`` (as in
Alertmanager). Without routes, everything at or above ``policy.notify_min_severity`` goes to every
channel. Example::

    notify:
      channels:
        ml-robot:
          plugin: dingtalk
          params:
            access_token: {env: DINGTALK_TOKEN}
            secret: {env: DINGTALK_SECRET}        # the robot's 加签 secret (SEC...)
            keyword: aiops                        # if the robot uses keyword mode
          fallback: oncall-mail                   # when DingTalk refuses or throttles
        oncall-mail:
          plugin: email
          params:
            host: smtp.example.com
            security: ssl                         # or starttls (refused if not offered)
            username: aiops@example.com
            password: {file: /var/run/secrets/smtp/password}
            from: aiops@example.com
            to: [oncall@example.com]
        alertmanager:
          plugin: alertmanager
          params: {url: "http://alertmanager.monitoring:9093"}
      routes:
        - name: ml-critical
          match: {namespace: "ml-*"}
          min_severity: critical
          channels: [ml-robot, alertmanager]
          mentions: {mobiles: ["13800000000"]}
          continue: true
        - name: everything
          channels: [oncall-mail, alertmanager]
          repeat_interval: 4h
          resolve_after: 5m                       # "cleared" once absent 5 min; back sooner: the same episode
      links:
        grafana: "https://grafana.example.com/d/aiops-pods?var-namespace={namespace}&var-pod={pod}&from={from_ms}&to={to_ms}"
        runbook: "https://runbooks.example.com/aiops/{signal}"
"""

from __future__ import annotations

import string
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

from pydantic import Field, field_validator, model_validator

from aiops.config.base import Duration, StrictModel
from aiops.model import EntityKind, NotificationKind, Severity

# Placeholders a link template may use; each is URL-encoded when the link is built.
LINK_FIELDS = frozenset(
    {"severity", "detector", "signal", "kind", "name", "namespace", "pod", "node", "gpu", "model", "entity", "key",
     "cycle_id", "from_ms", "to_ms"}
)


class ChannelConfig(StrictModel):
    """One channel: a notifier plugin (``console``, ``dingtalk``, ``email``, ``alertmanager``) and its params.

    Secrets inside params use the same ``{env: NAME}`` / ``{file: PATH}`` references as elsewhere;
    each plugin validates its own params when the daemon starts.
    """

    plugin: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    # Another channel that takes over what this one could not deliver: a permanent error, a spent
    # retry budget, or anything still undelivered ``fallback_after`` after it was due (a throttled
    # DingTalk robot holds messages for 10 minutes; a critical alert should not wait that long).
    # A message held on purpose (group_interval, the storm window) is due when its hold ends.
    fallback: str | None = None
    fallback_after: Duration = timedelta(minutes=2)


class Mentions(StrictModel):
    """Who a DingTalk digest @mentions. Mobiles are also written into the text, as DingTalk requires."""

    mobiles: list[str] = Field(default_factory=list)
    user_ids: list[str] = Field(default_factory=list)
    all: bool = False
    # Mention only for notifications at or above this severity (no @ for a warning at 3 am).
    min_severity: Severity = Severity.CRITICAL


class RouteConfig(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    channels: list[str] = Field(min_length=1)
    min_severity: Severity = Severity.WARNING
    # Label -> fnmatch pattern; every pair must match (labels: severity, detector, signal, kind,
    # namespace, pod, node, ... and "action" for action notifications).
    match: dict[str, str] = Field(default_factory=dict)
    # Same notification (same key, same state) is not re-sent within this interval.
    repeat_interval: Duration = timedelta(hours=4)
    # At most one digest per channel within this window; later notifications wait for the next one.
    group_interval: Duration = timedelta(seconds=0)
    send_resolved: bool = True
    # A condition is cleared only once it has been absent this long (Prometheus's keep_firing_for):
    # a score hovering at its threshold, found one minute and not the next, is one episode told
    # once, not a page each time it returns. Its "cleared" comes this much later. 0s: at once.
    # The same for a dip below the severity told (a critical forecast that reads a warning for a
    # cycle): told only once it has lasted this long.
    # Alertmanager hears a held condition again on its refresh, so its alert ends with the "cleared".
    resolve_after: Duration = timedelta(minutes=5)
    mentions: Mentions = Mentions()
    # Keep matching later routes after this one.
    continue_: bool = Field(default=False, alias="continue")

    @field_validator("match")
    @classmethod
    def _known_kind(cls, v: dict[str, str]) -> dict[str, str]:
        # The kind label is the entity's kind, or "storm" on a storm summary: a pattern matching
        # none of them ("pods") would silently route nothing.
        kinds = [*EntityKind, NotificationKind.STORM.value]
        pattern = v.get("kind")
        if pattern is not None and not any(fnmatchcase(k, pattern) for k in kinds):
            raise ValueError(f"kind {pattern!r} matches no kind a notification carries; use one of: {', '.join(kinds)}")
        return v


class OutboxConfig(StrictModel):
    """Retries of the persistent outbox. After ``max_attempts`` or ``max_age`` an item is failed."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_initial: Duration = timedelta(seconds=30)
    backoff_max: Duration = timedelta(minutes=30)
    max_age: Duration = timedelta(hours=24)
    # Notifications per digest message; the rest go in the next message.
    max_batch: int = Field(default=10, ge=1, le=100)
    # Settled rows are pruned after these times. The audit log keeps every notification, and
    # Alertmanager re-posts make one delivered row per active finding a minute, so delivered rows go
    # soon; failed ones stay for inspection (and keep their payload).
    keep_delivered: Duration = timedelta(minutes=15)
    keep_failed: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _ordered(self) -> OutboxConfig:
        if self.backoff_initial > self.backoff_max:
            raise ValueError("backoff_initial must not exceed backoff_max")
        return self


class StormConfig(StrictModel):
    """A storm (many problems at once) is told as one grouped message per channel, not one per finding.

    When more than ``threshold`` notifications are due for a channel in one cycle they are replaced
    by one storm summary (counts by signal and by what was done or refused, the first entities).
    For ``window`` after that, further notifications for the channel are held back and go out as
    ordinary digests when it ends: nothing is dropped, on-call is not flooded. The Alertmanager
    channel is exempt: it needs one alert per finding for its own routing and silences.
    """

    threshold: int = Field(default=20, ge=2)
    window: Duration = timedelta(minutes=15)
    list_first: int = Field(default=10, ge=0, le=50)


class NotifyConfig(StrictModel):
    storm: StormConfig = StormConfig()
    channels: dict[str, ChannelConfig] = Field(default_factory=lambda: {"console": ChannelConfig(plugin="console")})
    routes: list[RouteConfig] = Field(default_factory=list)
    # Link name -> URL template with {placeholders} (see LINK_FIELDS), shown in every message:
    #   grafana: "https://grafana.example/d/aiops?var-namespace={namespace}&var-pod={pod}&from={from_ms}&to={to_ms}"
    #   runbook: "https://runbooks.example/{signal}"
    links: dict[str, str] = Field(default_factory=dict)
    outbox: OutboxConfig = OutboxConfig()

    @field_validator("links")
    @classmethod
    def _templates(cls, links: dict[str, str]) -> dict[str, str]:
        for name, template in links.items():
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            except ValueError as exc:
                raise ValueError(f"link {name!r} is not a valid template: {exc}") from None
            unknown = sorted(fields - LINK_FIELDS)
            if unknown:
                raise ValueError(
                    f"link {name!r} uses unknown placeholders {unknown}; available: {', '.join(sorted(LINK_FIELDS))}"
                )
        return links

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"notify route names must be unique, repeated: {', '.join(dupes)}")
        for name, ch in self.channels.items():
            if ch.fallback is not None and (ch.fallback == name or ch.fallback not in self.channels):
                raise ValueError(f"channel {name!r} falls back to {ch.fallback!r}, which must be another channel under notify.channels")
        for route in self.routes:
            unknown = [c for c in route.channels if c not in self.channels]
            if unknown:
                raise ValueError(
                    f"route {route.name!r} sends to undefined channels {unknown}; define them under notify.channels"
                )
        return self
