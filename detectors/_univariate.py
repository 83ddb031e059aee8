"""Shared helpers of the univariate detectors: input checks, segmentation, causal rolling stats.

Every helper here is *causal*: the value at index ``i`` depends only on points ``<= i``, which is
what lets ``score_series`` (backtest) and ``detect`` (daemon) share one implementation and keeps
the no-look-ahead promise of the detector contract. Rolling statistics run in pandas (C loops), so
a detector scores a series in one vectorised pass instead of a Python loop per point.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr

from aiops.model import Evidence, Finding, Frame, Series, SignalInfo, from_epoch
from aiops.plugins import Detector
from detectors._isolation import isolated

log = logging.getLogger(__name__)

# MAD -> standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826
# Inter-quartile range -> standard deviation of a normal distribution.
IQR_TO_SIGMA = 1.0 / 1.349
# How many recent values a finding carries for rendering (sparkline, table).
RECENT_POINTS = 30


def check_series(timestamps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert one series to float64 arrays; raise ValueError saying what is wrong."""
    t = np.asarray(timestamps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or y.ndim != 1:
        raise ValueError(f"timestamps and values must be 1-D arrays, got shapes {t.shape} and {y.shape}")
    if t.shape != y.shape:
        raise ValueError(f"timestamps and values differ in length: {t.shape[0]} vs {y.shape[0]}")
    if not np.all(np.isfinite(t)):
        raise ValueError("timestamps contain NaN or infinity; drop those rows before scoring")
    # Repeated timestamps occur in real exports (NAB has some); out-of-order ones are a caller bug.
    if t.shape[0] > 1 and np.any(np.diff(t) < 0):
        raise ValueError("timestamps must be in increasing order; sort the series by time first")
    # Infinite values are as unusable as missing ones; treat them alike.
    y = np.where(np.isfinite(y), y, np.nan)
    return t, y


# The sampling step is read from the start of a series only, so later data never changes it
# (a gap next week must not change how today was scored).
STEP_SAMPLE = 64


def typical_step(t: np.ndarray) -> float:
    """The sampling interval, from the first intervals of the series (1.0 when there is none).

    The lower quartile rather than the median: gaps only ever lengthen intervals, so the
    quartile finds the real step even when a quarter of the first samples are missing.
    """
    d = np.diff(t[: STEP_SAMPLE + 1])
    d = d[d > 0]
    if not d.shape[0]:
        return 1.0
    lo = d.min()
    # A regular grid (the collector's): every quantile is that step, the float np.quantile gives.
    return float(lo) if lo == d.max() else float(np.quantile(d, 0.25))


def typical_steps(timestamps: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`typical_step` of many series at once (one vectorised pass over their first intervals)."""
    if not timestamps:
        return np.zeros(0)
    heads = tails([t[: STEP_SAMPLE + 1] for t in timestamps], STEP_SAMPLE + 1, right=False)
    with np.errstate(invalid="ignore"):
        d = np.diff(heads, axis=1)
        d[~(d > 0)] = np.nan
    # np.nanquantile loops over rows; sorted rows (NaN last) and a per-row index do not.
    d.sort(axis=1)
    count = np.sum(~np.isnan(d), axis=1)
    pos = 0.25 * np.maximum(count - 1, 0)  # numpy's default (linear) quantile
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    rows = np.arange(d.shape[0])
    q = d[rows, lo] + (pos - lo) * (d[rows, hi] - d[rows, lo]) if d.shape[1] else np.full(d.shape[0], np.nan)
    return np.where(count > 0, q, 1.0)


def row_median(x: np.ndarray, minimum: int) -> np.ndarray:
    """Median of the non-NaN values of each row; NaN where a row has fewer than ``minimum``."""
    if x.shape[0] == 0:
        return np.zeros(0)
    valid = ~np.isnan(x)
    count = valid.sum(axis=1)
    if x.shape[1] == 0:
        return np.full(x.shape[0], np.nan)
    if count.min() == x.shape[1]:
        out = np.median(x, axis=1)  # no gaps: a partition per row
    else:
        # Sorting puts NaN last; the count says where the middle of the valid values is.
        ordered = np.sort(x, axis=1)
        rows = np.arange(x.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):  # garbage (1e308) overflows to inf: no alarm
            out = 0.5 * (ordered[rows, np.maximum((count - 1) // 2, 0)] + ordered[rows, np.maximum(count // 2, 0)])
    return np.where(count >= max(1, minimum), out, np.nan)


def tails(arrays: Sequence[np.ndarray], k: int, *, right: bool = True) -> np.ndarray:
    """A (len(arrays), k) float matrix of the last (or first) ``k`` values of each array, NaN-padded.

    Lets a detector screen thousands of series with a few numpy calls instead of a loop of
    per-series pandas calls. Shorter arrays are padded on the far side from the data kept.
    """
    out = np.empty((len(arrays), max(k, 0)))
    if k <= 0:
        return out
    # One row at a time into one matrix: about 3x faster than np.stack of thousands of slices.
    for row, a in enumerate(arrays):
        part = a[-k:] if right else a[:k]
        n = part.shape[0]
        if n == k:
            out[row] = part
        else:
            out[row] = np.nan
            if n:
                if right:
                    out[row, k - n :] = part
                else:
                    out[row, :n] = part
    return out


def points_for(seconds: float, step: float, minimum: int = 1) -> int:
    """How many samples of spacing ``step`` cover ``seconds`` (at least ``minimum``)."""
    return max(minimum, round(seconds / max(step, 1e-9)))


def level_deviation(yv: np.ndarray, confirm: int) -> np.ndarray:
    """What :func:`segment_ids` holds against ``max_jump`` at each of the valid values ``yv``.

    With ``confirm <= 1`` the absolute change from the previous value (NaN for the first); else
    the value minus the median of the ``confirm`` values before the last ``confirm`` (NaN until
    there are enough). Only where its magnitude exceeds ``max_jump`` can a break start, so a
    caller whose threshold is costly needs it only there. ``yv`` holds no NaN (they are the valid
    values): the median of three is then read with minimum and maximum, the middle value itself,
    without sorting every window (of a tie between 0.0 and -0.0 either may come out, as from a
    sort; the deviation is only ever compared or taken in magnitude).
    """
    m = yv.shape[0]
    if confirm <= 1:
        out = np.full(m, np.nan)
        out[1:] = np.abs(np.diff(yv))
        return out
    # numpy rather than pandas rolling calls: the same floats, without their overhead on
    # every explanation.
    before = np.full(m, np.nan)
    if m >= 2 * confirm and confirm == 3:
        a, b, c = yv[:-2], yv[1:-1], yv[2:]
        mid = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
        before[5:] = mid[: m - 5]
    elif m >= 2 * confirm:
        win = np.sort(sliding_window_view(yv, confirm), axis=1)
        mid = win[:, confirm // 2] if confirm % 2 else (win[:, confirm // 2] + win[:, confirm // 2 - 1]) / 2
        before[2 * confirm - 1 :] = mid[: m - 2 * confirm + 1]
    deviation: np.ndarray = yv - before
    return deviation


def _runs(x: np.ndarray, k: int) -> np.ndarray:
    """Whether each ``k`` consecutive values of the boolean ``x`` are all true (one per window)."""
    out = x[: x.shape[0] - k + 1].copy()
    for j in range(1, k):
        out &= x[j : x.shape[0] - k + 1 + j]
    return out


def segment_ids(
    t: np.ndarray,
    y: np.ndarray,
    *,
    max_jump: float | np.ndarray,
    max_gap_seconds: float,
    confirm: int = 1,
    deviation: np.ndarray | None = None,
) -> np.ndarray:
    """Label contiguous stretches of the series; a new stretch starts after a jump or a long gap.

    A jump is a change of level larger than ``max_jump``: a counter reset, a restarted
    container's memory falling back, a level step. Fitting a trend across it would invent a slope
    (a drop hides a real leak, a step up fakes one), so detectors fit only within one stretch.
    ``max_jump`` is a number or one threshold per point.

    With ``confirm = 1`` a jump is a change between consecutive valid values. With ``confirm = c``
    the last ``c`` valid values must all sit beyond ``max_jump`` from the median of the ``c``
    values before them, on the same side: a spike shorter than that is not a new level. The new
    stretch then starts at the point that confirms it, so that no label depends on later data.
    NaN points belong to the stretch of the last valid point before them. ``deviation`` is
    ``level_deviation(valid values, confirm)`` where the caller has it already.
    """
    n = t.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.flatnonzero(~np.isnan(y))
    breaks = np.zeros(n, dtype=bool)
    if idx.shape[0] > 1:
        yv, tv = y[idx], t[idx]
        limit = np.broadcast_to(np.asarray(max_jump, dtype=np.float64), t.shape)[idx]
        gap = np.concatenate([[False], np.diff(tv) > max_gap_seconds])
        dev = level_deviation(yv, confirm) if deviation is None else deviation
        if confirm <= 1:
            jump = dev > limit
        else:
            m = yv.shape[0]
            # NaN limits (no noise estimate yet) compare False: no break.
            up = np.zeros(m, dtype=bool)
            down = np.zeros(m, dtype=bool)
            if m >= confirm:
                up[confirm - 1 :] = _runs(dev > limit, confirm)
                down[confirm - 1 :] = _runs(dev < -limit, confirm)
            jump = up | down
            # The run keeps deviating from the old level for a while: one break per shift.
            candidates = np.flatnonzero(jump)
            jump[:] = False
            last = -(10**9)
            for j in candidates.tolist():
                if j - last > 2 * confirm:
                    jump[j] = True
                last = j
        breaks[idx[jump | gap]] = True
    return np.cumsum(breaks)


def grouped_rolling(
    x: np.ndarray, groups: np.ndarray, window: int, min_periods: int, stat: str, q: float | None = None
) -> np.ndarray:
    """A causal rolling statistic of ``x`` over ``window`` points, restarting in each group.

    ``stat`` is a pandas rolling method name (median, mean, quantile, count, ...). NaN entries are
    skipped and do not count toward ``min_periods``; windows with too few values give NaN.
    """
    s = pd.Series(x)
    if groups.shape[0] == 0 or groups[0] == groups[-1]:
        # One group (the common case): a plain rolling window, without groupby's overhead.
        plain = s.rolling(window, min_periods=min_periods)
        single = plain.quantile(q) if stat == "quantile" else getattr(plain, stat)()
        values: np.ndarray = single.to_numpy(dtype=np.float64)
        return values
    roll = s.groupby(groups, sort=False).rolling(window, min_periods=min_periods)
    out = roll.quantile(q) if stat == "quantile" else getattr(roll, stat)()
    # Groups are contiguous and in order, so dropping the group level restores the input order.
    ordered: np.ndarray = out.droplevel(0).sort_index().to_numpy(dtype=np.float64)
    return ordered


def normal_sf(z: np.ndarray | float) -> np.ndarray:
    """P(Z > z) for a standard normal Z (vectorised)."""
    p: np.ndarray = ndtr(-np.asarray(z, dtype=np.float64))
    return p


def normal_cdf(z: np.ndarray | float) -> np.ndarray:
    p: np.ndarray = ndtr(np.asarray(z, dtype=np.float64))
    return p


def clip01(x: np.ndarray) -> np.ndarray:
    """Scores in [0, 1]; NaN (no opinion) becomes 0 so that missing data never alarms."""
    return np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), 0.0, 1.0)


def recent_values(series: Series, n: int = RECENT_POINTS) -> tuple[float, ...]:
    return tuple(float(v) for v in series.values[-n:])


def fmt_duration(seconds: float) -> str:
    """Human duration for evidence text: 45s, 12m, 3h05m, 2d04h."""
    if not math.isfinite(seconds):
        return "never"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def by_signal(frame: Frame, signals: Sequence[str]) -> dict[str, list[Series]]:
    """The frame's series of ``signals``, by signal, for those that have any (:meth:`Frame.grouped`)."""
    return frame.grouped(signals)


class HistoryBuffer:
    """Per-series history kept across daemon cycles, longer than the collector's lookback.

    The frame carries only the last ``prometheus.lookback`` of each series; baselines that need
    days (seasonal medians, quality reference windows) accumulate it here, bounded to
    ``keep_seconds`` per series, and forget series that leave the frame (deleted pods). The
    history is in memory: after a restart a detector fills it again from what Prometheus holds
    (``LearnsFromHistory``), or from the lookback alone.
    """

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = float(keep_seconds)
        self._data: dict[object, tuple[np.ndarray, np.ndarray]] = {}

    def merge(self, series: Series) -> tuple[np.ndarray, np.ndarray]:
        """Append the points of ``series`` newer than what is held; return the whole history."""
        t_new = np.asarray(series.timestamps, dtype=np.float64)
        y_new = np.asarray(series.values, dtype=np.float64)
        old = self._data.get(series.key)
        if old is not None and old[0].shape[0]:
            keep = t_new > old[0][-1]
            t, y = np.concatenate([old[0], t_new[keep]]), np.concatenate([old[1], y_new[keep]])
        else:
            t, y = t_new, y_new
        if t.shape[0]:
            cut = int(np.searchsorted(t, t[-1] - self.keep_seconds, side="left"))
            t, y = t[cut:], y[cut:]
        self._data[series.key] = (t, y)
        return t, y

    def retain(self, frame: Frame, signals: Sequence[str]) -> None:
        """Drop the history of series of ``signals`` that are no longer in the frame."""
        # Keys only of the signals held: building one per frame series is most of a cycle at 10k.
        wanted = set(signals)
        live = {s.key for s in frame.series if s.signal in wanted}
        for key in [k for k in self._data if k[0] in wanted and k not in live]:  # type: ignore[index]
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


class UnivariateDetector(Detector):
    """A detector that scores each series on its own, the same way live and in a backtest.

    Subclasses implement :meth:`score_series` (vectorised, causal) and :meth:`explain`, which turns
    the last point of a series into a finding. ``detect`` runs both over every series of the
    configured signals in the frame.
    """

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_signal(
        self, timestamps: np.ndarray, values: np.ndarray, info: SignalInfo, labels: Mapping[str, str]
    ) -> np.ndarray:
        """Scores of one series of signal ``info`` with ``labels``, as :meth:`detect` rates its points.

        What ``aiops backtest --signal`` runs. The default ignores the signal; detectors whose
        daemon scoring reads the catalog (a capacity, a failure point, a bad direction) override it.
        """
        return self.score_series(timestamps, values)

    def applies_to(self, frame: Frame, signal: str) -> bool:
        """Whether this detector can score ``signal`` in ``frame`` (override to require metadata)."""
        return True

    def explain(self, frame: Frame, series: Series) -> Finding | None:
        raise NotImplementedError

    def screen(self, frame: Frame, signal: str, series: list[Series]) -> list[Series]:
        """The series of ``signal`` worth a full :meth:`explain` this cycle (default: all).

        A detector overrides it with a cheap test, vectorised across series, that lets through
        every series that *could* score ``report_floor`` or more: at 10k series the per-series
        cost of ``explain`` is what a cycle is made of, and most series are quiet.
        """
        return series

    def prepare(self, frame: Frame, signal: str, series: list[Series]) -> None:
        """Work that :meth:`explain` can share across the screened ``series`` of ``signal``, done
        once before they are explained (default: none).

        A detector whose explanation is many small numpy calls per series makes them once for
        all the series here and keeps the result for :meth:`explain`; what explain returns must
        be the same either way (explain still works alone: for a series not prepared, or when
        this raises, which is logged and costs only the sharing).
        """

    def detect(self, frame: Frame) -> list[Finding]:
        findings: list[Finding] = []
        grouped = by_signal(frame, self.signals)
        for signal in self.signals:
            if signal in frame.missing_signals or not self.applies_to(frame, signal):
                continue
            # No fresh value: say nothing rather than re-raise a stale opinion.
            fresh = [s for s in grouped.get(signal, ()) if len(s) and not np.isnan(s.values[-1])]
            screened = self._screened(frame, signal, fresh)
            try:
                self.prepare(frame, signal, screened)
            except Exception:  # each series is then explained on its own, as without preparing
                log.exception("detector %r: preparing %s failed; explaining each of its %d series on its own", self.name, signal, len(screened))
            for series in screened:
                finding = isolated(self.name, series, self.explain, frame, series)
                if finding is not None and finding.score >= self.report_floor:
                    findings.append(finding)
        return findings

    def _screened(self, frame: Frame, signal: str, series: list[Series]) -> list[Series]:
        """:meth:`screen`, or every series (each then isolated) when the vectorised screen raises."""
        try:
            return self.screen(frame, signal, series)
        except Exception:  # one series can break a batch: fall back to scoring each on its own
            log.exception("detector %r: screening %s failed; scoring each of its %d series on its own", self.name, signal, len(series))
            return series

    def finding(
        self,
        frame: Frame,
        series: Series,
        score: float,
        summary: str,
        facts: dict[str, Any],
        **extra: Any,
    ) -> Finding:
        return Finding(
            detector=self.name,
            signal=series.signal,
            entity=series.entity,
            score=float(np.clip(score, 0.0, 1.0)),
            observed_at=from_epoch(series.timestamps[-1]) if len(series) else frame.now,
            evidence=Evidence(
                summary=summary, recent=recent_values(series), facts=facts, related=extra.pop("related", ())
            ),
            **extra,
        )
