from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from aiops.config.base import Duration, StrictModel
from aiops.model import Mode, Severity


class SeverityThresholds(StrictModel):
    """Score -> severity. A prediction that lands within ``critical_lead_time`` is critical."""

    warning: float = Field(default=0.7, ge=0.0, le=1.0)
    critical: float = Field(default=0.9, ge=0.0, le=1.0)
    critical_lead_time: Duration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _ordered(self) -> SeverityThresholds:
        if self.warning > self.critical:
            raise ValueError("warning threshold must not exceed the critical threshold")
        return self


class PolicyRule(StrictModel):
    """Which findings trigger which action. Match fields are fnmatch patterns; empty matches all."""

    name: str = Field(min_length=1)
    detector: str = "*"
    signal: str = "*"
    entity_kind: str = "*"
    min_severity: Severity = Severity.CRITICAL
    # Act on a prediction only when the failure is expected within this time.
    max_lead_time: Duration | None = None
    require_confirmed: bool = False
    action: str = Field(min_length=1)
    # Which entity the action targets: the finding's own, or one derived from its attributes.
    target: Literal["entity", "node", "owner"] = "entity"
    # Caps the global mode for this rule (an action can be held at "suggest" while others act).
    max_mode: Mode = Mode.AUTO
    params: dict[str, Any] = Field(default_factory=dict)


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
            min_severity=Severity.CRITICAL,
            action="evacuate_node",
            target="node",
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
            signal="inference_latency_p99",
            entity_kind="model",
            min_severity=Severity.CRITICAL,
            action="scale_ahead",
            target="owner",
        ),
        PolicyRule(
            name="disk-filling",
            signal="node_filesystem_usage_ratio",
            entity_kind="node",
            min_severity=Severity.CRITICAL,
            action="advise",
        ),
        PolicyRule(
            name="model-quality",
            signal="model_accuracy",
            entity_kind="model",
            min_severity=Severity.CRITICAL,
            action="advise",
        ),
    ]


class PolicyConfig(StrictModel):
    severity: SeverityThresholds = SeverityThresholds()
    rules: list[PolicyRule] = Field(default_factory=default_rules)
    # Findings below this severity are recorded but not sent to people.
    notify_min_severity: Severity = Severity.WARNING

    @model_validator(mode="after")
    def _unique(self) -> PolicyConfig:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"policy rule names must be unique, repeated: {', '.join(dupes)}")
        return self
