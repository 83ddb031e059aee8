"""Is an inbound alert real? Each one is checked against Prometheus before it may act.

The bearer token protects only the Alertmanager -> aiops hop. Alertmanager's own API
(``POST /api/v2/alerts``) is unauthenticated by default, so anyone who can reach it can make it
deliver any alert to the webhook. An alert Prometheus really fires leaves a trace that cannot be
posted from outside: the ``ALERTS{alertname=..., alertstate="firing"}`` series of the alerting rule
Prometheus evaluates. An inbound alert is *verified* when Prometheus has such a series whose labels
all appear, with the same values, on the inbound alert (Alertmanager adds external labels, never
removes any). The finding is then built from Prometheus's labels, not the posted ones, so a forged
extra ``pod`` label cannot redirect a real namespace-wide alert onto another target.

Anything else is refused: no such series (forged, or a rule from another source), or Prometheus not
answering (fail closed: a refusal that is retried next cycle, never an action).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiops.collect.decode import RawSeries
from aiops.collect.prometheus import PrometheusError

# Labels of the ALERTS series that are Prometheus's bookkeeping, not the alert's identity.
_META = frozenset({"__name__", "alertstate"})

# Why an inbound alert was refused: the bounded label values of aiops_inbound_alerts_refused.
NOT_FIRING = "not_firing_in_prometheus"
UNVERIFIABLE = "prometheus_unavailable"

InstantQuery = Callable[[str, datetime], Sequence[RawSeries]]


@dataclass(frozen=True)
class Verdict:
    verified: bool
    # The labels of the matching ALERTS series (what Prometheus vouches for); empty when refused.
    labels: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""  # NOT_FIRING or UNVERIFIABLE when refused
    detail: str = ""  # for people: what was looked for and what was found

    @property
    def temporary(self) -> bool:
        return self.reason == UNVERIFIABLE


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def alerts_query(alertname: str) -> str:
    return f'ALERTS{{alertname="{_quote(alertname)}",alertstate="firing"}}'


class AlertVerifier:
    """Checks inbound alerts against the ALERTS series of a Prometheus (one query per alert name)."""

    def __init__(self, query: InstantQuery) -> None:
        self._query = query

    def check(self, alerts: Sequence[Mapping[str, str]], now: datetime) -> list[Verdict]:
        """One verdict per alert (its labels), in order."""
        firing: dict[str, Sequence[RawSeries] | PrometheusError] = {}
        out: list[Verdict] = []
        for labels in alerts:
            name = labels.get("alertname", "")
            if not name:
                out.append(Verdict(False, reason=NOT_FIRING, detail="the alert has no alertname label"))
                continue
            if name not in firing:
                try:
                    firing[name] = self._query(alerts_query(name), now)
                except PrometheusError as exc:
                    firing[name] = exc
            found = firing[name]
            if isinstance(found, PrometheusError):
                out.append(Verdict(False, reason=UNVERIFIABLE,
                                   detail=f"cannot check {name} against Prometheus ({found}); not acting on it"))
                continue
            out.append(_match(name, labels, found))
        return out


def _match(name: str, labels: Mapping[str, str], series: Sequence[RawSeries]) -> Verdict:
    for s in series:
        own = {k: v for k, v in s.labels.items() if k not in _META}
        if all(labels.get(k) == v for k, v in own.items()):
            return Verdict(True, labels=own)
    if not series:
        detail = f'Prometheus has no firing {alerts_query(name)}: the alert did not come from a rule it evaluates'
    else:
        detail = (f"Prometheus fires {name} for {len(series)} other label set(s), none of which the received "
                  "alert carries")
    return Verdict(False, reason=NOT_FIRING, detail=detail)
