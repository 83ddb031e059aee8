from __future__ import annotations

from pathlib import Path

from aiops.config.base import StrictModel


class KubernetesConfig(StrictModel):
    """How to reach the cluster. Disabled: plans are made without cluster state and never applied."""

    enabled: bool = False
    in_cluster: bool = False
    kubeconfig: Path | None = None
    context: str | None = None
