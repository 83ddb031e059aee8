from __future__ import annotations

from typing import Any

from pydantic import Field

from aiops.config.base import StrictModel


class DetectorConfig(StrictModel):
    """One detector instance: which plugin, on which signals, with which parameters."""

    plugin: str = Field(min_length=1)
    # Instance name, so one plugin can run twice with different parameters. Defaults to plugin.
    name: str | None = None
    signals: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @property
    def instance_name(self) -> str:
        return self.name or self.plugin


def default_detectors() -> list[DetectorConfig]:
    # The ensemble routes each signal family to its detector (detectors/ensemble.py); failures that
    # Kubernetes reports as states (crash loop, NotReady, OOMKill) are confirmed by ``conditions``.
    return [DetectorConfig(plugin="ensemble"), DetectorConfig(plugin="conditions")]
