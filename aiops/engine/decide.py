"""The decide stage: findings -> graded findings and decisions, from policy in config.

All thresholds live here (via config), never in detectors. A finding is graded by score and by
how soon its predicted failure is; the first matching rule turns it into a decision on a target.
Several findings about one target collapse into one decision, carrying the strongest finding.

Predictions on rules with a ladder climb notify -> prepare -> act one rung per cycle (straight to
act when the failure is confirmed). A prediction that turned out false rolls its preparation back.
A rule may hold a detector at *suggest* until its measured precision is good enough. Findings
that another finding explains (``Finding.cause``, set by root-cause correlation) are told to
people but never acted on themselves: the action goes to the cause.

Critical means a page: a person must act now. A prediction about a pod that policy never disrupts
(``policy.never_disrupt_owners``: a Job's pod, a bare pod), and what a cordoned node reports, are
told as warnings. No action is decided in a protected namespace (kube-system, kube-public,
kube-node-lease, and what the ``safety.protected_namespaces`` patterns match): the rails would
refuse it, so policy advises; what happens there is told as a warning too (the platform's own
alerting pages on its components), unless ``policy.page_protected_namespaces``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from aiops.config.policy import NO_OWNER, LadderConfig, PolicyConfig, PolicyRule
from aiops.config.safety import namespace_protected
from aiops.engine.absent import DETECTOR as ABSENT_DETECTOR
from aiops.engine.facts import ClusterFacts, left_by_evacuation
from aiops.engine.ladder import ACT, NOTIFY, PREPARE, LadderState
from aiops.engine.predictions import FALSE_POSITIVE, ClosedPrediction, PredictionLedger
from aiops.model import ADVISE, Basis, Decision, Entity, EntityKind, Evidence, Finding, Mode, Resolve, Rung, Severity, most_cautious
from aiops.notify.alertmanager import INBOUND_DETECTOR

# Attributes that name the node an entity runs on, in order of preference.
NODE_ATTRIBUTES = ("node", "Hostname", "instance", "kubernetes_node")
# Actions that move everything off the node they target.
NODE_EVACUATING = frozenset({"evacuate_node"})
# Actions that delete or evict the pod they target.
POD_DISRUPTING = frozenset({"restart_pod"})
# Actions that add capacity to a workload: pointless while its own scale-up is on its way.
SCALING_UP = frozenset({"scale_ahead"})


class Policy:
    def __init__(
        self,
        config: PolicyConfig,
        mode: Mode,
        *,
        ladder: LadderState | None = None,
        ledger: PredictionLedger | None = None,
        protected_namespaces: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.mode = mode
        self.ladder = ladder
        self.ledger = ledger
        # safety.protected_patterns (fnmatch): the rails refuse every action there, so policy advises.
        self.protected_namespaces = tuple(protected_namespaces)

    def grade(self, finding: Finding) -> Finding:
        t = self.config.severity
        if finding.score >= t.critical:
            severity = Severity.CRITICAL
        elif finding.score >= t.warning:
            severity = Severity.WARNING
        else:
            severity = Severity.INFO
        lead = finding.lead_time
        if severity is Severity.WARNING and (finding.confirmed or (lead is not None and lead <= t.critical_lead_time)):
            # An imminent or already-observed failure outranks its raw score.
            severity = Severity.CRITICAL
        if severity is Severity.CRITICAL and any(fnmatchcase(finding.signal, p) for p in t.warning_at_most):
            severity = Severity.WARNING
        return replace(finding, severity=severity)

    def matches(self, rule: PolicyRule, finding: Finding) -> bool:
        if finding.cause is not None:
            return False  # explained by another finding; that one carries the action
        if finding.detector == ABSENT_DETECTOR:
            return False  # missing data is reported, never acted on
        if finding.detector == INBOUND_DETECTOR and (rule.detector != INBOUND_DETECTOR or not finding.confirmed):
            # Alerts from outside act only through rules written for them, and only once Prometheus
            # vouched for them (aiops.notify.verify): a "*" rule never matches a posted alert.
            return False
        if not (
            fnmatchcase(finding.detector, rule.detector)
            and fnmatchcase(finding.signal, rule.signal)
            and fnmatchcase(finding.entity.kind, rule.entity_kind)
        ):
            return False
        severity = finding.severity or Severity.INFO
        if severity.rank < rule.min_severity.rank:
            return False
        if rule.require_confirmed and not finding.confirmed:
            return False
        if not rule.act_on_forecasts and finding.predicted_failure_at is not None and not finding.confirmed:
            return False
        if rule.max_lead_time is not None and rule.ladder is None and not finding.confirmed:
            lead = finding.lead_time
            if lead is None or lead > rule.max_lead_time or lead < -timedelta(minutes=5):
                return False
        return True

    def target(self, rule: PolicyRule, finding: Finding) -> tuple[Entity, Resolve | None]:
        entity = finding.entity
        if rule.target == "node" and entity.kind != EntityKind.NODE:
            for attr in NODE_ATTRIBUTES:
                node = entity.attr(attr)
                if node:
                    return Entity(kind=EntityKind.NODE, name=node.split(":")[0]), None
            # The act stage resolves it from cluster state (pod -> spec.nodeName).
            return entity, Resolve.NODE
        if rule.target == "owner":
            return entity, Resolve.OWNER
        return entity, None

    def decide(
        self,
        findings: Sequence[Finding],
        *,
        now: datetime | None = None,
        closed: Sequence[ClosedPrediction] = (),
        facts: ClusterFacts | None = None,
    ) -> tuple[list[Finding], list[Decision]]:
        facts = facts or ClusterFacts()
        graded = [self.grade(f) for f in findings]
        now = now or (max((f.observed_at for f in graded), default=None))
        best: dict[tuple[str, str], Decision] = {}
        # The rule each finding matched (before an XID override), for how urgently it is told.
        matched: dict[str, PolicyRule | None] = {}
        for decision in self._rollbacks(closed):
            best[(decision.action, decision.target.key)] = decision
        for finding in sorted(graded, key=lambda f: (-f.score, f.key)):
            rule = matched[finding.id] = next((r for r in self.config.rules if self.matches(r, finding)), None)
            if rule is None:
                continue
            forced: Entity | None = None
            override = self._xid_override(rule, finding)
            if override is not None:
                rule, forced = override
            target, resolve = (forced, None) if forced is not None else self.target(rule, finding)
            if any(k[1] == target.key and k[0] == rule.action for k in best):
                continue  # a stronger finding already asked for this action on this target
            decided = self._decision(rule, finding, target, resolve, now)
            if decided is None:
                continue
            if _handled(decided, facts, self.protected_namespaces):
                # The cause was answered already (by aiops or a person): nothing left to do, but
                # what an evacuation left on its node for a human is still told, with why.
                left = _left_for_a_human(decided, facts, self.protected_namespaces)
                if left is None:
                    continue
                decided = left
            decided = self._protected_guard(self._in_flight_guard(self._owner_guard(decided, facts), facts))
            best.setdefault((decided.action, decided.target.key), decided)
        told = {f.id: t for f in graded if (t := self._urgency(f, matched[f.id], facts)) is not f}
        if told:
            graded = [told.get(f.id, f) for f in graded]
            best = {k: replace(d, finding=told[d.finding.id]) if d.finding.id in told else d for k, d in best.items()}
        return graded, list(best.values())

    def _urgency(self, finding: Finding, rule: PolicyRule | None, facts: ClusterFacts) -> Finding:
        """A page means a person must act now; rules match the graded risk, before this.

        - A prediction about a pod that policy never disrupts (a Job's pod, a bare pod) leaves
          nothing to do now: the remedy is off the table, and the job ends or its owner decides
          first. It is told as a warning, with its advice; a confirmed failure (OOMKilled) still pages.
        - A node that is cordoned now was taken out of service by a person (or by aiops): a planned
          reboot, a repair under way. What it reports meanwhile (NotReady) is told as a warning.
          One the cluster-autoscaler is removing reports its own removal (NotReady, then Unknown,
          as its instance goes): recorded, told to nobody (info), at whatever severity.
        - A protected namespace (kube-system) is the platform's: aiops never acts there, its
          components restart routinely, and the platform's own alerting pages on them. Even a
          confirmed failure there (kube-proxy crash-looping) is told as a warning, with advice.
        - A breach whose remedy is a scale-up that is already in flight (the model's new pods
          Pending or loading) has nobody to wake: the capacity is on its way. It is told as a
          warning; should the pods stay stuck past ``STARTING_SECONDS``, it pages.
        """
        entity = finding.entity
        if entity.kind == EntityKind.NODE and entity.name in facts.removing and finding.severity is not Severity.INFO:
            return replace(finding, severity=Severity.INFO)
        if finding.severity is not Severity.CRITICAL:
            return finding
        if (not self.config.page_protected_namespaces and entity.namespace
                and namespace_protected(self.protected_namespaces, entity.namespace)):
            return replace(finding, severity=Severity.WARNING)
        if entity.kind == EntityKind.NODE and entity.name in facts.cordoned:
            return replace(finding, severity=Severity.WARNING)
        if rule is not None and rule.action in SCALING_UP and facts.scale_up_in_flight(entity):
            return replace(finding, severity=Severity.WARNING)
        if finding.confirmed or entity.kind != EntityKind.POD:
            return finding
        if facts.owner_kind(entity) not in self.config.never_disrupt_owners:
            return finding
        return replace(finding, severity=Severity.WARNING)

    def _protected_guard(self, decision: Decision) -> Decision:
        """The rails refuse every action in a protected namespace (kube-system and the like, which
        restart things routinely): policy decides advice there, so the two agree."""
        namespace = decision.target.namespace
        if decision.action == ADVISE or not namespace or not namespace_protected(self.protected_namespaces, namespace):
            return decision
        return _advice_instead(
            decision,
            because=f"{decision.target.key} is in protected namespace {namespace}",
            why=f"protected namespace {namespace}",
            suggestion=f"look at {decision.target.key}; {decision.action} is never done in {namespace}",
        )

    def _decision(
        self, rule: PolicyRule, finding: Finding, target: Entity, resolve: Resolve | None, now: datetime | None
    ) -> Decision | None:
        basis = (
            Basis.INBOUND if finding.detector == INBOUND_DETECTOR
            else Basis.CONFIRMED if finding.confirmed else Basis.PREDICTED
        )
        action, params = rule.action, dict(rule.params)
        reason = _reason(rule, finding)
        rung: Rung | None = None
        step = ""
        if rule.ladder is not None and self.ladder is not None and now is not None:
            rung, rungs = self._climb(rule, rule.ladder, finding, target, now)
            if rung == NOTIFY:
                action = ADVISE
            elif rung == PREPARE:
                action = rule.ladder.prepare_action or rule.action
                params.update(rule.ladder.prepare_params)
            step = f"step {_rung_index(rung, rule.ladder)} of {rungs}: {_rung_text(rung, rule, finding)}"
            reason = f"{step}; {reason}"
        mode = most_cautious(self.mode, rule.max_mode)
        if rule.min_precision is not None and not finding.confirmed and self.ledger is not None and mode is Mode.AUTO:
            precision, judged = self.ledger.precision(finding.detector)
            if judged < rule.min_judged or precision is None or precision < rule.min_precision:
                mode = Mode.SUGGEST
                shown = "unmeasured" if precision is None else f"{precision:.2f}"
                reason += (
                    f" (held at suggest: {finding.detector} precision {shown} over {judged} judged predictions;"
                    f" the rule asks {rule.min_precision:.2f} over at least {rule.min_judged})"
                )
        return Decision(
            action=action, target=target, mode=mode, reason=reason, finding=finding, rule=rule.name, params=params,
            basis=basis, rung=rung, step=step, resolve=resolve,
        )

    def _xid_override(self, rule: PolicyRule, finding: Finding) -> tuple[PolicyRule, Entity | None] | None:
        """The remediation an XID calls for comes from ``policy.xid_remediation``, not from the rule
        that matched it: a contained ECC error (94) restarts its pod, it does not cordon the node."""
        xid = finding.evidence.facts.get("xid")
        if xid is None or finding.evidence.facts.get("sticky") or rule.action not in NODE_EVACUATING:
            return None
        action = self.config.xid_remediation.get(int(xid), ADVISE)
        if action == rule.action:
            return None
        target = None
        if action in POD_DISRUPTING:
            namespace, _, pod = str(finding.evidence.facts.get("pod", "")).rpartition("/")
            if pod:
                target = Entity(kind=EntityKind.POD, name=pod, namespace=namespace)
            else:
                action = ADVISE  # no pod known on that GPU: tell a person which one to restart
        # The node ladder (cordon first) is for node actions; another action is taken as it is.
        changed = rule.model_copy(update={"action": action, "ladder": None, "params": {}})
        return changed, target

    def _owner_guard(self, decision: Decision, facts: ClusterFacts) -> Decision:
        """A pod whose owner would not replace it (a Job's pod, a bare pod) is never disrupted by
        default: a restart kills the batch work, or the pod for good. People get advice instead."""
        if decision.action not in POD_DISRUPTING or decision.target.kind != EntityKind.POD:
            return decision
        kind = facts.owner_kind(decision.target)
        if kind is None or kind not in self.config.never_disrupt_owners:
            return decision
        owner = "no controller (a bare pod: nothing would recreate it)" if kind == NO_OWNER else (
            f"a {kind} (a restart would kill the batch work)")
        return _advice_instead(
            decision,
            because=f"{decision.target.key} is owned by {owner}",
            why=f"owned by {owner}",
            suggestion=f"tell the owner of {decision.target.key}; {decision.action} is not done automatically",
            instead="advice for its owner instead",
        )

    def _in_flight_guard(self, decision: Decision, facts: ClusterFacts) -> Decision:
        """A workload whose new pods are on their way up (Pending while the cluster-autoscaler
        brings a node, or loading a model) is already scaling: another replica now would queue
        behind them, and a second node for it would be one too many. People get advice instead;
        a pod starting for longer than ``STARTING_SECONDS`` is stuck and no longer holds it back."""
        if decision.action not in SCALING_UP:
            return decision
        coming = facts.scale_up_in_flight(decision.target)
        if not coming:
            return decision
        since = min(p.since for p in coming)
        pods = ", ".join(p.pod.name for p in coming)
        what = f"a scale-up of {decision.target.key} is already in flight ({len(coming)} pod(s) starting since " \
               f"{since:%H:%M} UTC: {pods})"
        return _advice_instead(
            decision,
            because=what,
            why=what,
            suggestion=f"wait for the starting pods of {decision.target.key}; if they stay Pending, "
                       "look at the cluster-autoscaler and the node pool's quota",
        )

    def _climb(
        self, rule: PolicyRule, ladder: LadderConfig, finding: Finding, target: Entity, now: datetime
    ) -> tuple[Rung, int]:
        assert self.ladder is not None
        rungs = 2 if ladder.skip_prepare else 3
        lead = finding.lead_time
        if finding.confirmed:
            wanted = ACT
        elif lead is not None and lead <= ladder.act_within and finding.score >= ladder.act_score:
            wanted = ACT
        elif not ladder.skip_prepare and lead is not None and lead <= ladder.prepare_within and finding.score >= ladder.prepare_score:
            wanted = PREPARE
        elif lead is None and finding.score >= ladder.act_score:
            # A non-forecasting detector (GPU health warning signs): harden one rung at a time.
            wanted = ACT
        elif lead is None and not ladder.skip_prepare and finding.score >= ladder.prepare_score:
            wanted = PREPARE  # a risk without a forecast (pending row remaps): prepare, then wait
        else:
            wanted = NOTIFY
        if ladder.skip_prepare and wanted == PREPARE:
            wanted = NOTIFY
        step = self.ladder.climb(rule.name, target, finding.entity.key, wanted, jump=finding.confirmed, now=now)
        rung = step.rung
        if ladder.skip_prepare and rung == PREPARE:
            rung = self.ladder.climb(rule.name, target, finding.entity.key, ACT, jump=True, now=now).rung
        return rung, rungs

    def _rollbacks(self, closed: Sequence[ClosedPrediction]) -> list[Decision]:
        """Undo the preparation of predictions that turned out false; end their episodes."""
        if self.ladder is None:
            return []
        out: list[Decision] = []
        rules = {r.name: r for r in self.config.rules}
        for c in closed:
            for episode in self.ladder.close(c.entity):
                rule = rules.get(episode.rule)
                if c.outcome != FALSE_POSITIVE or rule is None or rule.ladder is None or episode.rung < PREPARE:
                    continue
                target = episode.target
                evidence_finding = Finding(
                    detector=c.detector, signal=c.signal, entity=target, score=0.0,
                    observed_at=c.opened_at,
                    evidence=Evidence(f"false positive: {c.signal} on {c.entity} recovered without a failure",
                                      facts={"outcome": c.outcome}),
                )
                out.append(Decision(
                    action=rule.ladder.prepare_action or rule.action,
                    target=target,
                    mode=most_cautious(self.mode, rule.max_mode),
                    reason=f"prediction by {c.detector} on {c.entity} passed its horizon without a failure: "
                           "rolling back the preparation (false positive counted)",
                    finding=evidence_finding,
                    rule=rule.name,
                    params=dict(rule.ladder.prepare_params),
                    basis=Basis.PREDICTED,
                    restore=True,
                ))
        return out


def _handled(decision: Decision, facts: ClusterFacts, protected: Sequence[str]) -> bool:
    """An evacuation whose node is already cordoned and drained, or that was cordoned after the
    cause began and is back in service (repaired), has nothing left to do; nor has a restart of a
    pod that is gone, or that restarted after the XID that asked for it (94). A sticky
    gauge (the last XID) keeps its finding alive long after that; the decision must stop with its cause."""
    if decision.action in POD_DISRUPTING and decision.target.kind == EntityKind.POD:
        if facts.gone(decision.target):
            return True
        # An XID hit the application once: a restart after it answers it. (A crash loop's
        # restarts are its symptom, not its answer: only an XID's cause counts here.)
        began = _since(decision) if "xid" in decision.finding.evidence.facts else None
        return began is not None and facts.restarted_after(decision.target, began)
    if decision.action not in NODE_EVACUATING or decision.target.kind != EntityKind.NODE or decision.restore:
        return False
    node = decision.target.name
    if facts.drained(node, predicted=decision.basis is Basis.PREDICTED, protected=protected):
        return True
    began = _since(decision)
    cordoned = facts.cordoned_at.get(node)
    if began is None or cordoned is None or node in facts.cordoned:
        return False
    return cordoned >= began


def _left_for_a_human(decision: Decision, facts: ClusterFacts, protected: Sequence[str]) -> Decision | None:
    """Advice naming the pods an evacuation leaves on its drained node (None: it left none), so
    that what stays there, and why, is still told while the finding lasts."""
    if decision.action not in NODE_EVACUATING or decision.target.kind != EntityKind.NODE:
        return None
    node = decision.target.name
    predicted = decision.basis is Basis.PREDICTED
    if not facts.drained(node, predicted=predicted, protected=protected):
        return None
    left = facts.left_on(node, predicted=predicted, protected=protected)
    if not left:
        return None
    pods = ", ".join(f"{p.namespace}/{p.name} ({_why_left(facts.owner_kind(p), predicted)})" for p in left)
    return _advice_instead(
        decision,
        because=f"node {node} is cordoned and drained; left for a human: {pods}",
        why=f"node {node} is cordoned and drained; left for a human: {pods}",
        suggestion=f"decide about the pods left on node {node} (let them finish, or move them)",
    )


def _why_left(kind: str | None, predicted: bool) -> str:
    if not left_by_evacuation(kind, predicted=predicted):
        return "in a protected namespace: aiops never touches it"
    if kind == NO_OWNER:
        return "no controller: nothing would recreate it"
    return f"owned by a {kind}, which would not replace it: its work would restart on a failure only predicted"


def _since(decision: Decision) -> datetime | None:
    """When the decision's cause began (an XID's ``since``), None when the finding does not say."""
    since = decision.finding.evidence.facts.get("since")
    if not since:
        return None
    try:
        return datetime.fromisoformat(str(since))
    except ValueError:
        return None


def _rung_index(rung: int, ladder: LadderConfig) -> int:
    return 2 if ladder.skip_prepare and rung == ACT else rung


def _rung_text(rung: int, rule: PolicyRule, finding: Finding) -> str:
    at = finding.predicted_failure_at.strftime("%H:%M UTC") if finding.predicted_failure_at else None
    if rung == NOTIFY:
        when = f" (failure expected {at})" if at else ""
        return f"watching; {rule.action} follows if the prediction hardens{when}"
    if rung == PREPARE:
        when = f"at {at} unless signals recover" if at else "if the failure is confirmed or the risk hardens"
        return f"preparing; {rule.action} {when}"
    # The action is named by whoever shows the step (the action line): not here again.
    if finding.confirmed:
        return "acting (failure confirmed)"
    return "acting" + (f" before the predicted failure at {at}" if at else " (risk hardened)")


def _reason(rule: PolicyRule, finding: Finding) -> str:
    what = "confirmed" if finding.confirmed else f"score {finding.score:.2f}"
    lead = finding.lead_time
    when = f", predicted failure in {_human(lead)}" if lead is not None else ""
    return f"rule {rule.name}: {finding.detector} on {finding.signal} ({what}{when}): {finding.evidence.summary}"


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "the past"
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"


def _advice_instead(decision: Decision, *, because: str, why: str, suggestion: str,
                    instead: str = "advice instead") -> Decision:
    """``decision`` turned into advice: the action it would have taken is named, and why not."""
    return replace(
        decision,
        action=ADVISE,
        reason=f"{decision.reason}. Not {decision.action}: {because}; {instead}",
        params={
            "why": f"{decision.finding.evidence.summary}; not {decision.action}: {why}",
            "suggestion": suggestion,
        },
    )
