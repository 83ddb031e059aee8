"""Detector state that must survive a restart, in the state file: one body per (detector, key).

A detector stays pure (no I/O): it hands its state over as bytes (``saved_state``) and takes it
back (``restore_state``); the pipeline stores what it is given here after each cycle and gives
it back at start (:class:`aiops.plugins.KeepsState`). The multivariate detector's per-pool
references: without them a restart would refit on the frame's lookback, and a reference that
short follows every incident (detectors/_mv_reference.py). The headroom forecast's daily bins per
series: without them a restart forecasts nothing for a day (detectors/headroom.py), and
exhaustion's daily maxima likewise. Rows are replaced, never appended, so the table holds one
body per pool or series; a body not saved again for ``state.detector_state_retention`` belongs
to a series or pool that is gone (a rollout renames every pod) and is pruned, so the table does
not grow with the cluster's history.
"""

from __future__ import annotations

from aiops.state import Store
from aiops.state.migrations import migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS detector_state (
    detector TEXT NOT NULL, key TEXT NOT NULL, saved_at REAL NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (detector, key)
);
"""
MIGRATIONS = (SCHEMA,)


class DetectorStateBook:
    """The ``detector_state`` table: bodies by detector (its name in the config) and key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate(store, "detector_state", MIGRATIONS)

    def save(self, detector: str, bodies: dict[str, bytes], at: float) -> None:
        if not bodies:
            return
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO detector_state (detector, key, saved_at, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(detector, key) DO UPDATE SET saved_at = excluded.saved_at, body = excluded.body",
                [(detector, key, at, body) for key, body in bodies.items()],
            )

    def load(self, detector: str) -> dict[str, bytes]:
        rows = self.store.query("SELECT key, body FROM detector_state WHERE detector = ?", (detector,))
        return {str(r["key"]): bytes(r["body"]) for r in rows}

    def prune(self, before: float) -> int:
        """Drop the bodies last saved before the epoch second ``before``; how many went."""
        with self.store.transaction() as conn:
            return int(conn.execute("DELETE FROM detector_state WHERE saved_at < ?", (before,)).rowcount)
