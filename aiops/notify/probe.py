"""``aiops notify --test``: one clearly marked test message through each channel (of one route),
sent directly, with no outbox and no retries, so the operator sees at once what each channel does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiops import metrics
from aiops.config.notify import RouteConfig
from aiops.errors import PermanentError
from aiops.model import Notification, NotificationKind, Severity, new_id, utcnow
from aiops.notify import formatting as fmt
from aiops.plugins import Delivery, DeliveryStatus, Notifier


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


class UnknownRoute(PermanentError):
    """``--route`` names no route of the config."""

    hint = "pass one of the route names under notify.routes, or leave out --route to test every channel"


def send_test(notifiers: Mapping[str, Notifier], routes: Sequence[RouteConfig], route_name: str | None = None) -> dict[str, Delivery]:
    """Send one clearly marked test message through each channel (of one route); no outbox, no retries."""
    if route_name is not None:
        route = next((r for r in routes if r.name == route_name), None)
        if route is None:
            known = ", ".join(r.name for r in routes) or "none configured"
            raise UnknownRoute(f"no notify route named {route_name!r} (routes: {known})")
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
