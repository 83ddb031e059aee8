from __future__ import annotations

import re
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from aiops.config.base import Duration, StrictModel
from aiops.model import EntityKind, Mode, Severity


# kube-state-metrics writes "<none>" (created_by_kind) for a pod without a controller.
NO_OWNER = "<none>"
# Owner kinds people name often, to suggest the spelling Kubernetes uses ("statefulset" -> StatefulSet).
_KNOWN_KINDS = ("Job", "CronJob", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "ReplicationController",
                "Node", "LeaderWorkerSet", "RayCluster", "RayJob", "PyTorchJob", "MPIJob", "TFJob", "Workflow")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _owner_kind(kind: str) -> str:
    """Kinds are case-sensitive and matched exactly: ``job`` would never match a Job's pod."""
    if kind == NO_OWNER or _KIND.match(kind):
        return kind
    known = {k.lower(): k for k in (*_KNOWN_KINDS, NO_OWNER)}
    likely = known.get(kind.strip().lower()) or (kind.strip()[:1].upper() + kind.strip()[1:] if kind.strip() else "Job")
    raise ValueError(
        f"{kind!r} is not a Kubernetes kind: kinds are case-sensitive and start upper-case (or {NO_OWNER!r} "
        f"for a bare pod), and this one would match no pod; did you mean {likely!r}?"
    )


OwnerKind = Annotated[str, AfterValidator(_owner_kind)]


class SeverityThresholds(StrictModel):
    """Score -> severity. A prediction that lands within ``critical_lead_time`` is critical."""

    warning: float = Field(default=0.7, ge=0.0, le=1.0)
    critical: float = Field(default=0.9, ge=0.0, le=1.0)
    critical_lead_time: Duration = timedelta(minutes=30)
    # Signals (fnmatch) whose findings are told as warnings at most, never paged: where the resource
    # runs out the service slows rather than stops, and what slows pages for itself. A full vLLM KV
    # cache preempts and recomputes requests; time to first token and inter-token latency (the
    # serving objectives) and the demand forecast (headroom) page and scale when that matters. A
    # KV cache that climbs with the morning traffic is forecast "full" every busy day a young
    # daemon has not yet seen.
    warning_at_most: list[str] = Field(default_factory=lambda: ["inference_kv_cache_usage"])

    @field_validator("warning_at_most")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("warning_at_most holds signal names or fnmatch patterns (e.g. 'inference_kv_*'), "
                             "not empty strings")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> SeverityThresholds:
        if self.warning > self.critical:
            raise ValueError("warning threshold must not exceed the critical threshold")
        return self


class LadderConfig(StrictModel):
    """Tiered response to a *prediction*: notify -> prepare -> act, one rung per cycle.

    A long lead time or a low score only notifies; as the predicted failure approaches or the
    score hardens the response climbs one rung per cycle, never skipping rungs unless the failure
    is confirmed. The prepare rung runs ``prepare_action`` (default: the rule's action) with
    ``prepare_params`` — e.g. evacuate_node with ``{cordon_only: true}``, or scale_ahead.
    """

    prepare_action: str | None = None
    prepare_params: dict[str, Any] = Field(default_factory=lambda: {})
    # Prepare when the failure is predicted within this and the score reaches prepare_score.
    prepare_within: Duration = timedelta(hours=2)
    prepare_score: float = Field(default=0.7, ge=0.0, le=1.0)
    # Act when the failure is predicted within this and the score reaches act_score.
    act_within: Duration = timedelta(minutes=30)
    act_score: float = Field(default=0.9, ge=0.0, le=1.0)
    skip_prepare: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> LadderConfig:
        if self.act_within > self.prepare_within:
            raise ValueError("act_within must not exceed prepare_within")
        if self.act_score < self.prepare_score:
            raise ValueError("act_score must not be below prepare_score")
        return self


class PolicyRule(StrictModel):
    """Which findings trigger which action. Match fields are fnmatch patterns ("*" matches all)."""

    name: str = Field(min_length=1)
    detector: str = "*"
    signal: str = "*"
    entity_kind: str = "*"
    min_severity: Severity = Severity.CRITICAL
    # Act on a prediction only when the failure is expected within this time.
    max_lead_time: Duration | None = None
    require_confirmed: bool = False
    # False: a forecast (a finding with a predicted failure time, not yet observed) is told to
    # people but does not trigger this rule, which waits for the observed evidence.
    act_on_forecasts: bool = True
    action: str = Field(min_length=1)
    # Which entity the action targets: the finding's own, or one derived from its attributes.
    target: Literal["entity", "node", "owner"] = "entity"
    # Caps the global mode for this rule (an action can be held at "suggest" while others act).
    max_mode: Mode = Mode.AUTO
    params: dict[str, Any] = Field(default_factory=dict)
    # Predictions climb a ladder instead of acting at once (see LadderConfig).
    ladder: LadderConfig | None = None
    # A detector's predictions may trigger automatic actions only once its measured precision
    # (confirmed / (confirmed + false positives), `aiops history --stats`) reaches this, over at
    # least min_judged predictions; until then the decision is held at suggest.
    min_precision: float | None = Field(default=None, ge=0.0, le=1.0)
    min_judged: int = Field(default=5, ge=1)

    @field_validator("entity_kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        # A pattern no kind matches is a typo ("pods"): the rule would never fire.
        if not any(fnmatchcase(kind, v) for kind in EntityKind):
            raise ValueError(f"{v!r} matches no entity kind; use one of: {', '.join(EntityKind)} (or a pattern)")
        return v


DEFAULT_XID_REMEDIATION: dict[int, str] = {
    48: "evacuate_node",  # double-bit ECC: cordon, drain, GPU reset
    63: "advise",  # row remap pending: reset at the next drain
    64: "evacuate_node",  # row remap failed: RMA candidate
    74: "evacuate_node",  # NVLink error
    79: "evacuate_node",  # fell off the bus: drain, reboot
    94: "restart_pod",  # contained ECC: only the pod on that GPU
    95: "evacuate_node",  # uncontained ECC: everything on that GPU
    119: "evacuate_node",  # GSP firmware timeout: drain, reset the GPU
    120: "evacuate_node",  # GSP firmware error: drain, reset the GPU
    154: "evacuate_node",  # the driver requires a GPU reset or a node reboot
}


def default_rules() -> list[PolicyRule]:
    return [
        PolicyRule(
            name="pod-memory-exhaustion",
            detector="*",
            signal="pod_memory_usage_ratio",
            entity_kind="pod",
            min_severity=Severity.CRITICAL,
            max_lead_time=timedelta(hours=1),
            action="restart_pod",
        ),
        PolicyRule(
            name="pod-crashloop",
            signal="pod_crashlooping",
            entity_kind="pod",
            min_severity=Severity.CRITICAL,
            require_confirmed=True,
            action="restart_pod",
        ),
        PolicyRule(
            name="sick-gpu-node",
            detector="gpu_health",
            entity_kind="gpu",
            min_severity=Severity.WARNING,
            action="evacuate_node",
            target="node",
            # GPU nodes serve models: keep one Ready replica of each while pods move.
            params={"min_ready_replicas": 1},
            # A GPU that is *predicted* to fail gets its node cordoned first; the evacuation follows
            # when the failure is near or confirmed (XID 79/48/64/95 are confirmed failures).
            ladder=LadderConfig(prepare_params={"cordon_only": True}),
        ),
        PolicyRule(
            name="root-cause-node",
            detector="root_cause",
            entity_kind="node",
            min_severity=Severity.CRITICAL,
            action="evacuate_node",
        ),
        PolicyRule(
            name="node-not-ready",
            signal="node_ready",
            entity_kind="node",
            min_severity=Severity.CRITICAL,
            require_confirmed=True,
            action="evacuate_node",
        ),
        PolicyRule(
            name="inference-latency",
            # The serving latency objectives (TTFT, inter-token, request latency per runtime);
            # never end-to-end LLM latency, which grows with the output by design.
            signal="serving_*",
            entity_kind="model",
            min_severity=Severity.CRITICAL,
            action="scale_ahead",
            target="owner",
        ),
        PolicyRule(
            name="serving-capacity",
            # Demand forecast past the load the model's servers have proven (detectors/headroom.py):
            # add replicas before the queue builds, instead of after the latency objective breaks.
            # Critical when the crossing is 30 min away or nearer (or demand runs twice its usual).
            detector="headroom",
            signal="inference_request_rate*",
            entity_kind="model",
            min_severity=Severity.CRITICAL,
            action="scale_ahead",
            target="owner",
        ),
        PolicyRule(
            name="disk-filling",
            signal="node_filesystem_*",  # space and inodes
            entity_kind="node",
            min_severity=Severity.CRITICAL,
            action="advise",
        ),
        PolicyRule(
            name="model-quality",
            signal="model_accuracy",
            entity_kind="model",
            # A warning on a quality gauge is a drop that is already significant (quality_drift's
            # CUSUM fired, or the drop neared the threshold past the series' noise): the rollback
            # suggestion follows it at once instead of waiting for the full 5 %.
            min_severity=Severity.WARNING,
            # quality_drift's trend forecast (the floor reached within 2 h) warns earlier; putting
            # the previous release back waits for the drop to be observed.
            act_on_forecasts=False,
            # Put the previous release back (Deployment history or Argo CD); advice with the exact
            # command by default, automatic only when a user raises max_mode.
            action="rollback_model",
            target="owner",
            max_mode=Mode.SUGGEST,
        ),
    ]


class RootCauseConfig(StrictModel):
    """Cross-signal root cause: join quality/serving findings with infrastructure by topology."""

    enabled: bool = True
    # A replica whose quality gauge fell this much below its own baseline counts as degraded.
    replica_quality_drop: float = Field(default=0.05, gt=0.0, lt=1.0)
    # Infrastructure findings at or above this score can explain a serving problem.
    infra_min_score: float = Field(default=0.7, ge=0.0, le=1.0)
    # GPU series that vanish while their node is Ready are reported with this score.
    missing_gpu_score: float = Field(default=0.8, ge=0.0, le=1.0)


class PolicyConfig(StrictModel):
    severity: SeverityThresholds = SeverityThresholds()
    root_cause: RootCauseConfig = RootCauseConfig()
    rules: list[PolicyRule] = Field(default_factory=default_rules)
    # Findings below this severity are recorded but not sent to people.
    notify_min_severity: Severity = Severity.WARNING
    # Pods whose owner (kube_pod_info created_by_kind) is one of these are never restarted or
    # evicted by a pod action: a Job's pod would lose its batch work, a bare pod ("<none>") would
    # not come back. Policy advises instead, and a *prediction* about such a pod is a warning, not
    # a page: nothing is to be done now (a confirmed failure still pages).
    # Kinds as Kubernetes spells them (case-sensitive: Job, not job).
    never_disrupt_owners: list[OwnerKind] = Field(default_factory=lambda: ["Job", NO_OWNER])
    # What happens in safety.protected_namespaces (kube-system and the like) is told as a warning,
    # with advice, not paged: aiops never acts there, those namespaces restart things routinely,
    # and their components belong to the platform, whose own alerting pages on them (a kube-proxy
    # crash loop is kube-prometheus's KubePodCrashLooping). True pages for them here too.
    page_protected_namespaces: bool = False
    # What each XID calls for (NVIDIA's Xid catalog), applied to gpu_health's XID findings by any
    # rule that would evacuate their node: the one place the per-XID remediation lives. 94 is a
    # contained ECC error: only the application on that GPU is hit, so its pod is restarted and the
    # node stays schedulable. An XID not listed gets advice.
    xid_remediation: dict[int, str] = Field(default_factory=lambda: dict(DEFAULT_XID_REMEDIATION))

    @model_validator(mode="after")
    def _unique(self) -> PolicyConfig:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"policy rule names must be unique, repeated: {', '.join(dupes)}")
        return self
