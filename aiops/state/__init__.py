"""Persistent state in one SQLite file (WAL): audit log, cooldowns, budgets, outbox, in-flight actions.

Each component owns its tables and creates them through :meth:`Store.ensure_schema`. Writes are small
transactions under one lock, so the daemon's threads (scheduler, HTTP server) can share the store.
A corrupt or locked file is an error that says what to do; the store never silently starts empty
over a file it could not read. A full disk is :class:`StateFullError` (temporary: freeing space
heals it), and :attr:`Store.full` says so from the failed write until one succeeds again, so
/readyz flips at once and the webhook answers 503 (Alertmanager retries).

Only real damage (SQLITE_CORRUPT, NOTADB, a failed quick_check) is answered with "move it aside",
which throws away cooldowns, budgets and the breaker: a full volume, a read-only one, missing
permissions or an I/O error leave a healthy file, and their errors say so and name the volume.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
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


# SQLite's primary result codes (the low byte of an extended code such as SQLITE_IOERR_SHMSIZE).
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_NOT_WRITABLE = {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH}
_LOCKED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# What a reader gets where the -shm of a WAL file cannot be created (read-only) or grown (full).
_NO_SHM = {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR}
# With less free space than this, SQLite's "disk I/O error" is a full volume: growing the -shm or
# the -wal fails as an I/O error (SQLITE_IOERR_SHMSIZE on a full tmpfs), not as SQLITE_FULL.
_LOW_SPACE = 2**20


def _primary(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


class Store:
    def __init__(
        self, path: str | Path, *, timeout: float = 5.0, max_bytes: int | None = None, read_only: bool = False
    ) -> None:
        """Open (creating it and its folder if need be) the state database at ``path``.

        ``read_only`` (``aiops history``): never write; a file on a read-only volume is still read
        (opened immutable there, since SQLite cannot create the -shm of a WAL file next to it).
        """
        self.path = Path(path)
        self.read_only = read_only
        self.immutable = False  # read_only, and read as the file is on disk (see _connect)
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction(); guarded by _lock
        # Set by a write that failed for lack of space, cleared by the next write that succeeds.
        self.full: str = ""
        try:
            if str(path) != ":memory:" and not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._folder_error(exc) from None
        try:
            self._conn = self._connect(timeout)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if read_only:
                mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            else:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                self._conn.execute("PRAGMA synchronous = NORMAL")
            self.page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            if max_bytes is not None and not read_only:
                # A hard cap: past it a write fails with SQLITE_FULL, as on a full disk.
                self._conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // self.page_size)}")
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from None
        if check != "ok":
            raise StateError(
                f"state database {self.path} failed its integrity check ({check}). Move it aside to keep it "
                "for inspection and restart: cooldowns, budgets and the outbox will start empty."
            )
        self.journal_mode = mode
        if not read_only:
            self.ensure_schema(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)"
            )

    def _connect(self, timeout: float) -> sqlite3.Connection:
        def connect(database: str, uri: bool = False) -> sqlite3.Connection:
            return sqlite3.connect(database, timeout=timeout, check_same_thread=False, isolation_level=None, uri=uri)

        if not self.read_only or str(self.path) == ":memory:":
            return connect(str(self.path))
        uri = self.path.resolve().as_uri()
        conn = None
        try:
            conn = connect(f"{uri}?mode=ro", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # SQLite opens the file lazily
            return conn
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            if _primary(exc) not in _NO_SHM or not self.path.is_file():
                raise
        # A read-only or full volume, where SQLite cannot create or grow the -shm of a WAL file:
        # immutable reads the file as it is on disk, without what its -wal still holds.
        self.immutable = True
        return connect(f"{uri}?immutable=1", uri=True)

    def _error(self, exc: sqlite3.DatabaseError) -> StateError:
        if self._is_full(exc):
            self.full = (
                f"disk full: the state database {self.path} cannot grow ({exc}). Free space on its volume, give it "
                f"a larger one, or raise state.max_bytes if the database reached it ({self.max_bytes} bytes); "
                "nothing new is recorded until then"
            )
            metrics.STATE_DISK_FULL.set(1)
            return StateFullError(self.full)
        return self._explain(exc)

    def _written(self) -> None:
        if self.full:
            self.full = ""
            metrics.STATE_DISK_FULL.set(0)

    def _free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self._existing_folder()).free
        except OSError:
            return None

    def _existing_folder(self) -> Path:
        folder = self.path.absolute().parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return folder

    def _is_full(self, exc: sqlite3.Error) -> bool:
        primary = _primary(exc)
        if primary == sqlite3.SQLITE_FULL:
            return True
        free = self._free_bytes() if primary == sqlite3.SQLITE_IOERR else None
        return free is not None and free < _LOW_SPACE

    def _read_only_volume(self) -> bool:
        try:
            return bool(os.statvfs(self._existing_folder()).f_flag & os.ST_RDONLY)
        except OSError:
            return False

    def _not_writable(self, cause: str) -> StateError:
        folder = self._existing_folder()
        if self._read_only_volume():
            where = (f"{folder} is on a read-only volume. Mount it read-write (a Pod's volumeMount without "
                     "readOnly, a writable PersistentVolume or emptyDir), or point state.path at one")
        else:
            where = (f"check the permissions: the daemon's user must be able to write {self.path} and create files "
                     f"in {folder} (SQLite keeps its -wal and -shm next to the database), e.g. the Pod's fsGroup")
        kept = (" The file itself is intact: leave it where it is (cooldowns, budgets and the breaker are in "
                "it).") if self.path.is_file() else ""
        writing = "" if self.read_only else " for writing"
        return StateError(f"state database {self.path} cannot be opened{writing} ({cause}): {where}.{kept}")

    def _folder_error(self, exc: OSError) -> StateError:
        cause = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):
            return StateError(f"cannot create the folder of state database {self.path} ({cause}): a file is in "
                              "the way; point state.path at a folder of its own")
        if exc.errno == errno.ENOSPC:
            return StateFullError(f"disk full: cannot create the folder of state database {self.path} ({cause}). "
                                  "Free space on its volume or give it a larger one")
        return self._not_writable(f"cannot create its folder {self.path.parent}: {cause}")

    def _explain(self, exc: sqlite3.DatabaseError) -> StateError:
        """The error for ``exc`` from opening or using the database, saying what to do about it."""
        text, primary = str(exc), _primary(exc)
        if primary in _LOCKED or (primary is None and ("locked" in text or "busy" in text)):
            return StateError(
                f"state database {self.path} is locked by another process ({text}). Only one daemon may use a "
                "state file: stop the other one, or give each replica its own state.path."
            )
        if self._is_full(exc):
            free = self._free_bytes()
            return StateFullError(
                f"disk full: the volume of state database {self.path} has no space left ({text}; "
                f"{'unknown' if free is None else free} bytes free). Free space on it or give it a larger one, "
                "then start again. The file itself is intact: leave it where it is."
            )
        if primary in _NOT_WRITABLE:
            if self.read_only and primary == sqlite3.SQLITE_READONLY:
                return StateError(
                    f"state database {self.path} cannot be read as it is ({text}): its tables are missing or "
                    "from another release, and reading it read-only cannot bring them up to date. Use the release "
                    "that wrote it, or read it where the daemon runs."
                )
            if self.path.is_dir():
                return StateError(f"state database {self.path} is a directory: point state.path at a file")
            return self._not_writable(text)
        if primary == sqlite3.SQLITE_IOERR:
            return StateError(
                f"state database {self.path} cannot be read or written: its volume returned an I/O error ({text}). "
                "Check the volume (the node's kernel log, the disk's health, a network volume's mount); the file "
                "is not known to be damaged, so keep it: `sqlite3 FILE 'PRAGMA quick_check'` on a copy tells."
            )
        if primary in _CORRUPT:
            return StateError(
                f"state database {self.path} is corrupt ({text}): move it aside to keep it for inspection and "
                "restart: cooldowns, budgets and the outbox will start empty."
            )
        return StateError(
            f"state database {self.path} cannot be opened ({text}). If `sqlite3 FILE 'PRAGMA quick_check'` says "
            "it is corrupt, move it aside to keep it for inspection and restart: cooldowns, budgets and the "
            "outbox will start empty."
        )

    def ensure_schema(self, ddl: str) -> None:
        """Create a component's tables (idempotent DDL: CREATE ... IF NOT EXISTS)."""
        # executescript runs its own transaction (it commits first), so it must not be nested.
        with self._lock:
            try:
                self._conn.executescript(ddl)
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None

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
