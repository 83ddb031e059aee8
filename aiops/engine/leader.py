"""Leader election on a coordination.k8s.io/v1 Lease: only the holder acts.

A small elector of our own (the client's ``leaderelection`` lacks LeaseLock before 37.x, exits
the process on bad arguments and never releases the lock): read the Lease, then replace it
carrying the read ``resourceVersion``; a 409 means another replica wrote first and we lost.

Expiry is judged the way client-go does: by how long *we* have seen the same record unchanged,
on our own monotonic clock, so clock skew between replicas cannot make two leaders. A leader that
has not renewed within ``renew_deadline`` (< ``lease_duration``) stops acting at once, before
anyone else can take the lease over. The Lease holds the duration in whole seconds, which is what
observers wait: it is rounded up, so it stays above the renew deadline.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from aiops import metrics
from aiops.config.kube import KubernetesConfig
from aiops.kube.errors import KubeApiError, classify, is_not_found

log = logging.getLogger(__name__)


def _micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


class RenewLoop:
    """One round now, then one every ``period`` seconds on a daemon thread until stopped.

    Lease holders (the leader elector, the shard set) renew this way. A round that raises is
    logged and the loop goes on: a loop that died would silently stop renewing, and the holder
    would lose its leases without knowing."""

    def __init__(self, round_: Callable[[], object], *, period: float, name: str, what: str) -> None:
        self._round = round_
        self._period = period
        self._name = name
        self._what = what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._round()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._round()
            except Exception:  # the loop must survive anything; not renewing drops the leases
                log.exception("%s crashed", self._what)

    def stop(self, *, join_timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout)
            self._thread = None


class LeaseElector:
    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        timeout: tuple[float, float] = (5.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
        gauge: bool = True,
        quiet: bool = False,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")
        self.api = k8s.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.timeout = timeout
        self.clock = clock
        self.on_change = on_change
        # Whether this Lease is the replica's leadership, which ``aiops_leader`` reports. A shard's
        # Lease is one of several (ShardLeases sets the gauge from all of them after each round).
        self.gauge = gauge
        # A Lease that guards one short step (the disruption guard), taken and handed back many times a
        # day: not worth a warning each time.
        self.quiet = quiet
        self._lock = threading.Lock()
        # One round at a time: two overlapping rounds of one replica would 409 each other.
        self._round_lock = threading.Lock()
        self._held = False
        self._renewed_at = float("-inf")  # our clock, last successful acquire/renew
        self._observed: tuple[str, str] | None = None  # (resourceVersion, holder) last seen
        self._observed_at = float("-inf")  # our clock, when that record was first seen
        self._free = True  # the last round saw the Lease missing, handed back or expired (another's)
        # Times this elector took the Lease after another replica had held it since we last did
        # (it may have acted meanwhile: Actor._take_over). Renewals do not count, nor taking back
        # a Lease we handed back that nobody took since: its leaseTransitions did not move.
        self.term = 0
        self._transitions: int | None = None  # leaseTransitions as we last wrote it (None: never)
        self._next: tuple[int, bool] = (0, False)  # this round's write: its transitions, a new term
        self._rounds = RenewLoop(
            self.try_acquire_or_renew, period=retry_period, name="aiops-leader-election", what="leader election round"
        )
        self.last_error: KubeApiError | None = None

    @classmethod
    def from_config(cls, api: k8s.ApiClient, config: KubernetesConfig, **kwargs: Any) -> LeaseElector:
        le = config.leader_election
        return cls(
            api,
            namespace=le.namespace or config.own_namespace,
            name=le.lease_name,
            identity=le.identity or default_identity(),
            lease_duration=le.lease_duration.total_seconds(),
            renew_deadline=le.renew_deadline.total_seconds(),
            retry_period=le.retry_period.total_seconds(),
            timeout=(min(5.0, config.request_timeout.total_seconds()), config.request_timeout.total_seconds()),
            **kwargs,
        )

    # -- state -----------------------------------------------------------------------------
    @property
    def lease_seconds(self) -> int:
        """``lease_duration`` as the Lease holds it (whole seconds), rounded *up*: observers wait
        that long before taking over, and it must stay above ``renew_deadline``, until which the
        holder believes it leads (2.9 s written as 2 gave a follower the lease at 2.0 s while the
        holder led until 2.5 s)."""
        return math.ceil(self.lease_duration)

    @property
    def available(self) -> bool:
        """Whether the last round saw the Lease free to take (missing, handed back, or another
        holder's that expired on our clock): a round that may acquire would take it."""
        with self._lock:
            return self._free

    def held_terms(self) -> dict[int, int]:
        """``{0: term}`` while we lead, else ``{}`` (:meth:`ShardLeases.held_terms` of one shard)."""
        return {0: self.term} if self.is_leader else {}

    @property
    def is_leader(self) -> bool:
        """True only while we hold the lease and renewed it within the renew deadline."""
        with self._lock:
            return self._held and self.clock() - self._renewed_at < self.renew_deadline

    def _set_held(self, held: bool, at: float | None = None) -> None:
        with self._lock:
            changed = held != self._held
            self._held = held
            if held:
                self._renewed_at = self.clock() if at is None else at
        if self.gauge:
            metrics.LEADER.set(1 if self.is_leader else 0)
        if changed:
            log.log(
                logging.DEBUG if self.quiet else logging.WARNING,
                "leadership %s", "acquired" if held else "lost", extra={"identity": self.identity, "lease": self.name},
            )
            if self.on_change is not None:
                self.on_change(held)

    # -- one round -------------------------------------------------------------------------
    def try_acquire_or_renew(self, *, acquire: bool = True) -> bool:
        """One read-then-replace round; returns whether we hold the lease afterwards.

        ``acquire=False`` renews a lease we hold but only *observes* one we do not (so that its
        expiry is judged from our own observations when we may take it later: shards).
        """
        with self._round_lock:
            return self._locked_round(acquire)

    def _locked_round(self, acquire: bool = True) -> bool:
        # Validity counts from before the request: a renewal that took long buys no extra time.
        started = self.clock()
        try:
            held = self._round(acquire)
        except KubeApiError as exc:
            self.last_error = exc
            log.warning("lease round failed", extra={"lease": self.name, "error": str(exc)})
            # Keep the lease until the renew deadline passes (is_leader checks it): one failed
            # round must not flap leadership; a permanent error gives it up now.
            if not exc.temporary:
                self._set_held(False)
            if self.gauge:
                metrics.LEADER.set(1 if self.is_leader else 0)
            return self.is_leader
        self.last_error = None
        if held:
            self._transitions, new_term = self._next
            if new_term:
                self.term += 1
        self._set_held(held, at=started)
        return held

    def _round(self, acquire: bool = True) -> bool:
        now = datetime.now(UTC)
        lease = self._read()
        if lease is None:
            self._set_free(True)
            self._next = (0, self._transitions is not None)  # deleted since we held it: who knows
            return self._create(now) if acquire else False
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (str(meta.get("resourceVersion", "")), holder)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = self.clock() - self._observed_at >= duration
        self._set_free(holder != self.identity and (not holder or expired))
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity and not acquire:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        # Another holder since our last write moved leaseTransitions; at start (no write of ours
        # yet) only a holder named in the Lease is known to have held it.
        moved = bool(holder) if self._transitions is None else transitions != self._transitions
        self._next = (transitions if holder == self.identity else transitions + 1, holder != self.identity and moved)
        acquired_at = spec.get("acquireTime") if holder == self.identity else _micro_time(now)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": meta.get("resourceVersion"),
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": acquired_at or _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions if holder == self.identity else transitions + 1,
            },
        }
        return self._write("replace", body)

    def _set_free(self, free: bool) -> None:
        with self._lock:
            self._free = free

    def _read(self) -> dict[str, Any] | None:
        try:
            resp: Any = self.api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
            lease: dict[str, Any] = json.loads(resp.data)  # a raw urllib3 response
            return lease
        except Exception as exc:
            err = classify(exc, f"get lease {self.namespace}/{self.name}")
            if is_not_found(err):
                return None
            raise err from None

    def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }
        return self._write("create", body)

    def _write(self, how: str, body: dict[str, Any]) -> bool:
        lease = k8s.V1Lease.from_dict(body)
        assert lease is not None
        try:
            if how == "create":
                resp: Any = self.api.create_namespaced_lease(
                    self.namespace, lease, _preload_content=False, _request_timeout=self.timeout
                )
            else:
                resp = self.api.replace_namespaced_lease(
                    self.name, self.namespace, lease, _preload_content=False, _request_timeout=self.timeout
                )
            # Read the answer to its end: an unread raw response keeps its connection out of the
            # client's pool, so every write left a connection behind and every round opened new
            # ones (a TCP and TLS handshake per Lease per round, in bursts of the shard workers).
            resp.read()
        except Exception as exc:
            err = classify(exc, f"{how} lease {self.namespace}/{self.name}")
            if err.status == 409:
                return False  # another replica wrote first: it leads, we follow
            raise err from None
        return True

    def release(self) -> None:
        """Hand the lease back on shutdown so a successor need not wait for it to expire."""
        if not self.is_leader:
            self._set_held(False)
            return
        self._set_held(False)
        try:
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            lease["spec"]["renewTime"] = _micro_time(datetime.now(UTC))
            self._write("replace", lease)
        except KubeApiError as exc:
            log.warning("could not release the lease; a successor waits for it to expire", extra={"error": str(exc)})

    # -- background loop -------------------------------------------------------------------
    def start(self) -> None:
        """Run one round now (so the first cycle knows its role), then renew in the background.
        A leader renews every retry_period; a follower polls as often, so it takes over within
        one period of the lease expiring."""
        self._rounds.start()

    def stop(self, *, release: bool = True) -> None:
        self._rounds.stop(join_timeout=self.retry_period + sum(self.timeout))
        if release:
            self.release()
        else:
            self._set_held(False)
