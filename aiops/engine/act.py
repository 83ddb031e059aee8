"""The act stage: decisions -> plans -> results, through the one guarded writer.

Per cycle: close the loop on earlier actions (healed / not healed → an escalation result); read
one :class:`ClusterView` when something is to be planned; undo what is due (uncordon, restore
replicas); plan and apply this cycle's decisions; resume in-flight multi-cycle actions (an
evacuation waiting for a PDB). Judging, undoing and resuming happen on the leader only; a
follower still plans its decisions, and the writer refuses them (rail ``leader``). Sharded, "the
leader" is per entity (:meth:`Actor.holds`): a replica judges, undoes and resumes only what is
about the shards it holds now, and its writer refuses, right before every write, a decision
whose shard it no longer holds. What it started in a shard it handed back is the new holder's,
who adopts it from the action ledger. When it takes back a shard (or the leader Lease) that
another replica held since, it forgets what it had in flight there and the outcomes it had not
judged (:meth:`Actor._take_over`): the other may have finished, given up on or undone the action,
and a stale record was resumed past the rails that gate starting one. It adopts what is
unfinished from the ledger, like any new holder. A confirmed failure continues an evacuation begun on its
prediction (which held back the Job pods, or only cordoned) at once, rather than as a new action
after the cooldown; so does the ladder's act rung the cordon of its prepare rung, while it stands.
Remediations only plan; :class:`GuardedWriter` decides whether and how to write.

A degraded cycle (an earlier stage failed) acts on nothing and judges nothing: a finding missing
from a partial picture is not a healed one. Kubernetes API trouble in this stage is reported in
:attr:`Actor.errors` (the pipeline marks the cycle degraded) and never turns into an action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from aiops import metrics, plugins
from aiops.config import AiopsConfig
from aiops.engine.leader import LeaseElector
from aiops.engine.shards import ShardLeases, shard_of
from aiops.engine.outcomes import HEALED, NOT_HEALED, PENDING, Adoption, OutcomeTracker
from aiops.engine.rails.kill_switch import KillSwitch
from aiops.engine.safety import (
    DISRUPTION_REASON,
    EVENT_REASON,
    VERDICT_REASON,
    GuardedWriter,
    IsSilenced,
    effective_mode,
)
from aiops.kube.client import build_api_client, request_timeout
from aiops.kube.errors import KubeApiError
from aiops.kube.plan import CORDON_DECISION, CORDONED_BY, SCALE_AHEAD_DECISION, StagedPlan, waiting_of
from aiops.kube.read import (
    LedgerRecord,
    read_action_ledger,
    read_cluster_view,
    read_configmap_value,
    read_nodes,
    read_verdicts,
    VerdictRecord,
)
from aiops.kube.view import ClusterView, NodeInfo
from aiops.kube.writer import KubeWriter
from aiops.model import (
    ADVISE,
    ActionResult,
    ActionStatus,
    Basis,
    Decision,
    Entity,
    EntityKind,
    Finding,
    Mode,
    Plan,
    Rung,
    StageError,
)
from aiops.notify import formatting
from aiops.plugins import Remediation
from aiops.state import Store
from aiops.state.books import InFlight
from aiops.state.codec import decision_from_json

log = logging.getLogger(__name__)


class Actor:
    """The act stage, as the pipeline uses it: ``from_config``, ``start``, ``act``, ``close``,
    ``is_leader`` (for /metrics and /readyz) and ``errors`` (API trouble of the last ``act``: the
    pipeline adds them to the cycle's errors, which marks the cycle degraded)."""

    def __init__(
        self,
        config: AiopsConfig,
        store: Store,
        *,
        api: Any | None = None,
        elector: LeaseElector | ShardLeases | None = None,
        is_silenced: IsSilenced | None = None,
        read_view: Callable[[datetime], ClusterView] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.api = api
        self.elector = elector
        self._remediations: dict[str, Remediation] = {}
        timeout = request_timeout(config.kubernetes)
        kube = KubeWriter(api, timeout=timeout, dry_run=config.safety.dry_run) if api is not None else None
        ks = config.safety.kill_switch
        ks_namespace = ks.configmap_namespace or config.kubernetes.own_namespace
        namespaces = tuple(config.kubernetes.watch_namespaces)
        read_cm: Callable[[], str | None] | None = None
        read_ledger: Callable[[], Sequence[LedgerRecord]] | None = None
        live_nodes: Callable[[], Sequence[NodeInfo]] | None = None
        self._read_verdicts: Callable[[], Sequence[VerdictRecord]] | None = None
        if api is not None:

            def read_cm() -> str | None:
                return read_configmap_value(api, ks_namespace, ks.configmap_name, ks.configmap_key, timeout=timeout)

            def read_ledger() -> Sequence[LedgerRecord]:
                return read_action_ledger(
                    api, reason=EVENT_REASON, disruption_reason=DISRUPTION_REASON, timeout=timeout,
                    namespaces=namespaces,
                )

            def live_nodes() -> Sequence[NodeInfo]:
                return read_nodes(api, timeout=timeout)

            if config.safety.emit_events:

                def verdicts() -> Sequence[VerdictRecord]:
                    return read_verdicts(api, reason=VERDICT_REASON, timeout=timeout, namespaces=namespaces)

                self._read_verdicts = verdicts

        self.writer = GuardedWriter(
            config.safety,
            store,
            kube,
            leads=self.leads,
            kill_switch=KillSwitch(ks, read_cm, namespace=ks_namespace, store=store),
            is_silenced=is_silenced,
            read_ledger=read_ledger if config.safety.emit_events else None,
            reporter=elector.identity if elector is not None else "aiops",
            # Sharded: a decision spends the budget share of its finding's shard.
            shard_of=lambda d: shard_of(d.finding.entity, config.sharding.shards),
            shards=config.sharding.shards,
            read_nodes=live_nodes,
            disruption_guard=elector.disruption_guard if isinstance(elector, ShardLeases) else None,
        )
        self.outcomes = OutcomeTracker(store, config.safety, self.writer.breaker)
        if read_view is None and api is not None:

            def read_view(now: datetime) -> ClusterView:
                return read_cluster_view(api, now=now, timeout=timeout, namespaces=namespaces)

        self._read_view = read_view
        self.errors: list[StageError] = []
        self._terms: dict[int, int] = {}  # shard (0: the leader Lease) -> the Lease term last seen
        # Look for what another replica left to judge or undo (verdict Events, marks on the
        # targets) on the next cycle that leads: after a start, and after each take-over (:meth:`_inherit`).
        self._inheritance_unread = True

    @classmethod
    def from_config(cls, config: AiopsConfig, store: Store, *, is_silenced: IsSilenced | None = None) -> Actor:
        """Builds the Kubernetes client and the elector when ``kubernetes.enabled``.

        ``is_silenced`` is any callable ``labels -> bool``, e.g.
        ``aiops.notify.alertmanager.AlertmanagerClient(url).is_silenced``.
        Raises :class:`aiops.kube.client.KubeConfigError` when the credentials cannot be loaded.
        """
        api = build_api_client(config.kubernetes) if config.kubernetes.enabled else None
        elector: LeaseElector | ShardLeases | None = None
        if api is not None and config.sharding.shards > 1:
            elector = ShardLeases.from_config(api, config)  # one Lease per shard instead of one leader
        elif api is not None and config.kubernetes.leader_election.enabled:
            elector = LeaseElector.from_config(api, config.kubernetes)
        return cls(config, store, api=api, elector=elector, is_silenced=is_silenced)

    def start(self) -> None:
        if self.elector is not None:
            self.elector.start()

    def close(self) -> None:
        if self.elector is not None:
            self.elector.stop(release=True)
        if self.api is not None:
            self.api.close()
        self._remediations.clear()

    @property
    def is_leader(self) -> bool:
        """Followers keep detecting and notifying; only the leader writes. Sharded: whether this
        replica holds any shard (for /metrics, /readyz and notifying), not whether it may act on a
        given entity: that is :meth:`holds`."""
        return self.elector.is_leader if self.elector is not None else True

    def holds(self, entity: Entity) -> bool:
        """Whether this replica may act on ``entity`` now: it holds the leader Lease or, sharded,
        the Lease of ``entity``'s shard (renewed within the renew deadline, read at this moment)."""
        if isinstance(self.elector, ShardLeases):
            return self.elector.owns(entity)
        return self.is_leader

    def _shard(self, entity: Entity) -> int:
        return shard_of(entity, self.config.sharding.shards) if isinstance(self.elector, ShardLeases) else 0

    def _take_over(self) -> frozenset[int]:
        """The shards held now (0: the leader Lease). Of each one taken after another replica held
        it (a new :attr:`LeaseElector.term`), the actions in flight and the pending judgments are
        handed over (:meth:`GuardedWriter.hand_over`, :meth:`OutcomeTracker.hand_over`)."""
        if self.elector is None:
            return frozenset({0})
        terms = self.elector.held_terms()
        taken = {s for s, term in terms.items() if self._terms.get(s, 0) != term}
        if taken:
            for flight in self.writer.in_flight():
                if self._shard(flight.decision.finding.entity) in taken:
                    log.info("in-flight action handed over", extra={"target": flight.decision.target.key})
                    self.writer.hand_over(flight.decision)
            self.outcomes.hand_over(lambda e: self._shard(e) in taken)
            self._inheritance_unread = True
        self._terms.update(terms)
        return frozenset(terms)

    def leads(self, decision: Decision) -> bool:
        """The writer's leader rail: may ``decision`` be written now (the shard of its finding's
        entity, the same one the pipeline filters decisions and the budget share by)?"""
        return self.holds(decision.finding.entity)

    def remediation(self, name: str) -> Remediation:
        if name not in self._remediations:
            self._remediations[name] = plugins.instantiate(plugins.REMEDIATIONS, name)
        return self._remediations[name]

    # -- the stage ---------------------------------------------------------------------------
    def act(
        self,
        decisions: Sequence[Decision],
        *,
        findings: Sequence[Finding],
        degraded: bool,
        now: datetime,
        unseen: Mapping[str, str] | None = None,
    ) -> list[ActionResult]:
        """Judge, undo and apply for one cycle. ``unseen``: the entities nothing is measured on this
        cycle, by key, with what says so (their findings' absence is not health), as the pipeline
        composed them (:func:`aiops.engine.correlate.unseen_entities`)."""
        self.errors = []
        self.writer.begin_cycle(now)
        self.outcomes.prune(now)
        metrics.LEADER.set(1 if self.is_leader else 0)
        if degraded:
            return [
                ActionResult(
                    d.id,
                    d.action,
                    d.target,
                    ActionStatus.SKIPPED,
                    "cycle degraded: no action on a partial picture",
                    at=now,
                )
                for d in decisions
            ]
        self.writer.export_gauges(now)
        results: list[ActionResult] = []
        leader = self.is_leader  # followers did not act, so they have nothing to judge, undo or resume
        unseen = unseen or {}  # absent findings about these prove nothing
        # Sharded: only what is about the shards held now. Another shard's findings are not in this
        # replica's cycle (their absence is not health) and its actions are its holder's to continue.
        # A shard taken in the middle of this stage waits for the next cycle (and its _take_over).
        held = self._take_over()

        def mine(entity: Entity) -> bool:
            return self._shard(entity) in held and self.holds(entity)

        restores = self.outcomes.restores_due(findings, now, unseen, mine=mine) if leader else []
        inflight = {
            (f.decision.action, f.decision.target.key): f
            for f in self.writer.in_flight()
            if mine(f.decision.finding.entity)
        }

        # The cluster is read only when something needs it: a full list per cycle is not free.
        view: ClusterView | None = None
        judge_needs_view = leader and self.outcomes.needs_owners()
        # Only a replica that would write inherits: one in dry run, observe or suggest mode would
        # "restore" an undo (or propose it) every cycle, and judges nothing it did not apply.
        adopting = leader and self._inheritance_unread and not self.writer.dry_run and self.config.safety.mode is Mode.AUTO
        if self._read_view is not None and (
            decisions or restores or (leader and inflight) or judge_needs_view or adopting
        ):
            try:
                view = self._read_with_retry(now)
            except KubeApiError as exc:
                # Nothing is judged or planned on a missing picture.
                self.errors.append(StageError("act", f"cannot read the cluster state: {exc}", temporary=exc.temporary))
                return [
                    ActionResult(
                        d.id,
                        d.action,
                        d.target,
                        ActionStatus.DEFERRED,
                        f"cluster state unreadable, retrying next cycle: {exc}",
                        at=now,
                    )
                    for d in decisions
                ]
        if adopting and view is not None:
            results += self._inherit(view, now, mine)
        if leader:
            results += self._judge(findings, now, view, unseen, mine)

        for restore in restores:
            undo = self._undo(restore, view, now)
            if undo is not None:
                results.append(undo)
        handled: set[tuple[str, str]] = set()
        for decision in decisions:
            results.append(_with_step(decision, self._one(decision, view, now, inflight, handled)))
        if leader:
            for key, flight in inflight.items():
                if key not in handled:
                    results.append(self._run(flight.decision, view, now, flight))
        self.errors += [StageError("act", str(e), temporary=e.temporary) for e in self.writer.errors]
        self.writer.export_gauges(now)
        return results

    def _read_with_retry(self, now: datetime) -> ClusterView:
        assert self._read_view is not None
        retrying = Retrying(
            stop=stop_after_attempt(self.config.safety.api_attempts),
            wait=wait_exponential(multiplier=0.1, max=self.config.safety.api_backoff_max.total_seconds()),
            retry=retry_if_exception(lambda e: isinstance(e, KubeApiError) and e.temporary),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._read_view(now)
        raise AssertionError("unreachable")  # pragma: no cover

    def _one(
        self,
        decision: Decision,
        view: ClusterView | None,
        now: datetime,
        inflight: Mapping[tuple[str, str], InFlight],
        handled: set[tuple[str, str]],
    ) -> ActionResult:
        try:
            decision = self._resolve(decision, view)
        except LookupError as exc:
            return self._advise(decision, view, now, str(exc))
        key = (decision.action, decision.target.key)
        handled.add(key)
        flight = inflight.get(key) or self._adopt(decision, view, now) or self._continued(decision, view, now)
        if flight is not None:
            if self._widens(decision, flight.decision):
                # Confirmed while a prediction's evacuation is under way: it carries on as confirmed.
                flight = replace(flight, decision=decision)
            return self._run(flight.decision, view, now, flight)
        return self._run(decision, view, now, None)

    def _widens(self, decision: Decision, earlier: Decision) -> bool:
        """``decision`` confirms the failure ``earlier`` only predicted, and its action holds back
        on a prediction what a confirmed failure calls for (the Job pods an evacuation leaves)."""
        return (
            decision.basis is Basis.CONFIRMED
            and earlier.basis is Basis.PREDICTED
            and not decision.restore
            and self.remediation(decision.action).continued_on_confirmation
        )

    def _continued(self, decision: Decision, view: ClusterView | None, now: datetime) -> InFlight | None:
        """The action taken on a prediction (the last one on the target, within the cooldown) is
        continued, when that action held something back, by a confirmed failure, or by the act
        rung of the ladder whose prepare rung began it while that preparation still stands (the
        ladder climbs a rung a cycle: the cordon's cooldown would hold the evacuation until the
        failure had come). The same action, its budget unit spent when the prediction began it,
        so the cooldown does not hold it off. The rails that apply to every write still do (kill
        switch, scope, per-workload cap, blast radius, breaker). Nothing left that the rails
        allow: nothing to continue."""
        climbed = decision.basis is Basis.PREDICTED and decision.rung is Rung.ACT
        if (decision.basis is not Basis.CONFIRMED and not climbed) or decision.restore or not self.leads(decision):
            return None
        try:
            remediation = self.remediation(decision.action)
            if not remediation.continued_on_confirmation:
                return None
            began = self.writer.started_on_a_prediction(decision, now - self.config.safety.cooldown)
            if began is None:
                return None
            if climbed and (began.rung is not Rung.PREPARE or not remediation.prepared(decision, view)):
                return None
            plan = remediation.plan(decision, view)
        except Exception:  # an unknown action or a broken plan is handled by the normal path
            return None
        scoped, _ = self.writer.scope(plan, view)
        if not plan.feasible or not (scoped.mutations or waiting_of(scoped)):
            return None
        return InFlight(decision, began.at, ())

    def _adopt(self, decision: Decision, view: ClusterView | None, now: datetime) -> InFlight | None:
        """A multi-cycle action the previous leader started and could not finish (its Event is in
        the ledger): continue it from the cluster's state instead of waiting out its cooldown.
        Only plans that are staged can be continued; a finished one-shot action keeps its cooldown."""
        if decision.restore or not self.leads(decision) or self.writer.dry_run:
            return None
        started = self.writer.started_by_a_peer(decision, now - self.config.safety.evacuation_timeout)
        if started is None:
            return None
        try:
            staged = isinstance(self.remediation(decision.action).plan(decision, view), StagedPlan)
        except Exception:  # an infeasible or broken plan is handled by the normal path
            return None
        return InFlight(decision, started, ()) if staged else None

    def _inherit(self, view: ClusterView, now: datetime, mine: Callable[[Entity], bool]) -> list[ActionResult]:
        """What another replica left to judge or to undo, about the shards held now. Its state file
        went with it (an ``emptyDir``: a rolling update of aiops), or it handed this shard back.

        - Its actions still pending in their verdict Events are judged here, from their Events'
          decision, time and scope (:meth:`OutcomeTracker.track`): a "not healed" is escalated.
          Only within ``verify_within`` of the action: past it no replica watched it through.
        - Its undos, from the marks on their targets: a workload it scaled ahead
          (:data:`SCALE_AHEAD_DECISION`) and a node it cordoned (:data:`CORDON_DECISION`) carry
          the decision, taken over as far as its verdict allows (:meth:`OutcomeTracker.adopt_undo`):
          the newest verdict on that action and target since. One still watched follows from that
          watch; one not converged yet (an evacuation draining) from whoever continues it.

        A record that cannot be read, or an undo left for a human, is logged (the kubectl commands
        in docs/deploy.md find the marks); an undo left because its verdict cannot be known is also
        suggested to people, with its command (nobody was told, as for one that did not heal).
        Verdict Events that cannot be read now: next cycle."""
        try:
            records = self._read_verdicts() if self._read_verdicts is not None else []
        except KubeApiError as exc:
            log.warning("verdicts unreadable; taken over next cycle", extra={"error": str(exc)})
            return []
        if self.writer.sync_ledger() is not None:
            log.warning("action ledger unreadable; taken over next cycle")
            return []
        judged = {r.decision_id for r in records if r.verdict != PENDING}
        self._count_verdicts(records, now, mine)
        for r in records:
            if r.verdict != PENDING or r.decision_id in judged or r.decision is None:
                continue
            if now - r.at >= self.config.safety.verify_within:
                # Its window passed with no replica watching: a verdict now would rest on one
                # cycle's findings (healed and back again reads "not healed"). Lost, and logged.
                log.warning("verdict lost: no replica watched the action through its window",
                            extra={"decision": r.decision_id})
                continue
            decision = self._adoptable(r.decision, f"verdict Event of {r.decision_id}", mine)
            if decision is not None and self.outcomes.track(decision, r.at, r.scope):
                log.info("verdict taken over from another replica", extra={"action": decision.action,
                                                                           "target": decision.target.key})
        told: list[ActionResult] = []
        marked = [(h.entity, h.annotations.get(SCALE_AHEAD_DECISION)) for h in view.hpas]
        marked += [(w.entity, w.annotations.get(SCALE_AHEAD_DECISION)) for w in view.workloads.values()]
        marked += [
            (n.entity, n.annotations.get(CORDON_DECISION))
            for n in view.nodes.values()
            if n.unschedulable and n.annotations.get(CORDONED_BY) == "aiops"  # not uncordoned since
        ]
        for entity, text in marked:
            decision = self._adoptable(text, entity.key, mine) if text is not None else None
            if decision is None:
                continue
            try:
                unjudged = self.remediation(decision.action).undo_without_verdict
            except plugins.PluginError:  # a mark of a newer aiops, or of a plugin not installed here
                log.warning("undo mark of an unknown action left alone", extra={"target": entity.key})
                continue
            # Its verdict: the newest given on that action and target since (an evacuation another
            # replica continued converges under that replica's decision, the mark keeps the first).
            since = [r for r in records if r.decision_id == decision.id or (
                (r.action, r.target) == (decision.action, decision.target.key) and r.at >= decision.finding.observed_at)]
            given = [r for r in since if r.verdict != PENDING]
            watched = any(now - r.at < self.config.safety.verify_within for r in since)
            if not given and watched:
                continue  # watched now (taken over above, or by this replica before): its undo follows
            if not since and self.writer.admitted(decision):
                continue  # not converged: whoever continues it watches it once it does
            verdict = max(given, key=lambda r: r.at).verdict if given else None
            adopted = self.outcomes.adopt_undo(decision, now, verdict=verdict, unjudged=unjudged)
            if adopted in (Adoption.LEFT, Adoption.UNKNOWN):
                log.info("undo left for a human", extra={"action": decision.action, "target": entity.key})
                if adopted is Adoption.UNKNOWN:
                    told.append(self._left_for_a_human(decision, entity, view, now))
            elif adopted is not None:
                log.info("undo adopted from another replica",
                         extra={"action": decision.action, "target": entity.key, "adoption": adopted.value})
        self._inheritance_unread = False
        return told

    def _left_for_a_human(self, decision: Decision, entity: Entity, view: ClusterView, now: datetime) -> ActionResult:
        """The suggestion to undo by hand what another replica did and this one cannot judge."""
        try:
            undo: Plan | None = self.remediation(decision.action).plan(replace(decision, restore=True, resolve=None), view)
        except Exception:  # a broken plan leaves the message without its command
            undo = None
        detail = (
            f"{entity.kind} {entity.name} stays as {decision.action} left it (at "
            f"{decision.finding.observed_at:%H:%M UTC}, for {decision.finding.key}): the aiops replica that knew "
            "whether that healed was replaced, and its verdict is gone. Undo it by hand once it is healthy."
        )
        return ActionResult(f"{decision.id}-undo", decision.action, entity, ActionStatus.SUGGESTED, detail, plan=undo, at=now)

    def _count_verdicts(self, records: Sequence[VerdictRecord], now: datetime, mine: Callable[[Entity], bool]) -> None:
        """The circuit breaker as the replica before this one left it: its verdicts counted in the
        order they were given, each once (:meth:`OutcomeTracker.count_verdict`). An open breaker, "a human should
        look", must not close because aiops was upgraded. Verdict Events last as long as the
        cluster keeps events (an hour by default): a breaker opened before that is not known."""
        opened = False
        for r in sorted((r for r in records if r.verdict != PENDING and r.decision is not None), key=lambda r: r.at):
            assert r.decision is not None
            if self._adoptable(r.decision, f"verdict Event of {r.decision_id}", mine) is not None:
                opened |= self.outcomes.count_verdict(r.decision_id, r.verdict == HEALED, r.at)
        if opened and self.writer.breaker.is_open(now):
            log.warning("circuit breaker open, as the replica before this one left it",
                        extra={"until": str(self.writer.breaker.opened_until())})

    def _adoptable(self, text: str, where: str, mine: Callable[[Entity], bool]) -> Decision | None:
        """The decision another replica recorded, if this replica may take it over: about a shard it
        holds, and not capped below auto (``safety.action_modes``: a human judges and undoes it)."""
        try:
            decision = decision_from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable decision record left alone", extra={"target": where, "error": str(exc)})
            return None
        if effective_mode(decision, self.config.safety) is not Mode.AUTO or not mine(decision.finding.entity):
            return None
        return decision

    def _resolve(self, decision: Decision, view: ClusterView | None) -> Decision:
        """Turn a policy target ("node"/"owner" of the finding's entity) into a real object."""
        how = decision.resolve
        if how is None:
            return decision
        if view is None:
            raise LookupError(f"the {how} of {decision.target.key} needs the cluster state (kubernetes is disabled)")
        target = view.resolve(decision.target, how.value)
        if target is None:
            raise LookupError(f"could not find the {how} of {decision.target.key} in the cluster")
        return replace(decision, target=target, resolve=None)

    def _run(
        self, decision: Decision, view: ClusterView | None, now: datetime, flight: InFlight | None
    ) -> ActionResult:
        try:
            plan = self.remediation(decision.action).plan(decision, view)
        except Exception as exc:  # a broken plugin fails its own decision, never the stage
            log.exception("remediation %s failed to plan", decision.action)
            return ActionResult(
                decision.id, decision.action, decision.target, ActionStatus.FAILED, f"planning failed: {exc}", at=now
            )
        if not plan.feasible:
            if flight is not None:
                self.writer.finish(decision)
            return self._advise(decision, view, now, plan.reason_if_not, plan)
        if flight is not None:
            scoped, _ = self.writer.scope(plan, view)
            if not scoped.mutations and not waiting_of(scoped):
                # Converged: every write went through and nothing is left waiting.
                self.writer.finish(decision)
                self._track(decision, view, now)
                return ActionResult(
                    decision.id,
                    decision.action,
                    plan.target,
                    ActionStatus.APPLIED,
                    f"completed: {plan.summary}",
                    plan=plan,
                    at=now,
                )
        result = self.writer.execute(decision, plan, view, now, inflight=flight)
        if result.status is ActionStatus.APPLIED:
            self._track(decision, view, now)
        return result

    def _undo(self, decision: Decision, view: ClusterView | None, now: datetime) -> ActionResult | None:
        """Undo a healed action (uncordon, restore replicas); None while it must wait, quietly."""
        try:
            plan = self.remediation(decision.action).plan(decision, view)
        except Exception as exc:
            log.exception("remediation %s failed to plan its undo", decision.action)
            return ActionResult(
                decision.id,
                decision.action,
                decision.target,
                ActionStatus.FAILED,
                f"undo planning failed: {exc}",
                at=now,
            )
        if not plan.mutations and waiting_of(plan):
            return None  # e.g. the node is not Ready yet: ask again next cycle
        if not plan.feasible or not plan.mutations:
            # Nothing to undo (already schedulable, cordoned by a human, not scaled by aiops): done.
            self.outcomes.mark_restored(decision)
            return ActionResult(
                decision.id,
                decision.action,
                plan.target,
                ActionStatus.OBSERVED,
                f"no undo needed: {plan.summary}",
                plan=plan,
                at=now,
            )
        result = self.writer.execute(decision, plan, view, now)
        if result.status is ActionStatus.APPLIED:
            self.outcomes.mark_restored(decision)
        return result

    def _advise(
        self, decision: Decision, view: ClusterView | None, now: datetime, reason: str, failed: Plan | None = None
    ) -> ActionResult:
        """No safe action: tell a human what to do instead."""
        params = dict(decision.params)
        if failed is not None and failed.command:
            params.setdefault("command", failed.command)
        advice_decision = replace(decision, action=ADVISE, params=params, restore=False, resolve=None)
        try:
            plan = self.remediation(ADVISE).plan(advice_decision, view)
        except Exception as exc:
            return ActionResult(
                decision.id,
                decision.action,
                decision.target,
                ActionStatus.FAILED,
                f"no safe action ({reason}); advice failed: {exc}",
                at=now,
            )
        return ActionResult(
            decision.id,
            decision.action,
            decision.target,
            ActionStatus.SUGGESTED,
            f"no safe {decision.action}: {reason.rstrip('. ')}; instead, {plan.summary}",
            plan=plan,
            at=now,
        )

    def _judge(
        self,
        findings: Sequence[Finding],
        now: datetime,
        view: ClusterView | None,
        unseen: Mapping[str, str],
        mine: Callable[[Entity], bool],
    ) -> list[ActionResult]:
        """Close the loop: an action that did not heal is escalated to a human (a FAILED result)."""

        def owner_of(entity: Entity) -> str | None:
            owner = view.owner_for(entity) if view is not None else None
            return owner.key if owner is not None else None

        results: list[ActionResult] = []
        owners = owner_of if view is not None else None
        for outcome in self.outcomes.review(findings, now, owners, unseen, mine=mine):
            # Written down: the replica after this one judges nothing twice (and people see it).
            self.writer.record_verdict(outcome.decision, view, now, outcome.status, outcome.detail)
            if outcome.status == NOT_HEALED:
                d = outcome.decision
                results.append(ActionResult(d.id, d.action, d.target, ActionStatus.FAILED, outcome.detail, at=now))
        return results

    def _track(self, decision: Decision, view: ClusterView | None, now: datetime) -> None:
        """Watch an applied action until its verdict, here and in its pending verdict Event (what
        the replica after this one needs to judge it, should this one go first)."""
        scope = self._scope(decision, view)
        if self.outcomes.track(decision, now, scope):
            self.writer.record_verdict(
                decision, view, now, PENDING,
                f"watching whether it clears {decision.finding.key} within {formatting.duration(self.config.safety.verify_within)}",
                scope,
            )

    @staticmethod
    def _scope(decision: Decision, view: ClusterView | None) -> str:
        """The workload a pod finding can move to after the action (replacement pods)."""
        if view is None or decision.target.kind not in (EntityKind.POD, EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
            return ""
        owner = view.owner_for(decision.target)
        return owner.key if owner is not None else ""


__all__ = ["Actor"]


def _with_step(decision: Decision, result: ActionResult) -> ActionResult:
    """Prefix the ladder step ("step 2 of 3: preparing; ...") so people see where a prediction stands."""
    if not decision.step:
        return result
    return replace(result, detail=f"{decision.step} — {result.detail}")
