"""The writer's persistent books, breaker and kill switch, without a cluster."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aiops.config.safety import KillSwitchConfig, SafetyConfig
from aiops.state.codec import decision_from_json, decision_to_json
from aiops.engine.rails.breaker import CircuitBreaker
from aiops.engine.rails.kill_switch import KillSwitch
from aiops.engine.safety import effective_mode
from aiops.state.books import Books
from aiops.kube.errors import KubeApiError
from aiops.kube.read import LedgerDisruption, LedgerEntry
from aiops.model import Entity, Mode
from aiops.state import Store
from tests.engine.kubecluster import NOW, decision, finding


@pytest.fixture
def books(tmp_path: Path) -> Books:
    return Books(Store(tmp_path / "state.sqlite"))


def test_budget_and_cooldown_books_survive_a_reopen_and_are_pruned(tmp_path: Path) -> None:
    books = Books(Store(tmp_path / "s.sqlite"))
    books.record_action("d1", "restart_pod", "pod/ns/a", False, NOW - timedelta(days=2))
    books.record_action("d2", "restart_pod", "pod/ns/a", False, NOW - timedelta(minutes=5))
    books.record_action("d3", "restart_pod", "pod/ns/b", True, NOW)  # dry-run: its own books
    books.store.close()
    books = Books(Store(tmp_path / "s.sqlite"))
    assert books.count_actions(NOW - timedelta(hours=1), dry_run=False) == 1
    assert books.last_action_on("pod/ns/a", False) == NOW - timedelta(minutes=5)
    assert books.last_action_on("pod/ns/b", False) is None
    books.prune(NOW, timedelta(days=1))
    assert books.count_actions(NOW - timedelta(days=30), dry_run=False) == 1


def test_ledger_entries_count_once(books: Books) -> None:
    entries = [
        LedgerEntry("peer-1", "evacuate_node", "node/n1", NOW),
        LedgerEntry("peer-1", "evacuate_node", "node/n1", NOW),
    ]
    assert books.import_ledger(entries) == 1
    assert books.import_ledger(entries) == 0
    books.record_action("mine", "restart_pod", "pod/ns/a", False, NOW)
    assert books.import_ledger([LedgerEntry("mine", "restart_pod", "pod/ns/a", NOW)]) == 0
    assert books.count_actions(NOW - timedelta(hours=1), dry_run=False) == 2


def test_peer_disruptions_count_once_and_own_ones_are_not_counted_twice(books: Books) -> None:
    books.record_disruption("deployment/ns/web", "ns/web-0", False, NOW)
    mine = LedgerDisruption("d1", "deployment/ns/web", "ns/web-0", NOW)  # read back from our own Event
    peer = LedgerDisruption("d2", "deployment/ns/web", "ns/web-1", NOW)
    assert books.import_ledger([mine, peer, peer]) == 1
    assert books.import_ledger([peer]) == 0
    assert books.disruptions("deployment/ns/web", NOW - timedelta(hours=1), False) == 2
    assert books.disruptions("deployment/ns/web", NOW - timedelta(hours=1), True) == 0


def test_breaker_opens_after_consecutive_failures_and_closes_later(books: Books) -> None:
    breaker = CircuitBreaker(books, threshold=2, open_for=timedelta(hours=1))
    assert breaker.record(False, NOW) is False
    assert breaker.record(True, NOW) is False  # a heal resets the streak
    assert breaker.record(False, NOW) is False
    assert breaker.record(False, NOW) is True
    assert breaker.is_open(NOW + timedelta(minutes=59))
    assert not breaker.is_open(NOW + timedelta(minutes=61))


def test_kill_switch_fails_closed(tmp_path: Path) -> None:
    def unreadable() -> str | None:
        raise KubeApiError("get configmap aiops/aiops-control", 503, "ServiceUnavailable", "etcd down", temporary=True)

    assert "not acting" in KillSwitch(KillSwitchConfig(), unreadable).engaged()
    assert KillSwitch(KillSwitchConfig(), lambda: None).engaged() == ""
    assert KillSwitch(KillSwitchConfig(), lambda: "false").engaged() == ""
    assert "ConfigMap" in KillSwitch(KillSwitchConfig(), lambda: "TRUE").engaged()
    flag = tmp_path / "off"
    flag.write_text("false")
    assert KillSwitch(KillSwitchConfig(file=flag)).engaged() == ""
    flag.write_text("")
    assert str(flag) in KillSwitch(KillSwitchConfig(file=flag)).engaged()


def test_effective_mode_is_the_most_cautious() -> None:
    d = decision("evacuate_node", Entity("node", "n1"))
    assert effective_mode(d, SafetyConfig(mode=Mode.AUTO)) is Mode.AUTO
    assert effective_mode(d, SafetyConfig(mode=Mode.SUGGEST)) is Mode.SUGGEST
    assert effective_mode(d, SafetyConfig(mode=Mode.AUTO, action_modes={"evacuate_node": Mode.OBSERVE})) is Mode.OBSERVE


def test_decisions_round_trip_through_json() -> None:
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"),))
    d = decision("evacuate_node", gpu, finding("gpu_xid", gpu, recent=(0.0, 79.0)), resolve_target="node")
    back = decision_from_json(decision_to_json(d))
    assert back == d  # ids, times, severity, evidence and params all come back
    assert back.target.attr("Hostname") == "n1" and back.finding.evidence.recent == (0.0, 79.0)


def test_safety_config_rejects_inconsistent_budgets() -> None:
    with pytest.raises(ValueError, match="max_actions_per_hour"):
        SafetyConfig(max_actions_per_hour=10, max_actions_per_day=5)
