"""Route: which channels hear about a notification, in which group, how often, and the route's
context a channel shows with it (mentions, links).

Matching is Alertmanager's: routes are tried in order, the first match wins unless it says
``continue``. A channel reached by several matching routes is used once, by the first of them.
"""

from __future__ import annotations

import fnmatch
import string
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from aiops.config.notify import RouteConfig
from aiops.model import Finding, Notification, Severity
from aiops.notify import formatting as fmt
from aiops.notify.formatting import public_labels

DEFAULT_ROUTE = "default"


@dataclass(frozen=True)
class Target:
    channel: str
    route: RouteConfig


def default_route(channels: Sequence[str], min_severity: Severity) -> RouteConfig:
    return RouteConfig(name=DEFAULT_ROUTE, channels=list(channels), min_severity=min_severity)


def labels_match(patterns: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    # A missing label is "", as in Alertmanager, so "*" matches it and "?*" requires it.
    return all(fnmatch.fnmatchcase(labels.get(k, ""), p) for k, p in patterns.items())


class Router:
    def __init__(self, routes: Sequence[RouteConfig], channels: Sequence[str], min_severity: Severity) -> None:
        self.routes = list(routes) or ([default_route(channels, min_severity)] if channels else [])
        self.channels = set(channels)

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def targets(self, n: Notification) -> list[Target]:
        labels = public_labels(n.labels)
        out: list[Target] = []
        seen: set[str] = set()
        for route in self.routes:
            if n.severity.rank < route.min_severity.rank and not n.resolved:
                continue
            if not labels_match(route.match, labels):
                continue
            for channel in route.channels:
                if channel in self.channels and channel not in seen:
                    seen.add(channel)
                    out.append(Target(channel, route))
            if not route.continue_:
                break
        return out


def decorate(n: Notification, route: RouteConfig, links: Mapping[str, str]) -> Notification:
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
    labels.update(render_links(links, link_fields(n, n.findings[0] if n.findings else None)))
    return replace(n, labels=labels)


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
