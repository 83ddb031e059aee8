from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from aiops.config.base import Duration, StrictModel
from aiops.model import Mode


class SafetyConfig(StrictModel):
    """The rails every mutation passes through. Acting must be asked for explicitly."""

    mode: Mode = Mode.OBSERVE
    # Dry-run takes the real code path with a Kubernetes client that does not write.
    dry_run: bool = True
    protected_namespaces: list[str] = Field(default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease"])
    cooldown: Duration = timedelta(minutes=30)
    max_actions_per_hour: int = Field(default=5, ge=0)
    max_actions_per_day: int = Field(default=20, ge=0)
