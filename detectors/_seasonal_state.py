"""Incremental, vectorised scoring for :class:`~detectors.seasonal.SeasonalBaseline` in the daemon.

``SeasonalBaseline.trace`` re-derives every statistic over a series' whole history: right for a
backtest, but in the daemon each cycle adds one point per series, and re-scoring a week of history
for each of 10k series every minute would be the whole cycle. A :class:`StateTable` holds, for
every series sampled at the same step, what the next point's score depends on, one row per series,
and scores the new points of all rows together with a few numpy calls:

* the last ``window`` values (the recent median), the seasonal profile (``seasons`` periods of
  per-bucket medians, 15 minutes a bucket by default, plus the open bucket's samples: 689
  numbers a series at a one-minute step instead of a week of minutes, 10,082; see
  :func:`seasonal_reference`), the last ``short`` residuals (the spread), the last
  ``refractory`` raw scores, and the fading records as running maxima: as the trace computes them;
* the robust scales over the ``memory`` span (up to 4,096 points), which is where the trace spends
  its time, from a systematic sample of every ``stride``-th point, recomputed every ``refresh``
  points (at a different phase per row, so that each cycle refreshes a slice of the rows).
  ``stride = refresh = 1`` reproduces the trace exactly (tested, and NAB scored online equals the
  backtest); the defaults hold a quarter of the samples and score NAB within noise of it.

Rolling windows are order-free (median, mean, max), so each ring is a row of a 2-D array written
at its own position. A row is seeded from one trace of the series' first frame (the daemon's cold
cycle), with the days before it that the detector learnt from Prometheus; the table lives in
memory, and a restarted daemon learns those days again.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors._univariate import MAD_TO_SIGMA, points_for, row_median

# Mean absolute deviation -> standard deviation of a normal distribution (sqrt(pi / 2)).
MEAN_ABS_TO_SIGMA = 1.2533
# Most samples a robust scale is computed over (rolling medians cost O(log window) per point).
MAX_SCALE_POINTS = 4096
# The quantities whose medians over the memory span set the scales, in sample-ring order.
SAMPLED = ("spread", "magnitude", "season", "recent", "excess")


@dataclass(frozen=True)
class Spans:
    """The detector's spans in samples, for one sampling step (as ``SeasonalBaseline.trace`` uses them)."""

    step: float
    window: int
    memory: int
    short: int
    refractory: int  # 0: no refractory damping
    period: int
    seasons: int
    fade: float  # seconds
    bucket: int = 1  # samples per bucket of the seasonal profile; divides ``period``

    @property
    def warmup(self) -> int:
        return min(self.window, self.memory)


def make_spans(
    step: float,
    *,
    window_s: float,
    memory_s: float,
    short_s: float,
    refractory_s: float,
    period_s: float,
    seasons: int,
    fade_s: float,
    min_history_points: int,
    profile_s: float = 0.0,
) -> Spans:
    window = points_for(window_s, step, minimum=8)
    period = points_for(period_s, step, minimum=2)
    # A bucket must divide the period (so "the same bucket k periods ago" is a lag of whole
    # buckets) and leave at least two per period (so the bucket after it is complete in the past).
    bucket = math.gcd(period, max(1, int(round(profile_s / step)))) if profile_s > 0 else 1
    if period // bucket < 3:
        bucket = 1
    # Three buckets a period at least: the bucket after "the same one a period ago" is closed.
    period = max(period, 3)
    # Capped: a robust scale needs thousands of samples, not the 20,000 of two weeks at 1 min.
    memory = min(points_for(memory_s, step, minimum=max(window, min_history_points)), MAX_SCALE_POINTS)
    return Spans(
        step=step,
        window=window,
        memory=memory,
        short=points_for(short_s, step, minimum=2),
        refractory=points_for(refractory_s, step) if refractory_s > 0 else 0,
        period=period,
        seasons=seasons,
        fade=max(fade_s, min_history_points * step),
        bucket=bucket,
    )


def bucket_position(slot: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket of each slot, the neighbouring bucket on its side, and its distance from the bucket's
    centre in buckets (0 at the centre, up to 1/2 at an edge)."""
    q = slot // bucket
    offset = ((slot % bucket) + 0.5) / bucket - 0.5
    return q, q + np.where(offset >= 0, 1, -1), np.abs(offset)


def seasonal_reference(same: np.ndarray, beside: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The seasonal baseline from the median of the same bucket in each previous period (columns),
    interpolated linearly towards the neighbouring bucket's: the median over periods, NaN with
    fewer than two. A bucket's median is robust to the odd outlier and the median over periods to
    an odd day; the interpolation keeps a steep diurnal ramp from biasing the baseline by half a
    bucket's change."""
    with np.errstate(invalid="ignore", over="ignore"):
        refs = np.where(np.isnan(beside), same, same + offset * (beside - same))
    return row_median(refs, 2)


def profile_value(y: np.ndarray) -> np.ndarray:
    """A sample as the profile sees it: NaN when unknown or absurd (1e300 garbage)."""
    return np.where(np.isfinite(y) & (np.abs(y) < np.finfo(np.float32).max), y, np.nan)


def bucket_medians(q: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Median of the known samples of each bucket ``0..size-1`` (NaN for none), computed as
    :func:`~detectors._univariate.row_median` computes the daemon's open bucket: same values."""
    v = profile_value(y)
    known = ~np.isnan(v)
    q, v = q[known], v[known]
    out = np.full(size, np.nan)
    if q.shape[0] == 0:
        return out
    order = np.lexsort((v, q))
    q, v = q[order], v[order]
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    counts = np.diff(np.r_[starts, q.shape[0]])
    lo, hi = starts + (counts - 1) // 2, starts + counts // 2
    out[q[starts]] = 0.5 * (v[lo] + v[hi])
    return out


@dataclass(frozen=True)
class Point:
    """The newest scored point of a series: what a finding is built from."""

    t: float
    value: float
    score: float
    z: float
    view: int
    recent: float
    seasonal: float
    surprise: float
    t_first: float


@dataclass(frozen=True)
class Params:
    """The scoring constants of the detector that owns the table."""

    surprise_offset: float
    min_reference_z: float
    damp: float


def alarm_strength(surprise: np.ndarray, offset: float) -> np.ndarray:
    """The score before refractory damping: ``u / (u + offset)`` where the surprise ``u`` is at
    least 1 (beyond the faded record and the floor), else 0.

    Below the record the ratio's meaning depends on the series (a near-record is routine for a
    bursty series, rare for a quiet one), so it is not ranked at all; what is left means "more
    unusual than anything seen lately" on every series, and one threshold transfers.
    """
    with np.errstate(invalid="ignore"):
        return np.where(surprise >= 1.0, surprise / (surprise + offset), 0.0)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a nan-reduction without its all-NaN warning (an empty window simply has no value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


class StateTable:
    """Incremental scoring state of every series of one step and direction, one row each."""

    def __init__(self, spans: Spans, direction: str, stride: int, params: Params, refresh: int = 1) -> None:
        self.spans = spans
        self.direction = direction
        self.stride = max(1, stride)
        self.refresh = max(1, refresh)
        self.params = params
        self.rows: dict[Hashable, int] = {}
        self._free: list[int] = []
        sp = spans
        self._widths = {
            "values": sp.window,
            "abs_recent": sp.short,
            "raws": max(1, sp.refractory),
            "grid": sp.seasons * (sp.period // sp.bucket) + 2,
            "open": sp.bucket,
            "samples": -(-sp.memory // self.stride),
        }
        self._lags = np.arange(1, sp.seasons + 1) * (sp.period // sp.bucket)  # in buckets
        self._alloc(0)

    # ------------------------------------------------------------------ storage
    def _alloc(self, capacity: int) -> None:
        w = self._widths
        self.values = np.full((capacity, w["values"]), np.nan)
        self.abs_recent = np.full((capacity, w["abs_recent"]), np.nan)
        self.raws = np.full((capacity, w["raws"]), np.nan)
        # The seasonal profile: the median of each closed bucket, and the open bucket's samples.
        self.grid = np.full((capacity, w["grid"]), np.nan)
        self.open = np.full((capacity, w["open"]), np.nan)
        # float32 too: these are only ever ranked and averaged into scales.
        self.samples = np.full((capacity, len(SAMPLED), w["samples"]), np.nan, dtype=np.float32)
        self.pos = np.zeros((capacity, 4), dtype=np.int64)  # write positions: values, abs_recent, raws, samples
        self.count = np.zeros(capacity, dtype=np.int64)
        self.phase = np.zeros(capacity, dtype=np.int64)
        self.last_slot = np.zeros(capacity, dtype=np.int64)
        self.t_first = np.zeros(capacity)
        self.best = np.full((capacity, 2), -np.inf)
        self.stats = np.full((capacity, 5), np.nan)  # spread median, magnitude, scales: season, recent, excess
        self.last = np.full((capacity, 8), np.nan)  # t, value, score, z, view, recent, seasonal, surprise

    def reserve(self, extra: int) -> None:
        """Room for ``extra`` more rows in one allocation (a cold cycle seeds thousands at once)."""
        old = self.count.shape[0]
        missing = extra - len(self._free)
        if missing <= 0:
            return
        arrays = {name: getattr(self, name) for name in self._array_names()}
        self._alloc(old + max(missing, old // 4, 16))  # a quarter more at least: few copies, little slack
        for name, arr in arrays.items():
            getattr(self, name)[:old] = arr
        self._free = list(range(self.count.shape[0] - 1, old - 1, -1)) + self._free

    def _grow(self) -> int:
        self.reserve(1)
        return self._free.pop()

    @staticmethod
    def _array_names() -> tuple[str, ...]:
        return (
            "values",
            "abs_recent",
            "raws",
            "grid",
            "open",
            "samples",
            "pos",
            "count",
            "phase",
            "last_slot",
            "t_first",
            "best",
            "stats",
            "last",
        )

    def forget(self, key: Hashable) -> None:
        row = self.rows.pop(key, None)
        if row is not None:
            self._free.append(row)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self._array_names())

    def __contains__(self, key: Hashable) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------------ seeding from a trace
    def seed(self, key: Hashable, t: np.ndarray, y: np.ndarray, tr: Any) -> None:
        """Start a row from the trace of the series' history so far (a ``SeasonalTrace``)."""
        self.forget(key)
        r = self._grow()
        self.rows[key] = r
        sp, n = self.spans, t.shape[0]
        for arr in (self.values, self.abs_recent, self.raws, self.samples):
            arr[r] = np.nan
        self.pos[r] = 0
        _fill(self.values[r], y)
        _fill(self.abs_recent[r], np.abs(tr.residual_recent))
        if sp.refractory:
            _fill(self.raws[r], tr.raw)
        slots = np.rint((t - t[0]) / sp.step).astype(np.int64)
        size = self.grid.shape[1]
        q = slots // sp.bucket
        last = int(q[-1])
        medians = bucket_medians(q, y, last + 1)
        held = np.arange(max(0, last - size + 1), last)  # closed buckets the profile holds
        self.grid[r] = np.nan
        self.grid[r, held % size] = medians[held]
        self.open[r] = np.nan
        now = q == last
        self.open[r, slots[now] % sp.bucket] = profile_value(y[now])
        self.last_slot[r] = slots[-1]
        self.t_first[r] = t[0]
        self.count[r] = n
        age = (t - t[0]) / sp.fade
        with np.errstate(divide="ignore", invalid="ignore"):
            self.best[r] = (np.log(np.maximum(tr.oriented, 0.0)) + age[:, None]).max(axis=0)
        # The systematic sample: every stride-th point, ending at the newest.
        idx = np.arange(n - 1, max(-1, n - 1 - sp.memory), -self.stride)[::-1]
        self.phase[r] = (n - 1) % self.stride
        sources = (
            tr.spread,
            np.abs(y),
            np.abs(tr.residual_seasonal),
            np.abs(tr.residual_recent),
            np.abs(tr.spread_excess),
        )
        for j, src in enumerate(sources):
            _fill(self.samples[r, j], src[idx])
        self._refresh(np.array([r]))
        i = n - 1
        self.last[r] = (t[i], y[i], tr.score[i], tr.z[i], tr.view[i], tr.recent[i], tr.seasonal[i], tr.surprise[i])

    def point(self, key: Hashable) -> Point:
        r = self.rows[key]
        t, value, score, z, view, recent, seasonal, surprise = self.last[r].tolist()
        return Point(t, value, score, z, int(view), recent, seasonal, surprise, float(self.t_first[r]))

    def last_time(self, key: Hashable) -> float:
        return float(self.last[self.rows[key], 0])

    def score(self, key: Hashable) -> float:
        return float(self.last[self.rows[key], 2])

    # ------------------------------------------------------------------ new points
    def advance(self, keys: Sequence[Hashable], times: Sequence[np.ndarray], values: Sequence[np.ndarray]) -> None:
        """Score the new points of several series: round k scores every series' k-th new point.

        Each series' new points must come after its last scored one, in time order (a frame's
        series are); bad input raises ValueError before any row changes.
        """
        rows = np.array([self.rows[k] for k in keys], dtype=np.int64)
        lengths = np.array([ti.shape[0] for ti in times], dtype=np.int64)
        rounds = int(lengths.max()) if lengths.shape[0] else 0
        # (series, round) matrices, NaN past each series' own new points.
        t = np.full((rows.shape[0], rounds), np.nan)
        y = np.full((rows.shape[0], rounds), np.nan)
        for j, (ti, yi) in enumerate(zip(times, values)):
            t[j, : ti.shape[0]] = ti
            y[j, : yi.shape[0]] = yi
        have = np.arange(rounds)[None, :] < lengths[:, None]
        if not np.all(np.isfinite(t[have])):
            raise ValueError("timestamps contain NaN or infinity; drop those rows before scoring")
        previous = np.column_stack([self.last[rows, 0], t[:, :-1]]) if rounds else t
        if np.any(have & ~(t >= previous)):
            raise ValueError("new points must be later than the last scored one and in increasing time order")
        y = np.where(np.isfinite(y), y, np.nan)  # infinite values are as unusable as missing ones
        # Absurd values (1e300) overflow to inf/NaN and score 0; the log need not say so each cycle.
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(rounds):
                pick = np.flatnonzero(have[:, k])
                self._step(rows[pick], t[pick, k], y[pick, k])

    def _step(self, r: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        sp, p = self.spans, self.params
        recent = row_median(self.values[r], max(4, sp.window // 4))
        r_recent = y - recent
        slot = np.rint((t - self.t_first[r]) / sp.step).astype(np.int64)
        self._close_buckets(r, slot)
        seasonal = self._seasonal(r, slot)
        self._put_slot(r, slot, y)
        _push(self.values, self.pos, 0, r, y)
        _push(self.abs_recent, self.pos, 1, r, np.abs(r_recent))
        # Any NaN in the short span (or a span not yet filled) leaves the spread unknown.
        spread = self.abs_recent[r].mean(axis=1)
        st = self.stats[r]
        excess = spread - st[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            z_season = (y - seasonal) / st[:, 2]
            z_level = np.where(np.isnan(z_season), r_recent / st[:, 3], z_season)
            z_spread = excess / st[:, 4]
        if self.direction == "up":
            level_dev = np.maximum(z_level, 0.0)
        elif self.direction == "down":
            level_dev = np.maximum(-z_level, 0.0)
        else:
            level_dev = np.abs(z_level)
        oriented = np.nan_to_num(np.column_stack([level_dev, np.maximum(z_spread, 0.0)]), nan=0.0)
        age = ((t - self.t_first[r]) / sp.fade)[:, None]
        reference = np.exp(self.best[r] - age)
        with np.errstate(divide="ignore"):
            self.best[r] = np.maximum(self.best[r], np.log(oriented) + age)
        ratio = oriented / np.maximum(reference, p.min_reference_z)
        view = np.argmax(ratio, axis=1)
        surprise = ratio[np.arange(r.shape[0]), view]
        raw = alarm_strength(surprise, p.surprise_offset)
        if sp.refractory:
            prior = np.nan_to_num(_quiet(np.nanmax, self.raws[r], axis=1), nan=0.0)
            _push(self.raws, self.pos, 2, r, raw)
            raw = np.where(raw > prior, raw, raw * p.damp)
        score = np.where(np.isnan(y), 0.0, np.clip(raw, 0.0, 1.0))
        z = np.where(view == 0, z_level, z_spread)
        self.last[r] = np.column_stack([t, y, score, z, view, recent, seasonal, surprise])
        # Every stride-th point joins the sample of the memory span; every refresh-th point (a
        # different phase per row, so that the work is spread over cycles) the scales are recomputed.
        due = self.count[r] % self.stride == self.phase[r]
        if due.any():
            d = r[due]
            sampled = np.column_stack([spread, np.abs(y), np.abs(y - seasonal), np.abs(r_recent), np.abs(excess)])[due]
            cols = self.pos[d, 3]
            self.samples[d, :, cols] = _storable(sampled)
            self.pos[d, 3] = (cols + 1) % self.samples.shape[2]
        stale = (self.count[r] + r) % self.refresh == 0
        if stale.any():
            self._refresh(r[stale])
        self.count[r] += 1

    def _refresh(self, r: np.ndarray) -> None:
        """Recompute the memory-span statistics of rows ``r`` from their samples (past points only)."""
        s = self.samples[r].astype(np.float64)

        def need(points: int) -> int:  # a sample stands for ``stride`` points of history
            return -(-points // self.stride)

        self.stats[r, 0] = row_median(s[:, 0], need(8))
        magnitude = np.nan_to_num(row_median(s[:, 1], 1), nan=0.0)
        self.stats[r, 1] = magnitude
        floor = 1e-3 * magnitude + 1e-12
        for j, col in ((2, 2), (3, 3), (4, 4)):
            x = s[:, j]
            mad = row_median(x, need(self.spans.warmup)) * MAD_TO_SIGMA
            mean_abs = _quiet(np.nanmean, x, axis=1) * MEAN_ABS_TO_SIGMA
            # NaN (too little history) stays NaN: no opinion rather than a huge z.
            self.stats[r, col] = np.maximum(np.where(np.isnan(mad), np.nan, np.fmax(mad, mean_abs)), floor)

    def _seasonal(self, r: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """The seasonal baseline at ``slot`` from the closed buckets of the previous periods."""
        size = self.grid.shape[1]
        q, beside, offset = bucket_position(slot, self.spans.bucket)
        lags = self._lags[None, :]

        def medians(b: np.ndarray) -> np.ndarray:
            # Buckets before the series began, or older than the profile holds, are unknown.
            ok = (b >= 0) & (b > q[:, None] - size) & (b < q[:, None])
            return np.where(ok, self.grid[r[:, None], b % size], np.nan)

        return seasonal_reference(medians(q[:, None] - lags), medians(beside[:, None] - lags), offset[:, None])

    def _close_buckets(self, r: np.ndarray, slot: np.ndarray) -> None:
        """Before scoring a point in a new bucket: close the open one (its median joins the
        profile) and mark buckets skipped over as unknown."""
        size, b = self.grid.shape[1], self.spans.bucket
        q, last = slot // b, self.last_slot[r] // b
        moved = q > last
        if moved.any():
            rm = r[moved]
            self.grid[rm, last[moved] % size] = row_median(self.open[rm], 1)
            self.open[rm] = np.nan
        for j in np.flatnonzero(q > last + 1).tolist():  # buckets skipped over are unknown (rare: a loop)
            row = r[j]
            if q[j] - last[j] > size:
                self.grid[row] = np.nan
            else:
                self.grid[row, np.arange(last[j] + 1, q[j]) % size] = np.nan

    def _put_slot(self, r: np.ndarray, slot: np.ndarray, y: np.ndarray) -> None:
        self.open[r, slot % self.spans.bucket] = profile_value(y)
        self.last_slot[r] = np.maximum(self.last_slot[r], slot)


def _storable(y: np.ndarray) -> np.ndarray:
    """Values for the float32 grid: beyond its range (garbage such as 1e300) they are unknown."""
    return np.where(np.abs(y) < np.finfo(np.float32).max, y, np.nan)


def _fill(ring: np.ndarray, values: np.ndarray) -> None:
    tail = np.asarray(values, dtype=np.float64)[-ring.shape[0] :]
    if ring.dtype == np.float32:
        tail = _storable(tail)
    ring[ring.shape[0] - tail.shape[0] :] = tail


def _push(ring: np.ndarray, pos: np.ndarray, which: int, r: np.ndarray, x: np.ndarray) -> None:
    cols = pos[r, which]
    ring[r, cols] = x
    pos[r, which] = (cols + 1) % ring.shape[1]
