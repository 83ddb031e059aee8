"""One codec for the records the state file keeps: decisions, findings, results, notifications."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from aiops.model import (
    ActionResult,
    ActionStatus,
    Basis,
    Decision,
    Entity,
    EntityKind,
    Evidence,
    Finding,
    Mode,
    Notification,
    NotificationKind,
    Resolve,
    Rung,
    Severity,
)
from aiops.state.codec import (
    decision_from_json,
    entity_from_dict,
    entity_to_dict,
    finding_from_dict,
    finding_to_dict,
    decision_to_json,
    notification_from_json,
    notification_to_json,
    plain,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POD = Entity("pod", "web-1", "ml", attributes=(("node", "n1"),))


def _finding() -> Finding:
    return Finding("exhaustion", "pod_memory_usage_ratio", POD, 0.9, T0,
                   Evidence("leak", recent=(0.5, float("nan"), 0.7), facts={"slope": np.float64(0.01), "at": T0}),
                   predicted_failure_at=T0 + timedelta(minutes=40), severity=Severity.CRITICAL, cause=Entity("node", "n1"))


def test_a_decision_round_trips_with_its_typed_fields_and_its_finding() -> None:
    d = Decision("evacuate_node", POD, Mode.AUTO, "why", _finding(), rule="r", params={"cordon_only": True},
                 basis=Basis.PREDICTED, rung=Rung.PREPARE, step="step 2 of 3: preparing", restore=True,
                 resolve=Resolve.NODE)
    back = decision_from_json(decision_to_json(d))
    assert (back.basis, back.rung, back.step, back.restore, back.resolve, dict(back.params)) == (
        Basis.PREDICTED, Rung.PREPARE, "step 2 of 3: preparing", True, Resolve.NODE, {"cordon_only": True})
    f = back.finding
    assert (f.id, f.key, f.observed_at, f.predicted_failure_at, f.cause) == (
        d.finding.id, d.finding.key, T0, T0 + timedelta(minutes=40), Entity("node", "n1"))
    assert back.target == POD and back.target.attributes == POD.attributes
    assert f.evidence.recent[0] == 0.5 and math.isnan(f.evidence.recent[1])
    assert f.evidence.facts == {"slope": 0.01, "at": T0.isoformat()}


def test_a_decision_row_from_before_the_one_codec_still_loads() -> None:
    """The outcome tracker wrote epoch seconds and kept control data in params."""
    row = {
        "id": "abc", "action": "scale_ahead", "target": {"kind": "model", "name": "m", "namespace": "ml",
                                                         "attributes": []},
        "mode": "auto", "reason": "r", "rule": "lat",
        "params": {"step": 2, "basis": "predicted", "rung": "act", "restore": True, "resolve_target": "owner"},
        "finding": {"id": "f1", "detector": "seasonal", "signal": "inference_ttft_p99",
                    "entity": {"kind": "model", "name": "m", "namespace": "ml", "attributes": [["a", "b"]]},
                    "score": 0.8, "observed_at": T0.timestamp(), "summary": "slow", "recent": [1.0],
                    "confirmed": False, "severity": "critical"},
    }
    d = decision_from_json(json.dumps(row))
    assert (d.basis, d.rung, d.restore, d.resolve, dict(d.params)) == (
        Basis.PREDICTED, Rung.ACT, True, Resolve.OWNER, {"step": 2})
    assert d.finding.observed_at == T0 and d.finding.entity.attr("a") == "b" and d.finding.evidence.summary == "slow"
    # Kinds were written as plain strings then, and are now: they load as the enum.
    assert d.target.kind is EntityKind.MODEL and d.finding.entity.kind is EntityKind.MODEL


def test_entity_kinds_are_stored_as_their_names_and_load_as_the_enum() -> None:
    stored = json.loads(json.dumps(entity_to_dict(POD)))
    assert stored["kind"] == "pod"
    back = entity_from_dict(stored)
    assert back.kind is EntityKind.POD and back == POD and back.key == "pod/ml/web-1"
    with pytest.raises(ValueError, match="entity kind 'pods' is not one of: cluster, .*signal"):
        entity_from_dict({**stored, "kind": "pods"})


def test_a_notification_round_trips() -> None:
    result = ActionResult("abc", "restart_pod", POD, ActionStatus.DRY_RUN, "would delete", at=T0)
    n = Notification("k", Severity.CRITICAL, "t", "s", entity=POD, findings=(_finding(),), results=(result,),
                     labels={"team": "ml"})
    back = notification_from_json(notification_to_json(n))
    assert (back.id, back.key, back.entity, back.labels, back.results) == (n.id, "k", POD, {"team": "ml"}, (result,))
    assert back.findings[0].key == n.findings[0].key


def test_plain_values_hold_one_time_format_and_no_nan() -> None:
    assert plain({"a": (np.int64(3), float("nan")), "t": T0, "d": timedelta(minutes=1), "s": Severity.INFO,
                  "r": Rung.ACT}) == {"a": [3, None], "t": "2026-03-02T12:00:00+00:00", "d": 60.0, "s": "info", "r": 3}


def test_an_infinite_fact_or_recent_value_is_stored_as_a_gap_not_refused() -> None:
    # JSON has no Infinity either: an overflowing fact (a plugin's slope of 1e308 * 10) made the
    # codec raise, after the write it records was applied, and the act stage lost the cycle.
    f = Finding("x", "pod_memory_usage_ratio", POD, 0.9, T0,
                Evidence("inf", recent=(float("inf"), 1.0), facts={"slope": float("-inf"), "n": np.float32("inf")}))
    back = decision_from_json(decision_to_json(Decision("restart_pod", POD, Mode.AUTO, "r", f)))
    assert back.finding.evidence.facts == {"slope": None, "n": None}
    assert math.isnan(back.finding.evidence.recent[0]) and back.finding.evidence.recent[1] == 1.0
    assert json.loads(notification_to_json(Notification("k", Severity.CRITICAL, "t", "s", findings=(f,))))


def test_a_notification_keeps_its_kind_and_old_rows_get_theirs_from_the_key() -> None:
    storm = Notification("storm:c1", Severity.CRITICAL, "t", "s", kind=NotificationKind.STORM)
    assert notification_from_json(notification_to_json(storm)).kind is NotificationKind.STORM
    for key, kind in [("action:restart_pod:pod/ml/a:failed", NotificationKind.ACTION),
                      ("advisor:digest:2026-W10", NotificationKind.DIGEST),
                      ("exhaustion:pod_memory_usage_ratio:pod/ml/a", NotificationKind.FINDING)]:
        row = json.loads(notification_to_json(Notification(key, Severity.INFO, "t", "s")))
        del row["kind"]
        assert notification_from_json(json.dumps(row)).kind is kind
    assert not NotificationKind.ACTION.resolvable and NotificationKind.FINDING.resolvable


def test_a_stored_finding_without_its_time_is_refused_when_read() -> None:
    """observed_at is no optional field: a row without it fails where it is decoded, not later."""
    row = finding_to_dict(_finding())
    assert finding_from_dict(row).observed_at == T0
    row["observed_at"] = None
    with pytest.raises((TypeError, ValueError)):
        finding_from_dict(row)
