"""Tiered response by confidence and lead time, and predictions that are checked and counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.config import parse_config
from aiops.engine.decide import Policy
from aiops.engine.ladder import LadderState
from aiops.engine.predictions import CONFIRMED, FALSE_POSITIVE, PREVENTED, UNOBSERVED, PredictionLedger
from aiops.model import ActionResult, ActionStatus, Basis, Entity, Evidence, Finding, Mode, Rung
from aiops.state import Store

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
GPU = Entity("gpu", "GPU-1", attributes=(("Hostname", "node-7"), ("gpu", "0")))
POD = Entity("pod", "llm-0", "serving")


def gpu_finding(now: datetime, *, score: float, lead: timedelta | None, confirmed: bool = False) -> Finding:
    return Finding(
        detector="gpu_health", signal="gpu_uncorrectable_remapped_rows", entity=GPU, score=score, observed_at=now,
        evidence=Evidence("remapped rows rising"), confirmed=confirmed,
        predicted_failure_at=(now + lead) if lead is not None else None,
    )


def leak(now: datetime, *, lead: timedelta, score: float = 0.95, detector: str = "exhaustion") -> Finding:
    return Finding(detector=detector, signal="pod_memory_usage_ratio", entity=POD, score=score, observed_at=now,
                   evidence=Evidence("leak"), predicted_failure_at=now + lead)


@pytest.fixture
def store(tmp_path) -> Store:  # noqa: ANN001
    return Store(tmp_path / "s.sqlite")


def policy(store: Store, rules: list | None = None, mode: str = "auto") -> tuple[Policy, PredictionLedger]:
    data = {"safety": {"mode": mode}}
    if rules is not None:
        data["policy"] = {"rules": rules}
    cfg = parse_config(data)
    ledger = PredictionLedger(store)
    return Policy(cfg.policy, cfg.safety.mode, ladder=LadderState(store), ledger=ledger), ledger


def test_prediction_climbs_one_rung_per_cycle_then_confirmation_jumps(store: Store) -> None:
    p, _ = policy(store)
    steps = []
    for i in range(4):
        now = T0 + timedelta(minutes=i)
        # A strong prediction, failure 20 min out: it wants "act" at once, but climbs one rung per cycle.
        _, decisions = p.decide([gpu_finding(now, score=0.95, lead=timedelta(minutes=20))], now=now)
        (d,) = decisions
        steps.append((d.action, d.params.get("cordon_only", False), d.reason.split(":")[0]))
        assert d.target == Entity("node", "node-7") and d.basis is Basis.PREDICTED
        assert d.rung is not None and d.step.startswith(f"step {int(d.rung)} of 3") and d.reason.startswith(d.step)
    assert steps == [
        ("advise", False, "step 1 of 3"),
        ("evacuate_node", True, "step 2 of 3"),  # prepare: cordon only
        ("evacuate_node", False, "step 3 of 3"),
        ("evacuate_node", False, "step 3 of 3"),
    ]


def test_long_lead_low_confidence_only_notifies(store: Store) -> None:
    p, _ = policy(store)
    for i in range(5):
        now = T0 + timedelta(minutes=i)
        _, (d,) = p.decide([gpu_finding(now, score=0.75, lead=timedelta(hours=6))], now=now)
        assert d.action == "advise" and d.reason.startswith("step 1 of 3")


def test_confirmed_failure_skips_straight_to_act(store: Store) -> None:
    p, _ = policy(store)
    _, (d,) = p.decide([gpu_finding(T0, score=1.0, lead=None, confirmed=True)], now=T0)
    assert d.action == "evacuate_node" and "cordon_only" not in d.params
    assert d.basis is Basis.CONFIRMED and d.rung is Rung.ACT and d.reason.startswith("step 3 of 3")


def test_restart_does_not_climb_twice_in_one_cycle(store: Store) -> None:
    p, _ = policy(store)
    f = gpu_finding(T0, score=0.95, lead=timedelta(minutes=20))
    p.decide([f], now=T0)
    # The same cycle decided again (a restarted daemon re-running it) stays on the same rung.
    _, (d,) = Policy(p.config, Mode.AUTO, ladder=LadderState(store), ledger=p.ledger).decide([f], now=T0)
    assert d.action == "advise"


def test_false_positive_is_counted_and_preparation_rolled_back(store: Store) -> None:
    p, ledger = policy(store)
    now = T0
    for _ in range(2):  # notify, then prepare (cordon)
        closed = ledger.observe([gpu_finding(now, score=0.95, lead=timedelta(minutes=30))], now)
        assert closed == []
        _, decisions = p.decide([gpu_finding(now, score=0.95, lead=timedelta(minutes=30))], now=now, closed=closed)
        now += timedelta(minutes=1)
    assert decisions[0].params.get("cordon_only") is True
    # The GPU recovers: no more findings; the horizon (prediction + grace) passes without a failure.
    later = now + timedelta(hours=1)
    closed = ledger.observe([], later)
    assert [c.outcome for c in closed] == [FALSE_POSITIVE]
    _, decisions = p.decide([], now=later, closed=closed)
    (undo,) = decisions
    assert undo.action == "evacuate_node" and undo.restore and undo.params == {"cordon_only": True}
    assert undo.target == Entity("node", "node-7") and "false positive" in undo.reason
    (stats,) = ledger.stats()
    assert (stats.predictions, stats.false_positives, stats.precision) == (1, 1, 0.0)
    # The episode is over: a new prediction starts again at the bottom rung.
    _, (d,) = p.decide([gpu_finding(later, score=0.95, lead=timedelta(minutes=30))], now=later)
    assert d.action == "advise"


def test_confirmed_prediction_measures_lead_time(store: Store) -> None:
    ledger = PredictionLedger(store)
    ledger.observe([leak(T0, lead=timedelta(minutes=50))], T0)
    ledger.observe([leak(T0 + timedelta(minutes=10), lead=timedelta(minutes=40))], T0 + timedelta(minutes=10))
    oom = Finding("kube", "pod_oom_killed", POD, 1.0, T0 + timedelta(minutes=48), Evidence("OOMKilled"), confirmed=True)
    closed = ledger.observe([oom], T0 + timedelta(minutes=48))
    assert [(c.outcome, c.lead_seconds) for c in closed] == [(CONFIRMED, 48 * 60.0)]
    (s,) = ledger.stats()
    assert s.confirmed == 1 and s.median_lead_seconds == 48 * 60.0 and s.precision == 1.0


def test_closed_predictions_are_kept_for_the_retention_only(store: Store) -> None:
    # A flapping forecast opens and closes a prediction every few minutes: the ledger (read whole
    # for /metrics every cycle) must not keep them all for ever. Precision is then measured over
    # the retention, as the audit log's history is; an open prediction is never dropped.
    ledger = PredictionLedger(store, retention=timedelta(days=1))
    for day in range(3):
        start = T0 + timedelta(days=day)
        ledger.observe([leak(start, lead=timedelta(minutes=30))], start)
        ledger.observe([], start + timedelta(hours=2))  # its horizon passed: a false positive
    ledger.observe([leak(T0 + timedelta(days=3), lead=timedelta(hours=3))], T0 + timedelta(days=3))
    (s,) = ledger.stats()
    assert (s.predictions, s.false_positives, s.open) == (2, 1, 1)  # day 2's, and the open one


def test_action_explains_recovery_prevented_not_false_positive(store: Store) -> None:
    ledger = PredictionLedger(store)
    ledger.observe([leak(T0, lead=timedelta(minutes=30))], T0)
    ledger.mark_acted([ActionResult("d1", "restart_pod", POD, ActionStatus.APPLIED, "deleted")])
    closed = ledger.observe([], T0 + timedelta(hours=2))
    assert [c.outcome for c in closed] == [PREVENTED]


def test_precision_gate_holds_automatic_actions_at_suggest(store: Store) -> None:
    rules = [{"name": "leak", "signal": "pod_memory_usage_ratio", "action": "restart_pod", "min_severity": "critical",
              "max_lead_time": "1h", "min_precision": 0.8, "min_judged": 2}]
    p, ledger = policy(store, rules)
    _, (d,) = p.decide([leak(T0, lead=timedelta(minutes=30))], now=T0)
    assert d.mode is Mode.SUGGEST and "precision unmeasured" in d.reason
    # Two confirmed predictions later the detector has earned auto mode.
    for k in range(2):
        t = T0 + timedelta(hours=3 * (k + 1))
        ent = Entity("pod", f"p{k}", "serving")
        f = Finding("exhaustion", "pod_memory_usage_ratio", ent, 0.95, t, Evidence("x"), predicted_failure_at=t + timedelta(minutes=20))
        ledger.observe([f], t)
        ledger.observe([Finding("kube", "pod_oom_killed", ent, 1.0, t, Evidence("oom"), confirmed=True)], t + timedelta(minutes=20))
    _, (d,) = p.decide([leak(T0 + timedelta(hours=9), lead=timedelta(minutes=30))], now=T0 + timedelta(hours=9))
    assert d.mode is Mode.AUTO
    # A confirmed failure never waits for the statistics.
    confirmed = Finding("exhaustion", "pod_memory_usage_ratio", POD, 1.0, T0, Evidence("at limit"), confirmed=True)
    rules[0]["min_judged"] = 50
    p2, _ = policy(store, rules)
    _, (d,) = p2.decide([confirmed], now=T0)
    assert d.mode is Mode.AUTO and d.basis is Basis.CONFIRMED


def test_metrics_export_precision_and_lead(store: Store) -> None:
    from aiops import metrics
    from prometheus_client import generate_latest

    ledger = PredictionLedger(store)
    ledger.observe([leak(T0, lead=timedelta(minutes=30), detector="leaktest")], T0)
    ledger.observe([Finding("kube", "pod_oom_killed", POD, 1.0, T0, Evidence("oom"), confirmed=True)], T0 + timedelta(minutes=25))
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'aiops_detector_precision{detector="leaktest"} 1.0' in text
    assert 'aiops_detector_median_lead_seconds{detector="leaktest"} 1500.0' in text
    assert 'aiops_predictions_total{detector="leaktest",outcome="confirmed"} 1.0' in text


def test_a_prediction_whose_gpu_stopped_reporting_is_not_a_false_positive(store: Store) -> None:
    """The GPU predicted to fail falls off the bus: its series vanish and the prediction's finding
    with them. The horizon passing unmeasured proves nothing: not a false positive (no rollback of
    the cordon onto the GPU, no hit to the detector's precision) — closed as unobserved."""
    p, ledger = policy(store)
    now = T0
    for _ in range(2):  # notify, then prepare (cordon)
        closed = ledger.observe([gpu_finding(now, score=0.95, lead=timedelta(minutes=30))], now)
        _, decisions = p.decide([gpu_finding(now, score=0.95, lead=timedelta(minutes=30))], now=now, closed=closed)
        now += timedelta(minutes=1)
    assert decisions[0].params.get("cordon_only") is True
    later = now + timedelta(hours=1)
    closed = ledger.observe([], later, unseen={GPU.key: "GPU GPU-1 on node node-7 stopped reporting"})
    assert [c.outcome for c in closed] == [UNOBSERVED]
    _, decisions = p.decide([], now=later, closed=closed)
    assert not [d for d in decisions if d.restore]
    (stats,) = ledger.stats()
    assert (stats.predictions, stats.false_positives, stats.open, stats.precision) == (1, 0, 0, None)
