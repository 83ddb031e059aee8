"""The act stage: decisions -> plans -> results, through the guarded writer.

Minimal first version: plans every decision with its remediation plugin and reports what would be
done per mode; nothing is written to a cluster. The guarded writer (aiops/engine/safety.py) makes
``auto`` mode real.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiops import plugins
from aiops.config import AiopsConfig
from aiops.model import ActionResult, ActionStatus, Decision, Finding, Mode
from aiops.plugins import PluginError, Remediation
from aiops.state import Store


class Actor:
    def __init__(self, config: AiopsConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._remediations: dict[str, Remediation] = {}

    @classmethod
    def from_config(cls, config: AiopsConfig, store: Store) -> Actor:
        return cls(config, store)

    def start(self) -> None:
        """Nothing runs in the background in this version."""

    def close(self) -> None:
        self._remediations.clear()

    @property
    def is_leader(self) -> bool:
        return True

    def remediation(self, name: str) -> Remediation:
        if name not in self._remediations:
            self._remediations[name] = plugins.instantiate(plugins.REMEDIATIONS, name)
        return self._remediations[name]

    def act(
        self, decisions: Sequence[Decision], *, findings: Sequence[Finding], degraded: bool, now: datetime
    ) -> list[ActionResult]:
        results = []
        for d in decisions:
            if degraded:
                results.append(ActionResult(d.id, d.action, d.target, ActionStatus.SKIPPED,
                                            "cycle degraded: no action on a partial picture", at=now))
                continue
            try:
                plan = self.remediation(d.action).plan(d, None)
            except PluginError as exc:
                results.append(ActionResult(d.id, d.action, d.target, ActionStatus.FAILED, str(exc), at=now))
                continue
            if d.mode is Mode.OBSERVE:
                status, detail = ActionStatus.OBSERVED, f"observe mode: would {plan.summary}"
            elif d.mode is Mode.SUGGEST:
                status, detail = ActionStatus.SUGGESTED, f"suggested: {plan.summary}"
            else:
                status, detail = ActionStatus.DRY_RUN, f"dry-run: would {plan.summary}"
            results.append(ActionResult(d.id, d.action, d.target, status, detail, plan=plan, at=now))
        return results
