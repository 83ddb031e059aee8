"""Shards across replicas, on coordination.k8s.io Leases only (no cluster layer of our own).

``sharding: {shards: N}`` splits the cluster's entities into N shards by a stable hash
(:func:`shard_of`): a node and what carries its name (its GPUs, whose failures are acted on by
evacuating the node, and ``kube_pod_info``) hash by the node name, so one replica decides for a
node; other entities (a pod's own signals, models, deployments) hash by their kind and name
(:func:`~aiops.collect.shard_query.shard_key`: one label value, so a replica can ask Prometheus
for its shards' series only). What the decisions about one entity read about others
(:data:`SHARED_SIGNALS`: who owns each pod, which node it runs on, whether it finished) every
replica fetches and keeps whole. Each shard is one Lease ``<prefix>-<i>``; the holder detects,
decides, acts and notifies for that shard's entities, the other replicas ignore them.

Each replica also renews a *member* Lease ``<prefix>-member-<identity>``; the member Leases that
keep changing are the live replicas. A replica holds at most ceil(N / live replicas) shards: it
hands extras back when replicas join (the free Lease is taken at once), and takes an orphaned
shard once that shard's Lease has not changed for ``lease_duration`` on its own clock (the
client-go rule of :class:`~aiops.engine.leader.LeaseElector`, so clock skew cannot make two
holders). A holder that cannot renew within ``renew_deadline`` stops at once, before anyone may
take over: a shard has at most one acting replica at any time.

One round (:meth:`ShardLeases.round`, a ``retry_period`` after the last one ended) renews the
shard Leases side by side (:data:`_LEASE_WORKERS` requests at a time, waiting at most one retry
period for them), and the member Lease and the listing of the members beside them, in the same
workers, not before them: the membership only sizes the share, so while it is late or failing the
replica keeps what it holds and takes nothing new, and no request of it holds up a shard Lease (an
answer that comes after its round stopped waiting sizes the next round's share). The workers keep
their connections between rounds (:meth:`~aiops.engine.leader.LeaseElector._write`).

Global safety budgets stay global by a split that provably sums to the global figure
(:func:`budget_share`): shard ``i`` of N may spend ``floor(B / N) + (1 if i < B mod N)`` of a
budget ``B``; actions are booked with their shard, and a new holder counts the previous holder's
actions of that shard from the cluster's action ledger before it acts. Since every shard stays
within its share and the shares add up to ``B``, all replicas together stay within ``B``. A
budget with ``0 < B < N`` would give some shards a share of 0 (never acting), so the config
refuses it (:data:`aiops.config.safety.SHARD_SPLIT_BUDGETS`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from kubernetes import client as k8s

from aiops import metrics
from aiops.collect.shard_query import shard_hash, shard_key
from aiops.config import AiopsConfig
from aiops.engine.leader import LeaseElector, RenewLoop, default_identity
from aiops.kube.errors import KubeApiError, classify
from aiops.model import Entity, Finding, Frame, Series

log = logging.getLogger(__name__)

# Signals every replica fetches and keeps whole, whichever shard their entities hash to: what the
# decisions about one entity read about others. ``kube_pod_info`` says who owns a pod (policy never
# restarts a Job's pod or a bare pod, and a pod's restart is decided in the shard of its name) and
# which pods a node holds (an evacuation is judged in the node's shard); it is one series per pod.
# ``pod_starting`` says a model's owner is already scaling up (a scale-ahead waits), whichever
# shard the new pod hashes to; it holds only the pods on their way up. ``pod_finished`` says which
# of a node's pods an evacuation need not move (judged in the node's shard, while the series,
# without the node, hashes by the pod's name); it holds only the finished pods.
# Findings on these series still belong to their entity's shard alone.
SHARED_SIGNALS = frozenset({"pod_info", "pod_starting", "pod_finished"})
# Lease requests in flight at once (the shards' and the membership's, :meth:`ShardLeases.round`):
# within the client's connection pool (10 here: urllib3 keeps 5 per CPU by default), so each worker
# keeps its connection from round to round instead of opening a new one.
_LEASE_WORKERS = 8


def shard_of(entity: Entity, shards: int) -> int:
    """A stable shard number in [0, shards): the same on every replica, Python version and run."""
    return shard_hash(shard_key(entity), shards)


def budget_share(total: int, shard: int, shards: int) -> int:
    """Shard ``shard``'s part of a budget of ``total``: the parts of all shards add up to ``total``."""
    return total // shards + (1 if shard < total % shards else 0)


def shares(total: int, held: Iterable[int], shards: int) -> int:
    """The budget of a replica holding the shards ``held``."""
    return sum(budget_share(total, s, shards) for s in held)


class ShardLeases:
    """The shards this replica holds, kept by one background loop (``start``/``stop``)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        prefix: str,
        shards: int,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        timeout: tuple[float, float] = (5.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards!r}")
        self.shards = shards
        self.namespace = namespace
        self.prefix = prefix
        self.identity = identity
        self.lease_duration = lease_duration
        self.retry_period = retry_period
        self.timeout = timeout
        self.clock = clock
        self._coord = k8s.CoordinationV1Api(api)

        def elector(name: str, quiet: bool = False) -> LeaseElector:
            return LeaseElector(
                api,
                namespace=namespace,
                name=name,
                identity=identity,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                timeout=timeout,
                clock=clock,
                gauge=False,  # the replica's leadership is all its shards: set after each round
                quiet=quiet,
            )

        self.member = elector(f"{prefix}-member-{identity}")
        self.leases = [elector(f"{prefix}-{i}") for i in range(shards)]
        # The cordon cap and the per-workload cap are cluster-wide: the writer counts the cordoned
        # nodes and the workload's disruptions, and cordons, evicts or deletes, while it holds this
        # Lease (taken for that step only, never renewed in the background), so two replicas
        # cannot both count before either writes (GuardedWriter.execute).
        self.disruption_guard = elector(f"{prefix}-disruption", quiet=True)
        # Other replicas' member Leases: name -> (resourceVersion, when we first saw it, our clock).
        self._members: dict[str, tuple[str, float]] = {}
        # Start the search for free shards at a place of our own: fewer replicas race for one.
        self._offset = int.from_bytes(hashlib.blake2b(identity.encode(), digest_size=4).digest(), "big") % shards
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # the shard Leases' requests (:meth:`_each`)
        self._pending: dict[int, Future[bool]] = {}  # shard -> its request still on the wire
        self._membership: Future[int] | None = None  # our member Lease and the live count, the last asked
        self._membership_used = False  # whether a round took its share from that answer already
        self._rounds = RenewLoop(self.round, period=retry_period, name="aiops-shards", what="shard round")
        self.last_error: KubeApiError | None = None

    @classmethod
    def from_config(cls, api: k8s.ApiClient, config: AiopsConfig, **kwargs: Any) -> ShardLeases:
        kube, le = config.kubernetes, config.kubernetes.leader_election
        return cls(
            api,
            namespace=le.namespace or kube.own_namespace,
            prefix=config.sharding.lease_prefix,
            shards=config.sharding.shards,
            identity=le.identity or default_identity(),
            lease_duration=le.lease_duration.total_seconds(),
            renew_deadline=le.renew_deadline.total_seconds(),
            retry_period=le.retry_period.total_seconds(),
            timeout=(min(5.0, kube.request_timeout.total_seconds()), kube.request_timeout.total_seconds()),
            **kwargs,
        )

    # -- what we hold ----------------------------------------------------------------------
    def held(self) -> frozenset[int]:
        """Shards held right now (renewed within the renew deadline)."""
        return frozenset(i for i, e in enumerate(self.leases) if e.is_leader)

    def held_terms(self) -> dict[int, int]:
        """The shards held right now, each with its :attr:`LeaseElector.term`: a term that changed
        means the shard was taken back after another replica held it."""
        return {i: e.term for i, e in enumerate(self.leases) if e.is_leader}

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds any shard (/metrics, /readyz, notifying). Not whether it may
        act on an entity: the writer asks :meth:`owns` for each decision, right before each write."""
        return bool(self.held())

    def owns(self, entity: Entity, held: frozenset[int] | None = None) -> bool:
        return shard_of(entity, self.shards) in (self.held() if held is None else held)

    def restrict(self, frame: Frame, held: frozenset[int]) -> Frame:
        """The part of ``frame`` whose entities belong to the shards ``held``, and the
        :data:`SHARED_SIGNALS` whole."""
        from dataclasses import replace

        n = self.shards
        # By shard key, not by entity: entities compare without their attributes, and a pod's
        # pod_info (with its node) and its other series (without) are equal entities.
        memo: dict[str, bool] = {}

        def mine(s: Series) -> bool:
            if s.signal in SHARED_SIGNALS:
                return True
            key = shard_key(s.entity)
            got = memo.get(key)
            if got is None:
                got = memo[key] = shard_hash(key, n) in held
            return got

        return replace(
            frame,
            series=tuple(s for s in frame.series if mine(s)),
            vanished=tuple(s for s in frame.vanished if mine(s)),
        )

    def keep(self, findings: Iterable[Finding], held: frozenset[int]) -> list[Finding]:
        return [f for f in findings if shard_of(f.entity, self.shards) in held]

    # -- one round -------------------------------------------------------------------------
    def live_replicas(self) -> int:
        """Replicas whose member Lease changed within ``lease_duration`` (us included)."""
        try:
            resp: Any = self._coord.list_namespaced_lease(
                self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
            items = json.loads(resp.data).get("items") or []
        except Exception as exc:
            raise classify(exc, f"list leases in {self.namespace}") from None
        now = self.clock()
        mine = self.member.name
        live = 1
        seen: dict[str, tuple[str, float]] = {}
        for item in items:
            meta = item.get("metadata") or {}
            name = str(meta.get("name", ""))
            if name == mine or not name.startswith(f"{self.prefix}-member-"):
                continue
            if not (item.get("spec") or {}).get("holderIdentity"):
                continue  # handed back on a clean shutdown
            version = str(meta.get("resourceVersion", ""))
            before = self._members.get(name)
            seen[name] = before if before is not None and before[0] == version else (version, now)
            if now - seen[name][1] < self.lease_duration:
                live += 1
        self._members = seen
        return live

    def round(self) -> frozenset[int]:
        """Renew our member Lease and our shards, hand back extras, take free or expired ones.

        The shard Leases are renewed, observed and taken side by side (:meth:`_each`), never one
        after another: a serial round of 64 shards at 80 ms a request outlasted the renew
        deadline, so the Leases renewed first lapsed before it ended, and one hanging request held
        up every Lease behind it. Each Lease's validity counts from the start of its own request,
        so each is judged against its own deadline (:meth:`LeaseElector.is_leader`).

        The membership (our member Lease and the count of live replicas) runs beside them: it only
        sizes our share, so while it is late or failing we keep what we hold and take nothing new;
        waited for first, one hanging request of it let every shard we held lapse. An answer that
        comes after its round stopped waiting sizes the next round's share (asked anew, it was
        thrown away: on an API slow enough, every one of them was)."""
        with self._lock:
            started = time.monotonic()
            pool = self._workers()
            last = self._membership
            # An answer no round has used yet: it came after its round's wait.
            unused = last if last is not None and last.done() and not self._membership_used else None
            membership = last if last is not None and not last.done() else pool.submit(self._count_replicas)
            if membership is not last:
                self._membership, self._membership_used = membership, False
            held = sorted(self.held())
            order = [(self._offset + k) % self.shards for k in range(self.shards)]
            # Renew ours; observe the others always (expiry is judged from our own observations).
            others = [i for i in order if i not in held]
            self._each([*held, *others], lambda i: self.leases[i].try_acquire_or_renew(acquire=i in held))
            wait([membership], timeout=max(0.0, self.retry_period - (time.monotonic() - started)))
            answer = membership if membership.done() else unused
            if answer is membership:
                self._membership_used = True
            cap = self._cap(answer)
            for i in sorted(self.held())[cap:]:
                if i in self._pending:
                    continue  # its renewal is still on the wire: handed back next round
                # Too many for our share now that more replicas run: hand back (taken at once).
                log.info("handing shard back", extra={"shard": i, "cap": cap})
                self.leases[i].release()
            room = cap - len(self.held())
            free = [i for i in others if i not in self._pending and self.leases[i].available][: max(0, room)]
            self._each(free, self._take)
            held_now = self.held()
            metrics.LEADER.set(1 if held_now else 0)
            return held_now

    def _count_replicas(self) -> int:
        self.member.try_acquire_or_renew()
        return self.live_replicas()

    def _cap(self, membership: Future[int] | None) -> int:
        """Our share, ceil(shards / live replicas), from the membership's answer; what we hold while
        it is late (``None``) or failed."""
        if membership is None:
            log.warning("shard membership round still waiting on the API server; keeping the shards held")
            return len(self.held())
        exc = membership.exception()
        if exc is None:
            self.last_error = None
            return math.ceil(self.shards / membership.result())
        self.last_error = exc if isinstance(exc, KubeApiError) else classify(exc, "renew the member Lease")
        log.warning("shard round failed", extra={"error": str(self.last_error)})
        return len(self.held())  # keep what we hold until its deadline; take nothing new

    def _take(self, shard: int) -> bool:
        took = self.leases[shard].try_acquire_or_renew()
        if took:
            log.warning("shard acquired", extra={"shard": shard, "identity": self.identity})
        return took

    def _each(self, shards: list[int], step: Callable[[int], bool]) -> None:
        """``step`` for each shard, :data:`_LEASE_WORKERS` at a time, waiting at most one retry
        period: a request that hangs costs its own Lease only (which lapses at its own deadline
        if it must), and that Lease is skipped until its request ends."""
        pool = self._workers()
        self._reap()
        started = {i: pool.submit(step, i) for i in shards if i not in self._pending}
        self._pending.update(started)
        wait(started.values(), timeout=self.retry_period)
        self._reap()

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_LEASE_WORKERS, thread_name_prefix="aiops-shard-lease")
        return self._pool

    def _reap(self) -> None:
        """Forget the requests that ended; one that crashed is logged (the others go on)."""
        for i, future in list(self._pending.items()):
            if future.done():
                del self._pending[i]
                if future.exception() is not None:
                    log.error("shard lease round crashed", exc_info=future.exception(), extra={"shard": i})

    # -- background loop -------------------------------------------------------------------
    def start(self) -> None:
        self._rounds.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; ``release`` hands every shard (and the member Lease) back at once."""
        self._rounds.stop(join_timeout=self.retry_period * 3 + sum(self.timeout) * 2)
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)  # no renewal after the release
                self._pool, self._pending, self._membership, self._membership_used = None, {}, None, False
            for e in [*self.leases, self.member, self.disruption_guard]:
                e.stop(release=release)
        metrics.LEADER.set(0)
