"""Roll a model back to its previous release: through the Deployment's history, or through Argo CD.

A release that degrades quality on every replica is undone, not restarted:

- **Deployment**: the pod template of the previous ReplicaSet revision is put back, exactly what
  ``kubectl rollout undo`` does (a strategic-merge patch that replaces ``spec.template``); the
  Deployment controller then promotes that ReplicaSet to the next revision.
- **Argo CD**: a Deployment managed by an ``Application`` (tracking annotation, or instance label of
  an Application deploying there) is never patched, or Argo CD would revert it. With
  ``argo_strategy="rollback"`` (default) aiops does what ``argocd app rollback`` does: turn
  auto-sync off (Argo CD refuses a rollback while it is on) and request a sync operation to the
  previous revision of ``status.history``; ``"pin"`` sets ``spec.source.targetRevision`` instead,
  which Argo CD then syncs itself.

The rolled-back object is annotated ``aiops.io/rolled-back-from: <bad revision>`` and
``aiops.io/rolled-back-at`` (and, on an Application, ``aiops.io/rolled-back-to``). Later cycles see
them and wait for the rollout (newest ReplicaSet ready, older ones scaled down; or the Argo CD
operation finished and the app healthy) instead of rolling back twice; a release already replaced
(by a human or a newer deploy) is left alone. A rollback still rolling out (or syncing)
``rollout_timeout_minutes`` after it was written turns infeasible, which escalates to a human.
Whether the quality signal recovers is judged by the act stage's outcome tracking, which escalates
when it does not.

Decision params (all optional) name the suspected release: ``revision`` (Deployment revision
number or git revision), ``image``, ``rolled_out_at``, ``quality_change``; ``to_revision`` picks
the Deployment revision to restore, ``argo_strategy`` overrides the plugin's. Without them the
plan reads the live release from the cluster (ReplicaSet creation, Argo CD ``deployedAt``) and the
change from the finding's evidence (``relative_change``, ``since``). A release that rolled out
more than ``onset_tolerance_minutes`` after the drop began (``since``) is not rolled back: it
cannot be the cause, and the plan advises instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from aiops.kube.plan import StagedPlan, infeasible
from aiops.kube.view import (
    CHANGE_CAUSE_ANNOTATION,
    REMEDIATE_LABEL,
    REVISION_ANNOTATION,
    ArgoAppInfo,
    ClusterView,
    RevisionInfo,
    WorkloadInfo,
    application_for,
    argo_app_name,
    revisions_of,
)
from aiops.model import Decision, Entity, EntityKind, Mutation, Plan, Resource, Verb
from aiops.plugins import PluginParams, Remediation

ROLLED_BACK_FROM = "aiops.io/rolled-back-from"
ROLLED_BACK_TO = "aiops.io/rolled-back-to"  # Argo CD: the revision asked for
ROLLED_BACK_AT = "aiops.io/rolled-back-at"  # when: bounds the wait, dates Argo CD's operations
ArgoStrategy = Literal["rollback", "pin"]
ARGO_STRATEGIES = get_args(ArgoStrategy)
_FAILED_PHASES = ("Failed", "Error")


class RollbackModelParams(PluginParams):
    argo_strategy: ArgoStrategy = "rollback"
    # Passed to the Argo CD sync operation: delete resources the previous revision lacks.
    prune: bool = False
    # A rollback still rolling out after this long is given up on and escalated.
    rollout_timeout_minutes: float = Field(default=30, gt=0)
    # A release that rolled out this long after the quality drop began did not cause it.
    onset_tolerance_minutes: float = Field(default=15, ge=0)


class RollbackModel(Remediation):
    name: ClassVar[str] = "rollback_model"
    Params = RollbackModelParams

    params: RollbackModelParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.rollout_timeout = timedelta(minutes=self.params.rollout_timeout_minutes)
        self.onset_tolerance = timedelta(minutes=self.params.onset_tolerance_minutes)

    def plan(self, decision: Decision, view: ClusterView | None) -> Plan:
        target = decision.target
        if view is None:
            return infeasible(
                self.name,
                target,
                "finding the previous release needs the cluster state (kubernetes is disabled)",
                _history_command(target),
            )
        workload = view.owner_for(target)
        if workload is None:
            return infeasible(self.name, target, f"no Deployment found for {target.key}", _history_command(target))
        if workload.kind != EntityKind.DEPLOYMENT:
            ref = f"{workload.kind}/{workload.name} -n {workload.namespace}"
            return infeasible(
                self.name,
                target,
                f"{workload.kind} {workload.namespace}/{workload.name} has no ReplicaSet history to roll back to",
                f"kubectl rollout history {ref}",
            )
        if workload.paused:
            # As kubectl refuses to undo a paused rollout: the new template would never roll out.
            ref = f"deployment/{workload.name} -n {workload.namespace}"
            return infeasible(
                self.name, workload.entity,
                f"deployment {workload.namespace}/{workload.name} is paused; resume it or roll back by hand",
                f"kubectl rollout resume {ref} && kubectl rollout undo {ref}",
            )
        managed, app = application_for(view, workload)
        if managed and workload.labels.get(REMEDIATE_LABEL) == "false":
            # The writer's rails see only the Application; the Deployment's opt-out must still win.
            return infeasible(
                self.name,
                workload.entity,
                f"deployment {workload.namespace}/{workload.name} is labelled {REMEDIATE_LABEL}=false",
                f"argocd app history {app.name if app else '?'}",
            )
        if managed:
            if app is None:
                tracked = argo_app_name(workload)
                name = tracked[1] if tracked else "?"
                return infeasible(
                    self.name,
                    workload.entity,
                    f"deployment {workload.namespace}/{workload.name} is managed by Argo CD Application {name!r}, which aiops cannot read; "
                    "patching the Deployment would fight Argo CD, so roll back in Argo CD",
                    f"argocd app history {name}",
                )
            strategy = str(decision.params.get("argo_strategy", self.params.argo_strategy))
            if strategy not in ARGO_STRATEGIES:
                return infeasible(
                    self.name, app.entity, f"unknown argo_strategy {strategy!r} (use {' or '.join(ARGO_STRATEGIES)})"
                )
            return self._argo(decision, workload, app, strategy, view.taken_at)
        return self._deployment(decision, view, workload)

    # -- Deployment history ------------------------------------------------------------------

    def _deployment(self, decision: Decision, view: ClusterView, deploy: WorkloadInfo) -> Plan:
        ref = f"deployment/{deploy.name} -n {deploy.namespace}"
        where = f"deployment {deploy.namespace}/{deploy.name}"
        revisions = revisions_of(view, deploy)
        current = _int(deploy.annotations.get(REVISION_ANNOTATION)) or (revisions[-1].revision if revisions else 0)
        suspect = _int(decision.params.get("revision"))
        marker = _int(deploy.annotations.get(ROLLED_BACK_FROM))

        if marker and current in (marker, marker + 1) and (suspect is None or suspect == marker):
            # Our rollback: the controller numbers it max+1 = marker+1 (still marker until it has
            # seen the patch). Follow its rollout on later cycles, never redo it.
            return self._follow_rollout(deploy, revisions, marker, current, view.taken_at)
        if suspect is not None and suspect != current:
            return _nothing(
                self.name,
                deploy.entity,
                f"revision {suspect} of {where} is no longer live (now revision {current}): already rolled back or superseded",
                f"kubectl rollout history {ref}",
            )

        wanted = _int(decision.params.get("to_revision"))
        older = [r for r in revisions if r.revision < current and (wanted is None or r.revision == wanted)]
        if not older:
            known = ", ".join(str(r.revision) for r in revisions) or "none"
            why = f"revision {wanted} is not in the history" if wanted is not None else "there is no previous revision"
            return infeasible(
                self.name,
                deploy.entity,
                f"{why} of {where} (revisions: {known}); nothing to roll back to",
                f"kubectl rollout history {ref}",
            )
        previous = older[-1]
        live = next((r for r in revisions if r.revision == current), None)
        rolled_out = str(decision.params.get("rolled_out_at") or (live.created_at if live else ""))
        innocent = self._after_onset(decision, rolled_out, f"revision {current} of {where}")
        if innocent:
            return infeasible(self.name, deploy.entity, innocent, f"kubectl rollout history {ref}")
        release = _describe_release(decision.params, current, live.images if live else (), rolled_out)
        cause = (
            f"aiops rollback of {release} ({decision.reason})" if decision.reason else f"aiops rollback of {release}"
        )
        body = {
            "metadata": {
                "annotations": {
                    ROLLED_BACK_FROM: str(current),
                    ROLLED_BACK_AT: _stamp(view.taken_at),
                    CHANGE_CAUSE_ANNOTATION: cause[:250],
                }
            },
            # $patch: replace makes the template exactly the old one, as kubectl's JSON patch does;
            # a plain merge would keep containers/env that only the bad release added.
            "spec": {"template": {"$patch": "replace", **previous.template}},
        }
        summary = (
            f"roll back {where} from {release} to revision {previous.revision} "
            f"(image {', '.join(previous.images) or '?'}, ReplicaSet {previous.replicaset}){_quality(decision)}"
        )
        return StagedPlan(
            self.name,
            deploy.entity,
            (
                Mutation(
                    Verb.PATCH,
                    Resource.DEPLOYMENTS,
                    deploy.name,
                    deploy.namespace,
                    body,
                    f"rollout undo {where} to revision {previous.revision} (from {current})",
                ),
            ),
            summary,
            command=f"kubectl rollout undo {ref} --to-revision={previous.revision}",
            waiting=(f"rollout of {where} back to revision {previous.revision}",),
        )

    def _follow_rollout(
        self, deploy: WorkloadInfo, revisions: list[RevisionInfo], bad: int, current: int, now: datetime
    ) -> Plan:
        where = f"deployment {deploy.namespace}/{deploy.name}"
        newest = next((r for r in revisions if r.revision == current), None)
        leftover = sum(r.replicas for r in revisions if r.revision != current)
        ready = newest.ready_replicas if newest else deploy.ready_replicas
        if current != bad and ready >= deploy.replicas and leftover == 0:
            return _nothing(
                self.name,
                deploy.entity,
                f"{where} is rolled back from revision {bad} (now revision {current}, {ready}/{deploy.replicas} ready)",
            )
        waiting = (
            f"rollout of {where}: the Deployment controller has not picked up the rollback yet"
            if current == bad
            else f"rollout of {where} (revision {current}): {ready}/{deploy.replicas} ready, {leftover} old pods left"
        )
        command = f"kubectl rollout status deployment/{deploy.name} -n {deploy.namespace}"
        overdue = self._overdue(deploy.annotations, now, waiting, command, deploy.entity)
        if overdue is not None:
            return overdue
        return StagedPlan(
            self.name,
            deploy.entity,
            (),
            f"{where} is rolling back from revision {bad}",
            command=command,
            waiting=(waiting,),
        )

    def _after_onset(self, decision: Decision, rolled_out: str, what: str) -> str:
        """Why the live release cannot be the cause (it came after the drop began), or ""."""
        onset = _parse_stamp(str(decision.finding.evidence.facts.get("since") or ""))
        released = _parse_stamp(rolled_out)
        if onset is None or released is None or released - onset <= self.onset_tolerance:
            return ""
        return (
            f"{what} rolled out at {_stamp(released)}, after the quality drop began ({_stamp(onset)}): "
            "rolling it back would not undo the drop"
        )

    def _overdue(
        self, annotations: Mapping[str, str], now: datetime, waiting: str, command: str, target: Entity
    ) -> Plan | None:
        """Give up waiting (escalate to a human) once the rollback is older than the timeout."""
        since = _parse_stamp(annotations.get(ROLLED_BACK_AT, ""))
        if since is None or now - since <= self.rollout_timeout:
            return None
        minutes = int((now - since).total_seconds() // 60)
        return infeasible(self.name, target, f"the rollback has not completed after {minutes} min: {waiting}", command)

    # -- Argo CD -----------------------------------------------------------------------------

    def _argo(self, decision: Decision, deploy: WorkloadInfo, app: ArgoAppInfo, strategy: str, now: datetime) -> Plan:
        where = f"Argo CD Application {app.namespace}/{app.name}"
        cli_name = app.name if app.namespace in ("", "argocd") else f"{app.namespace}/{app.name}"
        current = app.synced_revision or (app.history[-1].revision if app.history else "")
        suspect = str(decision.params["revision"]) if decision.params.get("revision") not in (None, "") else None
        marker = app.annotations.get(ROLLED_BACK_FROM, "")

        if (
            marker
            and (suspect is None or suspect == marker)
            and current in (marker, app.annotations.get(ROLLED_BACK_TO))
        ):
            # Ours: still on the bad revision while Argo CD works, or on the one we asked for.
            return self._follow_argo(app, where, marker, current, now)
        if suspect is not None and suspect != current:
            return _nothing(
                self.name,
                app.entity,
                f"revision {suspect} is no longer what {where} runs (now {_short(current)}): already rolled back or superseded",
                f"argocd app history {cli_name}",
            )
        if app.operation_pending:
            return infeasible(
                self.name,
                app.entity,
                f"another operation is in progress on {where} ({app.operation_phase or 'requested'}); Argo CD accepts no rollback meanwhile",
                f"argocd app get {cli_name}",
            )
        previous = next((h for h in reversed(app.history) if h.revision and h.revision != current), None)
        if previous is None:
            return infeasible(
                self.name,
                app.entity,
                f"{where} has no earlier synced revision in its history",
                f"argocd app history {cli_name}",
            )

        deployed = next((h for h in reversed(app.history) if h.revision == current), None)
        rolled_out = str(decision.params.get("rolled_out_at") or (deployed.deployed_at if deployed else ""))
        innocent = self._after_onset(decision, rolled_out, f"revision {_short(current)} of {where}")
        if innocent:
            return infeasible(self.name, app.entity, innocent, f"argocd app history {cli_name}")
        release = _describe_release(decision.params, current or "?", (), rolled_out)
        annotations = {ROLLED_BACK_FROM: current, ROLLED_BACK_TO: previous.revision, ROLLED_BACK_AT: _stamp(now)}
        if strategy == "pin":
            if previous.revisions:
                return infeasible(
                    self.name,
                    app.entity,
                    f"{where} has several sources; pinning one targetRevision cannot restore them, use argo_strategy rollback",
                    f"argocd app rollback {cli_name} {previous.id}",
                )
            body: dict[str, Any] = {
                "metadata": {"annotations": annotations},
                "spec": {"source": {"targetRevision": previous.revision}},
            }
            command = f"argocd app set {cli_name} --revision {previous.revision}"
            how = f"pin targetRevision to {_short(previous.revision)}"
        else:
            sync: dict[str, Any] = {"prune": self.params.prune, "syncStrategy": {"apply": {}}}
            if previous.revisions:
                sync["revisions"] = list(previous.revisions)
            else:
                sync["revision"] = previous.revision
            body = {
                "metadata": {"annotations": annotations},
                "operation": {
                    "sync": sync,
                    "initiatedBy": {"username": "aiops"},
                    "info": [{"name": "Reason", "value": f"aiops rollback of {release}"[:250]}],
                },
            }
            steps = [f"argocd app rollback {cli_name} {previous.id}"]
            if app.auto_sync:
                # Argo CD refuses a rollback while auto-sync is on, and auto-sync would undo it.
                body["spec"] = {"syncPolicy": {"automated": None}}
                steps.insert(0, f"argocd app set {cli_name} --sync-policy none")
            command = " && ".join(steps)
            how = (
                "turn auto-sync off, then " if app.auto_sync else ""
            ) + f"sync history entry {previous.id} ({_short(previous.revision)})"
        summary = f"roll back {where} (managing deployment {deploy.namespace}/{deploy.name}) from {release} to {_short(previous.revision)}: {how}{_quality(decision)}"
        return StagedPlan(
            self.name,
            app.entity,
            (
                Mutation(
                    Verb.PATCH,
                    Resource.APPLICATIONS,
                    app.name,
                    app.namespace,
                    body,
                    f"argo rollback {app.namespace}/{app.name} to {_short(previous.revision)} (from {_short(current)})",
                ),
            ),
            summary,
            command=command,
            waiting=(f"{where} syncing back to {_short(previous.revision)}",),
        )

    def _follow_argo(self, app: ArgoAppInfo, where: str, bad: str, current: str, now: datetime) -> Plan:
        # Only an operation that finished after the rollback says anything about it.
        since = _parse_stamp(app.annotations.get(ROLLED_BACK_AT, ""))
        finished = _parse_stamp(app.operation_finished_at)
        fresh = not app.operation_pending and finished is not None and (since is None or finished >= since)
        if fresh and current == bad and app.operation_phase == "Succeeded" and app.operation_revision == bad:
            # A sync finished on the bad revision after ours was asked for: auto-sync re-enabled,
            # or someone synced it again. Not ours to fight; tell a human.
            return infeasible(
                self.name,
                app.entity,
                f"{where} was synced to {_short(bad)} again after the rollback (auto-sync re-enabled, or a manual sync)",
                f"argocd app history {app.name}",
            )
        if fresh and app.operation_phase in _FAILED_PHASES:
            return infeasible(
                self.name,
                app.entity,
                f"the Argo CD rollback of {where} failed: {app.operation_message or app.operation_phase}",
                f"argocd app get {app.name}",
            )
        if app.operation_pending or current == bad or app.health not in ("", "Healthy"):
            state = app.operation_phase or ("requested" if app.operation_pending else "waiting for sync")
            waiting = f"{where}: operation {state}, synced {_short(current)}, health {app.health or 'unknown'}"
            command = f"argocd app wait {app.name} --health"
            overdue = self._overdue(app.annotations, now, waiting, command, app.entity)
            if overdue is not None:
                return overdue
            return StagedPlan(
                self.name,
                app.entity,
                (),
                f"{where} is rolling back from {_short(bad)}",
                command=command,
                waiting=(waiting,),
            )
        return _nothing(
            self.name,
            app.entity,
            f"{where} is rolled back from {_short(bad)} (now {_short(current)}, {app.health or 'health unknown'})",
        )


# -- helpers -----------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _short(revision: str) -> str:
    """A git SHA as people read it; other revisions (tags, branches) as they are."""
    return revision[:8] if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision) else revision


def _describe_release(params: Mapping[str, Any], revision: int | str, images: tuple[str, ...], rolled_out: str) -> str:
    parts = [f"revision {_short(str(revision))}"]
    image = params.get("image") or ", ".join(images)
    if image:
        parts.append(f"image {image}")
    if rolled_out:
        parts.append(f"rolled out {rolled_out}")
    return parts[0] + (f" ({'; '.join(parts[1:])})" if len(parts) > 1 else "")


def _quality(decision: Decision) -> str:
    """The quality change the release caused: from the decision, else the finding's evidence."""
    change = decision.params.get("quality_change")
    facts = decision.finding.evidence.facts
    if change in (None, "") and isinstance(facts.get("relative_change"), int | float):
        change = f"{float(facts['relative_change']):+.1%}"
    if change in (None, ""):
        return f"; finding: {decision.finding.evidence.summary}"
    since = f" (since {facts['since']})" if facts.get("since") else ""
    return f"; quality change: {change}{since}; {decision.finding.evidence.summary}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _nothing(action: str, target: Entity, summary: str, command: str = "") -> Plan:
    """Feasible and done: nothing to write, nothing to wait for."""
    return Plan(action, target, (), summary, command=command)


def _history_command(target: Entity) -> str:
    ns = f" -n {target.namespace}" if target.namespace else ""
    if target.kind == EntityKind.DEPLOYMENT:
        return f"kubectl rollout history deployment/{target.name}{ns}"
    return f"kubectl get deployments{ns} -l aiops.io/model={target.name}"
