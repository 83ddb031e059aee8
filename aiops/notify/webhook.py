"""The Alertmanager webhook endpoint's logic, independent of the HTTP server that serves it.

``handle_alertmanager`` returns (HTTP status, JSON body). Every check happens before anything is
stored, so a rejected request changes nothing: 404 when no token is configured (the endpoint is
off), 401 without a bearer token, 403 with a wrong one, 413 over the size limit, 400 for malformed
JSON or a payload that is not version 4, 503 when the store cannot take it (Alertmanager retries;
a full disk says so). ``authorize`` is the part that needs only the headers: the server runs it
before reading any body byte.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError

from aiops.notify.inbound import AlertInbox, WebhookPayload
from aiops.state import StateError, StateFullError

log = logging.getLogger(__name__)


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def authorize(headers: Mapping[str, str], token: SecretStr | None) -> tuple[int, dict[str, Any]] | None:
    """The refusal a request gets from its headers alone, or ``None`` when it may send its body."""
    if token is None or not token.get_secret_value():
        return 404, {"error": "the Alertmanager webhook is disabled; set server.webhook_token to enable it"}
    auth = _header(headers, "Authorization")
    scheme, _, presented = auth.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return 401, {"error": "missing bearer token; set http_config.authorization.credentials in the Alertmanager receiver"}
    if not hmac.compare_digest(presented.strip().encode(), token.get_secret_value().encode()):
        log.warning("alertmanager webhook: rejected a request with a wrong bearer token")
        return 403, {"error": "wrong bearer token"}
    return None


def handle_alertmanager(
    body: bytes, headers: Mapping[str, str], inbox: AlertInbox, token: SecretStr | None, max_bytes: int
) -> tuple[int, dict[str, Any]]:
    refusal = authorize(headers, token)
    if refusal is not None:
        return refusal
    declared = _header(headers, "Content-Length")
    if len(body) > max_bytes or (declared.isdigit() and int(declared) > max_bytes):
        return 413, {"error": f"payload larger than {max_bytes} bytes; lower max_alerts in the Alertmanager receiver"}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return 400, {"error": f"body is not valid JSON: {exc}"}
    if not isinstance(data, dict):
        return 400, {"error": "body must be a JSON object (an Alertmanager webhook payload)"}
    if data.get("version") != "4":
        return 400, {"error": f"unsupported payload version {data.get('version')!r}; expected \"4\" (Alertmanager >= 0.16)"}
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        return 400, {"error": f"not an Alertmanager webhook payload: {_problems(exc)}"}
    try:
        kept = inbox.add(payload.alerts)
    except StateError as exc:
        log.error("alertmanager webhook: cannot store %d alert(s): %s", len(payload.alerts), exc)
        why = "the daemon's state disk is full" if isinstance(exc, StateFullError) else "cannot store the alerts right now"
        return 503, {"error": f"{why}; Alertmanager will retry"}
    return 200, {"status": "ok", "received": len(payload.alerts), "stored": kept}


@dataclass(frozen=True)
class AlertmanagerWebhook:
    """The daemon's HTTP server calls ``authorize(headers)`` before reading the body, then
    ``self(body, headers)`` (``aiops.server.WebhookHandler``)."""

    inbox: AlertInbox
    token: SecretStr | None
    max_bytes: int

    def authorize(self, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]] | None:
        return authorize(headers, self.token)

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        return handle_alertmanager(body, headers, self.inbox, self.token, self.max_bytes)


def make_handler(inbox: AlertInbox, token: SecretStr | None, max_bytes: int) -> AlertmanagerWebhook:
    return AlertmanagerWebhook(inbox, token, max_bytes)
