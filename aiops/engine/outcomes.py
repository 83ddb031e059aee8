"""Closing the loop: did the action heal what triggered it?

Each applied action is tracked until its triggering finding (same :attr:`Finding.key`, at the
decision's severity or above) is absent from a cycle's findings — *healed* — or is still there
``verify_within`` after the action — *not healed*, which escalates to a human and feeds the
circuit breaker. Outcomes are persisted (a restart keeps watching) and counted in
``aiops_action_outcomes{action,outcome}``.

Absent is healed only where something is measured: a finding gone because its entity stopped
reporting (``unseen``, e.g. a GPU off the bus after XID 79) is not judged healed, and is not
healed at ``verify_within`` — an evacuated node must not be uncordoned onto a dead GPU.

Some actions are undone once the target has stayed healthy long enough: an aiops-cordoned node
is uncordoned (``safety.auto_uncordon``), a scaled-ahead workload is restored. The tracker says
when; the act stage plans and applies the undo through the guarded writer. A scaled-ahead
workload and a cordoned node carry the decision that changed them, and each verdict is written in
an Event, so a replica that did not take the action (the one that did was replaced, with its state
file) takes the undo over (:meth:`OutcomeTracker.adopt_undo`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiops import metrics
from aiops.config.safety import SafetyConfig
from aiops.engine.rails.breaker import CircuitBreaker
from aiops.model import Decision, Entity, Finding, Severity, from_epoch
from aiops.notify import formatting
from aiops.state import Store
from aiops.state.codec import decision_from_json, decision_to_json

log = logging.getLogger(__name__)

HEALED = "healed"
NOT_HEALED = "not_healed"
PENDING = "pending"

SCHEMA = """
CREATE TABLE IF NOT EXISTS action_outcomes (
    decision_id TEXT PRIMARY KEY, action TEXT NOT NULL, target TEXT NOT NULL, finding_key TEXT NOT NULL,
    severity_rank INTEGER NOT NULL, applied_at REAL NOT NULL, status TEXT NOT NULL,
    decided_at REAL, clear_since REAL, restore INTEGER NOT NULL, restored INTEGER NOT NULL,
    decision TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT ''  -- the workload whose pods the finding may move to (replacements)
);
CREATE INDEX IF NOT EXISTS action_outcomes_status ON action_outcomes (status, restore, restored);
-- Verdicts counted in this replica's circuit breaker, its own and those of replicas before it
-- (read from their Events): each counts once.
CREATE TABLE IF NOT EXISTS counted_verdicts (decision_id TEXT PRIMARY KEY, at REAL NOT NULL);
"""


class Adoption(enum.Enum):
    """What became of an undo taken over from another replica (:meth:`OutcomeTracker.adopt_undo`)."""

    JUDGING = "judging"  # no verdict yet: this replica judges it, then undoes it if it healed
    UNDOING = "undoing"  # healed (or safe to undo unjudged): undone once its finding stays clear
    LEFT = "left"  # not healed: the human it was escalated to has it
    UNKNOWN = "unknown"  # a verdict that cannot be known, and an undo not safe without one: a human's


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    status: str  # HEALED or NOT_HEALED
    applied_at: datetime
    detail: str


# Actions that are undone after the target stays healthy, and the config switch/delay for each.
def _restore_delay(action: str, config: SafetyConfig) -> Any:
    if action == "evacuate_node":
        return config.uncordon_after if config.auto_uncordon else None
    if action == "scale_ahead":
        return config.restore_after
    return None


class OutcomeTracker:
    def __init__(self, store: Store, config: SafetyConfig, breaker: CircuitBreaker) -> None:
        self.store = store
        self.config = config
        self.breaker = breaker
        store.ensure_schema(SCHEMA)

    def track(self, decision: Decision, applied_at: datetime, scope: str = "") -> bool:
        """Start watching an applied action (idempotent per decision); True when it is new here.

        ``scope`` is the workload (``deployment/ns/name``) of a restarted pod: its replacement has
        a new name, so the same finding on any pod of that workload means "not healed" too. Also
        how a replica takes over an action another one watched and had not judged (its verdict
        Event is still pending): that one was replaced, or its shard was taken, and this one
        judges it from its own findings, as the other would have.
        """
        if decision.restore:
            return False  # an undo is not judged by the finding that caused the original action
        restore = _restore_delay(decision.action, self.config) is not None
        return self._insert(decision, applied_at, PENDING, None, restore, scope)

    def adopt_undo(self, decision: Decision, now: datetime, *, verdict: str | None, unjudged: bool) -> Adoption | None:
        """Take over the undo of an action another replica applied, as its target's mark carries
        it (:func:`aiops.kube.plan.decision_mark`): that replica was replaced, or its shard was taken,
        and its outcomes went with its state file. ``verdict``: what it judged, as its verdict
        Event says (None: no Event). The action is dated by its finding's time.

        - Healed: undone once its finding has stayed clear for the delay, counted from now (what
          came between is not known here).
        - Not healed: left for the human it was escalated to, as that replica would have.
        - No verdict within ``verify_within`` of the action: this replica gives it, escalation
          included (the other could not have yet).
        - No verdict past that: unknown (the Event expired, or events are off). ``unjudged``: the
          undo is safe without one (scaling back what was scaled ahead: it is scaled again if
          needed), else left for a human (uncordoning a node that may not have healed), who must
          be told (:attr:`Adoption.UNKNOWN`).

        None: nothing to take over (a decision this replica tracks already, its own, judged or
        not; an action without an undo here)."""
        if decision.restore or _restore_delay(decision.action, self.config) is None or self.tracks(decision.id):
            return None
        applied_at = decision.finding.observed_at
        if verdict is None and now - applied_at < self.config.verify_within:
            self._insert(decision, applied_at, PENDING, None, True, "")
            return Adoption.JUDGING
        if verdict == HEALED or (verdict is None and unjudged):
            self._insert(decision, applied_at, HEALED, now, True, "")
            return Adoption.UNDOING
        return Adoption.UNKNOWN if verdict is None else Adoption.LEFT

    def count_verdict(self, decision_id: str, healed: bool, at: datetime) -> bool:
        """Count a verdict in the circuit breaker, once per action (given here, or by a replica
        before this one, as its Event says); True when it opened the breaker."""
        with self.store.transaction() as conn:
            added = conn.execute(
                "INSERT OR IGNORE INTO counted_verdicts (decision_id, at) VALUES (?, ?)", (decision_id, at.timestamp())
            ).rowcount
        return added == 1 and self.breaker.record(healed, at)

    def tracks(self, decision_id: str) -> bool:
        """Whether this replica watches, or watched, that action (its own, or one taken over)."""
        return bool(self.store.query("SELECT 1 FROM action_outcomes WHERE decision_id = ?", (decision_id,)))

    def _insert(
        self, decision: Decision, applied_at: datetime, status: str, decided_at: datetime | None, restore: bool,
        scope: str,
    ) -> bool:
        """One row per decision (a decision tracked already keeps its row); True when added."""
        severity = decision.finding.severity or Severity.INFO
        with self.store.transaction() as conn:
            added = conn.execute(
                "INSERT OR IGNORE INTO action_outcomes (decision_id, action, target, finding_key, severity_rank, "
                "applied_at, status, decided_at, restore, restored, decision, scope) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    decision.id,
                    decision.action,
                    decision.target.key,
                    decision.finding.key,
                    severity.rank,
                    applied_at.timestamp(),
                    status,
                    None if decided_at is None else decided_at.timestamp(),
                    int(restore),
                    decision_to_json(decision),
                    scope,
                ),
            ).rowcount
        return added == 1

    def prune(self, now: datetime, keep: timedelta = timedelta(days=30)) -> None:
        """Drop judged outcomes after ``keep`` (the audit log keeps the escalations). A healed one
        waiting for its undo stays until undone; one that did not heal is never undone (a human
        has it), so it goes like the others."""
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM action_outcomes WHERE status != ? AND (status = ? OR restore = 0 OR restored = 1) "
                "AND decided_at < ?",
                (PENDING, NOT_HEALED, (now - keep).timestamp()),
            )
            conn.execute("DELETE FROM counted_verdicts WHERE at < ?", ((now - keep).timestamp(),))

    def hand_over(self, taken: Callable[[Entity], bool]) -> None:
        """Drop the pending judgments of actions on the entities ``taken`` (sharded: of a shard
        taken again after another replica held it). The findings of that time were the other
        replica's: a verdict now would rest on a gap (healed and sick again, or acted on by the
        other), and a false "not healed" escalates and feeds the breaker. Undos still due stay."""
        rows = self.store.query("SELECT decision_id, decision FROM action_outcomes WHERE status = ?", (PENDING,))
        gone = [(r["decision_id"],) for r in rows if taken(decision_from_json(r["decision"]).finding.entity)]
        if gone:
            with self.store.transaction() as conn:
                conn.executemany("DELETE FROM action_outcomes WHERE decision_id = ?", gone)

    def pending(self) -> int:
        return int(self.store.query("SELECT COUNT(*) AS n FROM action_outcomes WHERE status = ?", (PENDING,))[0]["n"])

    @staticmethod
    def _present(findings: Sequence[Finding], key: str, rank: int) -> Finding | None:
        return next((f for f in findings if f.key == key and (f.severity or Severity.INFO).rank >= rank), None)

    def needs_owners(self) -> bool:
        """Whether :meth:`review` needs ``owner_of`` (a pending action on a workload's pod)."""
        rows = self.store.query(
            "SELECT COUNT(*) AS n FROM action_outcomes WHERE status = ? AND scope != ''", (PENDING,)
        )
        return bool(rows[0]["n"])

    def review(
        self,
        findings: Sequence[Finding],
        now: datetime,
        owner_of: Callable[[Entity], str | None] | None = None,
        unseen: Mapping[str, str] | None = None,
        mine: Callable[[Entity], bool] | None = None,
    ) -> list[Outcome]:
        """Judge pending actions against this cycle's findings; returns the outcomes decided now.

        ``owner_of`` maps an entity to its workload key (from the cluster view), to follow a
        finding from a restarted pod to its replacement. ``unseen`` maps the keys of entities
        nothing is measured on this cycle to what says so: their findings' absence proves nothing.
        ``mine`` (sharded) keeps the actions whose finding's entity is in a shard held now: another
        shard's findings are not in this cycle, so their absence proves nothing either.
        """
        unseen = unseen or {}
        out: list[Outcome] = []
        rows = self.store.query("SELECT * FROM action_outcomes WHERE status = ? ORDER BY applied_at", (PENDING,))
        for row in rows:
            decision = decision_from_json(row["decision"])
            if mine is not None and not mine(decision.finding.entity):
                continue  # left pending: judged again if this replica holds the shard again
            applied_at = from_epoch(row["applied_at"])
            still = self._present(findings, row["finding_key"], row["severity_rank"])
            if still is None and row["scope"] and owner_of is not None:
                first = decision.finding
                still = next(
                    (
                        f
                        for f in findings
                        if (f.detector, f.signal) == (first.detector, first.signal)
                        and (f.severity or Severity.INFO).rank >= row["severity_rank"]
                        and owner_of(f.entity) == row["scope"]
                    ),
                    None,
                )
            blind = unseen.get(decision.finding.entity.key) if still is None else None
            if blind is not None:
                if now - applied_at < self.config.verify_within:
                    continue
                status = NOT_HEALED
                detail = (
                    f"not healed: {decision.action} on {row['target']} at {applied_at:%H:%M UTC}: "
                    f"{row['finding_key']} cannot be seen to clear within {formatting.duration(self.config.verify_within)}; "
                    f"now: {blind}. Escalating to a human."
                )
            elif still is None:
                status, detail = HEALED, f"{row['finding_key']} cleared after {decision.action} on {row['target']}"
            elif now - applied_at >= self.config.verify_within:
                status = NOT_HEALED
                detail = (
                    f"not healed: {decision.action} on {row['target']} at {applied_at:%H:%M UTC} did not clear "
                    f"{row['finding_key']} within {formatting.duration(self.config.verify_within)}; now: {still.evidence.summary} "
                    f"(score {still.score:.2f}). Escalating to a human."
                )
            else:
                continue
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE action_outcomes SET status = ?, decided_at = ?, clear_since = ? WHERE decision_id = ?",
                    (status, now.timestamp(), now.timestamp() if status == HEALED else None, row["decision_id"]),
                )
            metrics.OUTCOMES.labels(decision.action, status).inc()
            if self.count_verdict(decision.id, status == HEALED, now):
                detail += f" Circuit breaker opened: {self.config.breaker_threshold} actions in a row did not heal."
            log.info("action outcome", extra={"action": decision.action, "target": row["target"], "outcome": status})
            out.append(Outcome(decision, status, applied_at, detail))
        return out

    def restores_due(
        self,
        findings: Sequence[Finding],
        now: datetime,
        unseen: Mapping[str, str] | None = None,
        mine: Callable[[Entity], bool] | None = None,
    ) -> list[Decision]:
        """Undo decisions for healed actions whose finding stayed clear for the configured delay
        (while it is measured: an entity in ``unseen`` is not known to be healthy). ``mine``
        (sharded) keeps the actions whose finding's entity is in a shard held now."""
        unseen = unseen or {}
        due: list[Decision] = []
        rows = self.store.query(
            "SELECT * FROM action_outcomes WHERE status = ? AND restore = 1 AND restored = 0", (HEALED,)
        )
        for row in rows:
            decision = decision_from_json(row["decision"])
            if mine is not None and not mine(decision.finding.entity):
                continue  # another replica's shard now: its findings are not in this cycle
            delay = _restore_delay(decision.action, self.config)
            if delay is None:
                continue
            if (
                self._present(findings, row["finding_key"], 1) is not None
                or decision.finding.entity.key in unseen
                or any(f.entity.key == decision.target.key for f in findings if (f.severity or Severity.INFO).rank >= 1)
            ):
                # Sick again (or still noisy): the healthy period starts over.
                with self.store.transaction() as conn:
                    conn.execute(
                        "UPDATE action_outcomes SET clear_since = NULL WHERE decision_id = ?", (row["decision_id"],)
                    )
                continue
            since = from_epoch(row["clear_since"]) if row["clear_since"] is not None else None
            if since is None:
                with self.store.transaction() as conn:
                    conn.execute(
                        "UPDATE action_outcomes SET clear_since = ? WHERE decision_id = ?",
                        (now.timestamp(), row["decision_id"]),
                    )
                continue
            if now - since >= delay:
                due.append(
                    replace(
                        decision,
                        restore=True,
                        reason=f"restore after {decision.action}: healthy since {since:%H:%M UTC}",
                        id=f"{decision.id}-restore",
                    )
                )
        return due

    def mark_restored(self, decision: Decision) -> None:
        original = decision.id.removesuffix("-restore")
        with self.store.transaction() as conn:
            conn.execute("UPDATE action_outcomes SET restored = 1 WHERE decision_id = ?", (original,))
