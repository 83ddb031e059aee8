"""Kubernetes API errors sorted into temporary (retry later) and permanent (give up, say why)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from aiops.errors import AiopsError

# 409 on an optimistic-concurrency write means "someone else wrote first": read again and retry.
TEMPORARY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class KubeApiError(AiopsError):
    """A failed Kubernetes API call. ``temporary`` says whether a later retry may succeed."""

    operation: str
    status: int | None
    reason: str
    message: str
    temporary: bool

    def __post_init__(self) -> None:
        # Derived from the kind and the status; the record is never changed after it is made.
        self.hint = "will retry later" if self.temporary else _permanent_hint(self.status)

    def __str__(self) -> str:
        code = f"HTTP {self.status} {self.reason}" if self.status else self.reason
        return f"{self.operation}: {code}: {self.message} ({self.hint})"


def _permanent_hint(status: int | None) -> str:
    if status == 403:
        return "the service account lacks this permission: apply deploy/rbac/clusterrole.yaml"
    if status == 401:
        return "the credentials were refused: check the service account token or kubeconfig"
    if status == 404:
        return "the object does not exist"
    return "not retried: fix the request or the object"


def _status_message(body: str | None) -> tuple[str, str]:
    """(reason, message) from a metav1.Status body, falling back to the raw text."""
    if not body:
        return "", ""
    try:
        data = json.loads(body)
    except ValueError:
        return "", body[:300]
    if isinstance(data, dict):
        return str(data.get("reason", "")), str(data.get("message", ""))[:300]
    return "", body[:300]


def classify(exc: BaseException, operation: str) -> KubeApiError:
    """Turn what the client raised into a :class:`KubeApiError`; unknown errors are re-raised."""
    if isinstance(exc, KubeApiError):
        return exc
    if isinstance(exc, ApiException):
        reason, message = _status_message(exc.body)
        status = int(exc.status) if exc.status else None
        return KubeApiError(
            operation,
            status,
            reason or str(exc.reason or "Error"),
            message or str(exc.reason or ""),
            temporary=status in TEMPORARY_STATUSES if status else True,
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | socket.timeout | TimeoutError | ConnectionError):
        return KubeApiError(operation, None, type(exc).__name__, str(exc)[:300], temporary=True)
    raise exc


def is_not_found(exc: KubeApiError) -> bool:
    return exc.status == 404
