"""The collect stage: fetch every enabled signal from Prometheus into the rolling window -> Frame.

The first cycle fetches the whole lookback; later cycles fetch only from the last fetched instant
(minus an overlap of two steps or ``prometheus.late_samples``, so late samples replace early
evaluations). Signals are fetched concurrently with a bound. A signal whose query fails is
reported as missing: its series are left out of the frame (never stale data passed off as
current) and its gap is refetched next cycle. Every chunk fetched is screened against its
signal's plausible range before it is written (a broken exporter's impossible values become
gaps: aiops/collect/plausible.py).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import numpy as np

from aiops import metrics
from aiops.collect.combine import COMBINE_SERIES, COMBINE_STEPS, LegSplitter, LostLegs, combined_query
from aiops.collect.decode import Block, RawSeries
from aiops.collect.plausible import Screen
from aiops.collect.prometheus import PrometheusClient, PrometheusError
from aiops.collect.shard_query import HeldShards, ShardQuery, shard_queries
from aiops.collect.window import LabelKey, RollingWindow
from aiops.config import AiopsConfig
from aiops.config.signals import FailurePointConfig, SignalConfig
from aiops.model import Entity, FailurePoint, Frame, Series, SignalInfo, StageError, from_epoch

log = logging.getLogger(__name__)

# Steps re-read on each incremental fetch at least (prometheus.late_samples may ask for more).
OVERLAP_STEPS = 2
# A series whose newest point is older than this many steps (and at least 5 minutes, Prometheus's
# staleness window) is treated as vanished, never as current.
STALE_STEPS = 3
# A sharded fetch splits a shard's values over several requests past this many bytes of matcher.
MAX_MATCHER_BYTES = 256 * 1024


def entity_of(signal: SignalConfig, labels: Mapping[str, str]) -> Entity:
    name_label = signal.entity_labels.get("name")
    name = labels.get(name_label, "") if name_label else ""
    if not name:
        # No identifying label: fall back to the full label set so entities stay distinct.
        name = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or signal.entity
    ns_label = signal.entity_labels.get("namespace")
    namespace = labels.get(ns_label, "") if ns_label else ""
    attrs = tuple((a, labels[a]) for a in signal.attribute_labels if a in labels)
    return Entity(kind=signal.entity, name=name, namespace=namespace, attributes=attrs)


def _entity_name(signal: SignalConfig, labels: Mapping[str, str]) -> str:
    """The entity a series is about, and its labels, as a log line names it."""
    shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{entity_of(signal, labels)} ({{{shown}}})"


def signal_info(name: str, signal: SignalConfig) -> SignalInfo:
    # An override merged over the catalog carries its failure points as plain mappings.
    points = [FailurePointConfig.model_validate(p) for p in signal.failure_points]
    return SignalInfo(
        name=name,
        entity_kind=signal.entity,
        unit=signal.unit,
        capacity=signal.capacity,
        objective=signal.objective,
        bad_direction=signal.bad_direction,
        description=signal.description,
        failure_points=tuple(FailurePoint(p.value, p.name, tuple(sorted(p.match.items()))) for p in points),
        sparse=signal.sparse,
    )


def _grouped_errors(failed: Mapping[tuple[str, bool], list[str]], total: int) -> list[StageError]:
    """One error per distinct cause, naming the signals it hit: an unreachable Prometheus is one
    problem, not one per signal."""
    errors = []
    for (message, temporary), names in failed.items():
        if len(names) == total and total > 1:
            which = f"all {total} signals"
        elif len(names) == 1:
            which = f"signal {names[0]}"
        else:
            which = f"{len(names)} signals ({', '.join(names)})"
        errors.append(StageError("collect", f"{which}: {message}", temporary=temporary))
    return errors


def _blind_message(vanished: list[Series], fresh_after: float, answered: int) -> str:
    if vanished:
        newest = max(float(s.timestamps[-1]) for s in vanished)
        return (
            f"Prometheus answered but none of {len(vanished)} series has a point since "
            f"{from_epoch(fresh_after):%H:%M UTC} (newest at {from_epoch(newest):%H:%M UTC}): scraping looks "
            "broken; no data is not health"
        )
    return (
        f"Prometheus answered but none of the {answered} signals returned a series: check that the exporters "
        "are scraped and the signal queries match their metric names"
    )


def _routed(block: Block, route: list[int], parts: int) -> list[Block]:
    """``block`` split into ``parts`` blocks: series ``i`` goes to block ``route[i]``, in order."""
    where = np.asarray(route, dtype=np.int64)
    at_point = np.repeat(where, block.counts)
    out = []
    for k in range(parts):
        rows = np.flatnonzero(where == k)
        points = at_point == k
        out.append(Block([block.labels[i] for i in rows.tolist()], block.counts[rows],
                         block.timestamps[points], block.values[points]))
    return out


def _by_label(label: str, index: Mapping[str, int], labels: Mapping[str, str]) -> int:
    # A series without the label (its shard falls back to other keys) goes with the first part,
    # as the frame reads that part first.
    return index.get(labels.get(label, ""), 0)


def _first(labels: Mapping[str, str]) -> int:
    return 0


@dataclass(frozen=True)
class _Fetch:
    """One signal's fetch from one horizon: its ``queries`` answer into the windows ``parts``,
    each series into the one ``route`` gives (an index into ``parts``)."""

    signal: str
    parts: tuple[str, ...]
    route: Callable[[Mapping[str, str]], int]
    queries: tuple[str, ...]
    start_s: float


def _unscreened(block: Block) -> Block:
    return block


def _capped(batch: list[_Fetch]) -> list[list[_Fetch]]:
    """``batch`` in requests of at most MAX_MATCHER_BYTES of query text each (sharded queries
    carry their shards' label values), halved until each fits; one fetch always goes alone."""
    if len(batch) == 1 or sum(len(q) for fetch in batch for q in fetch.queries) <= MAX_MATCHER_BYTES:
        return [batch]
    half = len(batch) // 2
    return _capped(batch[:half]) + _capped(batch[half:])


class SeriesSource(Protocol):
    """What the collector reads: the Prometheus client, or a replay's recorded history
    (aiops/evaluation/cluster_replay.py). A source may also offer ``range_chunks`` (decoded
    blocks, see :meth:`Collector._chunks`) and, to fetch a sharded replica's series only,
    :class:`LabelSource`'s ``label_values``."""

    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]: ...

    def close(self) -> None: ...


@runtime_checkable
class LabelSource(Protocol):
    """A source that lists a label's values: without it, a sharded replica fetches whole signals."""

    def label_values(self, label: str, selectors: Sequence[str], start: datetime, end: datetime) -> list[str]: ...


@runtime_checkable
class MemoSource(Protocol):
    """A source that keeps something per query text between cycles (the client's label memos):
    told after each cycle which queries it still asks, it forgets the rest. A shard's query names
    its nodes, so its text changes with them; one memo per text ever asked would never stop growing."""

    def retain_memos(self, queries: Iterable[str]) -> None: ...


@runtime_checkable
class ServerClock(Protocol):
    """A source that knows the server's clock (Prometheus's answers carry it in their Date header)."""

    def server_time(self) -> float | None: ...


# Where the daemon's clock runs this far or more ahead of Prometheus's, the collector reads up to
# Prometheus's time (more than the Date header's whole seconds and the network's delay).
CLOCK_TOLERANCE_SECONDS = 2.0
# Ahead by this much, the log says so (a node's time sync is broken; lead times are off by it).
CLOCK_WARN_SECONDS = 60.0
# A cycle whose time is this close to the daemon's wall clock is live (the daemon's own schedule).
LIVE_SECONDS = 60.0


class Collector:
    def __init__(
        self, config: AiopsConfig, client: SeriesSource | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.client: SeriesSource = client or PrometheusClient(config.prometheus)
        # The daemon's wall clock, and how far it ran ahead of Prometheus's at the last cycle (_ahead).
        self.clock = clock
        self.ahead_of_prometheus = 0.0
        self._warned_clock = False
        self.signals = config.resolved_signals()
        self._written = frozenset(config.signals)  # defined or overridden by the config, not the catalog's own
        self.infos = {n: signal_info(n, s) for n, s in self.signals.items()}
        # What each signal's samples can be; the rest is dropped as missing as it arrives.
        self.screens = {n: Screen(n, s.plausible(), s.unit, functools.partial(_entity_name, s))
                        for n, s in self.signals.items()}
        self.step = config.prometheus.step
        self.lookback = config.prometheus.lookback
        # Re-read on each incremental fetch: the newest evaluations may change as late samples land.
        self.reread = max(self.step * OVERLAP_STEPS, config.prometheus.late_samples)
        self.window = RollingWindow(self.lookback.total_seconds(), self.step.total_seconds())
        self._fetched_until: dict[str, float] = {}
        # Entities by signal and label set: building them per series per cycle was measurable at 10k.
        self._entities: dict[str, dict[LabelKey, Entity]] = {}
        # Newest point seen per signal: a signal that goes quiet stays "absent" after its series leave the window.
        self._last_seen: dict[str, float] = {}
        self._pool = ThreadPoolExecutor(max_workers=config.prometheus.max_concurrency, thread_name_prefix="collect")
        # Short fetches go together where the source evaluates PromQL (not a replay's recording);
        # a signal whose last fetch failed goes alone (aiops/collect/combine.py).
        self._combines = getattr(self.client, "evaluates_promql", False) is True
        self._legs = LegSplitter()
        self._combining = threading.Lock()  # _combines is turned off once, from any fetch thread
        self._alone: set[str] = set()
        # A sharded replica's last split of each shard label's values over its held shards, and
        # each signal's last queries built from them: the hashing and the matcher text were most
        # of a sharded steady cycle's collect, and the values rarely change from one to the next.
        self._owners: dict[tuple[str, str], tuple[list[str], HeldShards, dict[int, list[str]]]] = {}
        self._shard_texts: dict[
            tuple[str, tuple[int, ...]], tuple[list[str], tuple[str, ...], Callable[[Mapping[str, str]], int]]
        ] = {}

    def collect(self, now: datetime, held: HeldShards | None = None) -> tuple[Frame, list[StageError]]:
        """Fetch and frame every enabled signal; ``held``: only the series of those shards (a
        sharded replica, aiops/collect/shard_query.py), a superset the caller filters exactly."""
        now_s = now.timestamp()
        step_s = self.step.total_seconds()
        reread_s = self.reread.total_seconds()
        # A daemon clock ahead of Prometheus's (a node's broken time sync): the queries end at
        # Prometheus's time, as measured at the last answers. Past it Prometheus repeats the last
        # sample for its lookback delta, and a fetch that ended there would never be asked again
        # for what really came; the series would look stale (the daemon blind) past 5 minutes.
        # Only a cycle on the wall clock is corrected: a replay's or a test's time is chosen.
        on_wall_clock = abs(now_s - self.clock()) <= LIVE_SECONDS
        until_s = now_s - self._correction() if on_wall_clock else now_s
        until = datetime.fromtimestamp(until_s, now.tzinfo)
        parts = self._parts(held)
        # Created here, not in the fetch threads: each thread then writes only its own signal's parts.
        windows = {part: self.window.signal(part) for ps in parts.values() for part, _ in ps}
        asked: list[str] = []  # every query text of this cycle (appended from the fetch threads)

        def write(fetch: _Fetch, answers: Iterable[Iterable[Block]]) -> int:
            """Write ``answers`` (per query of ``fetch``, its blocks) into the fetch's windows; each
            series goes to the window ``fetch.route`` gives it."""
            wins = [windows[part] for part in fetch.parts]
            for win in wins:
                # Align to the step grid the query uses, so the next fetch starts where this one ended.
                win.begin((fetch.start_s // step_s) * step_s)
            points = 0
            try:
                for blocks in answers:  # chunk by chunk: one chunk's answer in memory per thread
                    for block in blocks:
                        if len(wins) == 1:
                            wins[0].write(block)
                        else:
                            route = [fetch.route(lab) for lab in block.labels]
                            for win, sub in zip(wins, _routed(block, route, len(wins))):
                                win.write(sub)
                        points += block.points
            finally:
                # A failed fetch leaves its range to the next cycle's refetch (the signal is
                # reported missing meanwhile, so nothing reads the partial range).
                for win in wins:
                    win.end()
            return points

        def fetch_alone(fetch: _Fetch) -> tuple[str, int | PrometheusError]:
            start = datetime.fromtimestamp(fetch.start_s, now.tzinfo)

            def answers() -> Iterator[Iterator[Block]]:
                for query in fetch.queries:
                    asked.append(query)
                    yield self._chunks(query, start, until, signal=fetch.signal)

            try:
                return fetch.signal, write(fetch, answers())
            except PrometheusError as exc:
                return fetch.signal, exc

        def fetch_together(fetches: list[_Fetch]) -> list[tuple[str, int | PrometheusError]]:
            """Short fetches at one horizon in one combined query (aiops/collect/combine.py)."""
            legs = [query for fetch in fetches for query in fetch.queries]
            query = combined_query(legs)
            asked.append(query)
            start = datetime.fromtimestamp(fetches[0].start_s, now.tzinfo)
            try:
                chunks = [self._legs.split(query, block, len(legs)) for block in self._chunks(query, start, until)]
            except LostLegs as exc:
                self._stop_combining(exc)
                return [fetch_alone(fetch) for fetch in fetches]
            except PrometheusError as exc:
                if exc.temporary:  # each of them alone next cycle (_alone)
                    return [(fetch.signal, exc) for fetch in fetches]
                # A leg the server refuses: ask each signal alone now, so only that one is missing.
                return [fetch_alone(fetch) for fetch in fetches]
            out: list[tuple[str, int | PrometheusError]] = []
            leg = 0
            for fetch in fetches:
                screen = self.screens[fetch.signal].block
                answers = [[screen(chunk[k]) for chunk in chunks] for k in range(leg, leg + len(fetch.queries))]
                leg += len(fetch.queries)
                out.append((fetch.signal, write(fetch, answers)))
            return out

        def start_of(part: str) -> float:
            last = self._fetched_until.get(part)
            return max(now_s - self.lookback.total_seconds(), (last - reread_s) if last else 0.0)

        # Sharded: which values of each shard label exist. One request per label for all the
        # signals split by it (an index lookup over their selectors), not one per signal.
        found = self._discover(parts, start_of, now) if held is not None else {}
        results: dict[str, int | PrometheusError] = {}
        fetches: list[_Fetch] = []
        for name in self.signals:
            try:
                planned = self._plan(name, parts[name], held, found, start_of)
            except PrometheusError as exc:
                results[name] = exc
                continue
            results[name] = 0  # points so far (none for a signal of which we hold no shard)
            fetches.extend(planned)
        if held is not None:  # forget the texts of shards no longer held
            self._shard_texts = {k: v for k, v in self._shard_texts.items() if held.held.issuperset(k[1])}

        def run(task: list[_Fetch]) -> list[tuple[str, int | PrometheusError]]:
            return [fetch_alone(task[0])] if len(task) == 1 else fetch_together(task)

        for done_task in self._pool.map(run, self._tasks(fetches, until_s)):
            for name, result in done_task:
                so_far = results[name]
                if isinstance(result, PrometheusError):
                    if not isinstance(so_far, PrometheusError):
                        results[name] = result
                elif not isinstance(so_far, PrometheusError):
                    results[name] = so_far + result

        failed: dict[tuple[str, bool], list[str]] = {}
        done: list[str] = []  # the parts fetched
        missing: list[str] = []
        fetched_points = 0
        answered = False
        for name in self.signals:
            result = results[name]
            if isinstance(result, PrometheusError):
                metrics.QUERIES.labels("error").inc()
                failed.setdefault((str(result), result.temporary), []).append(name)
                missing.append(name)
                answered = answered or not result.temporary
                continue
            answered = True
            metrics.QUERIES.labels("ok").inc()
            done.extend(part for part, _ in parts[name])
            fetched_points += result
        self._alone = set(missing)
        self._measure_clock()
        # What this cycle holds is Prometheus's as of now, or of its own clock where ours is ahead
        # (and never past where the queries ended).
        held_s = min(until_s, now_s - self._correction()) if on_wall_clock else now_s
        for part in done:
            self._fetched_until[part] = (held_s // step_s) * step_s
        if isinstance(self.client, MemoSource):
            self.client.retain_memos(asked)
        self._legs.retain(asked)
        metrics.PROMETHEUS_UP.set(1 if answered else 0)
        metrics.POINTS_FETCHED.inc(fetched_points)
        self.window.trim(now_s)

        series: list[Series] = []
        vanished: list[Series] = []
        fresh_after = held_s - max(300.0, STALE_STEPS * step_s)
        newest: dict[str, float] = {}  # per signal, over its fresh and vanished series
        fresh: set[str] = set()
        for name, signal in self.signals.items():
            if name in missing:
                continue
            entities = self._entities.setdefault(name, {})
            latest = -math.inf
            had = len(series)
            # The hot loop of a steady cycle: one pass per series, nothing in it that numpy could
            # do for the whole signal at once (the window hands out each row's newest instant).
            for key, labels, ts, vs, last in self._rows(parts[name]):
                entity = entities.get(key)
                if entity is None:
                    entity = entities[key] = entity_of(signal, labels)
                if last >= fresh_after:
                    series.append(Series(name, labels, ts, vs, entity, key))
                else:
                    vanished.append(Series(name, labels, ts, vs, entity, key))
                if last > latest:
                    latest = last
            if latest > -math.inf:
                newest[name] = latest
                if len(series) > had:
                    fresh.add(name)
        if sum(map(len, self._entities.values())) > 2 * max(1, self.window.series_count):
            # Series come and go (pods are replaced): keep the cache as small as the window.
            for n, cached in self._entities.items():
                live = {k for part, _ in parts.get(n, []) if (w := self.window.get(part)) is not None for k in w.keys}
                self._entities[n] = {k: v for k, v in cached.items() if k in live}
        absent = self._absent(newest, fresh, missing)
        metrics.SERIES.set(len(series))
        metrics.SERIES_VANISHED.set(len(vanished))
        metrics.SIGNALS_ABSENT.set(len(absent))
        errors = _grouped_errors(failed, len(self.signals))
        answering = len(self.signals) - len(missing)
        if answering and not series and (held is None or held.held):
            # Blind: Prometheus is fine, the data is not. Not temporary: retrying the query will not help.
            errors.append(StageError("collect", _blind_message(vanished, fresh_after, answering), temporary=False))
        frame = Frame(
            now=now,
            series=tuple(series),
            signals=self.infos,
            step_seconds=step_s,
            missing_signals=tuple(missing),
            vanished=tuple(vanished),
            absent_signals=absent,
        )
        return frame, errors

    def _measure_clock(self) -> None:
        """How far the daemon's clock runs ahead of Prometheus's (negative: behind), from the
        newest answer's Date header; unchanged where the source does not say."""
        server = self.client.server_time() if isinstance(self.client, ServerClock) else None
        if server is None:
            return
        ahead = self.ahead_of_prometheus = self.clock() - server
        metrics.CLOCK_AHEAD.set(ahead)
        if ahead >= CLOCK_WARN_SECONDS and not self._warned_clock:
            log.warning(
                "the daemon's clock runs %.0f s ahead of Prometheus's: reading up to Prometheus's time; "
                "lead times and timestamps are off by as much until the node's time sync is fixed (chrony/NTP)",
                ahead,
            )
        self._warned_clock = ahead >= CLOCK_WARN_SECONDS

    def _correction(self) -> float:
        """Seconds to take off a live cycle's time: how far ahead the daemon's clock runs, past the
        tolerance (a clock behind Prometheus's only makes the data a little late)."""
        return self.ahead_of_prometheus if self.ahead_of_prometheus >= CLOCK_TOLERANCE_SECONDS else 0.0

    def _plan(
        self,
        name: str,
        parts: list[tuple[str, int | None]],
        held: HeldShards | None,
        found: Mapping[str, list[str] | PrometheusError],
        start_of: Callable[[str], float],
    ) -> list[_Fetch]:
        """What to ask for signal ``name`` this cycle; raises the discovery's error for its label."""
        if parts == [(name, None)]:
            return [_Fetch(name, (name,), _first, (self.signals[name].query,), start_of(name))]
        if not parts:
            return []  # we hold no shard: nothing of this signal is ours
        assert held is not None
        sq = self.shard_queries[name]
        values = found[sq.label]
        if isinstance(values, PrometheusError):
            raise values
        ours = self._owned(sq, values, held)
        # Held shards at the same horizon (all of them, but for a shard just taken over) share one
        # request: each held shard's own request was a fixed cost per cycle.
        horizons: dict[float, list[tuple[str, int]]] = {}
        for part, shard in parts:
            assert shard is not None
            horizons.setdefault(start_of(part), []).append((part, shard))
        fetches = []
        for start_s, group in horizons.items():
            shards = tuple(shard for _, shard in group)
            wanted = [v for shard in shards for v in ours[shard]]
            last = self._shard_texts.get((name, shards))
            if last is not None and last[0] == wanted:
                _, queries, route = last
            else:
                queries = tuple(sq.queries(wanted, MAX_MATCHER_BYTES))
                route = _first
                if len(group) > 1:
                    index = {v: i for i, shard in enumerate(shards) for v in ours[shard]}
                    route = functools.partial(_by_label, sq.label, index)
                self._shard_texts[(name, shards)] = (wanted, queries, route)
            fetches.append(_Fetch(name, tuple(part for part, _ in group), route, queries, start_s))
        return fetches

    def _stop_combining(self, why: LostLegs) -> None:
        with self._combining:
            if not self._combines:
                return
            self._combines = False
        log.warning(
            "Prometheus at %s answered a combined query, but %s: asking it one query per signal from now on "
            "(a store or proxy in front of it drops labels; the steady cycle costs more requests, nothing is lost)",
            self.config.prometheus.url, why,
        )

    def _owned(self, sq: ShardQuery, values: list[str], held: HeldShards) -> dict[int, list[str]]:
        """``values`` of ``sq``'s label by the held shard they hash to (the others left out)."""
        key = (sq.label, sq.prefix)
        last = self._owners.get(key)
        if last is not None and last[1] == held and last[0] == values:
            return last[2]
        ours: dict[int, list[str]] = {s: [] for s in held.held}
        for value in values:
            mine = ours.get(sq.shard_of(value, held.shards))
            if mine is not None:
                mine.append(value)
        self._owners[key] = (list(values), held, ours)
        return ours

    def _tasks(self, fetches: list[_Fetch], until_s: float) -> list[list[_Fetch]]:
        """The cycle's requests: a fetch alone, or short fetches at one horizon together, in as
        many requests as there are fetch threads (the server evaluates one request's legs in turn)."""
        step_s = self.step.total_seconds()
        short = (min(COMBINE_STEPS, self.config.prometheus.max_points_per_query) - 1) * step_s
        tasks: list[list[_Fetch]] = []
        together: dict[float, list[_Fetch]] = {}
        for fetch in fetches:
            if (not self._combines or not fetch.queries or fetch.signal in self._alone
                    or until_s - fetch.start_s > short or self._series_in(fetch) > COMBINE_SERIES):
                tasks.append([fetch])
            else:
                together.setdefault(fetch.start_s, []).append(fetch)
        for group in together.values():
            # No request with much more than its share of the legs, and one entity kind's signals
            # per request: pods come and go many times a day and each pod signal's answer changes
            # with them, so a request of pod signals decodes its labels afresh then, while one of
            # node or GPU signals keeps its label memo; mixed, every request would lose it with
            # every pod replaced (bench/README.md). In the signals' order, dealt round within a
            # kind: the same signals go together cycle after cycle (a request's text stays the same).
            share = math.ceil(len(group) / self.config.prometheus.max_concurrency)
            kinds: dict[str, list[_Fetch]] = {}
            for fetch in group:
                kinds.setdefault(self.signals[fetch.signal].entity, []).append(fetch)
            for same in kinds.values():
                n = math.ceil(len(same) / share)
                for batch in (same[k::n] for k in range(n)):
                    tasks.extend(_capped(batch))
        return tasks

    def _series_in(self, fetch: _Fetch) -> int:
        """The series ``fetch``'s windows hold: about what its answer will."""
        return sum(len(w) for part in fetch.parts if (w := self.window.get(part)) is not None)

    @functools.cached_property
    def shard_queries(self) -> dict[str, ShardQuery]:
        """Signals whose query can be asked for one shard's series (aiops/collect/shard_query.py)."""
        return shard_queries(self.signals, written=self._written)

    def _parts(self, held: HeldShards | None) -> dict[str, list[tuple[str, int | None]]]:
        """Each signal's parts: (window name, shard). Unsharded, or a query that cannot be split
        by shard: the whole signal, one part. Sharded: one part per held shard, each with its own
        window and fetch horizon, so a shard taken over is fetched over the whole lookback (its
        history) while the others stay incremental, and a shard handed back is forgotten at once."""
        parts: dict[str, list[tuple[str, int | None]]] = {}
        splittable = held is not None and isinstance(self.client, LabelSource)
        for name in self.signals:
            if splittable and name in self.shard_queries and held is not None and name not in held.whole:
                parts[name] = [(f"{name}@{s}/{held.shards}", s) for s in sorted(held.held)]
            else:
                parts[name] = [(name, None)]
        wanted = {part for ps in parts.values() for part, _ in ps}
        for part in [p for p in self._fetched_until if p not in wanted]:
            del self._fetched_until[part]
        self.window.drop(lambda part: part not in wanted)
        return parts

    def _discover(
        self, parts: dict[str, list[tuple[str, int | None]]], start_of: Callable[[str], float], now: datetime
    ) -> dict[str, list[str] | PrometheusError]:
        """The values of each shard label over the ranges about to be fetched (plus how far the
        queries reach back), for all the signals split by that label at once."""
        client = self.client
        if not isinstance(client, LabelSource):  # _parts splits no signal for such a source
            return {}
        by_label: dict[str, list[str]] = {}
        for name, ps in parts.items():
            if ps and ps[0][1] is not None:
                by_label.setdefault(self.shard_queries[name].label, []).append(name)

        def ask(label: str) -> tuple[str, list[str] | PrometheusError]:
            names = by_label[label]
            selectors = list(dict.fromkeys(sel for n in names for sel in self.shard_queries[n].selectors))
            since = min(start_of(part) - self.shard_queries[n].margin_seconds for n in names for part, _ in parts[n])
            since -= 300.0  # Prometheus's staleness window: a sample that old still answers
            try:
                values = client.label_values(label, selectors, datetime.fromtimestamp(since, now.tzinfo), now)
            except PrometheusError as exc:
                return label, exc
            return label, values

        return dict(self._pool.map(ask, list(by_label)))

    def _rows(
        self, parts: list[tuple[str, int | None]]
    ) -> Iterator[tuple[LabelKey, dict[str, str], np.ndarray, np.ndarray, float]]:
        if len(parts) == 1:
            # An unsharded signal (or one held shard): its window's rows as they are, without a
            # generator around them in the steady cycle's hottest loop.
            win = self.window.get(parts[0][0])
            return win.rows() if win is not None else iter(())
        return self._deduplicated_rows(parts)

    def _deduplicated_rows(
        self, parts: list[tuple[str, int | None]]
    ) -> Iterator[tuple[LabelKey, dict[str, str], np.ndarray, np.ndarray, float]]:
        seen: set[LabelKey] = set()
        for part, _ in parts:
            win = self.window.get(part)
            if win is None:
                continue
            for row in win.rows():
                # A series without the shard label is fetched with every held shard: frame it once.
                if row[0] in seen:
                    continue
                seen.add(row[0])
                yield row

    def _absent(self, newest: Mapping[str, float], fresh: set[str], missing: list[str]) -> dict[str, float]:
        """Signals that had series (in the window, or earlier in this process) and have no fresh one now;
        ``newest``: each signal's newest instant in this frame, ``fresh``: the signals with a fresh series."""
        for name, t in newest.items():
            self._last_seen[name] = max(self._last_seen.get(name, 0.0), t)
        # A signal whose query failed is missing, not absent: we do not know. A sparse one with no
        # series is the healthy case (nothing crash-loops any more).
        return {n: t for n, t in self._last_seen.items()
                if n not in fresh and n not in missing and n in self.signals and not self.signals[n].sparse}

    def history(self, signals: Iterable[str], start: datetime, end: datetime, step: timedelta) -> Iterator[list[Series]]:
        """What Prometheus holds of ``signals`` over [start, end] at ``step``, one signal's chunk
        at a time, for a detector learning the days before its first frame
        (:class:`~aiops.plugins.LearnsFromHistory`): the days of 100k series are never in memory
        as points at once. Raises :class:`PrometheusError` as a fetch does. Unsharded: a sharded
        replica's detectors drop the series no frame of theirs brings at their first cycle."""
        for name in sorted(set(signals) & self.signals.keys()):
            signal = self.signals[name]
            for block in self._chunks(signal.query, start, end, step, signal=name):
                yield [Series(name, s.labels, s.timestamps, s.values, entity_of(signal, s.labels)) for s in block.split()]

    def _chunks(
        self, query: str, start: datetime, end: datetime, step: timedelta | None = None, *, signal: str | None = None
    ) -> Iterator[Block]:
        """Decoded chunks from the client, screened against ``signal``'s plausible range (the one
        place samples enter: the cycle's fetch and the history a detector learns from; a combined
        query's legs are screened each against its own signal once split); a client with only
        ``query_range`` (a recorded-history client in replays, a test double) gives its whole
        answer as one chunk."""
        screen = self.screens[signal].block if signal is not None else _unscreened
        chunks = getattr(self.client, "range_chunks", None)
        if chunks is not None:
            for block in chunks(query, start, end, step or self.step):
                yield screen(block)
        else:
            yield screen(Block.from_series(self.client.query_range(query, start, end, step or self.step)))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
