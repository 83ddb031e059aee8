"""Capacity and cost advisor: idle GPUs, tiering and MIG advice, HPA targets from history.

    advice = advise(config, now)            # reads advisor.window of history from Prometheus
    write_reports(advice, config.advisor.output_dir)
    notifications = weekly_digest(config, store, now)   # [] except once a week, for the notify stage

Advice is read-only: it proposes exact changes (manifest snippets, kubectl commands) and never
applies them.
"""

from __future__ import annotations

from aiops.advisor.advise import advise
from aiops.advisor.digest import digest, digest_due, digest_notification, weekly_digest
from aiops.advisor.history import AdvisorError, RangeQuerier, workload_of
from aiops.advisor.records import Advice, History, Kind, Recommendation, Saving, Usage
from aiops.advisor.render import terminal_summary, write_reports

__all__ = [
    "Advice",
    "AdvisorError",
    "History",
    "Kind",
    "RangeQuerier",
    "Recommendation",
    "Saving",
    "Usage",
    "advise",
    "digest",
    "digest_due",
    "digest_notification",
    "terminal_summary",
    "weekly_digest",
    "workload_of",
    "write_reports",
]

