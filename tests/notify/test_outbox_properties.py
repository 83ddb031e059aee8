"""Outbox invariants under any sequence of channel answers: nothing lost, nothing delivered twice."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops.config import parse_config
from aiops.model import Notification
from aiops.notify.outbox import DELIVERED, FAILED, PENDING, SUPERSEDED
from aiops.notify.stage import NotifyStage
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store

from .conftest import NOW, finding, pod

ANSWERS = st.sampled_from([DeliveryStatus.DELIVERED, DeliveryStatus.RETRY, DeliveryStatus.GIVE_UP])


class Scripted(Notifier):
    name = "scripted"

    def __init__(self, answers: Sequence[DeliveryStatus]) -> None:
        self.answers = list(answers)
        self.delivered: list[str] = []

    def send(self, batch: Sequence[Notification]) -> Delivery:
        status = self.answers.pop(0) if self.answers else DeliveryStatus.DELIVERED
        if status is DeliveryStatus.DELIVERED:
            self.delivered += [n.id for n in batch]
        return Delivery(status, "scripted")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cycles=st.lists(st.sets(st.integers(0, 5), max_size=4), min_size=1, max_size=8),
    answers=st.lists(ANSWERS, max_size=30),
)
@pytest.mark.slow
def test_every_notification_ends_delivered_once_failed_superseded_or_still_pending(
    cycles: list[set[int]], answers: list[DeliveryStatus]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.sqlite")
        cfg = parse_config({"notify": {"channels": {"c": {"plugin": "console"}},
                                       "outbox": {"max_attempts": 3, "max_batch": 2, "backoff_initial": "1s", "backoff_max": "2s",
                                                  "keep_delivered": "1d"}}})
        channel = Scripted(answers)
        stage = NotifyStage(cfg, store, {"c": channel}, now=NOW)
        queued: set[str] = set()
        for i, present in enumerate(cycles):
            now = NOW + timedelta(minutes=i)
            out = stage.notify([finding(pod(f"p{k}")) for k in sorted(present)], [], cycle_id=f"c{i}", now=now, degraded=False)
            queued |= {n.id for n in out}
        for j in range(1, 20):  # let retries play out
            stage.flush(NOW + timedelta(minutes=len(cycles) + j))
        rows = {r["id"].rsplit(":", 1)[0]: r["state"] for r in stage.outbox.rows()}
        store.close()
    assert len(channel.delivered) == len(set(channel.delivered))  # nothing delivered twice
    assert set(rows) == queued  # every queued notification has a row: nothing lost
    for nid, state in rows.items():
        assert state in {DELIVERED, FAILED, SUPERSEDED, PENDING}
        assert (state == DELIVERED) == (nid in channel.delivered)


def test_a_state_file_from_before_due_at_is_migrated_and_its_waiting_rows_are_sent(tmp_path: Path) -> None:
    """A daemon upgraded with rows still waiting: the table gains ``due_at`` (NULL on the old rows,
    read as their creation time), and the old rows are claimed and delivered as before."""
    from aiops.model import Severity
    from aiops.notify.outbox import _SCHEMA, Outbox
    from aiops.state.codec import notification_to_json

    store = Store(tmp_path / "old.sqlite")
    store.ensure_schema(_SCHEMA[0])  # the table as the release before the migration made it
    t = NOW.timestamp()
    n = Notification("k1", Severity.CRITICAL, "GPU XID 79", "fell off the bus")
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO notify_outbox (id, channel, grp, key, severity_rank, notification, state, created_at, "
            "next_attempt_at, updated_at) VALUES (?, 'scripted', 'default', 'k1', 2, ?, 'pending', ?, ?, ?)",
            (f"{n.id}:scripted", notification_to_json(n), t, t, t),
        )
    outbox = Outbox(store)
    assert "due_at" in {r["name"] for r in store.query("PRAGMA table_info(notify_outbox)")}
    notifier = Scripted([])
    outbox.flush({"scripted": notifier}, NOW + timedelta(seconds=1))
    assert notifier.delivered == [n.id]
    assert [r["state"] for r in outbox.rows("scripted")] == [DELIVERED]
