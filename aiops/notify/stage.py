"""The notify stage: graded findings and action results -> notifications -> channels.

Minimal first version: one notification per entity at or above ``policy.notify_min_severity``,
sent directly to each configured channel. Routing, grouping, de-duplication and the persistent
outbox come with the notifications work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiops import metrics, plugins
from aiops.config import AiopsConfig
from aiops.model import ActionResult, Finding, Notification, Severity
from aiops.plugins import DeliveryStatus, Notifier
from aiops.state import Store


class NotifyStage:
    def __init__(self, config: AiopsConfig, channels: dict[str, Notifier]) -> None:
        self.config = config
        self.channels = channels

    @classmethod
    def from_config(cls, config: AiopsConfig, store: Store) -> NotifyStage:
        channels = {
            name: plugins.instantiate(plugins.NOTIFIERS, ch.plugin, dict(ch.params))
            for name, ch in config.notify.channels.items()
        }
        return cls(config, channels)

    def notify(
        self,
        findings: Sequence[Finding],
        results: Sequence[ActionResult],
        *,
        cycle_id: str,
        now: datetime,
        degraded: bool,
    ) -> list[Notification]:
        floor = self.config.policy.notify_min_severity.rank
        by_entity: dict[str, list[Finding]] = {}
        for f in findings:
            if (f.severity or Severity.INFO).rank >= floor:
                by_entity.setdefault(f.entity.key, []).append(f)
        out: list[Notification] = []
        for key, group in by_entity.items():
            top = max(group, key=lambda f: f.score)
            related = tuple(r for r in results if r.target.key == key or r.decision_id in {f.id for f in group})
            summary = top.evidence.summary
            if related:
                summary += " | " + "; ".join(r.detail for r in related)
            out.append(
                Notification(
                    key=f"{key}",
                    severity=top.severity or Severity.INFO,
                    title=f"{(top.severity or Severity.INFO).value.upper()} {key}: {top.signal}",
                    summary=summary,
                    entity=top.entity,
                    findings=tuple(group),
                    results=related,
                    cycle_id=cycle_id,
                )
            )
        if out:
            for name, channel in self.channels.items():
                delivery = channel.send(out)
                result = "ok" if delivery.status is DeliveryStatus.DELIVERED else delivery.status.value
                metrics.NOTIFICATIONS.labels(name, result).inc(len(out))
        return out

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
