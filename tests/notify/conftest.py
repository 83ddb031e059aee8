"""Fixtures for the notify tests: records, a temp Store, and real counterparts on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from aiops.config import AiopsConfig, parse_config
from aiops.model import (
    ActionResult,
    ActionStatus,
    Entity,
    Evidence,
    Finding,
    Notification,
    Plan,
    Severity,
)
from aiops.notify.inbound import AlertInbox
from aiops.notify.webhook import handle_alertmanager
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store
from aiops.testing.alertmanager import AlertmanagerServer

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
WEBHOOK_TOKEN = "webhook-token-for-tests"


def pod(name: str = "llama-0", namespace: str = "ml", node: str = "gpu-node-1") -> Entity:
    return Entity("pod", name, namespace, (("node", node), ("container", "server")))


def finding(
    entity: Entity | None = None,
    *,
    signal: str = "pod_memory_usage_ratio",
    detector: str = "exhaustion",
    score: float = 0.95,
    severity: Severity = Severity.CRITICAL,
    now: datetime = NOW,
    lead: timedelta | None = timedelta(minutes=42),
    confirmed: bool = False,
) -> Finding:
    return Finding(
        detector=detector,
        signal=signal,
        entity=entity or pod(),
        score=score,
        observed_at=now,
        evidence=Evidence("working set rising 2%/10m towards the limit", recent=(0.71, 0.74, float("nan"), 0.83, 0.91),
                          facts={"slope_per_hour": 0.12}),
        predicted_failure_at=now + lead if lead else None,
        failure_interval=(now + lead * 0.8, now + lead * 1.3) if lead else None,
        confirmed=confirmed,
        severity=severity,
    )


def result(entity: Entity | None = None, status: ActionStatus = ActionStatus.DRY_RUN, action: str = "restart_pod") -> ActionResult:
    target = entity or pod()
    plan = Plan(action, target, (), f"delete pod {target}", command=f"kubectl -n {target.namespace} delete pod {target.name}")
    return ActionResult("dec-1", action, target, status, "would delete the pod (dry-run)", plan=plan, at=NOW)


class Recorder(Notifier):
    """A channel that keeps what it is given (for routing and de-dup logic, not transport)."""

    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[Notification]] = []

    def send(self, batch: Sequence[Notification]) -> Delivery:
        self.batches.append(list(batch))
        return Delivery(DeliveryStatus.DELIVERED)

    @property
    def sent(self) -> list[Notification]:
        return [n for b in self.batches for n in b]


def config(notify: dict[str, Any] | None = None, **sections: Any) -> AiopsConfig:
    return parse_config({"notify": notify or {}, **sections})


def at_once(*channels: str, **route: Any) -> list[dict[str, Any]]:
    """One route to ``channels`` that clears a condition at the first cycle without it
    (``resolve_after: 0s``), for tests of what a "cleared" does rather than when it comes."""
    return [{"name": "all", "channels": list(channels), "resolve_after": "0s", **route}]


@pytest.fixture(autouse=True)
def fresh_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets are per process and keyed by URL; a reused loopback port must not inherit one."""
    from aiops.notify import ratelimit

    monkeypatch.setattr(ratelimit, "_BUCKETS", {})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.sqlite")
    yield s
    s.close()


class AuthAlertmanager(AlertmanagerServer):
    """The shared launcher, with the webhook receiver presenting a bearer token as users configure it."""

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        for receiver in cfg["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": WEBHOOK_TOKEN}}
        return cfg


class WebhookServer:
    """A loopback HTTP server whose POST /api/v1/alertmanager runs the real handler, as aiops.server does."""

    def __init__(self, inbox: AlertInbox, token: str | None = WEBHOOK_TOKEN, max_bytes: int = 1_048_576) -> None:
        self.inbox = inbox
        self.calls: list[tuple[int, dict[str, Any]]] = []
        # Labels of every alert Alertmanager delivered, to see what reached the handler.
        self.delivered_labels: list[dict[str, str]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                status, payload = handle_alertmanager(
                    body, dict(self.headers.items()), outer.inbox, SecretStr(token) if token else None, max_bytes
                )
                outer.calls.append((status, payload))
                try:
                    outer.delivered_labels += [a["labels"] for a in json.loads(body).get("alerts", [])]
                except (ValueError, AttributeError, KeyError, TypeError):
                    pass
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                outer.arrived.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/alertmanager"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
