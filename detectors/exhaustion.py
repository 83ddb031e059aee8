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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import numpy as np

from aiops.model import Finding, Frame, Series, from_epoch
from detectors._univariate import (
    IQR_TO_SIGMA,
    UnivariateDetector,
    check_series,
    clip01,
    fmt_duration,
    grouped_rolling,
    normal_sf,
    points_for,
    segment_ids,
    typical_step,
)

# Standard error of a median relative to that of a mean, for normal noise: sqrt(pi / 2).
MEDIAN_EFFICIENCY = 1.2533
# One-sided 95 % normal quantile: the failure interval is a 90 % interval.
Z_INTERVAL = 1.645


@dataclass(frozen=True)
class ExhaustionTrace:
    """Per-point forecast of one series; every array has the length of the input."""

    score: np.ndarray  # P(value reaches capacity within the horizon)
    slope: np.ndarray  # units per second
    slope_sigma: np.ndarray
    level: np.ndarray  # trend value at each point's own time
    noise_sigma: np.ndarray  # point-to-point noise around the trend
    segment: np.ndarray  # stretch id (changes at resets, drops, steps and long gaps)


class ExhaustionForecast(UnivariateDetector):
    """Predicts when a resource with a hard limit (``SignalInfo.capacity``) will run out.

    Parameters
    ----------
    horizon_seconds:
        How far ahead a crossing counts. The score is the probability of reaching capacity
        within it; 1 h by default (what the daemon's remediations need to act in time).
    window_seconds:
        History used for the trend at each point. Shorter reacts faster, longer is steadier.
    jump_fraction:
        A change between consecutive samples larger than this fraction of capacity starts a new
        stretch (container restart, GC, counter reset, level step), so the trend never spans it.
    max_gap_seconds:
        A gap in the data longer than this starts a new stretch too (default: half the window).
    capacity:
        Only for :meth:`score_series` (backtests); the daemon uses each signal's catalog capacity.
    max_lead_seconds:
        Upper bound reported for a failure interval whose slope might be zero.
    """

    name: ClassVar[str] = "exhaustion"
    default_signals: ClassVar[tuple[str, ...]] = (
        "pod_memory_usage_ratio",
        "node_memory_usage_ratio",
        "node_filesystem_usage_ratio",
        "gpu_memory_usage_ratio",
        "inference_kv_cache_usage",
    )

    def __init__(
        self,
        signals: Sequence[str] | None = None,
        report_floor: float = 0.5,
        *,
        horizon_seconds: float = 3600.0,
        window_seconds: float = 3600.0,
        jump_fraction: float = 0.1,
        max_gap_seconds: float | None = None,
        capacity: float = 1.0,
        max_lead_seconds: float = 7 * 86400.0,
    ) -> None:
        super().__init__(signals=signals, report_floor=report_floor)
        for pname, value in (("horizon_seconds", horizon_seconds), ("window_seconds", window_seconds)):
            if not value > 0:
                raise ValueError(f"{pname} must be positive, got {value!r}")
        if not 0 < jump_fraction <= 1:
            raise ValueError(f"jump_fraction must be in (0, 1], got {jump_fraction!r}")
        self.horizon_seconds = float(horizon_seconds)
        self.window_seconds = float(window_seconds)
        self.jump_fraction = float(jump_fraction)
        self.max_gap_seconds = float(max_gap_seconds) if max_gap_seconds is not None else self.window_seconds / 2
        self.capacity = float(capacity)
        self.max_lead_seconds = float(max_lead_seconds)

    # ------------------------------------------------------------------ backtest contract
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.trace(timestamps, values, self.capacity).score

    def trace(self, timestamps: np.ndarray, values: np.ndarray, capacity: float) -> ExhaustionTrace:
        """The forecast at every point, each from data at or before it."""
        t, y = check_series(timestamps, values)
        n = t.shape[0]
        step = typical_step(t)
        window = points_for(self.window_seconds, step, minimum=4)
        lag = max(1, window // 2)
        seg = segment_ids(
            t, y, max_jump=self.jump_fraction * max(abs(capacity), 1e-12), max_gap_seconds=max(self.max_gap_seconds, 2 * step)
        )

        # Slopes between pairs half a window apart, within one stretch and both ends valid.
        pair_slope = np.full(n, np.nan)
        if n > lag:
            dt = t[lag:] - t[:-lag]
            same = (seg[lag:] == seg[:-lag]) & ~np.isnan(y[lag:]) & ~np.isnan(y[:-lag]) & (dt > 0)
            pair_slope[lag:] = np.where(same, (y[lag:] - y[:-lag]) / np.where(dt > 0, dt, 1.0), np.nan)
        min_pairs = max(2, lag // 3)
        slope = grouped_rolling(pair_slope, seg, lag, min_pairs, "median")
        q75 = grouped_rolling(pair_slope, seg, lag, min_pairs, "quantile", 0.75)
        q25 = grouped_rolling(pair_slope, seg, lag, min_pairs, "quantile", 0.25)
        n_pairs = grouped_rolling(pair_slope, seg, lag, 1, "count")
        pair_sigma = (q75 - q25) * IQR_TO_SIGMA
        slope_sigma = MEDIAN_EFFICIENCY * pair_sigma / np.sqrt(np.maximum(n_pairs, 1.0))
        # A pair difference carries the noise of two points: sigma_pair * dt_pair = sqrt(2) * sigma.
        noise_sigma = pair_sigma * lag * step / math.sqrt(2.0)

        # Trend level: the median of the recent half window sits at its median time.
        t_valid = np.where(np.isnan(y), np.nan, t)
        med_y = grouped_rolling(y, seg, lag, 1, "median")
        med_t = grouped_rolling(t_valid, seg, lag, 1, "median")
        n_level = grouped_rolling(y, seg, lag, 1, "count")
        since_centre = t - med_t
        level = med_y + slope * since_centre

        # Predictive distribution of the value one horizon ahead.
        ahead = since_centre + self.horizon_seconds
        floor = 1e-9 * max(abs(capacity), 1.0)
        var = (
            (MEDIAN_EFFICIENCY * noise_sigma) ** 2 / np.maximum(n_level, 1.0)
            + (ahead * slope_sigma) ** 2
            + noise_sigma**2
            + floor**2
        )
        mean_ahead = level + slope * self.horizon_seconds
        score = normal_sf((capacity - mean_ahead) / np.sqrt(var))
        # At or past the wall already: nothing left to predict.
        score = np.where(y >= capacity, 1.0, score)
        score = clip01(score)
        score[np.isnan(y)] = 0.0
        return ExhaustionTrace(score, slope, slope_sigma, level, noise_sigma, seg)

    # ------------------------------------------------------------------ daemon contract
    def applies_to(self, frame: Frame, signal: str) -> bool:
        info = frame.signals.get(signal)
        return info is not None and info.capacity is not None

    def explain(self, frame: Frame, series: Series) -> Finding | None:
        info = frame.signals[series.signal]
        capacity = float(info.capacity)  # type: ignore[arg-type]  # applies_to checked it
        tr = self.trace(series.timestamps, series.values, capacity)
        i = len(series) - 1
        now = float(series.timestamps[i])
        value = float(series.values[i])
        score = float(tr.score[i])
        slope, s_sigma, level, noise = (float(a[i]) for a in (tr.slope, tr.slope_sigma, tr.level, tr.noise_sigma))
        facts: dict[str, object] = {
            "value": value,
            "capacity": capacity,
            "horizon_seconds": self.horizon_seconds,
            "probability_within_horizon": round(score, 4),
        }
        unit = f" {info.unit}" if info.unit else ""
        if value >= capacity:
            return self.finding(
                frame,
                series,
                1.0,
                f"{series.signal} is at its limit: {value:.3g}{unit} of {capacity:.3g}",
                facts,
                predicted_failure_at=from_epoch(now),
                failure_interval=(from_epoch(now), from_epoch(now)),
            )
        if not math.isfinite(slope) or slope <= 0:
            # Warming up after a reset, or not growing: nothing to forecast.
            return self.finding(frame, series, score, f"{series.signal} is not growing ({value:.3g}{unit})", facts)
        headroom = capacity - level
        lead = max(0.0, headroom / slope)
        fast = slope + Z_INTERVAL * s_sigma
        slow = slope - Z_INTERVAL * s_sigma
        earliest = max(0.0, (headroom - Z_INTERVAL * noise) / fast)
        latest = min(self.max_lead_seconds, (headroom + Z_INTERVAL * noise) / slow) if slow > 0 else self.max_lead_seconds
        latest = max(latest, lead)
        start = int(np.flatnonzero(tr.segment == tr.segment[i])[0])
        facts |= {
            "slope_per_hour": slope * 3600.0,
            "slope_sigma_per_hour": s_sigma * 3600.0,
            "trend_level": level,
            "noise_sigma": noise,
            "lead_time_seconds": lead,
            "fit_since": from_epoch(series.timestamps[start]).isoformat(),
        }
        summary = (
            f"{series.signal} at {value:.3g}{unit} of {capacity:.3g}, growing {slope * 3600:+.3g}{unit}/h: "
            f"reaches the limit in ~{fmt_duration(lead)} (90 % interval {fmt_duration(earliest)}–{fmt_duration(latest)})"
        )
        return self.finding(
            frame,
            series,
            score,
            summary,
            facts,
            predicted_failure_at=from_epoch(now) + timedelta(seconds=lead),
            failure_interval=(from_epoch(now) + timedelta(seconds=earliest), from_epoch(now) + timedelta(seconds=latest)),
        )
