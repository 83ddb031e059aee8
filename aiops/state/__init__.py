"""Persistent state in one SQLite file (WAL): audit log, cooldowns, budgets, outbox, in-flight actions.

Each component owns its tables and creates them through :meth:`Store.ensure_schema`. Writes are small
transactions under one lock, so the daemon's threads (scheduler, HTTP server) can share the store.
A corrupt or locked file is an error that says what to do; the store never silently starts empty
over a file it could not read. A full disk is :class:`StateFullError` (temporary: freeing space
heals it), and :attr:`Store.full` says so from the failed write until one succeeds again, so
/readyz flips at once and the webhook answers 503 (Alertmanager retries).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiops import metrics
from aiops.errors import PermanentError


class StateError(PermanentError):
    """The state database cannot be used; the message says why and what to do."""


class StateFullError(StateError):
    """The disk (or volume) holding the state database is full: writes fail until space is freed."""

    temporary = True


class Store:
    def __init__(self, path: str | Path, *, timeout: float = 5.0, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction(); guarded by _lock
        # Set by a write that failed for lack of space, cleared by the next write that succeeds.
        self.full: str = ""
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self.page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            if max_bytes is not None:
                # A hard cap: past it a write fails with SQLITE_FULL, as on a full disk.
                self._conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // self.page_size)}")
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StateError(self._explain(exc)) from None
        if check != "ok":
            raise StateError(
                f"state database {self.path} failed its integrity check ({check}). Move it aside to keep it "
                "for inspection and restart: cooldowns, budgets and the outbox will start empty."
            )
        self.journal_mode = mode
        self.ensure_schema(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)"
        )

    def _error(self, exc: sqlite3.DatabaseError) -> StateError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            self.full = (
                f"disk full: the state database {self.path} cannot grow ({exc}). Free space on its volume, give it "
                f"a larger one, or raise state.max_bytes if the database reached it ({self.max_bytes} bytes); "
                "nothing new is recorded until then"
            )
            metrics.STATE_DISK_FULL.set(1)
            return StateFullError(self.full)
        return StateError(self._explain(exc))

    def _written(self) -> None:
        if self.full:
            self.full = ""
            metrics.STATE_DISK_FULL.set(0)

    def _explain(self, exc: sqlite3.DatabaseError) -> str:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return (
                f"state database {self.path} is locked by another process ({text}). Only one daemon may use a "
                "state file: stop the other one, or give each replica its own state.path."
            )
        return (
            f"state database {self.path} cannot be opened ({text}). If the file is corrupt, move it aside to keep "
            "it for inspection and restart: cooldowns, budgets and the outbox will start empty."
        )

    def ensure_schema(self, ddl: str) -> None:
        """Create a component's tables (idempotent DDL: CREATE ... IF NOT EXISTS)."""
        # executescript runs its own transaction (it commits first), so it must not be nested.
        with self._lock:
            try:
                self._conn.executescript(ddl)
            except sqlite3.DatabaseError as exc:
                raise StateError(self._explain(exc)) from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One small transaction: committed on success, rolled back on error.

        Re-entrant: a transaction opened inside another (by the same thread, which holds the lock)
        joins it, so helpers like :meth:`put` can be called from within a larger write.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._error(exc) from None
            self._depth = 1
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise self._error(exc) from None
            except BaseException:
                self._rollback()
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    self._rollback()
                    raise self._error(exc) from None
                self._written()
            finally:
                self._depth = 0

    def _rollback(self) -> None:
        # SQLite has already rolled back by itself after some errors (SQLITE_FULL, IOERR, NOMEM):
        # a second ROLLBACK would fail and hide the real error behind "no transaction is active".
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None

    # Small typed key/value state (watermarks, last-seen markers).
    def get(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def put(self, key: str, value: Any) -> None:
        import time

        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, json.dumps(value), time.time()),
            )

    @property
    def max_bytes(self) -> int:
        return int(self._conn.execute("PRAGMA max_page_count").fetchone()[0]) * self.page_size

    def used_bytes(self) -> int:
        """Bytes of the database file holding data (pages in use, not counting free pages)."""
        with self._lock:
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages - free) * self.page_size

    def close(self) -> None:
        with self._lock:
            self._conn.close()
