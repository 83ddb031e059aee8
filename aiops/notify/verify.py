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

An alert is about what its labels name (a pod, else a workload, a node, a namespace), but some of
its labels may be the exporter's own. Scraped through a ServiceMonitor, every series of a target
carries the target's ``namespace``/``pod``/``container``/``service``/``endpoint`` where the series
has none of its own: a kube-state-metrics node alert (KubeNodeNotReady) then names the
kube-state-metrics pod, and a node-exporter alert (NodeFilesystemSpaceFillingUp) names the
node-exporter pod. So for a verified alert with an ``instance``, the target's ``up`` series says
which labels are the scrape target's: those the alert shares with it are dropped, and where the
scrape did not honour the series' own (they came as ``exported_pod``...) those take their place.
An alert on node-exporter's series has no ``node`` label either (its ``instance`` is the
exporter's address): ``node_uname_info`` of that instance names the node, as the signal catalog
names nodes. Prometheus not answering these lookups defers the alert, as above; a target it does
not know leaves the alert as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiops.collect.decode import RawSeries
from aiops.collect.prometheus import PrometheusError
from aiops.config.promql import any_of, promql_string

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


# Node-exporter's series naming the node each instance runs on (its host name).
NODE_NAMES_QUERY = "node_uname_info"
# Labels a scrape through a ServiceMonitor/PodMonitor gives every series of the target that has
# none of its own: on an alert they may name the exporter, not what the alert is about.
_TARGET_LABELS = ("namespace", "pod", "container", "service", "endpoint")


def _selector(metric: str, *matchers: str, scope: Mapping[str, str] | None = None) -> str:
    """``metric{matchers}``, held to ``scope`` (prometheus.scope)."""
    every = [*matchers, *(f"{k}={promql_string(v)}" for k, v in sorted((scope or {}).items()))]
    return f"{metric}{{{','.join(every)}}}" if every else metric


def alerts_query(alertname: str, scope: Mapping[str, str] | None = None) -> str:
    return _selector("ALERTS", f"alertname={promql_string(alertname)}", 'alertstate="firing"', scope=scope)


class AlertVerifier:
    """Checks inbound alerts against the ALERTS series of a Prometheus (one query per alert name)."""

    def __init__(self, query: InstantQuery, scope: Mapping[str, str] | None = None) -> None:
        self._query = query
        # prometheus.scope: this cluster's series only, on a backend that serves several.
        self._scope = dict(scope or {})

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
                    firing[name] = self._query(alerts_query(name, self._scope), now)
                except PrometheusError as exc:
                    firing[name] = exc
            found = firing[name]
            if isinstance(found, PrometheusError):
                out.append(Verdict(False, reason=UNVERIFIABLE,
                                   detail=f"cannot check {name} against Prometheus ({found}); not acting on it"))
                continue
            out.append(_match(name, labels, found, self._scope))
        return self._subjects(out, now)

    def _subjects(self, verdicts: list[Verdict], now: datetime) -> list[Verdict]:
        """Verified alerts without the scrape target's own labels, and node-exporter's named by
        their node (module docstring)."""
        asking = [i for i, v in enumerate(verdicts) if v.verified and "instance" in v.labels]
        if not asking:
            return verdicts
        # The asking alerts' instances only: a cluster has thousands of targets.
        instances = f"instance=~{promql_string(any_of(verdicts[i].labels['instance'] for i in asking))}"
        try:
            targets = {(s.labels.get("job"), s.labels.get("instance")): s.labels
                       for s in self._query(_selector("up", instances, scope=self._scope), now)}
            nodes: dict[str | None, str] = {}
            if any("node" not in verdicts[i].labels for i in asking):  # only those ask which node
                nodes = {s.labels.get("instance"): s.labels.get("nodename", "")
                         for s in self._query(_selector(NODE_NAMES_QUERY, instances, scope=self._scope), now)}
        except PrometheusError as exc:
            for i in asking:
                verdicts[i] = Verdict(False, reason=UNVERIFIABLE, detail=(
                    f"cannot look up the scrape target of {verdicts[i].labels['instance']} (up, {NODE_NAMES_QUERY}): "
                    f"{exc}; not acting on it"))
            return verdicts
        for i in asking:
            own = verdicts[i].labels
            target = targets.get((own.get("job"), own["instance"]), {})
            about = {k: v for k, v in own.items() if not (k in _TARGET_LABELS and target.get(k) == v)}
            for k in _TARGET_LABELS:  # scraped without honor_labels: the series' own came as exported_*
                if k not in about and f"exported_{k}" in about:
                    about[k] = about.pop(f"exported_{k}")
            if "node" not in about and nodes.get(own["instance"]):
                about["node"] = nodes[own["instance"]]
            if about != own:
                verdicts[i] = Verdict(True, labels=about)
        return verdicts


def _match(name: str, labels: Mapping[str, str], series: Sequence[RawSeries], scope: Mapping[str, str]) -> Verdict:
    for s in series:
        own = {k: v for k, v in s.labels.items() if k not in _META}
        if all(labels.get(k) == v for k, v in own.items()):
            return Verdict(True, labels=own)
    if not series:
        detail = f"Prometheus has no firing {alerts_query(name, scope)}: the alert did not come from a rule it evaluates"
    else:
        detail = (f"Prometheus fires {name} for {len(series)} other label set(s), none of which the received "
                  "alert carries")
    return Verdict(False, reason=NOT_FIRING, detail=detail)
