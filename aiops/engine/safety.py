"""The guarded writer: the single place that mutates the cluster, and its safety rails.

Mode comes first, then the rails run in their one order (:data:`aiops.engine.rails.RAILS`, one
module per rail) and the first that refuses wins: kill switch → leader → protected namespace /
opt-out label (and opt-in) → Alertmanager silence → cooldown → budgets → blast radius → circuit
breaker. Before any of them, every write must be one the Kubernetes writer supports, so nothing
is spent on a plan that cannot be carried out. A refusal is an :class:`ActionResult` with status BLOCKED and
``rail`` set (the pipeline counts it in ``aiops_actions_blocked{action,rail}``). Budget and
breaker refusals are *latched*: the first refusal of an episode is BLOCKED (a human must know);
repeats while the episode lasts are DEFERRED with the same rail, so people get one message.

Cooldowns, budgets, per-workload disruption counts and in-flight multi-cycle actions live in the
Store, so a restart changes nothing (with several replicas, each one's actions and pod disruptions,
recorded as AiopsRemediation and AiopsDisruption Events, are merged into every replica's books, so
budgets, cooldowns and the per-workload cap hold across shards and failovers): an evacuation
interrupted halfway resumes with the pods that are left, and never spends a second budget unit or
re-sends a write recorded as done. (A crash between a write and its record re-sends that one write
on resume; every write aiops sends is idempotent — the same patch, or a delete/eviction whose 404 counts as done.)
Dry-run keeps its own books (the ``dry_run`` column), so rehearsing never eats the real budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from aiops import metrics
from aiops.config.safety import SafetyConfig
from aiops.engine.outcomes import NOT_HEALED, PENDING
from aiops.engine.rails import RailContext, RailName, Refusal, first_refusal, scope_refusal
from aiops.engine.leader import LeaseElector
from aiops.engine.rails.breaker import CircuitBreaker
from aiops.engine.rails.kill_switch import KillSwitch
from aiops.engine.shards import budget_share
from aiops.kube.errors import KubeApiError
from aiops.kube.plan import decision_mark, waiting_of
from aiops.kube.read import (
    LEDGER_ACTION,
    LEDGER_AT,
    LEDGER_BASIS,
    LEDGER_DECISION,
    LEDGER_VERDICT,
    LEDGER_POD,
    LEDGER_RECORD,
    LEDGER_RUNG,
    LEDGER_SCOPE,
    LEDGER_SHARD,
    LEDGER_TARGET,
    LEDGER_WORKLOAD,
    LedgerRecord,
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
    Mode,
    Mutation,
    Plan,
    Resource,
    Verb,
    most_cautious,
)
from aiops.state import Store
from aiops.state.books import Books, InFlight, PredictedStart

log = logging.getLogger(__name__)

EVENT_REASON = "AiopsRemediation"  # one per action, at admission
# One per pod evicted or deleted: a reason of its own, so one AiopsRemediation Event is still one
# action (for people and for older replicas, which list only that reason).
DISRUPTION_REASON = "AiopsDisruption"
# One when an action is applied (pending) and one when it is judged (healed or not): a replica
# that did not take it reads them (:meth:`aiops.engine.act.Actor._inherit`); people in `kubectl describe`.
VERDICT_REASON = "AiopsVerdict"
# The objects an Event can be about: `kubectl describe` shows it there.
_EVENT_OBJECT: dict[EntityKind, tuple[str, str]] = {
    EntityKind.NODE: ("v1", "Node"),
    EntityKind.POD: ("v1", "Pod"),
    EntityKind.DEPLOYMENT: ("apps/v1", "Deployment"),
    EntityKind.STATEFULSET: ("apps/v1", "StatefulSet"),
    EntityKind.HPA: ("autoscaling/v2", "HorizontalPodAutoscaler"),
    EntityKind.APPLICATION: ("argoproj.io/v1alpha1", "Application"),
}
IsSilenced = Callable[[Mapping[str, str]], bool]

# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------
def effective_mode(decision: Decision, config: SafetyConfig) -> Mode:
    """The most cautious of the decision's mode (policy), the global mode and the action's cap."""
    return most_cautious(decision.mode, config.mode, config.action_modes.get(decision.action, Mode.AUTO))


def _is_temporary(exc: BaseException) -> bool:
    # A PDB refusal (429 on an eviction) is retried on a later cycle, as kubectl drain would,
    # not hammered within this one.
    return isinstance(exc, KubeApiError) and exc.temporary and not (exc.status == 429 and "evict" in exc.operation)


@dataclass
class _Run:
    """One admitted execution of a plan, from admit through apply to settle."""

    decision: Decision
    plan: Plan
    scoped: Plan  # the plan less the writes the scope rails leave alone
    view: ClusterView | None
    now: datetime
    writes: list[Mutation]
    held: list[str]  # pod writes over the per-workload cap: they wait
    dropped: list[str]
    started_at: datetime
    done: list[str]  # Mutation.describe() of every write known to be applied
    applied: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)


def _disrupts(m: Mutation) -> bool:
    """A write a cluster-wide cap counts: a cordon, or a pod's eviction or deletion."""
    return m.cordons or m.resource is Resource.PODS


def _result(
    decision: Decision, plan: Plan, now: datetime, status: ActionStatus, detail: str, rail: str = ""
) -> ActionResult:
    return ActionResult(decision.id, decision.action, plan.target, status, detail, plan=plan, rail=rail, at=now)


class GuardedWriter:
    """Applies plans to the cluster when, and only when, every rail allows it."""

    def __init__(
        self,
        config: SafetyConfig,
        store: Store,
        kube: KubeWriter | None,
        *,
        leads: Callable[[Decision], bool],
        kill_switch: KillSwitch,
        is_silenced: IsSilenced | None = None,
        read_ledger: Callable[[], Sequence[LedgerRecord]] | None = None,
        reporter: str = "aiops",
        shard_of: Callable[[Decision], int] | None = None,
        shards: int = 1,
        read_nodes: Callable[[], Sequence[NodeInfo]] | None = None,
        disruption_guard: LeaseElector | None = None,
    ) -> None:
        self.config = config
        # The nodes as they are now, for the cluster-wide cordon cap (:meth:`nodes_now`).
        self.read_nodes = read_nodes
        # Sharded: the Lease held from counting to writing, for the cluster-wide caps (:meth:`execute`).
        self.disruption_guard = disruption_guard
        # Sharding: each shard spends its share of every budget (aiops.engine.shards.budget_share),
        # so all replicas together stay within the configured figure.
        self.shard_of = shard_of
        self.shards = shards
        self.read_ledger = read_ledger
        self._ledger_synced = False
        self.books = Books(store)
        self.kube = kube
        # Whether this replica may write for a decision now: it holds the leader Lease or, sharded,
        # the Lease of the decision's shard. Asked by the leader rail and again before every write.
        self.leads = leads
        self.kill_switch = kill_switch
        self.is_silenced = is_silenced
        self.breaker = CircuitBreaker(self.books, config.breaker_threshold, config.breaker_open_for)
        self.reporter = reporter
        # Temporary API errors of the current cycle: the act stage reports them as degraded.
        self.errors: list[KubeApiError] = []
        # Cordoned this cycle: a dry run's cordons never reach the cluster, so they count from here.
        self.cordoned_now: set[str] = set()

    @property
    def dry_run(self) -> bool:
        return self.kube is None or self.kube.dry_run

    def begin_cycle(self, now: datetime) -> None:
        """Per-cycle readings (kill switch, shared ledger) are taken again on first use."""
        self.kill_switch.begin_cycle()
        self._ledger_synced = False
        self.cordoned_now = set()
        self.errors = []
        c = self.config
        self.books.prune(now, max(timedelta(days=1), c.cooldown, c.workload_window) + timedelta(hours=1))

    def sync_ledger(self) -> Refusal | None:
        """Merge the actions and pod disruptions other replicas recorded in the cluster, once per
        cycle. Budgets, cooldowns and the per-workload cap live in each replica's own state file;
        the Events make them cluster-wide: across shards, and across a failover."""
        if self._ledger_synced or self.read_ledger is None or self.dry_run:
            return None
        try:
            added = self.books.import_ledger(self.read_ledger())
        except KubeApiError as exc:
            if exc.temporary:
                self.errors.append(exc)
            return Refusal(
                RailName.BUDGET,
                f"cannot read the action ledger (aiops events) to count budgets and disruptions: {exc}",
            )
        self._ledger_synced = True
        if added:
            log.info("counted actions and disruptions of other replicas", extra={"records": added})
        return None

    # -- budgets, exported as gauges --------------------------------------------------------
    def limit(self, total: int, shard: int | None) -> int:
        return total if shard is None else budget_share(total, shard, self.shards)

    def remaining_budget(self, now: datetime, shard: int | None = None) -> dict[str, int]:
        c, lim = self.config, self.limit

        def count(since: datetime, dry_run: bool, basis: str | None = None) -> int:
            return self.books.count_actions(since, dry_run, basis, shard)

        hour = lim(c.max_actions_per_hour, shard) - count(now - timedelta(hours=1), self.dry_run)
        day = lim(c.max_actions_per_day, shard) - count(now - timedelta(days=1), self.dry_run)
        p_hour = lim(c.max_predicted_actions_per_hour, shard) - count(now - timedelta(hours=1), self.dry_run, Basis.PREDICTED)
        p_day = lim(c.max_predicted_actions_per_day, shard) - count(now - timedelta(days=1), self.dry_run, Basis.PREDICTED)
        i_hour = lim(c.max_inbound_actions_per_hour, shard) - count(now - timedelta(hours=1), self.dry_run, Basis.INBOUND)
        i_day = lim(c.max_inbound_actions_per_day, shard) - count(now - timedelta(days=1), self.dry_run, Basis.INBOUND)
        remaining = {"hour": max(0, hour), "day": max(0, day),
                     "predicted_hour": max(0, p_hour), "predicted_day": max(0, p_day),
                     "inbound_hour": max(0, i_hour), "inbound_day": max(0, i_day)}
        for window, n in remaining.items():
            metrics.BUDGET_REMAINING.labels(window).set(n)
        return remaining

    # -- what the act stage asks (the writer's books stay behind this API) --------------------
    def export_gauges(self, now: datetime) -> None:
        """Refresh the budget and breaker gauges on /metrics."""
        self.remaining_budget(now)
        self.breaker.is_open(now)

    def in_flight(self) -> list[InFlight]:
        """Multi-cycle actions admitted earlier and not finished (this mode's books: dry-run or real)."""
        return self.books.inflight(self.dry_run)

    def finish(self, decision: Decision) -> None:
        """The action on ``decision``'s target converged or was given up: it is no longer in flight."""
        self.books.clear_inflight(decision.action, decision.target.key, self.dry_run)

    def hand_over(self, decision: Decision) -> None:
        """``decision``'s action is no longer ours to continue from our books (:meth:`Books.hand_over`)."""
        self.books.hand_over(decision.action, decision.target.key, self.dry_run)

    def started_by_a_peer(self, decision: Decision, since: datetime) -> datetime | None:
        """When another replica started this action (its Event is in the shared ledger), if it did
        since ``since``; None as well when the ledger cannot be read (the rails then refuse)."""
        if self.sync_ledger() is not None:
            return None
        return self.books.peer_started(decision.action, decision.target.key, since)

    def admitted(self, decision: Decision) -> bool:
        """Whether this decision was admitted, here or by another replica (its Event is in the
        ledger); True as well when the ledger cannot be read (nothing is taken over on a guess)."""
        if self.sync_ledger() is not None:
            return True
        return self.books.admitted(decision.id)

    def started_on_a_prediction(self, decision: Decision, since: datetime) -> PredictedStart | None:
        """When ``decision``'s action was started on its target on a prediction, if that is the
        target's last action since ``since`` (every replica's counted); None as well when the
        ledger cannot be read (the rails then refuse)."""
        if self.sync_ledger() is not None:
            return None
        return self.books.predicted_since(decision.action, decision.target.key, since, self.dry_run)

    # -- rails -----------------------------------------------------------------------------
    def check(
        self, decision: Decision, plan: Plan, view: ClusterView | None, now: datetime, *, resuming: bool
    ) -> Refusal | None:
        """The rails after mode, in their one order (:data:`aiops.engine.rails.RAILS`). ``resuming``
        an in-flight action skips those that only gate *starting* one: it was already admitted."""
        return first_refusal(RailContext(self, decision, plan, view, now, resuming))

    def nodes_now(self, view: ClusterView) -> Sequence[NodeInfo]:
        """The nodes as the API server has them now, for the cordon cap: it is cluster-wide, and
        another replica (another shard) may have cordoned since ``view`` was read at the start of
        this act stage. The view's without an API to ask. Raises :class:`KubeApiError`."""
        if self.read_nodes is None:
            return list(view.nodes.values())
        try:
            return self.read_nodes()
        except KubeApiError as exc:
            if exc.temporary:
                self.errors.append(exc)
            raise

    def shard_for(self, decision: Decision) -> int | None:
        return self.shard_of(decision) if self.shard_of is not None and self.shards > 1 else None

    def _workload_of(self, m: Mutation, view: ClusterView | None) -> str:
        pod = view.pod(m.namespace, m.name) if view is not None else None
        owner = view.owner_of(pod) if view is not None and pod is not None else None
        return owner.key if owner is not None else f"pod/{m.namespace}/{m.name}"

    def allowed_pod_writes(
        self, plan: Plan, view: ClusterView | None, now: datetime
    ) -> tuple[list[Mutation], list[str]]:
        """Pod deletions/evictions within the per-workload window cap; the others wait. Every
        replica's disruptions count (a pod of the workload on another shard's node, or evicted by
        the previous leader), so the ledger is merged first: a resumed action passed no rail that
        did, and while it cannot be read no pod is disrupted."""
        refusal = self.sync_ledger()
        if refusal is not None:
            return [], [f"{m.describe()}: {refusal.detail}" for m in plan.mutations if m.resource == "pods"]
        since = now - self.config.workload_window
        used: dict[str, int] = {}
        allowed: list[Mutation] = []
        held: list[str] = []
        for m in plan.mutations:
            if m.resource != "pods":
                continue
            workload = self._workload_of(m, view)
            if workload not in used:
                used[workload] = self.books.disruptions(workload, since, self.dry_run)
            if used[workload] >= self.config.max_pods_per_workload:
                held.append(
                    f"{m.describe()}: {workload} reached {self.config.max_pods_per_workload} pod(s) "
                    f"per {self.config.workload_window}"
                )
                continue
            used[workload] += 1
            allowed.append(m)
        return allowed, held

    def scope(self, plan: Plan, view: ClusterView | None) -> tuple[Plan, list[str]]:
        """Drop writes on objects the rails protect (a drain never touches kube-system pods or
        opted-out pods); the dropped writes are named so the result can say what was left."""
        kept: list[Mutation] = []
        dropped: list[str] = []
        for m in plan.mutations:
            kind = m.resource.entity_kind
            if kind is None or not m.namespace:  # an Event, or a cluster-scoped object
                kept.append(m)
                continue
            entity = Entity(kind, m.name, m.namespace)
            refusal = scope_refusal(self.config, entity, view)
            if refusal is None:
                kept.append(m)
            else:
                dropped.append(f"{m.describe()} ({refusal.detail})")
        if not dropped:
            return plan, []
        return replace(plan, mutations=tuple(kept)), dropped

    # -- executing --------------------------------------------------------------------------
    def execute(
        self,
        decision: Decision,
        plan: Plan,
        view: ClusterView | None,
        now: datetime,
        *,
        inflight: InFlight | None = None,
    ) -> ActionResult:
        """Admit the plan (mode, supported writes, rails, and the budget unit spent), apply its
        writes, settle what is left. Never raises for an API problem.

        A plan that cordons or disrupts pods, sharded, is counted and written under the disruption
        guard Lease (taken in :meth:`_admit`, handed back here). The cluster-wide caps are counted
        from the cluster (the cordoned nodes from a fresh list, the workload's disruptions from the
        action ledger, read again under the guard), but two replicas whose counts both came before
        either's write each passed a cap with room for one. While another replica holds the guard
        the plan waits for the next cycle (nothing spent); a holder that died is waited out for one
        lease period, judged on our own clock (:class:`LeaseElector`)."""
        try:
            admitted = self._admit(decision, plan, view, now, inflight)
            if isinstance(admitted, ActionResult):
                return admitted
            failed = self._apply_writes(admitted)
            return failed if failed is not None else self._settle(admitted)
        finally:
            if self.disruption_guard is not None:
                self.disruption_guard.release()  # no request unless this call took it

    def _admit(
        self, decision: Decision, plan: Plan, view: ClusterView | None, now: datetime, inflight: InFlight | None
    ) -> _Run | ActionResult:
        """The result when the plan goes no further (observe, suggest, nothing to do, refused),
        else the admitted run, its budget unit and cooldown spent and its Event emitted."""

        def result(status: ActionStatus, detail: str, rail: str = "") -> ActionResult:
            return _result(decision, plan, now, status, detail, rail)

        if decision.restore and not plan.undo:
            # Asked to undo (a false prediction's preparation rolled back) an action that has no
            # undo: what it planned is the action again, which no rail would charge as an undo.
            return result(ActionStatus.OBSERVED, f"no undo: {decision.action} cannot be undone, nothing is rolled back")
        mode = effective_mode(decision, self.config)
        if mode is Mode.OBSERVE:
            # The detail says what; the status, the rail and the command have fields of their own
            # and are rendered once, by whoever shows the result.
            return result(ActionStatus.OBSERVED, f"would {plan.summary}")
        if mode is Mode.SUGGEST or plan.action == ADVISE:
            return result(ActionStatus.SUGGESTED, plan.summary)
        if not plan.mutations and not waiting_of(plan):
            return result(ActionStatus.OBSERVED, f"nothing to do: {plan.summary}")
        if self.kube is None:
            return result(ActionStatus.SUGGESTED, f"{plan.summary} (kubernetes is disabled in the config)")

        scoped, dropped = self.scope(plan, view)
        # Before any rail can spend anything: a write the writer has no route for fails the plan.
        unsupported = [m.describe() for m in scoped.mutations if not self.kube.supports(m)]
        if unsupported:
            return result(
                ActionStatus.FAILED,
                f"the writer cannot apply {'; '.join(unsupported)} (no route for this verb and resource); "
                "nothing was written or spent — the remediation must plan writes the writer supports",
            )
        guard = self.disruption_guard
        done = inflight.done if inflight is not None else ()
        if (
            guard is not None
            and not self.dry_run
            and any(_disrupts(m) and m.describe() not in done for m in scoped.mutations)
        ):
            # From here to the last write: the counts below are read while no other replica writes.
            if not guard.try_acquire_or_renew():
                why = f": {guard.last_error}" if guard.last_error is not None else ""
                return result(
                    ActionStatus.DEFERRED,
                    f"another replica is counting or making disruptions (cordons, evictions, deletions; it "
                    f"holds the Lease {guard.namespace}/{guard.name}){why}; counted again next cycle",
                    rail=RailName.BLAST_RADIUS,
                )
            self._ledger_synced = False  # what other replicas disrupted up to now, not at the cycle's start
        # An undo (uncordon, restore replicas) was paid for by the action it undoes.
        undo = decision.restore and plan.undo
        refusal = self.check(decision, scoped, view, now, resuming=inflight is not None or undo)
        if refusal is not None:
            status = ActionStatus.DEFERRED if refusal.repeat else ActionStatus.BLOCKED
            log.info(
                "action refused", extra={"action": decision.action, "target": plan.target.key, "rail": refusal.rail}
            )
            return result(status, refusal.detail, rail=refusal.rail)
        if dropped and not scoped.mutations and not waiting_of(scoped):
            # The target passed the rails, but every write is out of scope (a node holding only
            # protected or opted-out pods): not an action applied with no writes, which would spend
            # a unit and an Event every cycle.
            if inflight is not None:
                self.finish(decision)
            return result(ActionStatus.OBSERVED, f"nothing to do: every write is out of scope; left alone: {'; '.join(dropped)}")

        allowed_pods, held = self.allowed_pod_writes(scoped, view, now)
        pod_ok = {id(m) for m in allowed_pods}
        run = _Run(
            decision, plan, scoped, view, now,
            writes=[m for m in scoped.mutations if m.resource != "pods" or id(m) in pod_ok],
            held=held,
            dropped=dropped,
            started_at=inflight.started_at if inflight else now,
            done=list(inflight.done) if inflight else [],
        )
        if inflight is None and not undo and (run.writes or waiting_of(scoped)):
            # Admitted: the budget unit and the cooldown are spent now, once, even if we crash next.
            self.books.record_action(
                decision.id, decision.action, plan.target.key, self.dry_run, now, decision.basis,
                self.shard_for(decision), decision.rung,
            )
            self.remaining_budget(now)
            self._event(decision, plan, view, now)
        return run

    def _apply_writes(self, run: _Run) -> ActionResult | None:
        """Send the admitted writes in order, recording progress; a FAILED result when one fails
        permanently, else None (what could not be sent yet is in ``run.deferred``)."""
        for m in run.writes:
            if m.describe() in run.done:
                continue  # a restart resumed this action: the write is known to be applied
            if not self.leads(run.decision):
                shard = self.shard_for(run.decision)
                lost = "the leader lease; the new leader" if shard is None else f"shard {shard}'s lease; its new holder"
                run.deferred.append(f"{m.describe()}: lost {lost} continues")
                break
            guard = self.disruption_guard
            if _disrupts(m) and guard is not None and not self.dry_run and not guard.is_leader:
                # Held past its renew deadline since the count (a slow API): another replica may
                # be counting now without this write. Counted again next cycle.
                run.deferred.append(f"{m.describe()}: the disruption guard lapsed since the count")
                break
            try:
                self._apply(m)
            except KubeApiError as exc:
                if exc.temporary:
                    run.deferred.append(f"{m.describe()}: {exc}")
                    if exc.status == 429 and m.verb == "evict":
                        continue  # a PDB blocking one pod is normal operation, and must not stop the others
                    self.errors.append(exc)  # the API is in trouble: the cycle is degraded
                    break
                # Permanent (403, 400, 422): retrying cannot help; a human must look. Not kept in flight.
                self.finish(run.decision)
                return _result(run.decision, run.plan, run.now, ActionStatus.FAILED,
                               f"{m.describe()} failed permanently: {exc}" + _done_note(run.applied))
            run.applied.append(m.describe())
            run.done.append(m.describe())
            if m.resource == "pods":
                workload = self._workload_of(m, run.view)
                self.books.record_disruption(workload, f"{m.namespace}/{m.name}", self.dry_run, run.now)
                self._disruption_event(run, m, workload)
            self._save_progress(run.decision, run.started_at, run.done, run.now)
        return None

    def _settle(self, run: _Run) -> ActionResult:
        """Applied, still in flight (kept for the next cycle), given up after the timeout, or a dry run."""
        decision, plan, now = run.decision, run.plan, run.now

        def result(status: ActionStatus, detail: str) -> ActionResult:
            return _result(decision, plan, now, status, detail)

        pending = run.deferred + run.held + list(waiting_of(run.scoped))
        notes = _done_note(run.applied) + (f"; left alone: {'; '.join(run.dropped)}" if run.dropped else "")
        if self.dry_run:
            self.finish(decision)
            extra = f"; would wait for: {'; '.join(pending)}" if pending else ""
            return result(ActionStatus.DRY_RUN, f"dry-run (server-side dryRun=All): {plan.summary}{extra}{notes}")
        if pending:
            if now - run.started_at > self.config.evacuation_timeout:
                self.finish(decision)
                return result(
                    ActionStatus.FAILED,
                    f"gave up after {self.config.evacuation_timeout} (never forced): "
                    f"still blocked: {'; '.join(pending)}{notes}"
                    " — a human must resolve the blocking PodDisruptionBudget or workload",
                )
            self.books.save_inflight(decision, run.started_at, tuple(run.done), False, now)
            return result(
                ActionStatus.DEFERRED, f"in progress: {plan.summary}; retrying later: {'; '.join(pending)}{notes}"
            )
        self.finish(decision)
        return result(ActionStatus.APPLIED, f"applied: {plan.summary}{notes}")

    def _save_progress(self, decision: Decision, started_at: datetime, done: list[str], now: datetime) -> None:
        if not self.dry_run:
            self.books.save_inflight(decision, started_at, tuple(done), False, now)

    def _apply(self, m: Mutation) -> None:
        assert self.kube is not None
        retrying = Retrying(
            stop=stop_after_attempt(self.config.api_attempts),
            wait=wait_exponential(multiplier=0.1, max=self.config.api_backoff_max.total_seconds()),
            retry=retry_if_exception(_is_temporary),
            reraise=True,
        )
        for attempt in retrying:  # reraise=True: the last attempt's own error comes out, not RetryError
            with attempt:
                self.kube.apply(m)
        if m.cordons:
            self.cordoned_now.add(m.name)

    def _event(self, decision: Decision, plan: Plan, view: ClusterView | None, now: datetime) -> None:
        """A Kubernetes Event on the target, so `kubectl describe` shows what aiops did and why."""
        target = plan.target
        if target.kind not in _EVENT_OBJECT:
            return
        ledger = {LEDGER_TARGET: target.key, LEDGER_ACTION: decision.action, LEDGER_BASIS: decision.basis.value}
        if decision.rung is not None:
            ledger[LEDGER_RUNG] = str(int(decision.rung))
        shard = self.shard_for(decision)
        if shard is not None:
            ledger[LEDGER_SHARD] = str(shard)
        message = f"{plan.summary}. Finding: {decision.reason}"
        self._write_event(decision, target, view, now, EVENT_REASON, message, ledger)

    def record_verdict(
        self, decision: Decision, view: ClusterView | None, now: datetime, verdict: str, detail: str, scope: str = ""
    ) -> None:
        """An Event on the action's target, with the decision: ``pending`` once it is applied (with
        ``scope``: what judging it needs), then its verdict (``healed`` or ``not_healed``). For a
        replica that did not take the action: the one that comes after this one (replaced, its
        state file with it) judges what is pending, takes the undo over and counts the verdicts
        in its circuit breaker; and for people."""
        if decision.target.kind not in _EVENT_OBJECT:
            return
        ledger = {
            LEDGER_VERDICT: verdict, LEDGER_RECORD: decision_mark(decision),
            LEDGER_ACTION: decision.action, LEDGER_TARGET: decision.target.key,
        }
        if verdict == PENDING:
            ledger[LEDGER_SCOPE] = scope
        event_type = "Warning" if verdict == NOT_HEALED else "Normal"
        self._write_event(decision, decision.target, view, now, VERDICT_REASON, detail, ledger, event_type=event_type)

    def _disruption_event(self, run: _Run, m: Mutation, workload: str) -> None:
        """An Event on the pod just evicted or deleted, naming the workload charged: the other
        replicas count it in their per-workload cap (:meth:`allowed_pod_writes`)."""
        pod = Entity(EntityKind.POD, m.name, m.namespace)
        ledger = {LEDGER_WORKLOAD: workload, LEDGER_POD: f"{m.namespace}/{m.name}"}
        message = f"{m.describe()} ({workload}) to {run.plan.summary}. Finding: {run.decision.reason}"
        self._write_event(run.decision, pod, run.view, run.now, DISRUPTION_REASON, message, ledger)

    def _write_event(
        self,
        decision: Decision,
        about: Entity,
        view: ClusterView | None,
        now: datetime,
        reason: str,
        message: str,
        ledger: dict[str, str],
        event_type: str = "Warning",
    ) -> None:
        """Create the Event; it documents a write and must not stop it, so a failure is logged."""
        if not self.config.emit_events or self.kube is None:
            return
        api_version, kind = _EVENT_OBJECT[about.kind]
        namespace = about.namespace or "default"
        stamp = now.isoformat().replace("+00:00", "Z")
        # The time booked locally: a replica reading its own Event back knows it (Books.import_ledger).
        annotations = {**ledger, LEDGER_DECISION: decision.id, LEDGER_AT: stamp}
        body = {
            "metadata": {"generateName": f"{about.name}.aiops-", "namespace": namespace, "annotations": annotations},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": about.name,
                "namespace": about.namespace or None,
                # `kubectl describe` lists only events that carry the object's uid.
                "uid": (view.uid_of(about) if view is not None else "") or None,
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "source": {"component": "aiops"},
            "reportingComponent": "aiops",
            "reportingInstance": self.reporter,
            "action": decision.action,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self._apply(Mutation(Verb.CREATE, Resource.EVENTS, "", namespace, body, f"event on {about.key}"))
        except KubeApiError as exc:
            log.warning("could not write the Kubernetes event", extra={"target": about.key, "error": str(exc)})


def _done_note(applied: list[str]) -> str:
    return f" (done this cycle: {len(applied)} write(s))" if applied else ""


__all__ = ["DISRUPTION_REASON", "EVENT_REASON", "VERDICT_REASON", "GuardedWriter", "IsSilenced", "effective_mode"]
