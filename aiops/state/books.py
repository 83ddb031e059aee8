"""The writer's books: what aiops did, when, and what is still in flight — persisted, so a restart
changes nothing.

Budgets and cooldowns count ``safety_actions`` (actions other replicas took are imported from their
Events, ``peer = 1``, as our own become once another replica held their Lease: :meth:`Books.hand_over`); ``safety_disruptions`` caps pod disruptions per workload (those of other
replicas imported the same way, so the cap holds across shards and failovers); ``safety_inflight``
keeps multi-cycle actions (an evacuation waiting for a PodDisruptionBudget) with the writes known
to be done. Dry-run keeps its own books (the ``dry_run`` column), so rehearsing never eats the real
budget. The schema evolves by numbered migrations (:mod:`aiops.state.migrations`). The guarded
writer (:mod:`aiops.engine.safety`) is the only writer of these tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiops.model import Basis, Decision, Rung, from_epoch
from aiops.state import Store
from aiops.state.codec import decision_from_json, decision_to_json
from aiops.state.migrations import add_column, migrate

if TYPE_CHECKING:
    from aiops.kube.read import LedgerRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS safety_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, dry_run INTEGER NOT NULL, at REAL NOT NULL,
    peer INTEGER NOT NULL DEFAULT 0,  -- 1: taken by another replica (read from its Event)
    basis TEXT NOT NULL DEFAULT 'confirmed',  -- 'predicted': counts in the prediction budgets too
    shard INTEGER  -- with sharding: the shard whose budget share paid for it (aiops/engine/shards.py)
);
CREATE INDEX IF NOT EXISTS safety_actions_at ON safety_actions (dry_run, at);
CREATE INDEX IF NOT EXISTS safety_actions_target ON safety_actions (target, dry_run, at);
CREATE TABLE IF NOT EXISTS safety_disruptions (
    workload TEXT NOT NULL, pod TEXT NOT NULL, dry_run INTEGER NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS safety_disruptions_workload ON safety_disruptions (workload, dry_run, at);
CREATE TABLE IF NOT EXISTS safety_inflight (
    action TEXT NOT NULL, target TEXT NOT NULL, dry_run INTEGER NOT NULL, decision TEXT NOT NULL,
    started_at REAL NOT NULL, updated_at REAL NOT NULL, done TEXT NOT NULL,
    PRIMARY KEY (action, target, dry_run)
);
"""
# Append-only (see aiops.state.migrations): state files from before a column get it added.
MIGRATIONS = (
    SCHEMA,
    add_column("safety_actions", "basis", "TEXT NOT NULL DEFAULT 'confirmed'"),  # prediction budgets
    add_column("safety_actions", "shard", "INTEGER"),  # sharding
    add_column("safety_actions", "rung", "INTEGER"),  # the ladder rung that began it (NULL: none)
)


@dataclass(frozen=True)
class PredictedStart:
    """An action begun on a prediction: when, and on which rung of its ladder (None: no ladder)."""

    at: datetime
    rung: Rung | None


@dataclass(frozen=True)
class InFlight:
    decision: Decision
    started_at: datetime
    done: tuple[str, ...]  # Mutation.describe() of each write known to be applied


class Books:
    """The writer's state in the Store. Times are epoch seconds; rows are tiny."""

    BREAKER_KEY = "safety.breaker"
    EPISODE_KEY = "safety.episode"

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate(store, "safety_books", MIGRATIONS)

    # -- budgets and cooldowns --------------------------------------------------------------
    def count_actions(
        self, since: datetime, dry_run: bool, basis: str | None = None, shard: int | None = None
    ) -> int:
        sql = "SELECT COUNT(*) AS n FROM safety_actions WHERE dry_run = ? AND at > ?"
        params: tuple[object, ...] = (int(dry_run), since.timestamp())
        if basis is not None:
            sql, params = sql + " AND basis = ?", (*params, basis)
        if shard is not None:
            sql, params = sql + " AND shard = ?", (*params, shard)
        return int(self.store.query(sql, params)[0]["n"])

    def oldest_action(
        self, since: datetime, dry_run: bool, basis: str | None = None, shard: int | None = None
    ) -> datetime | None:
        sql = "SELECT MIN(at) AS t FROM safety_actions WHERE dry_run = ? AND at > ?"
        params: tuple[object, ...] = (int(dry_run), since.timestamp())
        if basis is not None:
            sql, params = sql + " AND basis = ?", (*params, basis)
        if shard is not None:
            sql, params = sql + " AND shard = ?", (*params, shard)
        rows = self.store.query(sql, params)
        return from_epoch(rows[0]["t"]) if rows and rows[0]["t"] is not None else None

    def last_action_on(self, target: str, dry_run: bool) -> datetime | None:
        rows = self.store.query(
            "SELECT MAX(at) AS t FROM safety_actions WHERE target = ? AND dry_run = ?", (target, int(dry_run))
        )
        return from_epoch(rows[0]["t"]) if rows and rows[0]["t"] is not None else None

    def predicted_since(self, action: str, target: str, since: datetime, dry_run: bool) -> PredictedStart | None:
        """When (and on which rung) ``action`` was started on ``target`` on a prediction, if that is
        the last action on ``target`` since ``since``, whichever replica began it (its Event
        carries the basis and rung; one from an older replica reads as confirmed)."""
        rows = self.store.query(
            "SELECT action, basis, at, rung FROM safety_actions WHERE target = ? AND dry_run = ? AND at > ? "
            "ORDER BY at DESC LIMIT 1",
            (target, int(dry_run), since.timestamp()),
        )
        if not rows or rows[0]["action"] != action or rows[0]["basis"] != Basis.PREDICTED:
            return None
        rung = rows[0]["rung"]
        return PredictedStart(from_epoch(rows[0]["at"]), Rung(rung) if rung in set(Rung) else None)

    def record_action(
        self,
        decision_id: str,
        action: str,
        target: str,
        dry_run: bool,
        at: datetime,
        basis: str = "confirmed",
        shard: int | None = None,
        rung: Rung | None = None,
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO safety_actions (decision_id, action, target, dry_run, at, basis, shard, rung) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (decision_id, action, target, int(dry_run), at.timestamp(), basis, shard,
                 None if rung is None else int(rung)),
            )

    def import_ledger(self, entries: Sequence[LedgerRecord]) -> int:
        """Count what other replicas did (from their Events): their actions in budgets and
        cooldowns, their pod disruptions in the per-workload cap; each once. Our own come back too
        and are known already: an action by its decision id, a disruption by workload, pod and time
        (the Event carries the time the writer booked)."""
        from aiops.kube.read import LedgerDisruption  # here: importing the state package loads no Kubernetes client

        added = 0
        with self.store.transaction() as conn:
            for e in entries:
                if isinstance(e, LedgerDisruption):
                    known = conn.execute(
                        "SELECT 1 FROM safety_disruptions WHERE workload = ? AND dry_run = 0 AND at = ? AND pod = ?",
                        (e.workload, e.at.timestamp(), e.pod),
                    )
                    if known.fetchone() is None:
                        conn.execute(
                            "INSERT INTO safety_disruptions (workload, pod, dry_run, at) VALUES (?, ?, 0, ?)",
                            (e.workload, e.pod, e.at.timestamp()),
                        )
                        added += 1
                    continue
                known = conn.execute(
                    "SELECT 1 FROM safety_actions WHERE decision_id = ? AND dry_run = 0", (e.decision_id,)
                )
                if known.fetchone() is None:
                    conn.execute(
                        "INSERT INTO safety_actions (decision_id, action, target, dry_run, at, peer, shard, basis, rung) "
                        "VALUES (?, ?, ?, 0, ?, 1, ?, ?, ?)",
                        (e.decision_id, e.action, e.target, e.at.timestamp(), e.shard, e.basis.value,
                         None if e.rung is None else int(e.rung)),
                    )
                    added += 1
        return added

    def admitted(self, decision_id: str) -> bool:
        """Whether that decision was admitted for real (not a dry run), by any replica."""
        return bool(self.store.query(
            "SELECT 1 FROM safety_actions WHERE decision_id = ? AND dry_run = 0 LIMIT 1", (decision_id,)
        ))

    def peer_started(self, action: str, target: str, since: datetime) -> datetime | None:
        """When another replica last started ``action`` on ``target`` (after ``since``), if it did."""
        rows = self.store.query(
            "SELECT MAX(at) AS t FROM safety_actions WHERE peer = 1 AND action = ? AND target = ? AND at > ?",
            (action, target, since.timestamp()),
        )
        return from_epoch(rows[0]["t"]) if rows and rows[0]["t"] is not None else None

    def disruptions(self, workload: str, since: datetime, dry_run: bool) -> int:
        rows = self.store.query(
            "SELECT COUNT(*) AS n FROM safety_disruptions WHERE workload = ? AND dry_run = ? AND at > ?",
            (workload, int(dry_run), since.timestamp()),
        )
        return int(rows[0]["n"])

    def record_disruption(self, workload: str, pod: str, dry_run: bool, at: datetime) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO safety_disruptions (workload, pod, dry_run, at) VALUES (?, ?, ?, ?)",
                (workload, pod, int(dry_run), at.timestamp()),
            )

    def prune(self, now: datetime, keep: timedelta) -> None:
        """Forget actions and disruptions older than any window still counts (keeps the file small)."""
        cutoff = (now - keep).timestamp()
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM safety_actions WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM safety_disruptions WHERE at < ?", (cutoff,))

    # -- latched episodes (budget, breaker): notify once ----------------------------------------
    def episode(self, rail: str) -> bool:
        """True when this rail already reported the ongoing episode."""
        return bool((self.store.get(self.EPISODE_KEY, {}) or {}).get(rail))

    def set_episode(self, rail: str, active: bool) -> None:
        episodes = dict(self.store.get(self.EPISODE_KEY, {}) or {})
        if bool(episodes.get(rail)) != active:
            episodes[rail] = active
            self.store.put(self.EPISODE_KEY, episodes)

    # -- circuit breaker ------------------------------------------------------------------
    def breaker(self) -> dict[str, Any]:
        return dict(self.store.get(self.BREAKER_KEY, {"not_healed": 0, "opened_at": None}) or {})

    def set_breaker(self, state: Mapping[str, Any]) -> None:
        self.store.put(self.BREAKER_KEY, dict(state))

    # -- in-flight actions ----------------------------------------------------------------
    def inflight(self, dry_run: bool) -> list[InFlight]:
        rows = self.store.query(
            "SELECT decision, started_at, done FROM safety_inflight WHERE dry_run = ? ORDER BY started_at",
            (int(dry_run),),
        )
        return [
            InFlight(decision_from_json(r["decision"]), from_epoch(r["started_at"]), tuple(json.loads(r["done"])))
            for r in rows
        ]

    def save_inflight(
        self, decision: Decision, started_at: datetime, done: tuple[str, ...], dry_run: bool, now: datetime
    ) -> None:
        # The decision too: a confirmed failure carries on a predicted evacuation as its own.
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO safety_inflight (action, target, dry_run, decision, started_at, updated_at, done) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(action, target, dry_run) DO UPDATE SET "
                "decision = excluded.decision, updated_at = excluded.updated_at, done = excluded.done",
                (
                    decision.action,
                    decision.target.key,
                    int(dry_run),
                    decision_to_json(decision),
                    started_at.timestamp(),
                    now.timestamp(),
                    json.dumps(list(done)),
                ),
            )

    def hand_over(self, action: str, target: str, dry_run: bool) -> None:
        """Forget an in-flight action whose Lease was held by someone else since: its record goes,
        and our starts of it count as a peer's (:meth:`peer_started`), so this replica, holding the
        Lease again, adopts it from the cluster's state like any new holder."""
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM safety_inflight WHERE action = ? AND target = ? AND dry_run = ?",
                (action, target, int(dry_run)),
            )
            conn.execute(
                "UPDATE safety_actions SET peer = 1 WHERE action = ? AND target = ? AND dry_run = ?",
                (action, target, int(dry_run)),
            )

    def clear_inflight(self, action: str, target: str, dry_run: bool) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM safety_inflight WHERE action = ? AND target = ? AND dry_run = ?",
                (action, target, int(dry_run)),
            )
