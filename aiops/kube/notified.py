"""The leader's notification ledger, kept in the cluster so that every replica sees it.

With several replicas only the lease holder talks to people; the others keep their de-dup ledger
in step so that a new leader does not repeat what the old one told. A follower cannot know that
from its own state: the old leader may have queued a message and died before delivering it
(DingTalk throttled, SMTP down). So the leader writes down what it *delivered*, the way the
guarded writer records its actions: an Event (reason ``AiopsNotified``) in the daemon's own
namespace, on its leader Lease, listing ``(channel, key, severity)`` of each delivery. A follower
marks a notification as told only once it sees it there; what the old leader never delivered
stays due, and the new leader sends it, once.

Events live as long as the cluster keeps them (1 h by default): a follower reads them every
cycle, so it sees each one long before it expires. No new RBAC: the daemon already creates and
lists Events for its action ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kubernetes import client as k8s

from aiops.kube.errors import classify
from aiops.kube.read import _items, _meta

NOTIFIED_REASON = "AiopsNotified"
NOTIFIED_ANNOTATION = "aiops.io/notified"
# An Event annotation holds at most 256 KiB: deliveries are published in slices of this many.
_PER_EVENT = 500

Delivered = tuple[str, str, str]  # (channel, notification key, severity)


class ClusterNotifyLedger:
    def __init__(self, api: k8s.ApiClient, namespace: str, *, lease_name: str, reporter: str,
                 timeout: tuple[float, float]) -> None:
        self.api = api
        self.namespace = namespace
        self.lease_name = lease_name
        self.reporter = reporter
        self.timeout = timeout

    def delivered(self) -> set[Delivered]:
        """What a leader recorded as delivered (raises KubeApiError when the Events cannot be read)."""
        items = _items(k8s.CoreV1Api(self.api).list_namespaced_event, f"list events in {self.namespace}",
                       self.timeout, namespace=self.namespace, field_selector=f"reason={NOTIFIED_REASON}")
        out: set[Delivered] = set()
        for obj in items:
            raw = (_meta(obj).get("annotations") or {}).get(NOTIFIED_ANNOTATION, "")
            try:
                entries = json.loads(raw)
            except ValueError:
                continue
            out.update((str(c), str(k), str(s)) for c, k, s in entries if isinstance(entries, list))
        return out

    def publish(self, delivered: Iterable[Delivered], now: datetime) -> None:
        """Record deliveries (raises KubeApiError when the Event cannot be created)."""
        entries = sorted(set(delivered))
        stamp = now.isoformat().replace("+00:00", "Z")
        core = k8s.CoreV1Api(self.api)
        for start in range(0, len(entries), _PER_EVENT):
            part = entries[start:start + _PER_EVENT]
            body: dict[str, Any] = {
                "metadata": {"generateName": "aiops-notified-", "namespace": self.namespace,
                             "annotations": {NOTIFIED_ANNOTATION: json.dumps(part, separators=(",", ":"))}},
                "involvedObject": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "name": self.lease_name, "namespace": self.namespace},
                "reason": NOTIFIED_REASON,
                "message": f"delivered {len(part)} notification(s)",
                "type": "Normal",
                "source": {"component": "aiops"},
                "reportingComponent": "aiops",
                "reportingInstance": self.reporter,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
            try:
                resp: Any = core.create_namespaced_event(self.namespace, k8s.CoreV1Event.model_validate(body),
                                                         _preload_content=False, _request_timeout=self.timeout)
                # Read to its end: an unread raw response keeps its connection out of the pool.
                resp.read()
            except Exception as exc:
                raise classify(exc, f"create event in {self.namespace}") from None
