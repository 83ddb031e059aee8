"""Alertmanager out: findings become alerts in Alertmanager's v2 API, and its silences stop actions.

Pushed alerts carry ``source="aiops"`` so that, if Alertmanager routes them back to the daemon's
webhook, the inbox ignores them (no loop). Active alerts are re-posted every ``refresh_interval``
with ``endsAt`` = now + ``resolve_timeout``: if the daemon stops, its alerts resolve by themselves
instead of firing forever. So are conditions the daemon holds (gone for less than the route's
``resolve_after``, or unmeasured), and during degraded cycles: Alertmanager ends an alert when
the daemon clears it, not before. A cleared finding is sent with ``endsAt`` = now.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
from pydantic import HttpUrl, SecretStr, model_validator

from aiops.config.base import Duration, Secret, StrictModel
from aiops.config.notify import NotifyConfig
from aiops.errors import AiopsError
from aiops.model import Entity, EntityKind, Finding, Notification, Severity
from aiops.notify.formatting import (
    action_line,
    links_of,
    prediction,
    recent_values,
    title_for,
)
from aiops.notify.params import parse_params
from aiops.plugins import Delivery, DeliveryStatus, Notifier

log = logging.getLogger(__name__)

SOURCE_LABEL = "source"
SOURCE_VALUE = "aiops"
INBOUND_DETECTOR = "alertmanager"


class AlertmanagerError(AiopsError):
    """Alertmanager could not be asked. ``temporary`` tells a retry from a configuration problem."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message, temporary=temporary)


def alertname(signal: str) -> str:
    """``pod_memory_usage_ratio`` -> ``AiopsPodMemoryUsageRatio`` (Alertmanager's naming style)."""
    return "Aiops" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", signal) if part)


# Kinds whose name an alert carries as a label of the kind's own name (pod="web-1").
_OWN_LABEL = frozenset({
    EntityKind.POD, EntityKind.NODE, EntityKind.GPU, EntityKind.MODEL, EntityKind.DEPLOYMENT,
    EntityKind.STATEFULSET, EntityKind.SERVICE, EntityKind.CONTAINER, EntityKind.HPA,
})


def alert_labels(finding: Finding, severity: Severity | None = None) -> dict[str, str]:
    """The labels of the alert for ``finding``; also what a silence is matched against before acting.

    A finding that came in from Alertmanager keeps its original labels, so silencing the original
    alert (``alertname=KubePodCrashLooping, pod=x``) also stops the remediation it triggers.
    """
    original = finding.evidence.facts.get("labels") if finding.detector == INBOUND_DETECTOR else None
    if isinstance(original, Mapping):
        return {str(k): str(v) for k, v in original.items()}
    e = finding.entity
    labels = {
        "alertname": alertname(finding.signal),
        "severity": (severity or finding.severity or Severity.INFO).value,
        "detector": finding.detector,
        "signal": finding.signal,
        "kind": e.kind.value,
        SOURCE_LABEL: SOURCE_VALUE,
    }
    if e.namespace:
        labels["namespace"] = e.namespace
    if e.kind in _OWN_LABEL:
        labels[e.kind.value] = e.name
    elif e.kind == EntityKind.NAMESPACE:
        labels["namespace"] = e.name
    for attr in ("node", "container", "gpu"):
        value = e.attr(attr)
        if value and attr not in labels:
            labels[attr] = value
    return labels


def silence_labels(finding: Finding, target: Entity | None = None) -> dict[str, str]:
    """What the guarded writer passes to :meth:`AlertmanagerClient.is_silenced` before acting on
    ``target`` for ``finding``: the finding's alert labels plus the target's kind, name and namespace
    (a silence on ``node=n1`` stops an evacuation of n1 triggered by a pod finding)."""
    labels = alert_labels(finding)
    if target is not None:
        labels[target.kind.value] = target.name  # what is acted on decides, e.g. the node of an evacuation
        if target.namespace:
            labels["namespace"] = target.namespace
    return labels


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- silences ------------------------------------------------------------------------------
def _matcher_matches(matcher: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    # Alertmanager semantics: a missing label has the value "", regexes are fully anchored.
    value = labels.get(str(matcher.get("name", "")), "")
    pattern = str(matcher.get("value", ""))
    if matcher.get("isRegex"):
        try:
            hit = re.fullmatch(f"(?:{pattern})", value) is not None
        except re.error:
            return False
    else:
        hit = value == pattern
    return hit if matcher.get("isEqual", True) else not hit


def silence_matches(silence: Mapping[str, Any], labels: Mapping[str, str], now: datetime | None = None) -> bool:
    """True when ``silence`` is active and every one of its matchers matches ``labels``."""
    state = (silence.get("status") or {}).get("state")
    if state is not None and state != "active":
        return False
    if now is not None and state is None:
        try:
            starts = datetime.fromisoformat(str(silence["startsAt"]))
            ends = datetime.fromisoformat(str(silence["endsAt"]))
        except (KeyError, ValueError):
            return False
        if not starts <= now < ends:
            return False
    matchers = silence.get("matchers") or []
    return bool(matchers) and all(_matcher_matches(m, labels) for m in matchers)


class AlertmanagerClient:
    """A small client of Alertmanager's v2 API with timeouts and errors that say what to do.

    ``is_silenced`` is what the guarded writer calls before acting on a target. When Alertmanager
    cannot be asked, ``fail_closed`` (the default) answers True: the action waits rather than
    overriding a silence it could not see.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        bearer_token: SecretStr | None = None,
        session: requests.Session | None = None,
        silence_cache_seconds: float = 10.0,
        fail_closed: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()
        if bearer_token is not None:
            self._session.headers["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
        self.fail_closed = fail_closed
        self._cache_seconds = silence_cache_seconds
        self._clock = clock
        self._cache: tuple[float, list[dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        where = f"Alertmanager at {self.url}"
        try:
            resp = self._session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise AlertmanagerError(f"{where} did not answer within {self.timeout:g}s", temporary=True) from None
        except requests.RequestException as exc:
            raise AlertmanagerError(f"cannot reach {where}: {type(exc).__name__}", temporary=True) from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise AlertmanagerError(f"{where} answered HTTP {resp.status_code}: {resp.text[:200]}", temporary=True)
        if resp.status_code in (401, 403):
            raise AlertmanagerError(f"{where} refused our credentials (HTTP {resp.status_code}); check bearer_token",
                                    temporary=False)
        if resp.status_code >= 400:
            raise AlertmanagerError(f"{where} rejected {method} {path} (HTTP {resp.status_code}): {resp.text[:300]}",
                                    temporary=False)
        return resp

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        if alerts:
            self._request("POST", "/api/v2/alerts", json=list(alerts))

    def alerts(self, *, active: bool = True, silenced: bool = True) -> list[dict[str, Any]]:
        params = {"active": str(active).lower(), "silenced": str(silenced).lower()}
        return list(self._request("GET", "/api/v2/alerts", params=params).json())

    def silences(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/v2/silences").json())

    def create_silence(self, matchers: Mapping[str, str], *, duration: timedelta = timedelta(hours=1),
                       created_by: str = "aiops", comment: str = "") -> str:
        now = datetime.now(UTC)
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
            "startsAt": _rfc3339(now),
            "endsAt": _rfc3339(now + duration),
            "createdBy": created_by,
            "comment": comment or "created by aiops",
        }
        with self._lock:
            self._cache = None
        return str(self._request("POST", "/api/v2/silences", json=body).json()["silenceID"])

    def delete_silence(self, silence_id: str) -> None:
        with self._lock:
            self._cache = None
        self._request("DELETE", f"/api/v2/silence/{silence_id}")

    def _active_silences(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self._clock()
            if self._cache is not None and now - self._cache[0] < self._cache_seconds:
                return self._cache[1]
        fresh = [s for s in self.silences() if (s.get("status") or {}).get("state") == "active"]
        with self._lock:
            self._cache = (self._clock(), fresh)
        return fresh

    def is_silenced(self, labels: Mapping[str, str]) -> bool:
        try:
            silences = self._active_silences()
        except AlertmanagerError as exc:
            if self.fail_closed:
                log.warning("treating %s as silenced: %s", dict(labels), exc)
                return True
            raise
        return any(silence_matches(s, labels) for s in silences)

    def close(self) -> None:
        self._session.close()


# --- the channel ---------------------------------------------------------------------------
class AlertmanagerParams(StrictModel):
    url: HttpUrl
    bearer_token: Secret | None = None
    timeout: Duration = timedelta(seconds=10)
    # Alertmanager resolves an alert that is not re-posted within this time (its resolve_timeout).
    resolve_timeout: Duration = timedelta(minutes=5)
    # How often active alerts are re-posted; must be well inside resolve_timeout.
    refresh_interval: Duration = timedelta(minutes=1)
    # Used as generatorURL when no "grafana" link is configured.
    generator_url: str = ""

    @model_validator(mode="after")
    def _refresh(self) -> AlertmanagerParams:
        if self.refresh_interval * 2 > self.resolve_timeout:
            raise ValueError("refresh_interval must be at most half of resolve_timeout, or alerts flap to resolved")
        return self


class AlertmanagerNotifier(Notifier):
    name: ClassVar[str] = "alertmanager"
    groups_itself: ClassVar[bool] = True
    # Alerts with the same labels are the same alert: a repeat is harmless.
    redeliver_after_crash: ClassVar[bool] = True
    # The v2 API takes a list: a refresh of every active alert is a few POSTs, not one per ten
    # (a large incident outgrew what one flush carried, and alerts not re-posted expired).
    max_batch: ClassVar[int | None] = 500

    def __init__(self, **params: Any) -> None:
        self.params = parse_params(AlertmanagerParams, params)
        token = self.params.bearer_token.resolve() if self.params.bearer_token is not None else None
        self.client = AlertmanagerClient(str(self.params.url), timeout=self.params.timeout.total_seconds(), bearer_token=token)
        # The notify stage re-sends active notifications to this channel at least this often.
        self.repeat_interval: timedelta = self.params.refresh_interval

    def to_alerts(self, n: Notification, now: datetime) -> list[dict[str, Any]]:
        ends = now if n.resolved else now + self.params.resolve_timeout
        links = dict(links_of(n))
        generator = links.get("grafana") or self.params.generator_url
        actions = "; ".join(action_line(r) for r in n.results)
        out = []
        for f in n.findings:
            if f.detector == INBOUND_DETECTOR:
                continue  # it came from Alertmanager: sending it back would duplicate it
            annotations = {
                "summary": title_for(n),
                "evidence": f.evidence.summary,
                "score": f"{f.score:.2f}",
            }
            if f.evidence.recent:
                annotations["recent"] = recent_values(f.evidence.recent)
            if f.lead_time is not None:
                annotations["lead_time"] = f"{int(f.lead_time.total_seconds())}s"
                annotations["predicted_failure"] = prediction(f)
            if actions:
                annotations["action"] = actions
            if "runbook" in links:
                annotations["runbook_url"] = links["runbook"]
            annotations["audit"] = f"cycle {n.cycle_id} finding {f.id}".strip()
            alert: dict[str, Any] = {
                "labels": alert_labels(f, n.severity),
                "annotations": {k: v for k, v in annotations.items() if v},
                "startsAt": _rfc3339(min(f.observed_at, now)),
                "endsAt": _rfc3339(ends),
            }
            if generator:
                alert["generatorURL"] = generator
            out.append(alert)
        if not n.findings and n.results:
            r = n.results[0]
            labels = {"alertname": "AiopsAction", "severity": n.severity.value, "action": r.action,
                      "status": r.status.value, "kind": r.target.kind.value, SOURCE_LABEL: SOURCE_VALUE}
            if r.target.namespace:
                labels["namespace"] = r.target.namespace
            labels[r.target.kind.value] = r.target.name
            out.append({
                "labels": labels,
                "annotations": {"summary": title_for(n), "action": actions, "audit": f"cycle {n.cycle_id}"},
                "startsAt": _rfc3339(r.at),
                "endsAt": _rfc3339(ends),
            })
        return out

    def send(self, batch: Sequence[Notification]) -> Delivery:
        now = datetime.now(UTC)
        alerts = [a for n in batch if not n.test for a in self.to_alerts(n, now)]
        if any(n.test for n in batch):
            alerts.append({
                "labels": {"alertname": "AiopsNotificationTest", "severity": "info", SOURCE_LABEL: SOURCE_VALUE},
                "annotations": {"summary": "aiops notification test: this channel works"},
                "startsAt": _rfc3339(now),
                "endsAt": _rfc3339(now + timedelta(minutes=1)),
            })
        if not alerts:
            return Delivery(DeliveryStatus.DELIVERED, "nothing to push")
        try:
            self.client.post_alerts(alerts)
        except AlertmanagerError as exc:
            return Delivery(DeliveryStatus.RETRY if exc.temporary else DeliveryStatus.GIVE_UP, str(exc))
        return Delivery(DeliveryStatus.DELIVERED, f"pushed {len(alerts)} alert(s)")

    def close(self) -> None:
        self.client.close()


def silence_checker(config: NotifyConfig) -> Callable[[Mapping[str, str]], bool] | None:
    """``labels -> bool`` for the guarded writer, from the first enabled ``alertmanager`` channel;
    None when no Alertmanager is configured (then no silence can apply). It raises
    :class:`AlertmanagerError` when Alertmanager cannot be asked: the writer refuses to act and
    says why, rather than reporting a silence that may not exist."""
    for ch in config.channels.values():
        if ch.enabled and ch.plugin == AlertmanagerNotifier.name:
            params = parse_params(AlertmanagerParams, ch.params)
            token = params.bearer_token.resolve() if params.bearer_token is not None else None
            client = AlertmanagerClient(str(params.url), timeout=min(params.timeout.total_seconds(), 5.0),
                                        bearer_token=token, fail_closed=False)
            return client.is_silenced
    return None
