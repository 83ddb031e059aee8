"""Per-series state of :class:`~detectors.quality_drift.QualityDrift` in the daemon: state in, state out.

``QualityDrift.trace`` derives every statistic over a series' whole history: right for a backtest,
but in the daemon each cycle adds a point or two per series, and re-tracing a day of history every
minute (two rolling medians, two rolling quantiles and three rolling lines per point) was most of
the detector's cost. Of what the newest score depends on, only two parts are sequential:

* the **CUSUM**, a Lindley recursion ``S_t = max(0, S_{t-1} + d_t)`` whose run start dates the
  onset of a drift;
* the **forecast's hold**: the strongest forecast of the last half trend window, with the
  predicted time it was made with.

Everything else (the reference and recent medians, the noise, the trend lines) is a window
statistic that can be computed at the new points alone from the history. A :class:`DriftState`
holds the two sequential parts and the newest point's figures; :func:`cusum_step` and
:func:`held` advance them from new points only, exactly as the trace's vectorised forms do over
the whole history (tested against it). The state lives in memory: after a restart, one trace of
the day before the first frame that the detector learnt from Prometheus, and of the frame, seeds
it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Newest:
    """What a finding is built from: the figures of the newest scored point."""

    t: float
    score: float
    reference: float
    recent: float
    change: float
    cusum: float  # in units of cusum_h
    onset_t: float  # when the current run of the CUSUM started
    forecast: float
    lead: float  # seconds until the forecast reaches the floor (inf: not heading there)
    floor: float


@dataclass(frozen=True)
class DriftState:
    """The sequential part of one series' scoring, and its newest point.

    ``cusum`` is the raw sum (not divided by ``cusum_h``); ``onset_t`` is the time of the first
    point of its current run, ``inf`` while the run starts at the next point (the sum is zero).
    ``hold`` holds (raw forecast score, predicted time) of the last ``half - 1`` points, oldest
    first. ``origin`` is the time the trend lines' abscissa counts from, ``step`` the sampling
    interval the windows were sized for and ``sign`` the direction (-1: lower is worse).
    """

    step: float
    sign: float
    origin: float
    cusum: float
    onset_t: float
    hold: tuple[tuple[float, float], ...]
    last: Newest


def cusum_step(s: float, onset_t: float, d: float, t: float) -> tuple[float, float, float]:
    """One point of the CUSUM: (new sum, its run's onset time, the onset to report at ``t``).

    ``d`` is the point's standardised excess (NaN counts as 0, as in the trace). A sum that
    returns to zero starts a new run at the next point; until there is one, the point itself is
    reported (the trace clips the onset index to the last point the same way).
    """
    if math.isnan(d):
        d = 0.0
    total = s + d
    if total <= 0.0:
        return 0.0, math.inf, t
    onset = t if math.isinf(onset_t) else onset_t
    return total, onset, onset


def held(
    hold: tuple[tuple[float, float], ...], score: float, at: float, size: int
) -> tuple[float, float, tuple[tuple[float, float], ...]]:
    """The forecast held over the last ``size`` points: (score, predicted time, the new hold).

    The strongest of the window; of equal ones the latest, with the predicted time it was made
    with (what the trace's sliding-window argmax picks).
    """
    window = (*hold, (score, at))
    best_score, best_at = window[-1]
    for s, a in reversed(window[:-1]):
        if s > best_score:
            best_score, best_at = s, a
    keep = window[len(window) - (size - 1):] if size > 1 else ()
    return best_score, best_at, keep
