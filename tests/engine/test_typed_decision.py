"""Control data travels in Decision's typed fields; params hold the remediation's parameters only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.config.policy import LadderConfig, PolicyConfig, PolicyRule
from aiops.engine.decide import Policy
from aiops.engine.ladder import LadderState
from aiops.model import (
    Basis,
    Entity,
    Evidence,
    Finding,
    Mode,
    Resolve,
    Rung,
    Severity,
    most_cautious,
)
from aiops.state import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GPU = Entity("gpu", "0", attributes=(("Hostname", "node-7"),))
POD = Entity("pod", "web-1", "ml")


def _finding(entity: Entity, *, lead: timedelta | None = None, confirmed: bool = False, score: float = 0.95) -> Finding:
    return Finding(
        "gpu_health", "gpu_xid_errors", entity, score, T0, Evidence("xid"),
        predicted_failure_at=T0 + lead if lead is not None else None, confirmed=confirmed, severity=Severity.CRITICAL,
    )


def _policy(*rules: PolicyRule, mode: Mode = Mode.AUTO) -> Policy:
    return Policy(PolicyConfig(rules=list(rules)), mode, ladder=LadderState(Store(":memory:")))


def test_a_ladder_decision_carries_its_rung_and_step_in_fields_not_in_params() -> None:
    rule = PolicyRule(name="gpu", signal="gpu_*", action="evacuate_node", target="node",
                      params={"min_ready_replicas": 1}, ladder=LadderConfig(prepare_params={"cordon_only": True}))
    p = _policy(rule)
    seen = []
    for i in range(3):
        _, (d,) = p.decide([_finding(GPU, lead=timedelta(minutes=20))], now=T0 + timedelta(minutes=i))
        seen.append((d.action, d.rung, d.basis, dict(d.params)))
        assert d.step.startswith(f"step {i + 1} of 3:") and d.reason.startswith(d.step + "; rule gpu:")
    assert seen == [
        ("advise", Rung.NOTIFY, Basis.PREDICTED, {"min_ready_replicas": 1}),
        ("evacuate_node", Rung.PREPARE, Basis.PREDICTED, {"min_ready_replicas": 1, "cordon_only": True}),
        ("evacuate_node", Rung.ACT, Basis.PREDICTED, {"min_ready_replicas": 1}),
    ]


def test_a_target_to_resolve_is_a_field_and_the_mode_is_the_most_cautious() -> None:
    rule = PolicyRule(name="r", signal="gpu_*", action="evacuate_node", target="node", max_mode=Mode.SUGGEST)
    _, (d,) = _policy(rule).decide([_finding(POD, confirmed=True)], now=T0)
    assert (d.target, d.resolve, d.basis, d.rung, d.step) == (POD, Resolve.NODE, Basis.CONFIRMED, None, "")
    assert d.params == {} and d.mode is Mode.SUGGEST
    assert most_cautious(Mode.AUTO, Mode.OBSERVE, Mode.SUGGEST) is Mode.OBSERVE


def test_a_mutation_names_its_verb_and_resource_from_a_closed_set() -> None:
    from aiops.model import Mutation, Resource, Verb

    m = Mutation("evict", "pods", "web-1", "ml")
    assert (m.verb, m.resource) == (Verb.EVICT, Resource.PODS) and m.describe() == "evict pods ml/web-1"
    with pytest.raises(ValueError, match="mutation verb 'drain' is not one of: create, delete, evict, patch"):
        Mutation("drain", "nodes", "n1")
    with pytest.raises(ValueError, match="mutation resource 'node' is not one of"):
        Mutation("patch", "node", "n1")


def test_an_entity_kind_comes_from_a_closed_set_and_strings_convert() -> None:
    from aiops.model import EntityKind, Resource

    e = Entity("pod", "web-1", "ml")
    assert e.kind is EntityKind.POD and e == Entity(EntityKind.POD, "web-1", "ml") and e.key == "pod/ml/web-1"
    assert hash(e) == hash(Entity(EntityKind.POD, "web-1", "ml")) and f"{e.kind}s" == "pods"
    with pytest.raises(ValueError, match="entity kind 'pods' is not one of: cluster, namespace, node, pod"):
        Entity("pods", "web-1", "ml")
    # What a mutation writes is an entity of the matching kind (an Event is about another object).
    assert Resource.HORIZONTALPODAUTOSCALERS.entity_kind is EntityKind.HPA and Resource.EVENTS.entity_kind is None
