"""Time-to-limit forecast for resources with a hard wall (memory limit, disk, GPU framebuffer, KV cache).

For every point the forecaster fits a robust trend on the recent window of the current *stretch*
(the series since its last reset, drop or long gap), then asks: how likely is the value to reach
the capacity within ``horizon_seconds``? That probability is the score, so it rises smoothly as the
predicted failure approaches and as the trend gets clearer, and it stays near 0 for flat or
noisy series however close they sit to the wall.

The trend is a Theil–Sen-style estimator: the median of slopes between pairs of points half a
window apart. Each point is in exactly one pair, so a spike moves one slope out of many and the
median ignores it (least squares, as in ``predict_linear``, does not). The spread of the pair
slopes gives the slope's uncertainty; together with the point noise it makes the prediction
interval. Everything is a causal rolling statistic, so the backtest and the daemon share one
vectorised implementation.

Three refinements, each measured in ``bench/detector_lead_time.py``:

* a second, half-length window catches acceleration sooner, but only once the full window shows
  a significant climb (alone, a short noisy slope extrapolated an hour is a false alarm);
* the slope is shrunk towards 0 by its signal-to-noise ratio before extrapolating;
* a series that has repeatedly climbed this high and reset below the limit (GC, log rotation)
  is discounted by Laplace's rule; a climb past the old peaks is not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from aiops.model import EntityKind, Finding, Frame, Series, SignalInfo, from_epoch
from aiops.plugins import DetectorParams, HistoryWanted
from detectors._isolation import isolated
from detectors._rolling_at import Windows
from detectors._daily import (
    BIN_SECONDS,
    BINS_PER_DAY,
    DAY_SECONDS,
    DailyMaxima,
    benign_days,
    bin_maxima,
    max_bins,
    read_bodies,
)
from detectors._univariate import (
    IQR_TO_SIGMA,
    MAD_TO_SIGMA,
    UnivariateDetector,
    by_signal,
    check_series,
    clip01,
    fmt_duration,
    grouped_rolling,
    level_deviation,
    normal_cdf,
    normal_sf,
    points_for,
    segment_ids,
    tails,
    typical_step,
    typical_steps,
)

# Standard error of a median relative to that of a mean, for normal noise: sqrt(pi / 2).
MEDIAN_EFFICIENCY = 1.2533
# One-sided 95 % normal quantile: the failure interval is a 90 % interval.
Z_INTERVAL = 1.645
# A change between samples counts as a reset or step only beyond this many noise sigmas...
JUMP_SIGMAS = 6.0
# ...and only when it lasts this many samples: a one- or two-sample spike is not a new level.
CONFIRM_POINTS = 3
# A later half of pair slopes this many sigmas below the earlier half is a climb slowing down.
DECELERATION_SIGMAS = 2.0


@dataclass(frozen=True)
class ExhaustionTrace:
    """Per-point forecast of one series; every array has the length of the input."""

    score: np.ndarray  # P(value reaches capacity within the horizon)
    slope: np.ndarray  # units per second
    slope_sigma: np.ndarray
    level: np.ndarray  # trend value at each point's own time
    noise_sigma: np.ndarray  # point-to-point noise around the trend
    segment: np.ndarray  # stretch id (changes at resets, drops, steps and long gaps)
    discount: np.ndarray  # factor applied for past climbs to this level that reset (1 = none)


@dataclass(frozen=True)
class NowForecast:
    """The forecast at a series' newest point: what the daemon explains a finding with."""

    score: float
    slope: float
    slope_sigma: float
    level: float
    noise_sigma: float
    segment_start: int  # index of the first point of the newest stretch
    discount: float


@dataclass(frozen=True)
class _NowInput:
    """One series prepared for its newest forecast (:meth:`ExhaustionForecast.forecast_now`)."""

    timestamps: np.ndarray  # as handed in (what a prepared fit is matched by)
    values: np.ndarray
    t: np.ndarray  # checked: float64, non-finite values NaN
    y: np.ndarray
    capacity: float
    step: float
    window: int
    seg: np.ndarray
    drop_ended: np.ndarray
    lo: int  # the fits see the points from here (the last two windows)
    first: int  # the first point of the hold span fitted


@dataclass(frozen=True)
class _WindowStats:
    """The rolling statistics a forecast is made from, at some points of a series."""

    slope: np.ndarray  # median pair slope over the window
    q75: np.ndarray
    q25: np.ndarray
    n_pairs: np.ndarray
    med_y: np.ndarray  # median value over the half window before the point
    med_t: np.ndarray  # and its median time
    n_level: np.ndarray
    late: np.ndarray  # median pair slope over the last half window
    early: np.ndarray  # the same, half a window earlier (NaN across a stretch boundary)


def _min_pairs(lag: int) -> int:
    """Pair slopes a fit's median needs (fewer: no forecast); the screen's bound reads it too."""
    return max(2, lag // 3)


def _min_late_pairs(half: int) -> int:
    """Pair slopes the damped trend's ``late`` median over ``half`` points needs."""
    return min(half, max(2, half // 3))


def _kth_largest(x: np.ndarray, k: int) -> np.ndarray:
    """Per row, the ``k``-th largest of the non-NaN values (NaN where there are fewer than ``k``)."""
    ordered = np.sort(x, axis=1)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(x), axis=1)
    pick = ordered[np.arange(x.shape[0]), np.maximum(count - k, 0)]
    return np.where(count >= k, pick, np.nan)


def _pair_slopes(t: np.ndarray, y: np.ndarray, seg: np.ndarray, lag: int) -> np.ndarray:
    """Slopes between pairs ``lag`` points apart, within one stretch and both ends valid (along
    the last axis: rows of several series of one length are each their own)."""
    n = t.shape[-1]
    pair_slope = np.full(t.shape, np.nan)
    if n > lag:
        dt = t[..., lag:] - t[..., :-lag]
        same = (seg[..., lag:] == seg[..., :-lag]) & ~np.isnan(y[..., lag:]) & ~np.isnan(y[..., :-lag]) & (dt > 0)
        pair_slope[..., lag:] = np.where(same, (y[..., lag:] - y[..., :-lag]) / np.where(dt > 0, dt, 1.0), np.nan)
    return pair_slope


class ExhaustionParams(DetectorParams):
    """The parameters of :class:`ExhaustionForecast`, documented there."""

    horizon_seconds: float = Field(default=7200.0, gt=0)
    window_seconds: float = Field(default=3600.0, gt=0)
    jump_fraction: float = Field(default=0.1, gt=0, le=1)
    max_gap_seconds: float | None = None
    capacity: float = 1.0
    max_lead_seconds: float = Field(default=7 * 86400.0, gt=0, le=366 * 86400.0)  # at most a year
    reset_memory_seconds: float = 6 * 3600.0
    daily_memory_days: int = Field(default=3, ge=0, le=14)
    hold_seconds: float = Field(default=900.0, ge=0)

    @field_validator("hold_seconds")
    @classmethod
    def _hold_within_the_horizon(cls, hold: float, info: ValidationInfo) -> float:
        horizon = info.data.get("horizon_seconds")
        if horizon is not None and not hold <= horizon:
            raise ValueError(f"hold_seconds must be between 0 and horizon_seconds ({horizon:g})")
        return hold


# A workload's days are kept under its series' labels with the pod as ``<deployment>-*``, which
# names no pod (``*`` is not allowed in a pod's name).
WORKLOAD_POD_SUFFIX = "-*"


def _is_workload(key: Hashable) -> bool:
    """Whether a key of held days is a workload's (:meth:`ExhaustionForecast._workload_key`)."""
    labels = key[1] if isinstance(key, tuple) and len(key) == 2 else ()
    return any(k == "pod" and v.endswith(WORKLOAD_POD_SUFFIX) for k, v in labels)


def _has_wall(info: SignalInfo) -> bool:
    """Whether the signal has something to forecast to: a capacity, failure points or an objective.
    A non-positive capacity is a config mistake, not a wall to forecast."""
    return (info.capacity is not None and info.capacity > 0) or bool(info.failure_points) or info.objective is not None


# A newest value this many times past the failure point is not a measurement of the signal (a
# broken exporter's 1e300): not "at the failure point". The fit already ignores such values; a
# value just past the wall (1.002 of a memory limit: cgroup accounting) is at it. The collector
# drops what a signal's unit rules out (aiops/collect/plausible.py: a ratio past 10) before this
# detector sees it; this stays for walls in units with no upper bound (an objective in seconds, a
# user's capacity in bytes or requests) and for frames built without the collector.
ABSURD_PAST_WALL = 1000.0


def _at_wall(y: Any, wall: float) -> Any:
    """At or past the failure point, and not absurdly past it (:data:`ABSURD_PAST_WALL`)."""
    return (y >= wall) & (y <= ABSURD_PAST_WALL * max(abs(wall), 1.0))


class ExhaustionForecast(UnivariateDetector):
    """Predicts when a resource with a hard limit (``SignalInfo.capacity``) will run out.

    Parameters
    ----------
    horizon_seconds:
        How far ahead a crossing counts. The score is the probability of reaching the failure
        point within it; 2 h by default, so that a clean trend is warned about an hour or more
        ahead (``bench/failure_lead_time.py``) and the ladder has time to prepare and act.
    window_seconds:
        History used for the trend at each point. Shorter reacts faster, longer is steadier.
    jump_fraction:
        A change of level larger than this fraction of capacity (and than JUMP_SIGMAS times the
        noise), lasting CONFIRM_POINTS samples, starts a new stretch (container restart, GC,
        counter reset, level step), so the trend never spans it.
    max_gap_seconds:
        A gap in the data longer than this starts a new stretch too (default: half the window).
    capacity:
        Only for :meth:`score_series` (backtests); the daemon uses each signal's catalog capacity.
    max_lead_seconds:
        Upper bound reported for a failure interval whose slope might be zero.
    reset_memory_seconds:
        How far back past resets (sawtooth cycles that never reached the limit) discount the score.
    daily_memory_days:
        How many previous days are asked whether they climbed this high at this hour without
        failing (daily peaks); 0 turns the comparison off. The frame holds hours, so the daemon
        keeps these days' 5-minute maxima itself and hands them to its state file
        (:class:`~aiops.plugins.KeepsState`): a restarted daemon still knows yesterday's peak.
        The days belong to the workload: when a Deployment's pod goes (a rollout, a scale-in), its
        series' days pass to the pods that follow it, and a pod younger than a day also reads
        its live siblings' (kube_pod_info says which pods a Deployment's ReplicaSets, or a
        DaemonSet, created).
        A departed pod's days are kept in the state file under its workload's key.
    hold_seconds:
        The score is the lowest forecast of this span (15 min): a forecast must hold, as a rule's
        ``for:`` does, before it pages; the first minutes of a batch job's climb look like a leak.
    """

    name: ClassVar[str] = "exhaustion"
    Params = ExhaustionParams
    params: ExhaustionParams
    default_signals: ClassVar[tuple[str, ...]] = (
        "pod_memory_usage_ratio",
        "node_memory_usage_ratio",
        "node_filesystem_usage_ratio",
        "node_filesystem_inodes_usage_ratio",
        "gpu_memory_usage_ratio",
        "inference_kv_cache_usage",
    )

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        super().__init__(signals, **params)
        p = self.params
        self.max_gap_seconds = p.max_gap_seconds if p.max_gap_seconds is not None else p.window_seconds / 2
        # The same-hour comparison reads bins a day old: it needs a horizon shorter than a day.
        self.daily_memory_days = p.daily_memory_days if p.horizon_seconds < DAY_SECONDS - BIN_SECONDS else 0
        self._daily = DailyMaxima(self.daily_memory_days)
        # A Deployment's pods are replaced under new names (each rollout is a new ReplicaSet), and
        # the new pods meet the same daily peak: the days of a departed pod's series are kept
        # under its workload's key (the series' labels, the pod as ``<deployment>-*``), read
        # with its successors' own. Series key -> that key, for the series explained so far.
        self._lineage = DailyMaxima(self.daily_memory_days)
        self._lineage_of: dict[Hashable, Hashable | None] = {}
        self._workload_names: dict[str, str | None] | None = None  # pod key -> its Deployment or DaemonSet, this cycle
        self._workloads: dict[str, dict[Hashable, list[Hashable]]] | None = None  # signal -> workload -> series, this cycle
        self._workload_days: dict[Hashable, tuple[int, np.ndarray] | None] | None = None  # workload -> its live series' days merged, this cycle
        # Series key -> epoch second the screen last let it through (what the state file keeps).
        self._passed_screen: dict[Hashable, float] = {}
        self._wall_cache: dict[str, tuple[SignalInfo, dict[object, float]]] = {}
        # The fits made together for this cycle's screened series (:meth:`prepare`), by the ids
        # of their arrays (held, so the ids stay theirs); emptied when the cycle's detect ends.
        self._fitted: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, _NowInput, tuple[np.ndarray, ...]]] = {}

    # ------------------------------------------------------------------ backtest contract
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.trace(timestamps, values, self.params.capacity).score

    def score_signal(
        self, timestamps: np.ndarray, values: np.ndarray, info: SignalInfo, labels: Mapping[str, str]
    ) -> np.ndarray:
        """Forecast to the series' failure point, as :meth:`explain` does in the daemon."""
        return self.trace(timestamps, values, self.failure_of(info, labels)[0]).score

    def trace(
        self,
        timestamps: np.ndarray,
        values: np.ndarray,
        capacity: float,
        *,
        last_only: bool = False,
        daily: tuple[int, np.ndarray] | None = None,
    ) -> ExhaustionTrace:
        """The forecast at every point, each from data at or before it.

        ``last_only`` (the daemon's case) fits the trend over the last two windows only: the
        newest point's forecast is the same, at a fraction of the cost on a long series; earlier
        points then carry NaN (score 0) where the fit was skipped. ``daily`` holds the 5-minute
        maxima of the previous days (the daemon keeps them across cycles); by default they are
        read from the series itself.
        """
        # Absurd values (1e300) overflow to inf/NaN, which score 0: garbage never alarms, and a
        # daemon's log is not flooded with numpy warnings.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._trace(timestamps, values, capacity, last_only, daily)

    def _trace(
        self,
        timestamps: np.ndarray,
        values: np.ndarray,
        capacity: float,
        last_only: bool = False,
        daily: tuple[int, np.ndarray] | None = None,
    ) -> ExhaustionTrace:
        t, y = check_series(timestamps, values)
        step = typical_step(t)
        window = points_for(self.params.window_seconds, step, minimum=4)
        # Segments and past resets need the whole series; the fits at a point read only the
        # window before it (pairs half a window apart, rolling over half a window).
        seg, drop_ended = self._segments(t, y, capacity, window, step)
        lo = max(0, t.shape[0] - 2 * window) if last_only else 0
        # Two scales: the full window is steadier, the half window sees acceleration sooner.
        # Each one's score already accounts for its own uncertainty, so the larger one decides.
        fits = [self._fit(t[lo:], y[lo:], seg[lo:], w, step, capacity) for w in (window, max(4, window // 2))]
        # The short window only speaks once the long one shows a real climb (t > 2): on its own
        # a 30-minute slope of noise extrapolated an hour ahead is a false alarm factory.
        long_t = np.nan_to_num(fits[0][1] / np.where(fits[0][2] > 0, fits[0][2], np.inf), nan=0.0)
        short_score = fits[1][0] * normal_cdf(long_t - 2.0)
        pick = np.argmax(np.column_stack([fits[0][0], short_score]), axis=1)
        fits[1] = (short_score, *fits[1][1:])
        score, slope, slope_sigma, level, noise_sigma = (
            np.concatenate([np.full(lo, np.nan), np.choose(pick, [f[k] for f in fits])]) for k in range(5)
        )
        # A series that has repeatedly climbed this high and then reset (GC, log rotation,
        # a cache eviction) will most likely reset again: each such past cycle halves, thirds...
        # the score. A leak that outgrows its past peaks is not discounted.
        discount = self._reset_discount(t, y, seg, drop_ended, level, noise_sigma, capacity)
        # A daily peak: the previous days climbed this high at this hour and did not fail.
        if self.daily_memory_days:
            here = np.where(np.isfinite(level), level, y)
            margin = np.fmax(2.0 * np.nan_to_num(noise_sigma, nan=0.0), 0.02 * abs(capacity))
            bins = daily if daily is not None else bin_maxima(t, y)
            days = benign_days(t, here, capacity, margin, bins, self.params.horizon_seconds, self.daily_memory_days)
            discount = np.fmin(discount, np.where(days > 0, 1.0 / (days + 2.0), 1.0))
        score = score * discount
        if self.params.hold_seconds > 0:
            # A forecast must hold for a while (a rule's ``for:``): the start of a batch job's
            # climb looks like a leak for a few minutes, a leak keeps looking like one.
            hold = points_for(self.params.hold_seconds, step) + 1
            score = pd.Series(score).rolling(hold, min_periods=1).min().to_numpy()
        # At or past the wall already: nothing left to predict.
        score = np.where(_at_wall(y, capacity), 1.0, score)
        score = clip01(score)
        score[np.isnan(y)] = 0.0
        return ExhaustionTrace(score, slope, slope_sigma, level, noise_sigma, seg, discount)

    def _segments(
        self, t: np.ndarray, y: np.ndarray, capacity: float, window: int, step: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stretch ids, and per stretch whether it ended with a drop (a reset, not a gap or a step up)."""
        # A jump must exceed jump_fraction of capacity *and* the series' own noise: noisy
        # series would otherwise be cut into pieces too short to fit.
        if t.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        valid = np.flatnonzero(~np.isnan(y))
        deviation = level_deviation(y[valid], CONFIRM_POINTS)  # read by both: computed once
        seg = segment_ids(
            t,
            y,
            max_jump=self._max_jump(y, valid, capacity, window, deviation),
            max_gap_seconds=max(self.max_gap_seconds, 2 * step),
            confirm=CONFIRM_POINTS,
            deviation=deviation,
        )
        starts = np.flatnonzero(np.diff(seg, prepend=seg[0] - 1) != 0)
        # Stretch k ended with a drop when stretch k + 1 starts below where the shift began.
        pos = np.searchsorted(valid, starts[1:])
        down = np.zeros(pos.shape[0], dtype=bool)
        for k, p in enumerate(pos):
            if CONFIRM_POINTS <= p < valid.shape[0]:
                down[k] = bool(y[valid[p]] < y[valid[p - CONFIRM_POINTS]])
        # One step up is a level shift (a deploy), not a trend. A step up that follows another
        # step up within two windows is a staircase (a cache growing in chunks): the fit spans it.
        keep = np.ones(pos.shape[0], dtype=bool)
        for k in range(1, pos.shape[0]):
            if not down[k] and not down[k - 1] and starts[k + 1] - starts[k] <= 2 * window:
                keep[k] = False
        if not keep.all():
            breaks = np.zeros(t.shape[0], dtype=np.int64)
            breaks[starts[1:][keep]] = 1
            seg = np.cumsum(breaks)
            down = down[keep]
        drop_ended = np.zeros(int(seg[-1]) + 1 if seg.shape[0] else 0, dtype=bool)
        drop_ended[: down.shape[0]] = down
        return seg, drop_ended

    def _max_jump(
        self, y: np.ndarray, valid: np.ndarray, capacity: float, window: int, deviation: np.ndarray | None = None
    ) -> np.ndarray:
        """The change that starts a new stretch at each point, as :func:`segment_ids` reads it.

        Beyond ``jump_fraction`` of capacity and beyond JUMP_SIGMAS times the noise of one
        sample, the median of the window before the point from the spread of differences (which
        carry two samples' noise). The noise is a rolling median, the costliest part of an
        explanation, and it can only matter where a deviation exceeds the first bound: it is
        read there only; elsewhere the bound alone stands (the same breaks, tested).
        """
        n = y.shape[0]
        floor = self.params.jump_fraction * max(abs(capacity), 1e-12)
        with np.errstate(invalid="ignore"):
            if deviation is None:
                deviation = level_deviation(y[valid], CONFIRM_POINTS)
            need = valid[np.abs(deviation) > floor]
        max_jump = np.full(n, floor)
        if need.shape[0]:
            dy = np.full(n, np.nan)
            dy[valid[1:]] = np.diff(y[valid])
            before = np.concatenate([[np.nan], np.abs(dy[:-1])])
            diff_sigma = Windows(before, np.zeros(n, dtype=np.int64), need, window).median(4) * MAD_TO_SIGMA
            max_jump[need] = np.fmax(floor, JUMP_SIGMAS * diff_sigma / math.sqrt(2.0))
        return max_jump

    def _fit(
        self, t: np.ndarray, y: np.ndarray, seg: np.ndarray, window: int, step: float, capacity: float
    ) -> tuple[np.ndarray, ...]:
        """Score, slope, slope sigma, level and noise at every point, for one window length."""
        n = t.shape[0]
        lag = max(1, window // 2)
        pair_slope = _pair_slopes(t, y, seg, lag)
        min_pairs = _min_pairs(lag)
        half = max(1, lag // 2)
        late = grouped_rolling(pair_slope, seg, half, _min_late_pairs(half), "median")
        early = np.full(n, np.nan)
        if n > half:
            early[half:] = np.where(seg[half:] == seg[:-half], late[:-half], np.nan)
        t_valid = np.where(np.isnan(y), np.nan, t)
        stats = _WindowStats(
            slope=grouped_rolling(pair_slope, seg, lag, min_pairs, "median"),
            q75=grouped_rolling(pair_slope, seg, lag, min_pairs, "quantile", 0.75),
            q25=grouped_rolling(pair_slope, seg, lag, min_pairs, "quantile", 0.25),
            n_pairs=grouped_rolling(pair_slope, seg, lag, 1, "count"),
            med_y=grouped_rolling(y, seg, lag, 1, "median"),
            med_t=grouped_rolling(t_valid, seg, lag, 1, "median"),
            n_level=grouped_rolling(y, seg, lag, 1, "count"),
            late=late,
            early=early,
        )
        return self._forecast(t, stats, lag, step, capacity)

    def _fit_at(
        self,
        t: np.ndarray,
        y: np.ndarray,
        seg: np.ndarray,
        window: int,
        step: float,
        capacity: float | np.ndarray,
        at: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """``_fit(t, y, seg, window, step, capacity)`` at the points ``at`` only, the same floats.

        The daemon reads the forecast of the newest ``hold`` points; the rolling statistics are
        read off each point's own window (:class:`~detectors._rolling_at.Windows`, the floats
        pandas gives) and the forecast from them is :meth:`_forecast`, as for every point.
        ``t``, ``y`` and ``seg`` may be (series, n) with ``capacity`` (series, 1): several series
        of one length and step fitted at once, each row the floats it gets alone (every operation
        is elementwise or along its own row).
        """
        lag = max(1, window // 2)
        pair_slope = _pair_slopes(t, y, seg, lag)
        min_pairs = _min_pairs(lag)
        half = max(1, lag // 2)
        # The half-window median at each point and half a window earlier, in one gather.
        back = at - half
        both = Windows(pair_slope, seg, np.concatenate([at, np.maximum(back, 0)]), half).median(
            _min_late_pairs(half)
        )
        pairs = Windows(pair_slope, seg, at, lag)
        recent = Windows(y, seg, at, lag)
        k = at.shape[0]
        stats = _WindowStats(
            slope=pairs.median(min_pairs),
            q75=pairs.quantile(0.75, min_pairs),
            q25=pairs.quantile(0.25, min_pairs),
            n_pairs=pairs.counts(),
            med_y=recent.median(1),
            med_t=Windows(np.where(np.isnan(y), np.nan, t), seg, at, lag).median(1),
            n_level=recent.counts(),
            late=both[..., :k],
            early=np.where((back >= 0) & (seg[..., at] == seg[..., np.maximum(back, 0)]), both[..., k:], np.nan),
        )
        return self._forecast(t[..., at], stats, lag, step, capacity)

    def _forecast(
        self, t: np.ndarray, w: _WindowStats, lag: int, step: float, capacity: float | np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Score, slope, slope sigma, level and noise at the points ``t`` from their windows' statistics."""
        slope = w.slope
        pair_sigma = (w.q75 - w.q25) * IQR_TO_SIGMA
        slope_sigma = MEDIAN_EFFICIENCY * pair_sigma / np.sqrt(np.maximum(w.n_pairs, 1.0))
        # A pair difference carries the noise of two points: sigma_pair * dt_pair = sqrt(2) * sigma.
        noise_sigma = pair_sigma * lag * step / math.sqrt(2.0)

        # Trend level: the median of the recent half window sits at its median time.
        since_centre = t - w.med_t
        level = w.med_y + slope * since_centre

        # Predictive distribution of the value one horizon ahead.
        ahead = since_centre + self.params.horizon_seconds
        floor = 1e-9 * np.maximum(np.abs(capacity), 1.0)  # per row: max(abs(capacity), 1.0), the same float
        var = (
            (MEDIAN_EFFICIENCY * noise_sigma) ** 2 / np.maximum(w.n_level, 1.0)
            + (ahead * slope_sigma) ** 2
            + noise_sigma**2
            + floor**2
        )
        # Shrink the slope towards 0 by its own signal-to-noise (James-Stein style): a slope
        # within its noise extrapolates to nothing, however close to the wall the series sits.
        with np.errstate(invalid="ignore", divide="ignore"):
            shrink = np.where(slope_sigma > 0, slope**2 / (slope**2 + slope_sigma**2), 1.0)
        mean_ahead = level + slope * shrink * self.params.horizon_seconds
        # A climb that slows down (a batch job filling up to its working set, a cache warming)
        # approaches a plateau: when the later half of the pair slopes is significantly below the
        # earlier half, extrapolate an exponential approach (a damped trend) instead of a line.
        half = max(1, lag // 2)
        late, early = w.late, w.early
        half_sigma = MEDIAN_EFFICIENCY * pair_sigma / math.sqrt(half)
        with np.errstate(invalid="ignore", divide="ignore"):
            slowing = ((early - late) > DECELERATION_SIGMAS * math.sqrt(2.0) * half_sigma) & (early > 0)
            ratio = np.clip(np.maximum(late, 0.0) / early, 1e-6, 1.0 - 1e-9)
            tau = half * step / -np.log(ratio)
            rise = np.maximum(late, 0.0) * tau * -np.expm1(-self.params.horizon_seconds / tau)
        mean_ahead = np.where(slowing, level + rise, mean_ahead)
        score = np.nan_to_num(normal_sf((capacity - mean_ahead) / np.sqrt(var)), nan=0.0)
        return score, slope, slope_sigma, level, noise_sigma

    def forecast_now(
        self,
        timestamps: np.ndarray,
        values: np.ndarray,
        capacity: float,
        *,
        daily: tuple[int, np.ndarray] | None = None,
    ) -> NowForecast:
        """The newest point of ``trace(..., last_only=True)``, computed at the points it depends on.

        The score of the newest point is the lowest of the last ``hold`` forecasts, so only those
        are fitted; the stretches (and past resets) are still found over the whole series. What
        the daemon explains a finding with, every cycle, for every series the screen lets through.
        The fits of a cycle's screened series are made together beforehand (:meth:`prepare`) and
        read here; a series not among them is fitted on its own, to the same floats.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            held = self._fitted.get((id(timestamps), id(values)))
            if held is not None and held[0] is timestamps and held[1] is values and held[2].capacity == capacity:
                inp, fitted = held[2], held[3]
            else:
                inp = self._now_input(timestamps, values, capacity)
                fitted = self._now_fits([inp])[0]
            return self._now_finish(inp, fitted, daily)

    def prepare(self, frame: Frame, signal: str, series: list[Series]) -> None:
        """Fit the newest points of the screened ``series`` of ``signal`` together, for :meth:`explain`.

        An explanation's two fits are ~100 small numpy calls whatever the series' length; the
        dozen series a steady cycle explains share their length and step, so one set of calls
        serves them all (the same floats: :meth:`_fit_at`). A series whose input is refused here
        (an empty or unsorted one) is left to :meth:`forecast_now`, which raises for it alone.
        """
        if len(series) < 2:
            return
        info = frame.signals[signal]
        inputs: list[_NowInput] = []
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for s in series:
                try:
                    inputs.append(self._now_input(s.timestamps, s.values, self.failure_of(info, s.labels)[0]))
                except Exception:  # explained (and reported) on its own, in isolation
                    continue
            for inp, fitted in zip(inputs, self._now_fits(inputs)):
                self._fitted[(id(inp.timestamps), id(inp.values))] = (inp.timestamps, inp.values, inp, fitted)

    def _now_input(self, timestamps: np.ndarray, values: np.ndarray, capacity: float) -> _NowInput:
        """What the newest forecast of one series is made from: its stretches and where to fit."""
        t, y = check_series(timestamps, values)
        n = t.shape[0]
        if n == 0:
            raise ValueError("an empty series has no newest point to forecast")
        step = typical_step(t)
        window = points_for(self.params.window_seconds, step, minimum=4)
        seg, drop_ended = self._segments(t, y, capacity, window, step)
        lo = max(0, n - 2 * window)  # as trace(last_only=True): the fits see the last two windows
        hold = points_for(self.params.hold_seconds, step) + 1 if self.params.hold_seconds > 0 else 1
        first = max(lo, n - hold)  # earlier points of the hold span carry NaN there (skipped)
        return _NowInput(timestamps, values, t, y, capacity, step, window, seg, drop_ended, lo, first)

    def _now_fits(self, inputs: Sequence[_NowInput]) -> list[tuple[np.ndarray, ...]]:
        """Score, slope, slope sigma, level and noise at the newest ``hold`` points of each input,
        the two windows' fits combined as in :meth:`_trace`; inputs of one step, window and
        length are fitted as the rows of one matrix."""
        groups: dict[tuple[float, int, int, int], list[int]] = {}
        for i, inp in enumerate(inputs):
            n = inp.t.shape[0]
            groups.setdefault((inp.step, inp.window, n - inp.lo, inp.first - inp.lo), []).append(i)
        out: list[tuple[np.ndarray, ...]] = [()] * len(inputs)
        for (step, window, _, first), rows in groups.items():
            members = [inputs[i] for i in rows]
            ts = np.stack([m.t[m.lo :] for m in members])
            ys = np.stack([m.y[m.lo :] for m in members])
            ss = np.stack([m.seg[m.lo :] for m in members])
            capacity = np.array([[m.capacity] for m in members], dtype=np.float64)
            at = np.arange(first, ts.shape[1])
            fits = [self._fit_at(ts, ys, ss, w, step, capacity, at) for w in (window, max(4, window // 2))]
            long_t = np.nan_to_num(fits[0][1] / np.where(fits[0][2] > 0, fits[0][2], np.inf), nan=0.0)
            short_score = fits[1][0] * normal_cdf(long_t - 2.0)
            pick = np.argmax(np.stack([fits[0][0], short_score], axis=-1), axis=-1)
            fits[1] = (short_score, *fits[1][1:])
            combined = [np.choose(pick, [f[k] for f in fits]) for k in range(5)]
            for r, i in enumerate(rows):
                out[i] = tuple(c[r] for c in combined)
        return out

    def _now_finish(
        self, inp: _NowInput, fitted: tuple[np.ndarray, ...], daily: tuple[int, np.ndarray] | None
    ) -> NowForecast:
        """The forecast at the newest point from the fits of the hold span: discounts and the hold."""
        t, y, seg, first, capacity = inp.t, inp.y, inp.seg, inp.first, inp.capacity
        n = t.shape[0]
        score, slope, slope_sigma, level, noise_sigma = fitted
        # The reset discount reads the level of the points it discounts only.
        level_all = np.full(n, np.nan)
        noise_all = np.full(n, np.nan)
        level_all[first:], noise_all[first:] = level, noise_sigma
        discount = self._reset_discount(t, y, seg, inp.drop_ended, level_all, noise_all, capacity, first)[first:]
        if self.daily_memory_days:
            here = np.where(np.isfinite(level), level, y[first:])
            margin = np.fmax(2.0 * np.nan_to_num(noise_sigma, nan=0.0), 0.02 * abs(capacity))
            bins = daily if daily is not None else bin_maxima(t, y)
            days = benign_days(t[first:], here, capacity, margin, bins, self.params.horizon_seconds, self.daily_memory_days)
            discount = np.fmin(discount, np.where(days > 0, 1.0 / (days + 2.0), 1.0))
        score = score * discount
        # The hold: the lowest forecast of the span (NaN, where nothing was fitted, is skipped).
        known = score[~np.isnan(score)]
        now = float(known.min()) if self.params.hold_seconds > 0 and known.shape[0] else float(score[-1])
        if _at_wall(y[-1], capacity):
            now = 1.0
        now = 0.0 if np.isnan(y[-1]) else float(clip01(np.array([now]))[0])
        return NowForecast(
            score=now,
            slope=float(slope[-1]),
            slope_sigma=float(slope_sigma[-1]),
            level=float(level[-1]),
            noise_sigma=float(noise_sigma[-1]),
            segment_start=int(np.flatnonzero(seg == seg[-1])[0]),
            discount=float(discount[-1]),
        )

    def _reset_discount(
        self,
        t: np.ndarray,
        y: np.ndarray,
        seg: np.ndarray,
        drop_ended: np.ndarray,
        level: np.ndarray,
        noise: np.ndarray,
        capacity: float,
        since: int = 0,
    ) -> np.ndarray:
        """1 / (K + 2), K = recent stretches that climbed past this level and then reset (1 if none).

        Each point's factor reads its own level and the stretches before its own, so the points
        from ``since`` on (the daemon reads the newest ``hold`` only) are computed alone; earlier
        points are left at 1.
        """
        out = np.ones(t.shape[0])
        if drop_ended.shape[0] < 2:
            return out
        bounds = np.flatnonzero(np.diff(seg, prepend=seg[0] - 1) != 0)
        ends = np.append(bounds[1:], t.shape[0])
        # Each stretch's peak (NaN if it has no value): np.nanmax is np.fmax.reduce, so one
        # reduceat over the stretch bounds gives the same floats as a nanmax per stretch.
        peaks = np.fmax.reduceat(y, bounds) if bounds.shape[0] else np.zeros(0)
        end_times = t[ends - 1]
        # Only stretches that reset *below* the wall count: an OOM followed by a restart is a failure.
        resetting = drop_ended & (peaks < capacity)
        here = np.where(np.isfinite(level), level, y)
        for k in range(max(1, int(np.searchsorted(ends, since, side="right"))), bounds.shape[0]):
            prior = np.flatnonzero(resetting[:k] & (end_times[:k] >= t[bounds[k]] - self.params.reset_memory_seconds))
            if prior.shape[0] == 0:
                continue
            a, b = max(bounds[k], since), ends[k]
            # Within noise (or 2 % of capacity) of an old peak counts as having reached it.
            margin = np.fmax(2.0 * np.nan_to_num(noise[a:b], nan=0.0), 0.02 * abs(capacity))
            reached = np.sum(peaks[prior][None, :] >= (here[a:b] - margin)[:, None], axis=1)
            # Laplace's rule: K of K earlier climbs to this level reset, so the chance that this
            # one does not is 1 / (K + 2).
            out[a:b] = np.where(reached > 0, 1.0 / (reached + 2.0), 1.0)
        return out

    def _clamp(self, seconds: float) -> float:
        """A lead time within [0, max_lead_seconds]; NaN or infinity (no crossing in sight) is the maximum."""
        return float(np.clip(seconds, 0.0, self.params.max_lead_seconds)) if math.isfinite(seconds) else self.params.max_lead_seconds

    # ------------------------------------------------------------------ daemon contract
    def applies_to(self, frame: Frame, signal: str) -> bool:
        info = frame.signals.get(signal)
        return info is not None and _has_wall(info)

    @staticmethod
    def failure_of(info: SignalInfo, labels: Mapping[str, str]) -> tuple[float, str]:
        """The value a series fails at, and what happens there: its failure point, its capacity, or its objective."""
        point = info.failure_point(labels)
        if point is not None:
            return point.value, point.name
        if info.capacity is not None:
            return float(info.capacity), "full"
        return float(info.objective), "objective breached"  # type: ignore[arg-type]  # applies_to: one is set

    def _walls(self, info: SignalInfo, series: list[Series]) -> np.ndarray:
        """The failure value of each series (matching failure points is a regex per label, so
        each series' value is kept until the signal's catalog entry changes)."""
        held = self._wall_cache.get(info.name)
        if held is None or held[0] != info:
            held = self._wall_cache[info.name] = (info, {})
        known = held[1]
        out = np.empty(len(series))
        for i, s in enumerate(series):
            key = s.key
            wall = known.get(key)
            if wall is None:
                wall = known[key] = self.failure_of(info, s.labels)[0]
            out[i] = wall
        if len(known) > 2 * len(series) + 64:  # series come and go: forget the departed
            live = {s.key for s in series}
            self._wall_cache[info.name] = (info, {k: v for k, v in known.items() if k in live})
        return out

    def screen(self, frame: Frame, signal: str, series: list[Series]) -> list[Series]:
        """Series whose forecast could reach ``report_floor``: at or near the wall, or climbing fast enough.

        An exact bound, not a heuristic. Both fits score ``P(value_ahead >= capacity)`` under a
        normal predictive distribution, so a score of 0.5 or more needs its mean to reach the
        capacity (the short-window gate and the reset discount only lower it). For each fit, the
        level is a median of its last ``lag`` points moved by the slope over less than their span,
        the slope a median of at least ``min_pairs`` pair slopes (so at most the
        ``ceil(min_pairs / 2)``-th largest pair slope of the tail, in a segment or not), and the
        mean adds at most ``max(0, slope) * horizon`` (or the damped trend's smaller climb, bounded
        the same way); the short fit needs the long one's slope to be positive. Series whose
        bound stays below the capacity are skipped. For a lower ``report_floor`` the bound proves
        nothing and every series is scored.
        """
        if self.report_floor < 0.5 or not series:
            return self._mark_screened(frame, series)
        info = frame.signals[signal]
        walls = self._walls(info, series)
        # max(1, points_for(window, step, minimum=4) // 2) for every series at once (numpy rounds
        # halves to even, as Python's round does).
        steps = typical_steps([s.timestamps for s in series])
        points = np.maximum(4, np.round(self.params.window_seconds / np.maximum(steps, 1e-9)).astype(np.int64))
        lags = np.maximum(1, points // 2)
        keep = np.zeros(len(series), dtype=bool)
        for lag in np.unique(lags).tolist():
            rows = np.flatnonzero(lags == lag)
            members = [series[r] for r in rows]
            t = tails([s.timestamps for s in members], 2 * lag)
            y = tails([s.values for s in members], 2 * lag)
            keep[rows] = self._may_reach(t, y, lag, walls[rows])
        return self._mark_screened(frame, [s for s, k in zip(series, keep) if k])

    def _mark_screened(self, frame: Frame, passed: list[Series]) -> list[Series]:
        if self.daily_memory_days:
            now = frame.now.timestamp()
            for s in passed:
                self._passed_screen[s.key] = now
        return passed

    def _may_reach(self, t: np.ndarray, y: np.ndarray, lag: int, capacity: np.ndarray) -> np.ndarray:
        """Per row of the (series, 2 * lag) tails: whether the upper bound of the forecast reaches capacity."""
        # The half window's lag, as in _trace: its window is max(4, window // 2), and window // 2
        # is ``lag`` whether the window is 2 * lag or 2 * lag + 1 points.
        short = max(1, max(4, lag) // 2)
        horizon = self.params.horizon_seconds
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN tails: no slope, no finding
            bounds = []
            for lg in dict.fromkeys((lag, short)):  # the full window first
                # Each fit on its own. Its slope is a median of the pairs (i - lg, i) ending at the
                # last ``lg`` points, of at least ``min_pairs`` of them (fewer: no forecast); a
                # median of m values is at most their ceil(m / 2)-th largest, so at most the
                # ceil(min_pairs / 2)-th largest of all those pairs, segment or not. The damped
                # trend climbs at most at its ``late`` median, of the pairs ending at the last
                # ``half`` points, bounded the same way.
                late, early = slice(2 * lag - lg, None), slice(2 * lag - 2 * lg, 2 * lag - lg)
                dt, dy = t[:, late] - t[:, early], y[:, late] - y[:, early]
                pairs = np.where(dt > 0, dy / dt, np.nan)
                half = max(1, lg // 2)
                slope = _kth_largest(pairs, -(-_min_pairs(lg) // 2))
                damped = _kth_largest(pairs[:, -half:], -(-_min_late_pairs(half) // 2))
                # The level is a median of the last ``lg`` points moved by the slope from their
                # median time; the mean ahead adds at most the steeper climb over the horizon.
                top = np.nanmax(y[:, -lg:], axis=1)
                span = t[:, -1] - np.nanmin(t[:, -lg:], axis=1)
                climb = np.maximum(np.fmax(slope, damped), 0.0)
                bounds.append(np.where(np.isnan(slope), -np.inf, top + np.maximum(slope, 0.0) * span + climb * horizon))
                if lg == lag:
                    rising = slope > 0
            if len(bounds) == 2:
                # The half window's score only counts once the full window's slope is significantly
                # positive (the gate in _trace), so never where no median of its pairs can be > 0.
                bounds[1] = np.where(rising, bounds[1], -np.inf)
            bound = np.fmax.reduce(bounds)
        # A hair of slack for rounding: the bound must never be the reason a finding is lost.
        margin = 1e-9 * np.maximum(np.abs(capacity), 1.0)
        reaches: np.ndarray = (y[:, -1] >= capacity) | (bound >= capacity - margin)
        return reaches

    def detect(self, frame: Frame) -> list[Finding]:
        if self.daily_memory_days:
            # Every series' bins, screened or not: a series quiet today is compared with today tomorrow.
            wanted = [sig for sig in self.signals if sig not in frame.missing_signals and self.applies_to(frame, sig)]
            grouped = by_signal(frame, wanted)
            live = []
            for series_list in grouped.values():
                live += self._daily.update_signal(self.name, series_list)
            self._daily.retain(live, unanswered=frame.missing_signals, dropped=self._pass_on)
            self._lineage.forget_before(int(frame.now.timestamp() // BIN_SECONDS) - self._lineage.keep)
            self._lineage_of = {k: w for k, w in self._lineage_of.items() if k in self._daily}
            since = frame.now.timestamp() - (self.daily_memory_days + 1) * DAY_SECONDS
            self._passed_screen = {k: at for k, at in self._passed_screen.items() if at >= since and k in self._daily}
        self._workload_names = self._workloads = self._workload_days = None
        self._fitted = {}
        try:
            return super().detect(frame)
        finally:
            self._workload_names = self._workloads = self._workload_days = None  # keep nothing of this frame
            self._fitted = {}

    def _pass_on(self, key: Hashable, first: int, dense: np.ndarray) -> None:
        """A series gone from its signal's answer: its days go to its workload, if it has one."""
        workload = self._lineage_of.get(key)
        if workload is not None:
            self._lineage.absorb(workload, first, dense)

    def _siblings_days(
        self, frame: Frame, series: Series, workload: Hashable, own: tuple[int, np.ndarray]
    ) -> tuple[int, np.ndarray] | None:
        """The days held for the live series of ``series``' workload, merged, when its own bins
        span less than a day (None otherwise: a pod with its own day needs no one else's).

        Merged once per workload and cycle: right after a DaemonSet's rollout every pod is young,
        and each one folding each sibling's days in turn was quadratic (5.7 s a cycle at 800
        pods). The merge holds the pod's own bins too, which changes nothing it reads:
        :func:`max_bins` is a maximum over the union of the spans cut to its newest ``keep`` bins,
        the same whatever the order of folding, and the bins held for the pod itself are never
        above ``own``: :meth:`DailyMaxima.merge` returned the float64 maximum of those bins and the
        frame's points, and holds them as float32 unchanged (update_signal had folded the same
        points in, and rounding to float32 is monotonic)."""
        if own[1].shape[0] >= BINS_PER_DAY:
            return None
        if self._workload_days is None:
            self._workload_days = {}
        if workload in self._workload_days:
            return self._workload_days[workload]
        if self._workloads is None:
            self._workloads = {}
        members = self._workloads.get(series.signal)
        if members is None:  # once per signal and cycle
            members = self._workloads[series.signal] = {}
            for s in frame.of(series.signal):
                key = self._workload_key(frame, s)
                if key is not None:
                    members.setdefault(key, []).append(s.key)
        merged = None
        for k in members.get(workload, ()):
            days = self._daily.get(k)
            if days is not None:
                merged = max_bins(merged, days, self._daily.keep)
        self._workload_days[workload] = merged
        return merged

    def _workload_key(self, frame: Frame, series: Series) -> Hashable | None:
        """The key a pod series' days outlive the pod under: its labels with the pod as
        ``<deployment>-*`` (or ``<daemonset>-*``), for a pod a ReplicaSet or a DaemonSet created
        (kube_pod_info); None for other pods (a StatefulSet's keep their names; a Job's or a bare
        pod have no successor) and series. A DaemonSet's pods on all nodes share the key: a node
        that joins gets a pod that meets the peaks the others met."""
        if series.key in self._lineage_of:
            return self._lineage_of[series.key]
        if series.entity.kind != EntityKind.POD or "pod" not in series.labels:
            return None
        if self._workload_names is None:  # once per cycle, and only when a new pod series is explained
            self._workload_names = {}
            for info in frame.of("pod_info"):
                creator, pod = info.entity.attr("created_by_name"), info.entity.name
                kind = info.entity.attr("created_by_kind") if pod.startswith(f"{creator}-") else ""
                # A Deployment's ReplicaSet is <deployment>-<pod-template-hash>, its pods <replicaset>-<id>;
                # a DaemonSet's pods are <daemonset>-<id>, one per node, renamed by each rollout.
                owner = creator.rpartition("-")[0] if kind == "ReplicaSet" else creator if kind == "DaemonSet" else ""
                self._workload_names[info.entity.key] = owner or None
        if series.entity.key not in self._workload_names:
            return None  # no kube_pod_info for it (yet): asked again when next explained
        name = self._workload_names[series.entity.key]
        signal, labels = series.key
        workload = None if name is None else (
            signal, tuple((k, f"{name}{WORKLOAD_POD_SUFFIX}" if k == "pod" else v) for k, v in labels))
        self._lineage_of[series.key] = workload
        return workload

    # -- the days before the first frame, from what Prometheus holds (LearnsFromHistory) ----------
    def history_wanted(self, signals: Mapping[str, SignalInfo]) -> HistoryWanted | None:
        """The days :attr:`daily_memory_days` compares with, at the bins' 5-minute steps, of the
        signals this detector forecasts."""
        wanted = frozenset(n for n in self.signals if n in signals and _has_wall(signals[n]))
        if not self.daily_memory_days or not wanted:
            return None
        return HistoryWanted(wanted, self.daily_memory_days * DAY_SECONDS, BIN_SECONDS)

    def learn_history(self, series: Sequence[Series]) -> None:
        """Fold each series' points into its days, by maximum per bin (:meth:`DailyMaxima.learn`):
        learning a day held already, restored from the state file, changes nothing.

        A range query at 5-minute steps gives one sample a bin, not the bin's maximum: a peak
        between two samples is read lower than it was, which can only make a benign precedent
        rarer (the side that warns). The series no frame brings (pods gone since) are dropped at
        the first cycle, as any series gone from its signal's answer."""
        if self.daily_memory_days:
            for s in series:
                isolated(self.name, s, self._daily.learn, s.key, s.timestamps, s.values)

    # -- the daily maxima, handed to the daemon's state file (KeepsState) ---------------------------
    # Only series the screen let through in the days held are saved: the days are read by
    # explain alone, which only screened series reach, and a daily peak passes the screen every
    # day. The thousands of flat series a cluster has cost nothing in the state file; one that
    # never climbed before a restart learns its days again, as it would have had to.
    # The workloads' days (departed pods') are saved too, under their own keys: a pod label
    # ``<deployment>-*`` names no pod, so the two kinds of body never collide.
    def saved_state(self) -> dict[str, bytes]:
        return {**self._daily.saved_state(only=self._passed_screen), **self._lineage.saved_state()}

    def state_saved(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._daily.state_saved(keys)
        self._lineage.state_saved(keys)

    def restore_state(self, saved: Mapping[str, bytes]) -> list[str]:
        bodies, problems = read_bodies(saved)
        for key, first, dense in bodies:
            (self._lineage if _is_workload(key) else self._daily).take_up(key, first, dense)
        for key, end in self._daily.stored():
            self._passed_screen[key] = max(self._passed_screen.get(key, end), end)
        return problems

    def explain(self, frame: Frame, series: Series) -> Finding | None:
        info = frame.signals[series.signal]
        wall, failure = self.failure_of(info, series.labels)
        daily = None
        if self.daily_memory_days:
            daily = self._daily.merge(series.key, series.timestamps, series.values)
            workload = self._workload_key(frame, series)
            if workload is not None:
                # The days of the workload's departed pods, with this pod's own; a pod younger
                # than a day (a scale-out, a rollout under way) reads its live siblings' too.
                for days in (self._lineage.get(workload), self._siblings_days(frame, series, workload, daily)):
                    if days is not None:
                        daily = max_bins(days, daily, self._daily.keep)
        fc = self.forecast_now(series.timestamps, series.values, wall, daily=daily)
        i = len(series) - 1
        now = float(series.timestamps[i])
        value = float(series.values[i])
        score = fc.score
        slope, s_sigma, level, noise = fc.slope, fc.slope_sigma, fc.level, fc.noise_sigma
        facts: dict[str, object] = {
            "value": value,
            "capacity": info.capacity,
            "failure_point": wall,
            "failure": failure,
            "horizon_seconds": self.params.horizon_seconds,
            "probability_within_horizon": round(score, 4),
        }
        unit = f" {info.unit}" if info.unit else ""
        if _at_wall(value, wall):
            return self.finding(
                frame,
                series,
                1.0,
                f"{series.signal} is at its failure point ({failure}): {value:.3g}{unit}, failure at {wall:.3g}",
                facts,
                predicted_failure_at=from_epoch(now),
                failure_interval=(from_epoch(now), from_epoch(now)),
            )
        if not math.isfinite(slope) or slope <= 0:
            # Warming up after a reset, or not growing: nothing to forecast.
            return self.finding(frame, series, score, f"{series.signal} is not growing ({value:.3g}{unit})", facts)
        headroom = wall - level
        fast = slope + Z_INTERVAL * s_sigma
        slow = slope - Z_INTERVAL * s_sigma
        # Every time is clamped to [now, now + max_lead]: a near-flat slope puts the crossing
        # centuries away, past what a datetime can hold, and that must not crash the detector.
        lead = self._clamp(headroom / slope)
        earliest = min(self._clamp((headroom - Z_INTERVAL * noise) / fast), lead)
        latest = max(self._clamp((headroom + Z_INTERVAL * noise) / slow) if slow > 0 else self.params.max_lead_seconds, lead)
        start = fc.segment_start
        facts |= {
            "slope_per_hour": slope * 3600.0,
            "slope_sigma_per_hour": s_sigma * 3600.0,
            "trend_level": level,
            "noise_sigma": noise,
            "lead_time_seconds": lead,
            "fit_since": from_epoch(series.timestamps[start]).isoformat(),
            "reset_discount": fc.discount,
        }
        scale = info.capacity if info.capacity else wall
        summary = (
            f"{series.signal} at {value:.4g}{unit} ({value / scale:.1%} of {'its limit' if info.capacity else 'its failure point'}), "
            f"growing {slope * 3600 / scale:+.1%} per hour: {failure} in ~{fmt_duration(lead)} "
            f"(90 % interval {fmt_duration(earliest)}–{fmt_duration(latest)}); "
            f"{round(score * 100)} % likely within {fmt_duration(self.params.horizon_seconds)}"
        )
        if info.capacity is not None and info.capacity > wall:
            full = self._clamp((info.capacity - level) / slope)
            facts["full_in_seconds"] = full
            summary += f"; full in ~{fmt_duration(full)}"
        if fc.discount < 1.0:
            summary += (
                f"; discounted: it climbed this high and reset {round(1 / fc.discount) - 2}"
                f" time(s) in the last {fmt_duration(self.params.reset_memory_seconds)}"
            )
        return self.finding(
            frame,
            series,
            score,
            summary,
            facts,
            predicted_failure_at=from_epoch(now) + timedelta(seconds=lead),
            failure_interval=(
                from_epoch(now) + timedelta(seconds=earliest),
                from_epoch(now) + timedelta(seconds=latest),
            ),
        )
