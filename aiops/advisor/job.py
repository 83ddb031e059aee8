"""The weekly capacity digest as its own scheduled job, beside the cycle rather than inside it.

Computing advice reads a week of history from Prometheus: seconds, sometimes more. The cycle that
protects the cluster never waits for it, and the engine does not know the advisor exists. The job
runs on the daemon's scheduler; the digest is made once a week (``advisor.digest``: weekday and
hour, UTC) by the leader, and delivered through the same notify stage as everything else (routed,
de-duplicated, queued in the outbox), as an event that never "resolves".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiops import metrics
from aiops.advisor.digest import LABELS, weekly_digest
from aiops.config import AiopsConfig
from aiops.model import Notification, NotificationKind, Severity, utcnow
from aiops.notify.stage import NotifyStage
from aiops.state import Store

log = logging.getLogger(__name__)


class DigestJob:
    def __init__(
        self, config: AiopsConfig, store: Store, notifier: NotifyStage, *, is_leader: Callable[[], bool]
    ) -> None:
        self.config = config
        self.store = store
        self.notifier = notifier
        self.is_leader = is_leader

    @property
    def wanted(self) -> bool:
        """Enabled, and some route would deliver it (the digest is INFO: a route must ask for it)."""
        probe = Notification(key="advisor:probe", severity=Severity.INFO, title="", summary="", labels=dict(LABELS),
                             kind=NotificationKind.DIGEST)
        return self.config.advisor.digest.enabled and bool(self.notifier.router.targets(probe))

    def run(self, now: datetime | None = None) -> list[Notification]:
        """Make and send this week's digest when it is due; returns what was queued."""
        now = now or utcnow()
        if not self.wanted or not self.is_leader():
            return []
        try:
            notes = weekly_digest(self.config, self.store, now)
            return self.notifier.send_events(notes, now=now) if notes else []
        except Exception:  # advice is a nicety: a failure is logged and counted, and retried next run
            log.exception("weekly capacity digest failed")
            metrics.STAGE_ERRORS.labels("advisor").inc()
            return []
