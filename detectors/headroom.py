"""Serving headroom: is demand heading past the load this model has proven it can serve?

A traffic surge breaches a serving objective (TTFT, request latency) only once the servers
saturate, and the signals of saturation (requests queueing, the KV cache full, latency climbing)
show it minutes before the breach, not half an hour. What shows it earlier is demand: requests per
second above what is usual for this time of day, heading where the deployment has never served.
An SRE reads it that way: "today runs 30 % over yesterday, and yesterday's peak is still ahead".

So for each request-rate series (one per model and runtime: vLLM, Triton, TorchServe) this
detector keeps the 5-minute maxima of the previous days (:class:`~detectors._daily.DailyMaxima`,
a day is a day in the cluster's clock, so "the same time" is the same local hour) and forecasts:

* **usual**: the median, over the previous days, of the same 5-minute bins (the seasonal
  baseline), now and over the next ``horizon_seconds``;
* **excess**: today's level (the median of the last ``level_seconds``) over the usual level now;
* **forecast**: the usual level ahead times today's excess: a surge that already runs 20 % over
  the usual morning is expected to run 20 % over the usual noon;
* **proven capacity**: the highest 5-minute bin of the previous days (bins at least
  ``settle_seconds`` old, so a surge never raises its own bar). The true saturation point is
  unknown from the exporters (vLLM and Triton export no capacity); the highest load served is
  what has been proven, and the point past which no data says the servers will hold.

The first instant the forecast reaches the proven capacity is the predicted time the demand
leaves the proven range: the start of a future bin where the usual steps up, or, for a surge
still growing (below), the instant inside a bin where its growth carries it there. Only a **surge** is forecast: an excess that grew today, not a
day that runs busier than the last ones. Ordinary days differ from each other by several percent
(a busier weekday, a campaign), and a day 10 % over yesterday passes yesterday's peak near its own
peak, with nothing wrong: with one previous day the days' spread cannot be estimated, and with
exact request counts (the replay fixture before 2026-12-05) that was never seen. So:

* **today's level** is the median of today's demand over the usual, over the window before the
  last ``surge_seconds`` (2 h; the lookback's older 4 h by default): what today has run at since
  before any surge the forecast should see;
* the **surge** is the excess now over today's level; it must reach ``min_excess`` (10 %), twice
  what the previous days differed from their median at this hour (from two previous days on), and
  three times what the level estimate's own noise explains (the within-window scatter of today
  over the usual, as the error of a median of the points in ``level_seconds``): a noisy,
  low-traffic series needs more than a busy one;
* the forecast itself is the usual ahead times the whole excess (today's level included): a busy
  day that also surges is nearer its proven peak;
* a surge that is still **growing** is forecast growing: the excess ahead is today's excess plus
  its growth times the time ahead, as ``predict_linear`` would. The time ahead counts from when
  the excess was read, the middle of the level's span (the median of the last 5 min is, on a
  climb, the demand 2 min ago), not from now: counted from now, every growing forecast was two
  minutes' growth late (the Triton surge on us-east: ~1 min of its crossing). Read at a constant excess, a surge
  that triples in 90 min is forecast past the proven peak only minutes before it gets there, and
  the 30-minute critical lead is lost. The growth is the Theil-Sen slope of demand over the usual
  over the last ``trend_seconds`` (15 min) less three times what that slope scatters by on today's
  earlier spans of the same length (the window before ``surge_seconds``, a robust sigma about
  zero, from at least four spans): only the growth the data vouches for beyond its noise is
  extrapolated, as exhaustion acts on its prediction interval. Nothing is extrapolated where the
  slope's rise over the span does not reach the surge's own bar, where that lower bound is not
  positive (noise, or the usual morning climb a busier day rides), or without today's earlier
  spans (right after a start). A surge that stopped growing is read at its excess again once the
  step is older than the span.

Today's level is **unknown** where the window holds under 30 min of points before ``surge_seconds``
that a previous day covers: right after a first start, or where the history begins less than a day
and ``surge_seconds`` ago (Prometheus, or the model, is a day old). Unknown is not "as usual": the
excess then holds both how today differs from the previous day and any surge, so it must clear
``min_excess`` for each, ``(1 + min_excess) x (1 + needed)`` over the usual (21 % by default), and a
day 10-12 % busier than the evening before is not forecast past its peak (a history starting at
20:00 read the next evening: a critical forecast and a ``scale_ahead`` on the replay fixture at a
30 s scrape). A surge that climbs well past that is still forecast from the first cycle. The score
is 0.7 (policy's warning) for a crossing within the horizon, rising to 0.9 as today's excess
grows; a crossing within policy's ``critical_lead_time`` (30 min) makes it critical there, which
is what ``serving-capacity`` scales ahead on.

What it does not know. A weekly pattern (Monday over Sunday) reads as an excess: the forecast is
then right that Monday's demand exceeds the last days' peak, and wrong only if last Monday's peak
was served (keep ``days`` at 7 or more where traffic is weekly). A model deployed today has no
previous day: nothing is forecast until one full day is held. A growth is extrapolated as if it
went on: a surge about to level off is forecast past its peak early (taking the growth's lower
bound, not its estimate, is what keeps that small).

The bins outlive a restart: each series' bins are handed to the daemon's state file
(:class:`~aiops.plugins.KeepsState`, the ``detector_state`` table, one body per series) whenever
they gain a 5-minute bin, so a restarted daemon forecasts at once, from the same bins as the one
that stopped (what came after the last body, the newest bin or two, comes back from the frame's
lookback). A body that cannot be read is named at start and that series learns its days again. A
restart longer than the lookback leaves a gap in the bins, as the daemon being down does anyway.
A new daemon (a new installation, a new pod) reads the days before its first frame from
Prometheus at its own step (:class:`~aiops.plugins.LearnsFromHistory`): the same bins as if it had
run all along, so it forecasts from its first cycle instead of a day later.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from aiops.model import Finding, Frame, Series, SignalInfo, from_epoch
from aiops.plugins import DetectorParams, HistoryWanted
from detectors._daily import BIN_SECONDS, BINS_PER_DAY, DAY_SECONDS, DailyMaxima
from detectors._isolation import isolated
from detectors._univariate import UnivariateDetector, by_signal, fmt_duration, typical_step

# The request-rate signal of each runtime in the catalog.
DEMAND_SIGNALS = ("inference_request_rate", "inference_request_rate_triton", "inference_request_rate_torchserve")
# Score of a crossing within the horizon (policy's warning), and its ceiling.
WARN_SCORE, TOP_SCORE = 0.7, 0.9


@dataclass(frozen=True)
class HeadroomForecast:
    """The forecast at one instant; ``crossing_seconds`` is None when demand stays in range."""

    level: float  # today's demand now (median of the last level_seconds)
    usual: float  # the seasonal baseline now
    excess: float  # level / usual
    today: float | None  # today's level over the usual before the last surge_seconds (None: unknown)
    needed: float  # the surge (excess / today, or over 1 when unknown) that counts: min_excess, the days' spread, the level's noise
    capacity: float  # the highest 5-minute bin of the previous days
    days: int  # previous days the baseline was read from
    crossing_seconds: float | None  # from now until the forecast reaches capacity
    forecast_at_crossing: float
    growth: float = 0.0  # how fast the excess grows (per second; 0.0 when not beyond noise)

    @property
    def surge_from(self) -> float:
        """What the surge is measured from: today's level, or the usual (1.0) where that is
        unknown (``needed`` then holds an ordinary day's difference too)."""
        return 1.0 if self.today is None else self.today


def forecast(
    t: np.ndarray,
    y: np.ndarray,
    bins: tuple[int, np.ndarray],
    *,
    horizon_seconds: float,
    level_seconds: float,
    settle_seconds: float,
    days: int,
    min_excess: float,
    surge_seconds: float = 7200.0,
    trend_seconds: float = 0.0,
) -> HeadroomForecast | None:
    """The headroom forecast at the newest point of ``(t, y)``; None without a previous day.

    ``bins`` are the series' 5-minute maxima (first bin index, values), at least a day of them.
    """
    first, dense = bins
    if t.shape[0] == 0 or dense.shape[0] == 0:
        return None
    now = float(t[-1])
    span = (t > now - level_seconds) & np.isfinite(y)
    recent = y[span]
    if recent.shape[0] == 0:
        return None
    level = float(np.median(recent))
    # The level is the demand at the middle of its span (on a climb, a median is the middle
    # point's value), not now: a growth carries the forecast on from there.
    level_age = now - float(np.median(t[span]))
    now_bin = int(math.floor(now / BIN_SECONDS))
    ahead = int(math.ceil(horizon_seconds / BIN_SECONDS))
    # Bins k days back, from the level span before now to the horizon after it.
    back = int(math.ceil(level_seconds / BIN_SECONDS))
    offsets = np.arange(-back, ahead + 1)
    rows = []
    for k in range(1, days + 1):
        idx = now_bin - k * BINS_PER_DAY + offsets - first
        if idx[0] < 0:
            break
        inside = idx < dense.shape[0]
        rows.append(np.where(inside, dense[np.clip(idx, 0, dense.shape[0] - 1)], np.nan))
    if not rows:
        return None
    usual_path = median_of_days(np.vstack(rows))
    usual_now = float(np.nanmean(usual_path[: back + 1])) if np.isfinite(usual_path[: back + 1]).any() else math.nan
    settled = dense[: max(0, dense.shape[0] - int(settle_seconds // BIN_SECONDS))]
    settled = settled[np.isfinite(settled)]
    if not (math.isfinite(usual_now) and usual_now > 0 and settled.shape[0]):
        return None
    capacity = float(settled.max())
    excess = level / usual_now
    # How far the previous days were from their own median at this hour: an excess only counts
    # beyond both min_excess and twice that (days that differ by 15 % make 15 % ordinary).
    days_now = np.vstack(rows)[:, : back + 1]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = float(np.nanmax(np.abs(np.nanmean(days_now, axis=1) / usual_now - 1.0))) if len(rows) > 1 else 0.0
    today, level_noise, kinship = _today(t, y, first, dense, now - surge_seconds, days)
    # The level is a median of the points in level_seconds: its error is ~1.25 scatter / sqrt(n),
    # n the independent measurements among them. Demand is a rate over a window longer than the
    # step (rate(...[5m]) every minute): neighbours share most of their requests, so n is fewer
    # than the points, n (1 - rho) / (1 + rho) for a lag-one correlation rho (an AR(1)'s effective
    # sample size), read on today's points like the scatter. Counted as independent, a wobble of a
    # quiet model's rate passed for a surge (us-east, seed 41: +11 % on mistral's morning ramp).
    level_noise *= 1.2533 / math.sqrt(_effective_count(recent.shape[0], kinship))
    needed = max(min_excess, 2.0 * spread if math.isfinite(spread) else 0.0, 3.0 * level_noise)
    if today is None:
        # Unknown: the excess holds an ordinary day's difference and the surge, each up to its bar.
        needed = (1.0 + min_excess) * (1.0 + needed) - 1.0
    base = 1.0 if today is None else today
    crossing = None
    at_crossing = math.nan
    growth = 0.0
    if excess >= base * (1.0 + needed) and capacity > 0:
        growth = (_growth(t, y, first, dense, days, now, trend_seconds, now - surge_seconds, base * needed)
                  if trend_seconds > 0 else 0.0)
        starts = np.maximum(0.0, (now_bin + np.arange(ahead + 1)) * BIN_SECONDS - now)  # bin 0 is the current one
        if level >= capacity:
            crossing, at_crossing = 0.0, level
        else:
            found = _crossing(usual_path[back:], starts, excess + growth * level_age, growth, capacity)
            if found is not None:
                crossing, at_crossing = found
    return HeadroomForecast(level, usual_now, excess, today, needed, capacity, len(rows), crossing, at_crossing, growth)


def _crossing(usual: np.ndarray, starts: np.ndarray, excess: float, growth: float,
              capacity: float) -> tuple[float, float] | None:
    """The first instant (seconds ahead) the forecast ``usual x (excess + growth x ahead)`` reaches
    ``capacity``, and the forecast there; None within the horizon. ``usual`` holds one value per
    5-minute bin, from ``starts`` (seconds ahead) to the next bin's start: the forecast steps up
    where the usual does, and in between climbs with the growth, so a growing forecast can reach
    the capacity inside a bin, not only at its start. The last bin counts at its start only."""
    ends = np.r_[starts[1:], starts[-1]]
    at_start = usual * (excess + growth * starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (capacity / usual - excess) / growth if growth > 0 else np.full(starts.shape, np.inf)
    fine = np.isfinite(at_start)
    when = np.where(fine & (at_start >= capacity), starts,
                    np.where(fine & (usual > 0) & np.isfinite(inside) & (inside <= ends), inside, np.inf))
    hit = np.flatnonzero(np.isfinite(when))
    if not hit.shape[0]:
        return None
    j = int(hit[0])
    return float(when[j]), float(capacity if when[j] > starts[j] else at_start[j])


def _growth(t: np.ndarray, y: np.ndarray, first: int, dense: np.ndarray, days: int, now: float, span: float,
            before: float, bar: float) -> float:
    """How fast demand over the usual grows (per second) over the last ``span``, as far as the data
    vouches for it: the Theil-Sen slope of the points' ratios to the usual less three times what
    that slope scatters by on today's points at or before ``before`` (each whole ``span`` of them
    in turn, a robust sigma about zero). 0.0 where that is not positive, where what the slope adds
    over the span does not reach ``bar`` (the excess a surge must show), or where today holds
    under MIN_TREND_SPANS spans before ``before`` to measure the scatter on."""
    tt, r = _ratios(t[t > now - span], y[t > now - span], first, dense, days)
    slope = _theil_sen(tt, r)
    if not (math.isfinite(slope) and slope * span >= bar):
        return 0.0
    ok = t <= before
    tb, rb = _ratios(t[ok], y[ok], first, dense, days)
    if tb.shape[0] == 0:
        return 0.0
    chunk = np.floor((tb - tb[0]) / span).astype(np.int64)
    past = [_theil_sen(tb[chunk == k], rb[chunk == k]) for k in range(int(chunk[-1]))]  # whole spans only
    past = [x for x in past if math.isfinite(x)]
    if len(past) < MIN_TREND_SPANS:
        return 0.0
    sigma = 1.4826 * float(np.median(np.abs(past)))
    return max(0.0, slope - 3.0 * sigma)


def _theil_sen(t: np.ndarray, r: np.ndarray) -> float:
    """The median of the pairwise slopes of ``(t, r)``; NaN under three points."""
    if t.shape[0] < 3:
        return math.nan
    i, j = np.triu_indices(t.shape[0], k=1)
    dt = t[j] - t[i]
    ok = dt > 0
    return float(np.median((r[j] - r[i])[ok] / dt[ok])) if ok.any() else math.nan


# The slope's own scatter is read on at least this many earlier spans of today (module docstring).
MIN_TREND_SPANS = 4


# Today's level needs this much of the window before the surge span (module docstring).
MIN_TODAY_SECONDS = 1800.0
# The lag-one correlation of today's points is read on at least this many neighbouring pairs, and
# is held below 1 (the effective count never reaches zero).
MIN_LAG_PAIRS = 20
MAX_LAG_ONE = 0.99


def _ratios(t: np.ndarray, y: np.ndarray, first: int, dense: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Each finite, positive point's demand over the usual of its 5-minute bin (the median of the
    previous days' bins), and its time; points no previous day covers are left out."""
    ok = np.isfinite(y) & (y > 0)
    tt, yy = t[ok], y[ok]
    if tt.shape[0] == 0 or dense.shape[0] == 0:
        return tt, yy
    b = np.floor(tt / BIN_SECONDS).astype(np.int64)
    idx = b[None, :] - np.arange(1, days + 1)[:, None] * BINS_PER_DAY - first
    inside = (idx >= 0) & (idx < dense.shape[0])
    held = np.where(inside, dense[np.clip(idx, 0, max(0, dense.shape[0] - 1))], np.nan)
    usual = median_of_days(held)
    good = np.isfinite(usual) & (usual > 0)
    return tt[good], yy[good] / usual[good]


def median_of_days(held: np.ndarray) -> np.ndarray:
    """``np.nanmedian(held, axis=0)`` for a few rows (days) and many columns, the same floats; NaN
    where no row holds a value. numpy's own takes a masked-array path for small axes and raises a
    RuntimeWarning per all-NaN column, ~1.7 ms a call on a day of minutes (50 ms a cycle at 100k)."""
    held = np.asarray(held, dtype=np.float64)
    if held.shape[0] == 0:
        return np.full(held.shape[1], np.nan)
    ordered = np.sort(held, axis=0)  # NaN sorts last
    count = (~np.isnan(held)).sum(axis=0)
    cols = np.arange(held.shape[1])
    lo = ordered[np.maximum(count - 1, 0) // 2, cols]
    hi = ordered[count // 2, cols]
    with np.errstate(invalid="ignore", over="ignore"):
        middle = np.where(count % 2 == 1, lo, (lo + hi) / 2.0)
    return np.where(count > 0, middle, np.nan)


def _today(
    t: np.ndarray, y: np.ndarray, first: int, dense: np.ndarray, before: float, days: int
) -> tuple[float | None, float, float]:
    """Today's demand over the usual, from the points at or before ``before`` (the median of their
    ratios), the scatter of those ratios (a robust sigma, relative) and their lag-one
    correlation (:func:`_lag_one`); (None, 0.0, 0.0) when a previous day covers under
    MIN_TODAY_SECONDS of them."""
    ok = (t <= before) & np.isfinite(y) & (y > 0)
    if not ok.any():
        return None, 0.0, 0.0
    tr, r = _ratios(t[ok], y[ok], first, dense, days)
    if r.shape[0] < 2 or before - float(tr[0]) < MIN_TODAY_SECONDS:
        return None, 0.0, 0.0
    ratio = np.log(r)
    mid = float(np.median(ratio))
    scatter = 1.4826 * float(np.median(np.abs(ratio - mid)))
    return math.exp(mid), scatter, _lag_one(tr, ratio - mid)


def _lag_one(t: np.ndarray, x: np.ndarray) -> float:
    """The lag-one correlation of ``x`` over pairs one step apart (within half of the series'
    typical step: gaps only lengthen intervals, so a median of them can be two steps), in [0, 1):
    how much of each point its neighbour already holds. 0 under MIN_LAG_PAIRS pairs; a negative
    one (no rate window makes neighbours disagree) counts as none."""
    if t.shape[0] < 2:
        return 0.0
    dt = np.diff(t)
    step = typical_step(t)
    pairs = np.flatnonzero(np.abs(dt - step) <= 0.5 * step)
    if pairs.shape[0] < MIN_LAG_PAIRS:
        return 0.0
    a, b = x[pairs], x[pairs + 1]
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return min(MAX_LAG_ONE, max(0.0, float(np.dot(a, b)) / den)) if den > 0 else 0.0


def _effective_count(n: int, rho: float) -> float:
    """Independent measurements among ``n`` points with lag-one correlation ``rho``: at least one."""
    return max(1.0, min(float(n), n * (1.0 - rho) / (1.0 + rho)))


class HeadroomParams(DetectorParams):
    """The parameters of :class:`ServingHeadroom`, documented there."""

    horizon_seconds: float = Field(default=7200.0, gt=0, lt=DAY_SECONDS - BIN_SECONDS)
    level_seconds: float = Field(default=300.0, gt=0, le=3600.0)
    settle_seconds: float = Field(default=12 * 3600.0, ge=0, le=DAY_SECONDS)
    days: int = Field(default=3, ge=1, le=14)
    min_excess: float = Field(default=0.1, gt=0)
    surge_seconds: float = Field(default=7200.0, gt=0, le=DAY_SECONDS)
    trend_seconds: float = Field(default=900.0, ge=0, le=3600.0)


class ServingHeadroom(UnivariateDetector):
    """Forecasts when a model's demand leaves the range its servers have proven (module docstring).

    Parameters
    ----------
    horizon_seconds:
        How far ahead the forecast looks (2 h).
    level_seconds:
        Today's level is the median of this span (5 min): one scrape does not make a surge.
    settle_seconds:
        Bins younger than this (12 h) do not count towards the proven capacity, so a surge does
        not raise its own bar within the day.
    days:
        Previous days held and read for the baseline (3).
    min_excess:
        Demand must run this far over today's own level (0.1: 10 %) before it is forecast.
    trend_seconds:
        The span whose growth is extrapolated (15 min; 0 forecasts at a constant excess). Its
        noise is read on today's earlier spans of the same length.
    surge_seconds:
        Today's level is read from the window before this span (2 h): a surge is what demand
        gained within it. Keep it under the lookback by at least 30 min, or today's level is
        unknown and a surge must clear ``min_excess`` twice over.
    """

    name: ClassVar[str] = "headroom"
    Params = HeadroomParams
    params: HeadroomParams
    default_signals: ClassVar[tuple[str, ...]] = DEMAND_SIGNALS

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        super().__init__(signals, **params)
        self._daily = DailyMaxima(self.params.days)

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Backtest: the score at every point from the series' own earlier bins."""
        t, y = np.asarray(timestamps, dtype=np.float64), np.asarray(values, dtype=np.float64)
        out = np.zeros(t.shape[0])
        held = DailyMaxima(self.params.days)
        for i in range(t.shape[0]):
            held.update("s", t[i : i + 1], y[i : i + 1])
            bins = held.merge("s", t[:0], y[:0])
            fc = self._forecast(t[: i + 1], y[: i + 1], bins)
            out[i] = 0.0 if fc is None else self._score(fc)
        return out

    def detect(self, frame: Frame) -> list[Finding]:
        wanted = [sig for sig in self.signals if sig not in frame.missing_signals]
        live: list[Hashable] = []
        for series_list in by_signal(frame, wanted).values():
            live += self._daily.update_signal(self.name, series_list)
        # A series is gone when its signal answered without it; a failed query (a missing signal)
        # says nothing about it, and its previous days stay held.
        self._daily.retain(live, unanswered=frame.missing_signals)
        return super().detect(frame)

    # -- the days before the first frame, from what Prometheus holds (LearnsFromHistory) ----------
    def history_wanted(self, signals: Mapping[str, SignalInfo]) -> HistoryWanted | None:
        """The days the forecast reads, at the daemon's own step: a few series (one per model and
        runtime), and the bins then hold what the cycles would have folded in, to the bit."""
        wanted = frozenset(n for n in self.signals if n in signals)
        return HistoryWanted(wanted, self.params.days * DAY_SECONDS, None) if wanted else None

    def learn_history(self, series: Sequence[Series]) -> None:
        """Fold each series' points into its days, by maximum per bin (:meth:`DailyMaxima.learn`):
        learning a day held already, restored from the state file, changes nothing."""
        for s in series:
            isolated(self.name, s, self._daily.learn, s.key, s.timestamps, s.values)

    # -- the bins, handed to the daemon's state file (KeepsState) ---------------------------------
    def saved_state(self) -> dict[str, bytes]:
        return self._daily.saved_state()

    def state_saved(self, keys: Iterable[str]) -> None:
        self._daily.state_saved(keys)

    def restore_state(self, saved: Mapping[str, bytes]) -> list[str]:
        return self._daily.restore_state(saved)

    def _forecast(self, t: np.ndarray, y: np.ndarray, bins: tuple[int, np.ndarray]) -> HeadroomForecast | None:
        p = self.params
        # The baseline needs a full previous day: fewer bins than that is a model deployed today.
        if bins[1].shape[0] < BINS_PER_DAY:
            return None
        return forecast(t, y, bins, horizon_seconds=p.horizon_seconds, level_seconds=p.level_seconds,
                        settle_seconds=p.settle_seconds, days=p.days, min_excess=p.min_excess,
                        surge_seconds=p.surge_seconds, trend_seconds=p.trend_seconds)

    def _score(self, fc: HeadroomForecast) -> float:
        if fc.crossing_seconds is None:
            return 0.0
        # 0.7 at the least surge forecast, 0.9 once demand runs twice today's own level.
        grown = (fc.excess / fc.surge_from - 1.0 - fc.needed) / max(1e-9, 1.0 - fc.needed)
        return WARN_SCORE + (TOP_SCORE - WARN_SCORE) * float(np.clip(grown, 0.0, 1.0))

    def explain(self, frame: Frame, series: Series) -> Finding | None:
        bins = self._daily.merge(series.key, series.timestamps[:0], series.values[:0])
        fc = self._forecast(series.timestamps, series.values, bins)
        if fc is None:
            return None
        score = self._score(fc)
        info = frame.signals.get(series.signal)
        unit = f" {info.unit}" if info is not None and info.unit else ""
        facts: dict[str, object] = {
            "value": fc.level, "usual": fc.usual, "excess": round(fc.excess, 4), "today": None if fc.today is None else round(fc.today, 4), "proven_capacity": fc.capacity,
            "days": fc.days, "horizon_seconds": self.params.horizon_seconds,
        }
        before = ("no previous day shows what today ran at before" if fc.today is None
                  else f"today ran {fc.today:.0%} of it before")
        summary = (f"{series.signal} at {fc.level:.4g}{unit}, {fc.excess:.0%} of the usual {fc.usual:.4g} for this "
                   f"time of day ({before}); the most served in the last {fc.days} day(s) is {fc.capacity:.4g}")
        if fc.crossing_seconds is None:
            return self.finding(frame, series, score, summary + ": demand stays within it", facts)
        now = float(series.timestamps[-1])
        facts |= {"lead_time_seconds": fc.crossing_seconds, "forecast": fc.forecast_at_crossing,
                  "growth_per_hour": round(fc.growth * 3600.0, 4)}
        when = "already past it" if fc.crossing_seconds == 0 else f"past it in ~{fmt_duration(fc.crossing_seconds)}"
        pace = "at this excess" if fc.growth <= 0 else f"growing {fc.growth * 3600:.0%} of the usual an hour"
        summary += (f"; {pace} demand is {when} (forecast {fc.forecast_at_crossing:.4g}): beyond the load "
                    "the servers have proven, scale ahead")
        at = from_epoch(now) + timedelta(seconds=fc.crossing_seconds)
        return self.finding(frame, series, score, summary, facts, predicted_failure_at=at, failure_interval=(at, at))
