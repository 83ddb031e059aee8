"""Plans that take several cycles (an evacuation waiting for replacements), and the annotations
aiops leaves on objects so that a restart, or a human, can tell what it changed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aiops.model import Decision, Evidence, Plan
from aiops.state.codec import decision_to_json

# On a node aiops cordoned: only such a node is ever uncordoned automatically.
CORDONED_BY = "aiops.io/cordoned-by"
# Beside it: the decision that cordoned it (:func:`decision_mark`), so that a replica that did not take
# the action uncordons it (``safety.auto_uncordon``) as the one that took it would have.
CORDON_DECISION = "aiops.io/cordon-decision"
# On an HPA or workload aiops scaled: the value to restore afterwards.
ORIGINAL_REPLICAS = "aiops.io/scale-ahead-original"
# Beside it: the decision that scaled it (JSON, the state file's codec), so a replica that did not
# take the action (a replaced one, the new holder of its shard) restores it when that decision's
# finding has stayed clear, as the one that took it would have.
SCALE_AHEAD_DECISION = "aiops.io/scale-ahead-decision"


def decision_mark(decision: Decision) -> str:
    """The decision as an annotation carries it (on the object it changed, on its verdict Event),
    for a replica that did not take it to judge or undo it (:meth:`aiops.engine.act.Actor._inherit`):
    the target, the finding's key, entity, severity and time, the evidence cut to its summary (an
    annotation, not an archive). Read back with :func:`aiops.state.codec.decision_from_json`."""
    finding = decision.finding
    return decision_to_json(replace(decision, finding=replace(finding, evidence=Evidence(finding.evidence.summary[:512]))))


# The pod template annotation `kubectl rollout restart` sets.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@dataclass(frozen=True)
class StagedPlan(Plan):
    """A plan whose goal needs later cycles too: ``waiting`` says what is left and why.

    The act stage keeps the action in flight (persisted) until a fresh plan has neither
    mutations nor anything waiting.
    """

    waiting: tuple[str, ...] = ()


def waiting_of(plan: Plan) -> tuple[str, ...]:
    return plan.waiting if isinstance(plan, StagedPlan) else ()


def infeasible(action: str, target: object, reason: str, command: str = "") -> Plan:
    from aiops.model import Entity

    assert isinstance(target, Entity)
    return Plan(
        action, target, (), f"no safe {action}: {reason}", command=command, feasible=False, reason_if_not=reason
    )
