"""Numbered schema migrations, per component, recorded in the state file itself.

A component (the books, the ladder) lists its steps in order; ``steps[i]`` takes its tables from
version ``i`` to ``i + 1``. :func:`migrate` applies the steps a state file has not seen yet, each
in its own transaction together with the new version number, so a crash never leaves half a
step. Steps are append-only: a released step is never edited; a change is a new step.

State files from before this module have their tables but no version: the first step of each
component is idempotent DDL (``CREATE ... IF NOT EXISTS``) and :func:`add_column` skips a column
that is already there, so such a file is brought up to date without special cases.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiops.state import Store

Step = str | Callable[[sqlite3.Connection], None]

_VERSIONS = "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"


def add_column(table: str, column: str, ddl: str) -> Step:
    """A step that adds ``column`` (``ddl``: its type and default) unless the table has it."""

    def step(conn: sqlite3.Connection) -> None:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")

    return step


def version(store: Store, component: str) -> int:
    store.ensure_schema(_VERSIONS)
    rows = store.query("SELECT version FROM schema_versions WHERE component = ?", (component,))
    return int(rows[0]["version"]) if rows else 0


def migrate(store: Store, component: str, steps: Sequence[Step]) -> int:
    """Apply the steps ``component`` has not had yet; returns its version afterwards."""
    current = version(store, component)
    if current > len(steps):
        from aiops.state import StateError

        raise StateError(
            f"state database {store.path} has {component} at schema version {current}, newer than this aiops "
            f"knows ({len(steps)}): it was written by a newer release. Run that release, or move the file aside."
        )
    for number, step in enumerate(steps[current:], start=current + 1):
        if isinstance(step, str):
            # DDL scripts commit on their own; the version is recorded right after.
            store.ensure_schema(step)
            with store.transaction() as conn:
                _record(conn, component, number)
            continue
        with store.transaction() as conn:
            step(conn)
            _record(conn, component, number)
    return len(steps)


def _record(conn: sqlite3.Connection, component: str, number: int) -> None:
    conn.execute(
        "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
        "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
        (component, number),
    )
