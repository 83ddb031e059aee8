"""Policy on quality forecasts: a trend heading for the floor warns, only an observed drop acts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.config.policy import PolicyConfig, PolicyRule
from aiops.engine.decide import Policy
from aiops.model import Entity, Evidence, Finding, Mode, Severity

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MODEL = Entity("model", "qwen2-7b", "inference")


def _quality(score: float, lead: timedelta | None) -> Finding:
    return Finding("quality_drift", "model_accuracy", MODEL, score, NOW, Evidence("accuracy falling"),
                   predicted_failure_at=NOW + lead if lead is not None else None)


def test_a_quality_forecast_warns_and_the_observed_drop_suggests_the_rollback() -> None:
    policy = Policy(PolicyConfig(), Mode.AUTO)
    graded, decisions = policy.decide([_quality(0.74, timedelta(minutes=70))], now=NOW)
    assert graded[0].severity is Severity.WARNING  # told early...
    assert decisions == []  # ...but the rollback waits for the drop to be observed (the CUSUM)
    graded, decisions = policy.decide([_quality(0.75, None)], now=NOW)
    assert graded[0].severity is Severity.WARNING
    assert [(d.action, d.mode) for d in decisions] == [("rollback_model", Mode.SUGGEST)]


@pytest.mark.parametrize("act_on_forecasts", [True, False])
def test_whether_a_rule_acts_on_forecasts_is_its_own_setting(act_on_forecasts: bool) -> None:
    rule = PolicyRule(name="r", signal="model_accuracy", min_severity=Severity.WARNING, action="rollback_model",
                      act_on_forecasts=act_on_forecasts)
    _, decisions = Policy(PolicyConfig(rules=[rule]), Mode.AUTO).decide(
        [_quality(0.74, timedelta(minutes=70))], now=NOW)
    assert bool(decisions) is act_on_forecasts
