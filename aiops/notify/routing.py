"""Routes: which channels hear about a notification, in which group, how often.

Matching is Alertmanager's: routes are tried in order, the first match wins unless it says
``continue``. A channel reached by several matching routes is used once, by the first of them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiops.config.notify import RouteConfig
from aiops.model import Notification, Severity
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
