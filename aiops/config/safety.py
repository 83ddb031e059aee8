from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from aiops.config.base import Duration, StrictModel
from aiops.model import Mode


# Always protected, whatever safety.protected_namespaces lists: the control plane's own namespaces.
# A list in the config replaces its default, so a user adding "monitoring" (or writing a pattern)
# must not unprotect kube-system by accident; aiops looks after inference workloads, not these.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
# A namespace is a DNS label (lower-case letters, digits, '-'); a pattern adds fnmatch's * ? [ ] !.
_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9*?\[\]!-]+$")


def _namespace_pattern(pattern: str) -> str:
    if not pattern:
        raise ValueError("an empty pattern matches no namespace; remove it")
    if not _NAMESPACE_PATTERN.match(pattern):
        likely = re.sub(r"[^a-z0-9*?\[\]!-]", "-", pattern.lower())
        raise ValueError(
            f"{pattern!r} can match no namespace: namespace names are lower-case letters, digits and '-' "
            f"(with * ? [ ] as wildcards); did you mean {likely!r}?"
        )
    return pattern


NamespacePattern = Annotated[str, AfterValidator(_namespace_pattern)]


def namespace_protected(patterns: Iterable[str], namespace: str) -> bool:
    """Whether ``namespace`` matches one of ``patterns`` (fnmatch, case-sensitive, as policy rules)."""
    return any(fnmatchcase(namespace, p) for p in patterns)


class KillSwitchConfig(StrictModel):
    """Two independent ways for a human to stop every write at once.

    The switch is released only by a false value ("false", "0", "no", "off", any case) in the
    ConfigMap key or the file; an existing file with anything else (or nothing: `touch` is enough)
    engages it. It fails closed, with a warning in the log: a ConfigMap value it does not
    understand (a typo), a ConfigMap it cannot read (API error), or one it has seen and that is now
    gone (deleted, or its key removed) all count as engaged. A ConfigMap that never existed means
    the ConfigMap switch is not in use.
    """

    # None: the daemon's own namespace (kubernetes.namespace).
    configmap_namespace: str | None = None
    configmap_name: str = "aiops-control"
    configmap_key: str = "kill_switch"
    file: Path | None = None


# The budgets split per shard when sharded (aiops.engine.shards.budget_share; the writer's
# remaining_budget): a shard of N spends only its share, so a budget B with 0 < B < N leaves
# some shards none. AiopsConfig refuses that.
SHARD_SPLIT_BUDGETS: tuple[str, ...] = (
    "max_actions_per_hour",
    "max_actions_per_day",
    "max_predicted_actions_per_hour",
    "max_predicted_actions_per_day",
    "max_inbound_actions_per_hour",
    "max_inbound_actions_per_day",
)


class SafetyConfig(StrictModel):
    """The rails every mutation passes through. Acting must be asked for explicitly."""

    mode: Mode = Mode.OBSERVE
    # Dry-run takes the real code path with a Kubernetes client that does not write (dryRun=All).
    dry_run: bool = True
    # Per-action caps on the global mode, e.g. {evacuate_node: suggest}, keyed by remediation name
    # (checked against the installed ones with the rules' actions: aiops.config.check).
    action_modes: dict[str, Mode] = Field(default_factory=dict)
    kill_switch: KillSwitchConfig = KillSwitchConfig()
    # Namespaces aiops never acts in, as fnmatch patterns like policy rules' ("gpu-operator*"), on
    # top of SYSTEM_NAMESPACES (kube-system, kube-public, kube-node-lease), which are always protected.
    protected_namespaces: list[NamespacePattern] = Field(default_factory=list)
    # Opt-in: act only on objects labelled aiops.io/remediate="true". Opt-out always wins: any other
    # value of that label or annotation (false, False, "0", no, a typo), on the object or its workload.
    opt_in: bool = False
    cooldown: Duration = timedelta(minutes=30)
    max_actions_per_hour: int = Field(default=5, ge=0)
    max_actions_per_day: int = Field(default=20, ge=0)
    # Blast radius: at most this fraction of the nodes cordoned at once (at least one node).
    max_cordoned_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # Actions taken on a *prediction* (not on a confirmed failure) draw from these smaller budgets
    # and blast radius as well as from the totals above: a wrong forecast can do less harm.
    max_predicted_actions_per_hour: int = Field(default=2, ge=0)
    max_predicted_actions_per_day: int = Field(default=8, ge=0)
    max_predicted_cordoned_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    # Actions triggered by an inbound Alertmanager alert (verified against Prometheus) draw from
    # these smaller budgets as well: whoever can post to Alertmanager can ask for at most this much.
    max_inbound_actions_per_hour: int = Field(default=1, ge=0)
    max_inbound_actions_per_day: int = Field(default=4, ge=0)
    # Blast radius: pods of one workload deleted or evicted within ``workload_window``.
    max_pods_per_workload: int = Field(default=2, ge=0)
    workload_window: Duration = timedelta(hours=1)
    # Closing the loop: an action heals when its triggering finding clears within ``verify_within``.
    verify_within: Duration = timedelta(minutes=30)
    # Circuit breaker: this many consecutive not-healed actions stop all acting for ``breaker_open_for``.
    breaker_threshold: int = Field(default=3, ge=1)
    breaker_open_for: Duration = timedelta(hours=6)
    # A multi-cycle action (an evacuation waiting on a PDB or on max_pods_per_workload) still not
    # done after this long is given up and escalated, never forced. Longer than workload_window,
    # so that a node with more pods of one workload than the window allows can still be drained.
    evacuation_timeout: Duration = timedelta(hours=2)
    # Opt-in: uncordon a node aiops cordoned once its finding has been clear for ``uncordon_after``.
    auto_uncordon: bool = False
    uncordon_after: Duration = timedelta(minutes=30)
    # Scale-ahead: restore the original replicas once the finding has been clear this long.
    restore_after: Duration = timedelta(minutes=30)
    # Kubernetes API calls: attempts for temporary errors (429/5xx/409/timeouts) within one cycle.
    api_attempts: int = Field(default=3, ge=1, le=10)
    api_backoff_max: Duration = timedelta(seconds=2)
    # Write a Kubernetes Event (reason AiopsRemediation) on each target acted on, and one
    # (AiopsDisruption) on each pod evicted or deleted. Replicas read them back to share cooldowns,
    # budgets and the per-workload cap; off, each replica counts only its own.
    emit_events: bool = True

    @property
    def protected_patterns(self) -> tuple[str, ...]:
        """Every protected namespace pattern: the system namespaces, then the configured ones."""
        return (*SYSTEM_NAMESPACES, *self.protected_namespaces)

    def is_protected(self, namespace: str) -> bool:
        return namespace_protected(self.protected_patterns, namespace)

    @model_validator(mode="after")
    def _check(self) -> SafetyConfig:
        if self.max_actions_per_hour > self.max_actions_per_day:
            raise ValueError("max_actions_per_hour must not exceed max_actions_per_day")
        if self.max_predicted_actions_per_hour > self.max_predicted_actions_per_day:
            raise ValueError("max_predicted_actions_per_hour must not exceed max_predicted_actions_per_day")
        if self.max_inbound_actions_per_hour > self.max_inbound_actions_per_day:
            raise ValueError("max_inbound_actions_per_hour must not exceed max_inbound_actions_per_day")
        return self
