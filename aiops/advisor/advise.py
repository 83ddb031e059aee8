"""One advisor run: read the window of history, then analyse it."""

from __future__ import annotations

from datetime import datetime

from aiops.advisor.analyze import analyze
from aiops.advisor.history import HistoryReader, RangeQuerier
from aiops.advisor.records import Advice
from aiops.config import AiopsConfig


def advise(config: AiopsConfig, now: datetime, client: RangeQuerier | None = None) -> Advice:
    """Read ``config.advisor.window`` of history up to ``now`` and work out the advice.

    Raises :class:`~aiops.advisor.history.AdvisorError` (``.temporary`` for outages) when the
    history cannot be read; nothing is half-advised from a partial read.
    """
    if client is not None:
        return analyze(HistoryReader(config, client).read(now), config.advisor, now)
    from aiops.collect.prometheus import PrometheusClient

    own = PrometheusClient(config.prometheus)
    try:
        return analyze(HistoryReader(config, own).read(now), config.advisor, now)
    finally:
        own.close()
