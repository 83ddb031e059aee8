"""Persistent rungs of the notify -> prepare -> act ladder, one entry per (rule, target).

The rung only climbs while an episode is open (one rung per cycle, or straight to the top on a
confirmed failure); it is reset when the prediction behind it closes. Kept in the Store so a
restart neither forgets a prepared node nor climbs twice in one cycle.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiops.model import Entity, EntityKind, Rung
from aiops.state import Store
from aiops.state.codec import entity_from_dict, entity_to_dict
from aiops.state.migrations import add_column, migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS ladder (
    rule TEXT NOT NULL, target TEXT NOT NULL, entity TEXT NOT NULL, rung INTEGER NOT NULL,
    cycle_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (rule, target)
);
"""

# Append-only (see aiops.state.migrations). target_entity: the target itself, so a rollback
# needs no key parsed back into an Entity ('' in rows from before it).
MIGRATIONS = (SCHEMA, add_column("ladder", "target_entity", "TEXT NOT NULL DEFAULT ''"))

NOTIFY, PREPARE, ACT = Rung.NOTIFY, Rung.PREPARE, Rung.ACT


@dataclass(frozen=True)
class Step:
    rung: Rung
    previous: int  # 0 before the first rung


@dataclass(frozen=True)
class Episode:
    rule: str
    target: Entity
    entity: str
    rung: int


class LadderState:
    def __init__(self, store: Store, *, forget_after: timedelta = timedelta(days=1)) -> None:
        self.store = store
        self.forget_after = forget_after
        migrate(store, "ladder", MIGRATIONS)

    def climb(self, rule: str, target: Entity, entity: str, wanted: int, *, jump: bool, now: datetime) -> Step:
        """Move towards ``wanted``: at most one rung per cycle unless ``jump``; never down."""
        now_s = now.timestamp()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT rung, cycle_at FROM ladder WHERE rule = ? AND target = ?", (rule, target.key)
            ).fetchone()
            current = int(row["rung"]) if row else 0
            if row is not None and row["cycle_at"] == now_s:
                return Step(Rung(current), current)  # already climbed this cycle (a second finding, same target)
            rung = wanted if jump else min(wanted, current + 1)
            rung = max(rung, current, NOTIFY)
            conn.execute(
                "INSERT INTO ladder (rule, target, entity, rung, cycle_at, updated_at, target_entity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(rule, target) DO UPDATE SET rung = excluded.rung, entity = excluded.entity, "
                "cycle_at = excluded.cycle_at, updated_at = excluded.updated_at, target_entity = excluded.target_entity",
                (rule, target.key, entity, rung, now_s, now_s, json.dumps(entity_to_dict(target))),
            )
            conn.execute("DELETE FROM ladder WHERE updated_at < ?", (now_s - self.forget_after.total_seconds(),))
        return Step(Rung(rung), current)

    def close(self, entity: str) -> list[Episode]:
        """End every episode about ``entity`` (its prediction closed); returns what they had reached."""
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT * FROM ladder WHERE entity = ?", (entity,)).fetchall()
            conn.execute("DELETE FROM ladder WHERE entity = ?", (entity,))
        return [Episode(r["rule"], _target(r), r["entity"], int(r["rung"])) for r in rows]


def _target(row: sqlite3.Row) -> Entity:
    if row["target_entity"]:
        return entity_from_dict(json.loads(row["target_entity"]))
    # A row from before target_entity (kept at most ``forget_after``): its key is all there is.
    kind, _, rest = row["target"].partition("/")
    namespace, _, name = rest.rpartition("/")
    return Entity(kind=EntityKind.parse(kind), name=name, namespace=namespace)
