"""A storm is told once per channel; what follows within the window is held, then delivered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops.config import parse_config
from aiops.model import Entity, Evidence, Finding, Notification, Severity
from aiops.notify.stage import NotifyStage
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store

from .conftest import at_once

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Capture(Notifier):
    name = "capture"

    def __init__(self) -> None:
        self.batches: list[list[Notification]] = []

    def send(self, batch: Sequence[Notification]) -> Delivery:
        self.batches.append(list(batch))
        return Delivery(DeliveryStatus.DELIVERED)


def crash(pod: str, at: datetime) -> Finding:
    return Finding("kube", "pod_crashlooping", Entity("pod", pod, "shop"), 0.95, at, Evidence("CrashLoopBackOff"),
                   confirmed=True, severity=Severity.CRITICAL)


def test_storm_grouped_then_held_messages_delivered_after_the_window(tmp_path: Path) -> None:
    cfg = parse_config({"notify": {"channels": {}, "storm": {"threshold": 3, "window": "10m"}},
                        "state": {"path": str(tmp_path / "s.sqlite")}})
    capture = Capture()
    stage = NotifyStage(cfg, Store(cfg.state.path), {"capture": capture})
    storm = [crash(f"web-{i}", T0) for i in range(8)]
    sent = stage.notify(storm, [], cycle_id="c1", now=T0, degraded=False)
    assert [n.title for n in sent] == ["STORM: 8 problems at once (pod_crashlooping on pods)"]
    assert len(capture.batches) == 1 and "8 × pod_crashlooping on pods" in capture.batches[0][0].summary

    # A new problem two minutes into the storm: held, not sent now ...
    later = [*storm, crash("api-0", T0 + timedelta(minutes=2))]
    stage.notify(later, [], cycle_id="c2", now=T0 + timedelta(minutes=2), degraded=False)
    assert len(capture.batches) == 1
    # ... and delivered once the storm window is over: nothing is lost.
    stage.flush(T0 + timedelta(minutes=11))
    delivered = [n for b in capture.batches[1:] for n in b]
    assert [n.entity.name for n in delivered if n.entity] == ["api-0"]


def test_below_the_threshold_messages_are_ordinary(tmp_path: Path) -> None:
    cfg = parse_config({"notify": {"channels": {}, "storm": {"threshold": 3}}, "state": {"path": str(tmp_path / "s.sqlite")}})
    capture = Capture()
    stage = NotifyStage(cfg, Store(cfg.state.path), {"capture": capture})
    stage.notify([crash("web-0", T0), crash("web-1", T0)], [], cycle_id="c1", now=T0, degraded=False)
    titles = [n.title for b in capture.batches for n in b]
    assert len(titles) == 2 and not any("STORM" in t for t in titles)


class Flaky(Capture):
    """Answers 503 while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def send(self, batch: Sequence[Notification]) -> Delivery:
        return Delivery(DeliveryStatus.RETRY, "HTTP 503") if self.down else super().send(batch)


def flaky_storm_stage(tmp_path: Path) -> tuple[NotifyStage, Flaky]:
    cfg = parse_config({"notify": {"channels": {"capture": {"plugin": "console"}}, "routes": at_once("capture"),
                                   "storm": {"threshold": 3, "window": "10m"},
                                   "outbox": {"max_attempts": 3, "backoff_initial": "10s", "backoff_max": "1m"}},
                        "state": {"path": str(tmp_path / "s.sqlite")}})
    flaky = Flaky()
    return NotifyStage(cfg, Store(cfg.state.path), {"capture": flaky}, now=T0), flaky


def test_a_given_up_storm_summary_is_told_again_at_once_not_after_its_window(tmp_path: Path) -> None:
    """The summary spends its retry budget in an outage: nobody was told of the storm, so its window
    holds nothing back: its conditions are due again the next cycle, grouped into a new summary,
    and told as soon as the channel is back, not when the old window ends."""
    stage, flaky = flaky_storm_stage(tmp_path)
    storm = [crash(f"web-{i}", T0) for i in range(8)]
    for minute in range(4):  # attempts at minutes 0, 1 and 2: given up
        stage.notify(storm, [], cycle_id=f"c{minute}", now=T0 + timedelta(minutes=minute), degraded=False)
    assert flaky.batches == []
    flaky.down = False
    for minute in range(4, 6):  # the storm window (until minute 10) is not over
        stage.notify(storm, [], cycle_id=f"c{minute}", now=T0 + timedelta(minutes=minute), degraded=False)
    titles = [n.title for b in flaky.batches for n in b]
    assert titles == ["STORM: 8 problems at once (pod_crashlooping on pods)"]


def test_a_waiting_storm_summary_whose_conditions_all_cleared_is_withdrawn(tmp_path: Path) -> None:
    """Nobody was told of the storm and it is over (in two steps) before the channel is back: the
    summary would be news of something over, so it is withdrawn like a single waiting message."""
    stage, flaky = flaky_storm_stage(tmp_path)
    storm = [crash(f"web-{i}", T0) for i in range(5)]
    stage.notify(storm, [], cycle_id="c0", now=T0, degraded=False)
    stage.notify(storm[2:], [], cycle_id="c1", now=T0 + timedelta(minutes=1), degraded=False)
    flaky.down = False  # back, as the rest clears
    for minute in range(2, 6):
        stage.notify([], [], cycle_id=f"c{minute}", now=T0 + timedelta(minutes=minute), degraded=False)
    assert flaky.batches == []
    [row] = stage.outbox.rows("capture")
    assert row["state"] == "superseded" and "withdrawn" in str(row["last_error"])


def test_a_waiting_storm_summary_goes_out_when_only_some_of_its_conditions_cleared(tmp_path: Path) -> None:
    """Part of the storm is still on: the summary goes out as it was written (what happened in that
    cycle). Those that cleared before it arrived get no "cleared" (nobody heard of them one by one);
    the rest are cleared when they clear, as after any summary that arrived."""
    stage, flaky = flaky_storm_stage(tmp_path)
    storm = [crash(f"web-{i}", T0) for i in range(5)]
    stage.notify(storm, [], cycle_id="c0", now=T0, degraded=False)
    stage.notify(storm[3:], [], cycle_id="c1", now=T0 + timedelta(minutes=1), degraded=False)
    flaky.down = False
    stage.notify(storm[3:], [], cycle_id="c2", now=T0 + timedelta(minutes=2), degraded=False)
    assert [n.title for b in flaky.batches for n in b] == ["STORM: 5 problems at once (pod_crashlooping on pods)"]
    stage.notify([], [], cycle_id="c3", now=T0 + timedelta(minutes=3), degraded=False)
    stage.flush(T0 + timedelta(minutes=11))  # the storm window holds them
    cleared = [n for b in flaky.batches[1:] for n in b]
    assert all(n.resolved for n in cleared)
    assert sorted(n.entity.name for n in cleared if n.entity) == ["web-3", "web-4"]


def test_a_waiting_storm_summary_that_tells_what_aiops_did_goes_out_even_once_it_is_over(tmp_path: Path) -> None:
    """What aiops did in a storm is news even once the storm is over (it may be why it is over)."""
    from aiops.model import ActionResult, ActionStatus

    stage, flaky = flaky_storm_stage(tmp_path)
    storm = [crash(f"web-{i}", T0) for i in range(5)]
    restarts = [ActionResult("dec", "restart_pod", f.entity, ActionStatus.APPLIED, "deleted the pod", at=T0) for f in storm]
    stage.notify(storm, restarts, cycle_id="c0", now=T0, degraded=False)
    stage.notify([], [], cycle_id="c1", now=T0 + timedelta(minutes=1), degraded=False)
    flaky.down = False
    stage.notify([], [], cycle_id="c2", now=T0 + timedelta(minutes=2), degraded=False)
    [[summary]] = flaky.batches
    assert summary.title.startswith("STORM: 5 problems") and "5 × applied" in summary.summary


class NoRedelivery(Capture):
    redeliver_after_crash = False  # as DingTalk: a repeat could be a duplicate page


@pytest.mark.parametrize("redelivers", [False, True])
def test_a_storm_summary_whose_outcome_a_crash_left_unknown_is_cleared(tmp_path: Path, redelivers: bool) -> None:
    """The process died after sending the storm's summary but before marking it: it may have
    arrived, so when the storm's conditions clear they are resolved as if it had, one by one (after
    the storm window, like any message held in it). A channel that de-duplicates gets the summary
    again first (it cannot be withdrawn: it may have arrived)."""
    cfg = parse_config({"notify": {"channels": {"capture": {"plugin": "console"}}, "routes": at_once("capture"),
                                   "storm": {"threshold": 3, "window": "10m"}},
                        "state": {"path": str(tmp_path / "s.sqlite")}})
    stage = NotifyStage(cfg, Store(cfg.state.path), {"capture": Flaky()}, now=T0)
    storm = [crash(f"web-{i}", T0) for i in range(5)]
    stage.notify(storm, [], cycle_id="c0", now=T0, degraded=False)
    assert stage.outbox._claim("capture", T0 + timedelta(seconds=30)) is not None  # sent ... and the process dies
    stage.store.close()
    channel = Capture() if redelivers else NoRedelivery()
    again = NotifyStage(cfg, Store(cfg.state.path), {"capture": channel}, now=T0 + timedelta(minutes=1))
    again.notify([], [], cycle_id="c1", now=T0 + timedelta(minutes=1), degraded=False)
    again.notify([], [], cycle_id="c2", now=T0 + timedelta(minutes=2), degraded=False)
    again.flush(T0 + timedelta(minutes=11))
    sent = [n for b in channel.batches for n in b]
    if redelivers:
        assert sent[0].title.startswith("STORM: 5 problems")
        sent = sent[1:]
    cleared = sent
    assert all(n.resolved for n in cleared)
    assert sorted(n.entity.name for n in cleared if n.entity) == [f"web-{i}" for i in range(5)]
