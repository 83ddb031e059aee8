"""The multivariate detector's reference, kept across cycles: state in, state out.

Refitting on the frame's lookback every cycle (6 h by default) made the reference follow every
change, incidents included: on SMD a 6-hour reference refitted hourly scored F1-best 0.199 against
a null 0.191, and a cooling failure stopped scoring half an hour after it began. So the reference
of a pool (entities of one kind with one feature set) is a state of its own:

* it holds the pool's **rows that were not flagged** (score below ``report_floor``): what the
  daemon reported is not normal, so an incident never becomes the reference;
* it is **refitted slowly**: when ``refresh_seconds`` have passed since the last fit (a day by
  default), or, while its fit held fewer than ``window`` rows (less the rounding of the window
  into its entities' shares), when its rows have doubled since (a young daemon learns quickly
  from its first lookback, then settles); a refit that finds too little normal history to fit on
  is tried again once a run that counts could have formed (30 minutes by default), not on every
  row of every entity;
* it is bounded: at each fit the pool keeps about ``window`` rows, each entity its newest rows
  holding an equal share of rows the fit uses (a flagged row costs its run, not the entity's place:
  in a pool of more than 1,440 entities a share is one 30-row run, which one flagged row broke),
  so a large fleet is represented by all its members; between fits each cycle drops
  the rows the next fit cannot choose (:func:`_trim`), or a pool of 10,000 pods held every row of
  the day until the daily refit (0.6 GB at 4 features) to fit on 43,200 of them;
* the rows a model was fitted on are a typed record (:class:`SavedReference`) that the daemon
  stores in its state file at each fit (:mod:`aiops.state.detector_state`); a restart refits the
  same model from it, and the first frame's lookback fills in the rows since.

:func:`advance` is the one transition, used by the backtest (``score_matrix``: one entity, the
train split as history) and by the daemon (``detect``: each entity's rows the frame adds), so both
score the same rows identically (tested). Rows are scored in order; a refit happens before the
row at which it falls due, on the rows kept before it, so a score never depends on later rows.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import numpy as np


class ReferenceModel(Protocol):
    """What the transition needs of a fitted model (``detectors.multivariate.ReferenceModel``),
    declared here so that the reference does not import the detector that uses it."""

    @property
    def window(self) -> int: ...  # smoothing window, in rows

    def log_members_of(self, blocks: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def combine(self, log_members: np.ndarray) -> np.ndarray: ...

    def statistic(self, rows: np.ndarray) -> np.ndarray: ...

    def calibrate(self, statistic: np.ndarray) -> np.ndarray: ...


M = TypeVar("M", bound=ReferenceModel)
Fit = Callable[[Sequence[np.ndarray]], M]

# A stored reference in another layout is refitted from the lookback instead of misread.
FORMAT = 1


@dataclass(frozen=True)
class Schedule:
    """When a pool's reference is refitted and what it keeps (the detector's settings)."""

    window: int  # at most this many rows per pool
    refresh_seconds: float
    min_reference: int
    report_floor: float  # rows scored at or above it are not kept
    smooth_rows: int  # the smoothing window, in rows


@dataclass(frozen=True)
class Rows:
    """One entity's rows: times (epoch seconds, increasing), values (rows x features) and whether
    each was flagged (scored at or above ``report_floor``)."""

    t: np.ndarray
    x: np.ndarray
    flagged: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def then(self, other: Rows) -> Rows:
        if not len(other):
            return self
        return Rows(np.concatenate([self.t, other.t]), np.concatenate([self.x, other.x]), np.concatenate([self.flagged, other.flagged]))

    def newest(self, n: int) -> Rows:
        return self if n >= len(self) else Rows(self.t[-n:], self.x[-n:], self.flagged[-n:]) if n > 0 else self.where(np.zeros(len(self), bool))

    def where(self, mask: np.ndarray) -> Rows:
        return Rows(self.t[mask], self.x[mask], self.flagged[mask])

    def normal(self, recent: float) -> np.ndarray:
        """Which rows a fit may use: all but those flagged since ``recent`` (:func:`normal_rows`)."""
        return ~self.flagged | (self.t < recent)


@dataclass(frozen=True)
class SavedReference:
    """What a pool's model was fitted on: enough to refit the same model after a restart."""

    kind: str
    features: tuple[str, ...]
    step: float
    fitted_at: float  # the first row scored with the model; every row it holds is older
    rows: Mapping[str, Rows]  # entity key -> the pool's rows at the fit (the model's: see normal_rows)

    @property
    def key(self) -> str:
        return f"{self.kind}|{','.join(self.features)}"

    def to_bytes(self) -> bytes:
        names = sorted(self.rows)
        header = {"format": FORMAT, "kind": self.kind, "features": list(self.features), "step": self.step,
                  "fitted_at": self.fitted_at, "entities": names}
        arrays: dict[str, Any] = {}  # np.savez_compressed keywords (typed with its allow_pickle)
        for i, n in enumerate(names):
            arrays |= {f"t{i}": self.rows[n].t, f"x{i}": self.rows[n].x, f"f{i}": self.rows[n].flagged}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, body: bytes) -> SavedReference:
        """The record :meth:`to_bytes` wrote; ValueError when it is not one (say so, refit from the lookback)."""
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as data:
                header = json.loads(data["header"].tobytes().decode())
                if header.get("format") != FORMAT:
                    raise ValueError(f"format {header.get('format')}, this release reads {FORMAT}")
                rows = {n: Rows(np.asarray(data[f"t{i}"], dtype=float), np.asarray(data[f"x{i}"], dtype=float),
                                np.asarray(data[f"f{i}"], dtype=bool)) for i, n in enumerate(header["entities"])}
        except Exception as exc:  # whatever the bytes are, they are not a reference this release wrote
            raise ValueError(f"not a saved multivariate reference ({type(exc).__name__}: {exc})") from None
        return cls(str(header["kind"]), tuple(header["features"]), float(header["step"]), float(header["fitted_at"]), rows)


@dataclass(frozen=True)
class PoolState(Generic[M]):
    """A pool's reference between cycles: its model, the record it was fitted on, the rows kept
    (the model's and those seen since, flagged or not), the newest row seen per entity, and when a
    refit that found too little normal history is tried again (:func:`_backoff`)."""

    step: float
    kept: Mapping[str, Rows] = field(default_factory=dict)
    seen: Mapping[str, float] = field(default_factory=dict)
    model: M | None = None
    saved: SavedReference | None = None  # None until the first fit
    retry_at: float = -math.inf  # no refit is tried before it

    @property
    def kept_rows(self) -> int:
        return sum(len(r) for r in self.kept.values())

    @property
    def fitted_rows(self) -> int:
        return 0 if self.saved is None else sum(len(r) for r in self.saved.rows.values())


def restored(saved: SavedReference, fit: Fit[M], schedule: Schedule) -> PoolState[M]:
    """The state a pool was in right after the fit ``saved`` records (the same model: the fit is
    deterministic); the rows seen since come back from the next frame's lookback."""
    seen = {e: float(r.t[-1]) for e, r in saved.rows.items() if len(r)}
    segments = _segments(normal_rows(saved.rows, saved.fitted_at, schedule), saved.step, schedule)
    return PoolState(saved.step, dict(saved.rows), seen, fit(segments), saved)


def normal_rows(rows: Mapping[str, Rows], now: float, schedule: Schedule) -> dict[str, Rows]:
    """The rows a fit at ``now`` uses: all but those flagged within the last refresh period.

    A row flagged longer ago than that is normal again: a change that lasted a whole refresh
    period (and was reported all along) is the new normal, as a permanent shift must become.
    """
    recent = now - schedule.refresh_seconds
    return {e: _unflagged(c.t, c.x) for e, r in rows.items() if len(c := r.where(r.normal(recent)))}


@dataclass(frozen=True)
class Scored(Generic[M]):
    """A block's new rows: their scores and statistics, and the model that scored the newest."""

    scores: np.ndarray
    statistics: np.ndarray
    model: M | None


@dataclass(frozen=True)
class Block:
    """One entity's rows as a cycle (or the backtest) hands them over: ``x[start:]`` is scored."""

    entity: str
    t: np.ndarray
    x: np.ndarray
    start: int


def advance(
    state: PoolState[M],
    blocks: Sequence[Block],
    *,
    kind: str,
    features: tuple[str, ...],
    fit: Fit[M],
    schedule: Schedule,
) -> tuple[PoolState[M], list[Scored[M]]]:
    """Score each block's new rows in order: (new state, what each block's rows scored).

    Rows before ``start`` that the state has not seen are history: kept, unscored. Rows already
    seen are context only (the smoothing window). A row with no model yet scores 0 (no opinion)
    and its statistic is NaN. Entities are taken in turn; a refit one of them brings about holds
    for the next ones.
    """
    work = replace(state, kept=dict(state.kept), seen=dict(state.seen))  # copied once, then filled in
    batch = _without_refit(work, blocks, schedule)
    if batch is not None:
        _trim(work, schedule)
        return work, batch
    out = []
    for block in blocks:
        work, scored = _advance(work, block, kind, features, fit, schedule)
        out.append(scored)
    _trim(work, schedule)
    return work, out


def _without_refit(state: PoolState[M], blocks: Sequence[Block], schedule: Schedule) -> list[Scored[M]] | None:
    """The steady cycle: when no new row makes a refit due, every block is scored in one batch
    (one neighbour query for the whole pool instead of one per entity); None when one might."""
    model, saved = state.model, state.saved
    if model is None or saved is None:
        return None
    due_at = max(_clock_due_at(saved, schedule), state.retry_at)
    target = _doubling_target(state, schedule)
    total, plans = state.kept_rows, []
    for b in blocks:
        seen_t = state.seen.get(b.entity, -math.inf)
        history = np.flatnonzero(b.t[: b.start] > seen_t)
        fresh = b.start + int(np.searchsorted(b.t[b.start :], seen_t, side="right"))
        if fresh < b.t.shape[0] and b.t[-1] >= due_at:
            return None
        total += history.shape[0] + b.t.shape[0] - fresh
        plans.append((history, fresh))
    latest = max((float(b.t[-1]) for b in blocks if b.t.shape[0]), default=-math.inf)
    if target is not None and total >= target and latest >= state.retry_at:
        return None  # the pool may double within this cycle: row by row
    scoring = [(b, fresh) for b, (_, fresh) in zip(blocks, plans) if fresh < b.t.shape[0]]
    logs = iter(model.log_members_of([b.x[max(0, fresh - model.window + 1) :] for b, fresh in scoring]))
    out = []
    for b, (history, fresh) in zip(blocks, plans):
        if history.shape[0]:
            _keep(state, b.entity, _unflagged(b.t[history], b.x[history]), float(b.t[history[-1]]))
        n = b.t.shape[0] - fresh
        if not n:
            out.append(Scored(np.zeros(0), np.zeros(0), model))
            continue
        stat = model.combine(next(logs)[:, -n:])
        s = model.calibrate(stat)
        s[np.all(np.isnan(b.x[fresh:]), axis=1)] = 0.0  # a row with no data has no opinion
        _keep(state, b.entity, Rows(b.t[fresh:], b.x[fresh:], s >= schedule.report_floor), float(b.t[-1]))
        out.append(Scored(s, stat, model))
    return out


def _advance(
    state: PoolState[M], block: Block, kind: str, features: tuple[str, ...], fit: Fit[M], schedule: Schedule
) -> tuple[PoolState[M], Scored[M]]:
    entity, t, x, start = block.entity, block.t, block.x, block.start
    n = t.shape[0]
    seen_t = state.seen.get(entity, -math.inf)
    history = np.flatnonzero(t[:start] > seen_t)
    if history.shape[0]:
        _keep(state, entity, _unflagged(t[history], x[history]), float(t[history[-1]]))
    fresh = start + int(np.searchsorted(t[start:], seen_t, side="right"))
    scores, statistics = np.zeros(n - fresh), np.full(n - fresh, np.nan)
    model = state.model
    i = fresh
    while i < n:
        if _due(state, float(t[i]), schedule):
            state = _refit(state, float(t[i]), kind, features, fit, schedule)
        j = _block_end(state, t, i, schedule)
        model = state.model
        if model is None:
            s, stat = np.zeros(j - i), np.full(j - i, np.nan)
        else:
            first = max(0, i - model.window + 1)
            stat = model.statistic(x[first:j])[-(j - i):]
            s = model.calibrate(stat)
            s[np.all(np.isnan(x[i:j]), axis=1)] = 0.0  # a row with no data has no opinion
        # The pool may double before j, making a refit due: stop right after that row.
        target = _doubling_target(state, schedule)
        if target is not None and t[i] >= state.retry_at and state.kept_rows + (j - i) > target:
            j = i + max(1, target - state.kept_rows)
            s, stat = s[: j - i], stat[: j - i]
        _keep(state, entity, Rows(t[i:j], x[i:j], s >= schedule.report_floor), float(t[j - 1]))
        scores[i - fresh : j - fresh], statistics[i - fresh : j - fresh] = s, stat
        i = j
    return state, Scored(scores, statistics, model)


def _unflagged(t: np.ndarray, x: np.ndarray) -> Rows:
    return Rows(t, x, np.zeros(t.shape[0], dtype=bool))


def _keep(state: PoolState[M], entity: str, rows: Rows, seen: float) -> None:
    """Add rows to the (working copy of the) state's kept rows, in place."""
    kept, newest = state.kept, state.seen
    assert isinstance(kept, dict) and isinstance(newest, dict), "advance works on its own copy"
    old = kept.get(entity)
    kept[entity] = rows if old is None else old.then(rows)
    newest[entity] = seen


def _doubling_target(state: PoolState[M], schedule: Schedule) -> int | None:
    """The kept-row count at which the next refit falls due by growth; None: only by the clock."""
    if state.model is None:
        return schedule.min_reference
    # Full once each entity it was fitted on held its share: the window rounded down to a multiple
    # of them (7 entities fill 595 of 600 rows; counted young, they refitted every 85 minutes).
    entities = max(len(state.saved.rows) if state.saved is not None else 0, 1)
    if state.fitted_rows >= schedule.window // entities * entities:
        return None
    return max(2 * state.fitted_rows, schedule.min_reference)


def _due(state: PoolState[M], now: float, schedule: Schedule) -> bool:
    if now < state.retry_at:
        return False
    target = _doubling_target(state, schedule)
    if target is not None and state.kept_rows >= target:
        return True
    return state.saved is not None and state.model is not None and now - state.saved.fitted_at >= schedule.refresh_seconds


def _block_end(state: PoolState[M], t: np.ndarray, i: int, schedule: Schedule) -> int:
    """The first row index after ``i`` at which a backoff ends or the clock makes a refit due (or the end)."""
    if t[i] < state.retry_at:
        due = state.retry_at
    elif state.saved is None or state.model is None:
        return int(t.shape[0])
    else:
        due = _clock_due_at(state.saved, schedule)
    return max(i + 1, int(np.searchsorted(t, due, side="left")))


def _clock_due_at(saved: SavedReference, schedule: Schedule) -> float:
    """The instant the clock makes the next refit due: a refresh period after the last fit."""
    return saved.fitted_at + schedule.refresh_seconds


def _refit(state: PoolState[M], now: float, kind: str, features: tuple[str, ...], fit: Fit[M], schedule: Schedule) -> PoolState[M]:
    """Fit on the pool's newest ``window`` rows that are normal (:func:`normal_rows`).

    An entity not seen for a refresh period has left the pool (a replaced pod, a GPU gone): its
    rows and its newest instant are forgotten, or a pool under rollouts would hold every name it
    ever had. The window is shared among the others, at least a run's worth each
    (:func:`_shortest_run`), or no run would count and no refit would ever succeed again; where the
    window cannot hold that much of each, it holds the most recently seen entities (then by key).
    Each entity's share is counted in rows the fit uses (:func:`_span`).
    """
    recent = now - schedule.refresh_seconds
    seen = {e: at for e, at in state.seen.items() if at >= recent}
    live = sorted((e for e, r in state.kept.items() if len(r) and e in seen), key=lambda e: (-seen[e], e))
    live = live[: _most_entities(schedule)]
    share = max(1, schedule.window // max(len(live), 1))
    kept = {e: _span(state.kept[e], share, recent, state.step, schedule) for e in live}
    segments = _segments(normal_rows(kept, now, schedule), state.step, schedule)
    if sum(int((~np.all(np.isnan(s), axis=1)).sum()) for s in segments) < schedule.min_reference:
        # Too little normal history to say what normal is: tried again after a backoff.
        return replace(state, kept=kept, seen=seen, retry_at=now + _backoff(state.step, schedule))
    saved = SavedReference(kind, features, state.step, now, dict(kept))  # a snapshot: kept grows
    return replace(state, kept=kept, seen=seen, model=fit(segments), saved=saved)


def _trim(state: PoolState[M], schedule: Schedule) -> None:
    """Drop, in place at the end of a cycle, the kept rows that the next refit cannot choose.

    The refit due next (at ``fitted_at + refresh_seconds``) chooses among the entities seen since
    ``fitted_at``: at most ``_most_entities`` of them, each the newest rows holding ``window // n``
    rows it uses (:func:`_span`). That share only shrinks as entities join, rows flagged since the
    last fit are not normal at the due instant, and new rows only push older ones out, so each
    keeps its share as of now, and the refit on the due row chooses the same rows, so the same
    model, as if every row had been kept (tested). Which entities it chooses, in a pool of
    more than it holds, depends on who is seen last before it (a lagging scrape ranks an entity
    behind): so all keep their share, a run's worth each at least (E x 30 rows at 1-minute steps,
    up to E x 90 while flagged, where the day's rows were E x 1,440). The refit may choose
    otherwise only when the pool's rows skip the due instant and an entity last seen within that
    gap a refresh period before leaves the pool: the others' share grows past what they kept, and
    rows flagged in the gap a refresh period before are normal again. Entities not seen since the last fit
    keep their rows (that fit's, ``window`` at most): they leave at the next refit, or rank again.

    Only the clock makes that refit due: while the pool is young, its refit falls due when its
    kept rows double, which dropping rows would delay; they are bounded by twice the window then.
    """
    saved = state.saved
    if state.model is None or saved is None or _doubling_target(state, schedule) is not None:
        return
    if max(state.seen.values(), default=-math.inf) >= _clock_due_at(saved, schedule):
        return  # the last refit found too little to fit on: each retry (one per backoff) trims
    kept = state.kept
    assert isinstance(kept, dict), "advance works on its own copy"
    live = [e for e, r in kept.items() if len(r) and state.seen.get(e, -math.inf) >= saved.fitted_at]
    share = max(1, schedule.window // max(min(len(live), _most_entities(schedule)), 1))
    for e in live:  # normal at the due instant: not flagged since the last fit (more are at a later one)
        kept[e] = _span(kept[e], share, saved.fitted_at, state.step, schedule)


def _backoff(step: float, schedule: Schedule) -> float:
    """How long a refit that found too little normal history waits to be tried again: the time a
    run that counts takes to form (:func:`_shortest_run`; 30 minutes by default). It was retried
    on every row of every entity (4,500 tries in 3 h in a pool of 30). The wait is a time, the same
    in the backtest and live; it is not saved, so a restart tries at once."""
    return _shortest_run(schedule) * step


def _most_entities(schedule: Schedule) -> int:
    """The most entities a fit takes: as many as the window holds a run of (:func:`_shortest_run`)."""
    return max(1, schedule.window // _shortest_run(schedule))


def _shortest_run(schedule: Schedule) -> int:
    """The fewest contiguous rows that count in a fit: a smoothing window (or ``min_reference``,
    when that is shorter)."""
    return max(2, min(schedule.smooth_rows, schedule.min_reference))


def _segments(rows: Mapping[str, Rows], step: float, schedule: Schedule) -> list[np.ndarray]:
    """Contiguous runs of kept rows (a flagged row or a gap splits a run), entities in key order.

    A run shorter than the smoothing window (or than ``min_reference``, when that is shorter) is
    left out: the rows between two flagged ones inside an incident say little about normal.
    """
    shortest = _shortest_run(schedule)
    out: list[np.ndarray] = []
    for entity in sorted(rows):
        r = rows[entity]
        out.extend(r.x[lo:hi] for lo, hi in _runs(r.t, step) if hi - lo >= shortest)
    return out


def _runs(t: np.ndarray, step: float) -> list[tuple[int, int]]:
    """The (start, end) indices of the contiguous runs in ``t``: a gap of more than a step splits them."""
    cuts = np.flatnonzero(np.diff(t) > 1.5 * step) + 1
    return list(zip(np.r_[0, cuts].tolist(), np.r_[cuts, t.shape[0]].tolist()))


def _span(rows: Rows, share: int, recent: float, step: float, schedule: Schedule) -> Rows:
    """An entity's newest rows that hold ``share`` rows a fit uses, when rows flagged since
    ``recent`` are not normal (:func:`normal_rows`).

    Counted in all rows, a share of one run (a pool of more than 1,440 entities) lost the entity
    to one flagged row: the run broke, no piece counted. Counted in rows the fit uses, a flagged
    row costs the run around it, and the entity reaches back to its newest normal run. A last,
    partial run reaches back to a run's worth (it counts then). The flagged rows it spans are kept:
    a change reported for a whole refresh period becomes normal at a later fit. It reaches back at
    most two runs beyond its share: past a flagged stretch a smoothing window long (one bad row
    flags the window of smoothed scores after it) to a whole run; an entity flagged for longer sits
    out the fit, and a pool holds at most three runs of each entity where it held one. Only newer
    rows can take a row's place, so a row dropped once is never chosen later (:func:`_trim`).
    """
    shortest = _shortest_run(schedule)
    normal = np.flatnonzero(rows.normal(recent))
    start, need = 0, share
    for lo, hi in reversed(_runs(rows.t[normal], step)):
        if hi - lo < shortest:
            continue
        if hi - lo >= need:
            start = int(normal[min(hi - need, hi - shortest)])
            break
        need -= hi - lo
    most = share + 2 * shortest
    return rows.newest(min(len(rows) - start, most))
