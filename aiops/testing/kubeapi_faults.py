"""Fault injection and the request log of the test API server.

Tests script failures ("the next 2 evictions answer 500", "the next lease GET hangs"), latency
("every request takes 80 ms") and assert on what was sent ("no eviction was sent") without a proxy
in between.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Fault:
    """Answer the next ``count`` matching requests with ``status`` (or hang ``hang_seconds``)."""

    count: int
    method: str | None = None  # GET, POST, ... ; None matches any
    path: str = ""  # regular expression searched in the URL path
    status: int = 500
    hang_seconds: float = 0.0  # > 0: hold the request, then drop the connection without answering
    message: str = "injected fault"
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.count > 0 and (self.method is None or self.method == method) and re.search(self.path, path) is not None
        )


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server understood it, with the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    status: int
    body: Any = None
    content_type: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def dry_run(self) -> bool:
        in_body = isinstance(self.body, dict) and (
            "All" in (self.body.get("dryRun") or ())
            or "All" in ((self.body.get("deleteOptions") or {}).get("dryRun") or ())
        )
        return "All" in self.query.get("dryRun", ()) or in_body


class FaultBook:
    """Thread-safe list of pending faults and log of served requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        self._latency: list[tuple[float, str | None, str]] = []  # (seconds, method, path regex)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching the request, consuming one of its count."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None

    def add_latency(self, seconds: float, method: str | None, path: str) -> None:
        with self._lock:
            self._latency.append((seconds, method, path))

    def latency(self, method: str, path: str) -> float:
        """How long to hold a request before serving it: the sum of every matching latency."""
        with self._lock:
            rules = list(self._latency)
        return sum(s for s, m, p in rules if (m is None or m == method) and re.search(p, path) is not None)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
