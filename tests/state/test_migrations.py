"""Numbered migrations bring any earlier state file up to date, once, and refuse a newer one."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiops.engine.ladder import PREPARE, LadderState
from aiops.state.books import Books
from aiops.model import Entity
from aiops.state import StateError, Store
from aiops.state.migrations import add_column, migrate, version

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _old_state_file(path: Path) -> None:
    """Tables as releases before migrations wrote them: no basis/shard/rung, no ladder target_entity."""
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE safety_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL,
                action TEXT NOT NULL, target TEXT NOT NULL, dry_run INTEGER NOT NULL, at REAL NOT NULL,
                peer INTEGER NOT NULL DEFAULT 0);
            INSERT INTO safety_actions (decision_id, action, target, dry_run, at) VALUES ('d1', 'restart_pod', 'pod/ml/a', 0, 1);
            CREATE TABLE ladder (rule TEXT NOT NULL, target TEXT NOT NULL, entity TEXT NOT NULL, rung INTEGER NOT NULL,
                cycle_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (rule, target));
        """)
        conn.execute("INSERT INTO ladder VALUES ('gpu', 'node/gpu-7', 'gpu/0', 2, ?, ?)", (NOW.timestamp(), NOW.timestamp()))


def test_a_state_file_from_before_is_brought_up_to_date_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    _old_state_file(path)
    store = Store(path)
    books = Books(store)
    ladder = LadderState(store)
    assert version(store, "safety_books") == 4 and version(store, "ladder") == 2
    assert books.count_actions(datetime.fromtimestamp(0, UTC), False) == 1  # the old row, basis 'confirmed'
    assert [tuple(r) for r in store.query("SELECT basis, rung FROM safety_actions")] == [("confirmed", None)]
    [episode] = ladder.close("gpu/0")
    assert (episode.target, episode.rung) == (Entity("node", "gpu-7"), PREPARE)
    # A new episode keeps its target whole, attributes included: nothing is parsed back.
    target = Entity("pod", "web-1", "ml", attributes=(("node", "gpu-7"),))
    ladder.climb("r", target, "pod/ml/web-1", PREPARE, jump=True, now=NOW)
    [again] = ladder.close("pod/ml/web-1")
    assert again.target == target and again.target.attributes == target.attributes
    Books(store)  # a second start applies nothing twice
    LadderState(store)
    assert (version(store, "safety_books"), version(store, "ladder")) == (4, 2)


def test_a_state_file_from_a_newer_release_is_refused_with_what_to_do(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    migrate(store, "thing", ["CREATE TABLE IF NOT EXISTS thing (a TEXT)", add_column("thing", "b", "TEXT")])
    with pytest.raises(StateError, match="newer than this aiops knows"):
        migrate(store, "thing", ["CREATE TABLE IF NOT EXISTS thing (a TEXT)"])
