"""Model quality drift: a quality gauge falling against its reference, abruptly or slowly.

Two tests run on each quality series (accuracy, or any gauge where ``bad_direction`` says which
way is worse):

* **relative change** – the median of the last ``recent_seconds`` against the median of the
  ``reference_seconds`` before it. A drop of ``drop_fraction`` (5 % by default, what users asked
  for) scores 0.9, the default critical threshold; larger drops approach 1.
* **CUSUM** – a one-sided cumulative sum of standardised drops beyond an allowance of half the
  threshold, so a slow drift that never shows 5 % in any one window still accumulates evidence.
  When it crosses ``cusum_h`` the score is 0.75 (a warning): the drift is real, not yet large.

* **trend forecast** – the early warning, as exhaustion gives resources: a line through the last
  ``trend_seconds`` says when the gauge reaches its floor (the static alert: ``drop_fraction``
  below the reference). The score is the probability that it gets there within
  ``horizon_seconds``, times the evidence that *both halves* of the window decline on their own
  (a level step, a noisy wobble or a dip that is already recovering is not a trend). A forecast
  is a warning at most and carries the predicted time; the CUSUM or the drop itself confirms it,
  and only an observed drop triggers the rollback (policy rule ``model-quality``).

The first two are gated by significance: a drop within the series' own noise does not count. The CUSUM
also dates the onset of a drift (the last time the sum was zero), which the evidence uses to line
the quality drop up with a business KPI of the same model ("conversion −12 % coincides with
accuracy −6 % since 14:20").

When the serving stack exports a histogram of predictions or features (cumulative ``le``
buckets), ``histogram_signals`` names them and the detector also reports distribution drift
between the reference and the recent window: PSI (≥ 0.25 is the usual "significant shift") and
the Kolmogorov–Smirnov distance of the binned distributions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import ndtri

from aiops.model import Entity, Evidence, Finding, Frame, Series, from_epoch
from aiops.plugins import DetectorParams
from detectors._isolation import isolated
from detectors._univariate import (
    IQR_TO_SIGMA,
    HistoryBuffer,
    UnivariateDetector,
    check_series,
    clip01,
    fmt_duration,
    normal_cdf,
    points_for,
    recent_values,
    row_median,
    tails,
    typical_step,
    typical_steps,
)

Direction = Literal["up", "down"]

# Score of a drop of exactly ``drop_fraction``: the policy's default critical threshold.
AT_THRESHOLD = 0.9
# Score when only the sequential test has fired: above the default warning threshold (0.7).
CUSUM_FIRED = 0.75
# Significance (in standard errors) a drop needs before it scores at all.
MIN_SIGNIFICANCE = 2.0
# PSI at which distribution drift scores AT_THRESHOLD (the customary "significant shift").
PSI_SIGNIFICANT = 0.25
# A forecast is a warning at most: it never outranks an observed drop (the CUSUM's 0.75).
FORECAST_MAX = 0.74


@dataclass(frozen=True)
class DriftTrace:
    score: np.ndarray
    reference: np.ndarray  # reference median at each point
    recent: np.ndarray  # recent median at each point
    change: np.ndarray  # signed relative change of recent vs reference (negative = lower)
    cusum: np.ndarray  # in units of cusum_h (>= 1: the sequential test fired)
    onset: np.ndarray  # index where the current run of the CUSUM started
    forecast: np.ndarray  # trend forecast score (<= FORECAST_MAX)
    lead: np.ndarray  # seconds until the forecast reaches the floor (inf: not heading there)
    floor: np.ndarray  # the level that counts as a failure: drop_fraction worse than the reference


class QualityDriftParams(DetectorParams):
    """The parameters of :class:`QualityDrift`, documented there."""

    drop_fraction: float = Field(default=0.05, gt=0, lt=1)  # 0.05 for 5 %
    reference_seconds: float = Field(default=86400.0, gt=0)
    recent_seconds: float = Field(default=900.0, gt=0)
    cusum_h: float = Field(default=5.0, gt=0)
    trend_seconds: float = Field(default=1800.0, gt=0)
    horizon_seconds: float = Field(default=7200.0, gt=0)
    direction: Direction | None = None
    kpi_signals: tuple[str, ...] = ("business_conversion_rate",)
    histogram_signals: tuple[str, ...] = ()


class QualityDrift(UnivariateDetector):
    """Finds model quality dropping against a reference window, and distribution drift.

    Parameters
    ----------
    drop_fraction:
        Relative drop that counts as a quality incident (0.05 = 5 %).
    reference_seconds, recent_seconds:
        The reference window (before the recent one) and the recent window compared with it.
    cusum_h:
        Decision interval of the CUSUM, in noise standard deviations.
    trend_seconds:
        Window of the trend forecast's line (default: two recent windows).
    horizon_seconds:
        How far ahead a forecast crossing of the floor counts (2 h, as for exhaustion).
    direction:
        "down" when lower is worse (accuracy), "up" when higher is worse (error rate). ``None``
        follows each signal's ``bad_direction`` in the daemon and means "down" in backtests.
    kpi_signals:
        Business KPIs of the same model to correlate in the evidence.
    histogram_signals:
        Signals whose series are cumulative histogram buckets (label ``le``) of model predictions
        or features, compared between the reference and the recent window (PSI, KS).
    """

    name: ClassVar[str] = "quality_drift"
    Params = QualityDriftParams
    params: QualityDriftParams
    default_signals: ClassVar[tuple[str, ...]] = ("model_accuracy",)

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        super().__init__(signals, **params)
        p = self.params
        self.drop_fraction = float(p.drop_fraction)
        self.reference_seconds = float(p.reference_seconds)
        self.recent_seconds = float(p.recent_seconds)
        self.cusum_h = float(p.cusum_h)
        self.trend_seconds = float(p.trend_seconds)
        self.horizon_seconds = float(p.horizon_seconds)
        self.direction = p.direction
        self.kpi_signals = tuple(p.kpi_signals)
        self.histogram_signals = tuple(p.histogram_signals)
        self._history = HistoryBuffer(self.reference_seconds + 2 * max(self.recent_seconds, self.trend_seconds))

    # ------------------------------------------------------------------ backtest contract
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.trace(timestamps, values, self.direction or "down").score

    def trace(self, timestamps: np.ndarray, values: np.ndarray, direction: Direction = "down") -> DriftTrace:
        t, y = check_series(timestamps, values)
        n = t.shape[0]
        step = typical_step(t)
        recent_n = points_for(self.recent_seconds, step)
        ref_n = points_for(self.reference_seconds, step, minimum=4)
        s = pd.Series(y)
        recent = s.rolling(recent_n, min_periods=1).median().to_numpy()
        recent_count = s.rolling(recent_n, min_periods=1).count().to_numpy()
        # The reference ends where the recent window starts, so a fresh drop is not in both.
        ref_roll = s.shift(recent_n).rolling(ref_n, min_periods=max(3, ref_n // 4))
        reference = ref_roll.median().to_numpy()
        noise = (ref_roll.quantile(0.75).to_numpy() - ref_roll.quantile(0.25).to_numpy()) * IQR_TO_SIGMA

        sign = -1.0 if direction == "down" else 1.0
        magnitude = np.abs(reference)
        change = (recent - reference) / np.where(magnitude > 0, magnitude, np.nan)
        worse = sign * change  # > 0 when quality got worse
        # A noise floor of a quarter of the threshold: a noise-free synthetic gauge stays sane.
        sigma = np.maximum(noise, self.drop_fraction * magnitude / 4.0)
        significance = sign * (recent - reference) / (1.2533 * sigma / np.sqrt(np.maximum(recent_count, 1.0)))
        gate = normal_cdf(significance - MIN_SIGNIFICANCE)

        f = worse / self.drop_fraction
        magnitude_score = AT_THRESHOLD * np.clip(f, 0.0, 1.0) ** 2 + (1.0 - AT_THRESHOLD) * np.clip(f - 1.0, 0.0, 1.0)

        # One-sided CUSUM of standardised per-point drops, allowance = half the threshold.
        u = sign * (y - reference) / sigma
        allowance = 0.5 * self.drop_fraction * magnitude / sigma
        d = np.nan_to_num(u - allowance, nan=0.0)
        csum = np.concatenate([[0.0], np.cumsum(d)])
        # Lindley recursion S_t = max(0, S_{t-1} + d_t), vectorised: C_t - min_{s<=t} C_s.
        run_min = np.minimum.accumulate(csum)
        cusum = (csum - run_min)[1:] / self.cusum_h
        at_min = np.where(csum == run_min, np.arange(n + 1), 0)
        onset = np.minimum(np.maximum.accumulate(at_min)[1:], n - 1) if n else np.zeros(0, dtype=np.int64)
        cusum_score = np.where(cusum >= 1.0, CUSUM_FIRED, CUSUM_FIRED * 0.8 * np.clip(cusum, 0.0, 1.0))

        floor = sign * reference + self.drop_fraction * magnitude  # in "worse is higher" units
        # Absurd values (1e300) overflow to inf/NaN in the line's sums, which score 0.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            forecast, lead = self._forecast(t, sign * y, floor, noise, step)
        score = np.fmax(np.fmax(magnitude_score, cusum_score) * gate, forecast)
        score = clip01(score)
        score[np.isnan(y)] = 0.0
        forecast[np.isnan(y)] = 0.0
        return DriftTrace(score, reference, recent, change, cusum, onset.astype(np.int64), forecast, lead, sign * floor)

    def _forecast(
        self, t: np.ndarray, worse: np.ndarray, floor: np.ndarray, noise: np.ndarray, step: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Trend forecast at every point: (score, seconds until the floor), from data at or before it.

        ``worse`` rises as quality gets worse and ``floor`` is where it fails, in the same units.
        A least-squares line over the window gives the level now and the slope with their standard
        errors; the noise is the line's residual spread, at least the reference's own. The score
        is P(line reaches the floor within the horizon) times, for each half of the window,
        Phi(t - 2) of its own slope: the decline must show in both halves on its own. A level step
        leaves one half flat, and noise rarely gives two significant slopes in a row. The price:
        each 15-minute half must decline by about three standard errors (a drift of about 3 %/h
        at 0.2 % noise on one-minute samples); a slower or noisier drift is left to the CUSUM.
        """
        n = points_for(self.trend_seconds, step, minimum=6)
        half = n // 2
        x = (t - (t[0] if t.shape[0] else 0.0)) / 3600.0  # hours: well-conditioned sums
        whole = _rolling_line(x, worse, n, minimum=max(4, n // 2))
        later = _rolling_line(x, worse, half, minimum=max(3, half // 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(np.fmax(whole.residual_var, np.nan_to_num(noise, nan=0.0) ** 2))
            sigma = np.fmax(sigma, 1e-9 * np.abs(floor))
            t_later = later.slope * np.sqrt(later.sxx) / sigma
            earlier_slope, earlier_sxx = _shifted(later.slope, half), _shifted(later.sxx, half)
            t_earlier = earlier_slope * np.sqrt(earlier_sxx) / sigma
            consistent = normal_cdf(t_earlier - MIN_SIGNIFICANCE) * normal_cdf(t_later - MIN_SIGNIFICANCE)
            since_centre = x - whole.xbar
            level = whole.ybar + whole.slope * since_centre
            horizon = self.horizon_seconds / 3600.0
            sd = sigma * np.sqrt(1.0 / whole.count + (since_centre**2 + horizon**2) / whole.sxx)
            reach = normal_cdf((level + whole.slope * horizon - floor) / sd)
            lead = np.where((whole.slope > 0) & (level < floor), (floor - level) / whole.slope * 3600.0, np.inf)
        score = np.fmin(np.nan_to_num(reach * consistent, nan=0.0), FORECAST_MAX)
        # A forecast stands for half a window once made: a few minutes of weaker evidence (noise
        # in the halves' slopes) do not retract it and send people "resolved, firing, resolved".
        # It keeps the predicted time it was made with.
        if score.shape[0] and half > 1:
            padded = np.concatenate([np.zeros(half - 1), score])
            windows = np.lib.stride_tricks.sliding_window_view(padded, half)
            # The latest point holding the window's maximum (argmax of the reversed window).
            back = np.argmax(windows[:, ::-1], axis=1)
            source = np.arange(score.shape[0]) - back
            at = t[source] + lead[source]
            score, lead = score[source], at - t
        return score, lead

    # ------------------------------------------------------------------ daemon contract
    def detect(self, frame: Frame) -> list[Finding]:
        self._history.retain(frame, self.signals + self.kpi_signals)
        # KPIs are compared only when a finding is explained; their history accrues every cycle.
        for signal in self.kpi_signals:
            for kpi in frame.of(signal):
                self._history.merge(kpi)
        findings = super().detect(frame)
        for signal in self.histogram_signals:
            if signal not in frame.missing_signals:
                findings.extend(f for f in self._histogram_drift(frame, signal) if f.score >= self.report_floor)
        return findings

    def screen(self, frame: Frame, signal: str, series: list[Series]) -> list[Series]:
        """Series whose drop could be significant enough to score ``report_floor``; the rest are skipped.

        An exact bound, not a heuristic. Both the magnitude and the CUSUM score (at most 1) are
        multiplied by the significance gate ``Phi(significance - 2)``, so a score of
        ``report_floor`` needs ``significance >= 2 + Phi^-1(report_floor)``. The significance
        is the recent median's change towards "worse" over ``1.2533 * sigma / sqrt(n)``, and
        ``sigma`` is at least a quarter of the threshold times the reference level, which bounds
        it from above with two medians per series (vectorised). Every series' history is still
        merged, so the reference keeps accumulating while it is quiet.
        """
        histories = [self._history.merge(s) for s in series]
        if self.report_floor <= 0.0 or not series:
            return series
        needed = MIN_SIGNIFICANCE + float(ndtri(min(self.report_floor, 1.0)))
        sign = -1.0 if self._direction(frame, signal) == "down" else 1.0
        steps = typical_steps([t for t, _ in histories])
        recent_ns = np.array([points_for(self.recent_seconds, st) for st in steps])
        ref_ns = np.array([points_for(self.reference_seconds, st, minimum=4) for st in steps])
        trend_ns = np.array([points_for(self.trend_seconds, st, minimum=6) for st in steps])
        # The forecast is not gated by the drop's significance. A half of its window whose slope
        # is not towards "worse" caps it at FORECAST_MAX * Phi(-2), whatever the noise: below that
        # floor, a series needs both halves declining at some point of the hold to be kept.
        forecast_bound = self.report_floor > FORECAST_MAX * float(normal_cdf(-MIN_SIGNIFICANCE))
        keep = np.zeros(len(series), dtype=bool)
        for recent_n, ref_n, trend_n in {(int(a), int(b), int(c)) for a, b, c in zip(recent_ns, ref_ns, trend_ns)}:
            rows = np.flatnonzero((recent_ns == recent_n) & (ref_ns == ref_n) & (trend_ns == trend_n))
            keep[rows] = (not forecast_bound) | _declining_halves(
                [histories[r][0] for r in rows], [sign * histories[r][1] for r in rows], trend_n // 2
            )
            y = tails([histories[r][1] for r in rows], ref_n + recent_n)
            reference = row_median(y[:, :ref_n], max(3, ref_n // 4))
            recent = row_median(y[:, ref_n:], 1)
            count = np.sum(~np.isnan(y[:, ref_n:]), axis=1)
            floor = 1.2533 * (self.drop_fraction * np.abs(reference) / 4.0) / np.sqrt(np.maximum(count, 1))
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = sign * (recent - reference) / floor
            # No reference yet: nothing to say. A zero reference has no floor: score it fully.
            keep[rows] |= np.isfinite(reference) & ((floor == 0) | (bound >= needed - 1e-9))
        return [s for s, k in zip(series, keep) if k]

    def _direction(self, frame: Frame, signal: str) -> Direction:
        if self.direction:
            return self.direction
        info = frame.signals.get(signal)
        return "up" if info is not None and info.bad_direction == "up" else "down"

    def explain(self, frame: Frame, series: Series) -> Finding | None:
        t, y = self._history.merge(series)
        tr = self.trace(t, y, self._direction(frame, series.signal))
        i = t.shape[0] - 1
        if not np.isfinite(tr.reference[i]):
            return None  # not enough reference history yet
        since = from_epoch(t[int(tr.onset[i])])
        change = float(tr.change[i])
        summary = (
            f"{series.signal} {change * 100:+.1f} % vs the previous {fmt_duration(self.reference_seconds)} "
            f"({tr.reference[i]:.4g} → {tr.recent[i]:.4g}) since {since:%H:%M} UTC"
        )
        facts: dict[str, object] = {
            "reference": float(tr.reference[i]),
            "recent": float(tr.recent[i]),
            "relative_change": change,
            "drop_threshold": self.drop_fraction,
            "floor": float(tr.floor[i]),
            "cusum": float(tr.cusum[i]),
            "since": since.isoformat(),
        }
        predicted: datetime | None = None
        # A forecast that outranks the observed tests is what this finding is: it carries the
        # predicted time (policy acts on observed drops only). Once the drop is observed, the
        # forecast is context in the summary.
        if tr.forecast[i] > 0 and np.isfinite(tr.lead[i]) and tr.lead[i] > 0:
            at = from_epoch(t[i] + float(tr.lead[i]))
            summary += f"; heading for its floor {tr.floor[i]:.4g} by {at:%H:%M} UTC"
            facts["forecast"] = float(tr.forecast[i])
            if tr.forecast[i] >= tr.score[i]:
                predicted = at
        related: list[str] = []
        for kpi in self._kpis(frame, series.entity):
            kt, ky = self._history.merge(kpi)
            kpi_change = self._change_since(kt, ky, since)
            if kpi_change is None:
                continue
            summary += f"; {kpi.signal} {kpi_change * 100:+.0f} % coincides with {series.signal} {change * 100:+.0f} % since {since:%H:%M}"
            facts[f"{kpi.signal}_relative_change"] = kpi_change
            related.append(f"{kpi.signal}{{{','.join(f'{k}={v}' for k, v in sorted(kpi.labels.items()))}}}")
        return self.finding(
            frame, series, float(tr.score[i]), summary, facts, related=tuple(related), predicted_failure_at=predicted
        )

    def _kpis(self, frame: Frame, entity: Entity) -> list[Series]:
        return [s for sig in self.kpi_signals for s in frame.of(sig) if s.entity == entity and len(s)]

    def _change_since(self, t: np.ndarray, y: np.ndarray, since: datetime) -> float | None:
        """Relative change of the KPI: recent median vs the reference median before ``since``."""
        if t.shape[0] == 0:
            return None
        cut = since.timestamp()
        before = y[(t < cut) & (t >= cut - self.reference_seconds)]
        after = y[t >= max(cut, t[-1] - self.recent_seconds)]
        before, after = before[~np.isnan(before)], after[~np.isnan(after)]
        if before.shape[0] < 3 or after.shape[0] == 0:
            return None
        ref = float(np.median(before))
        return (float(np.median(after)) - ref) / abs(ref) if ref else None

    # ------------------------------------------------------------------ histogram drift
    def _histogram_drift(self, frame: Frame, signal: str) -> list[Finding]:
        buckets: dict[Entity, list[Series]] = {}
        for s in frame.of(signal):
            if "le" in s.labels:
                buckets.setdefault(s.entity, []).append(s)
        found = (isolated(self.name, entity, self._entity_histogram_drift, signal, entity, series) for entity, series in buckets.items())
        return [f for f in found if f is not None]

    def _entity_histogram_drift(self, signal: str, entity: Entity, series: list[Series]) -> Finding | None:
        ref, cur = self._bucket_counts(series)
        if ref is None or cur is None:
            return None
        psi_value, ks = psi(ref, cur), ks_distance(ref, cur)
        score = float(
            AT_THRESHOLD * min(1.0, psi_value / PSI_SIGNIFICANT) ** 2
            + (1 - AT_THRESHOLD) * min(1.0, max(0.0, psi_value / PSI_SIGNIFICANT - 1))
        )
        last = max(float(s.timestamps[-1]) for s in series if len(s))
        return Finding(
            detector=self.name,
            signal=signal,
            entity=entity,
            score=score,
            observed_at=from_epoch(last),
            evidence=Evidence(
                summary=(
                    f"{signal} distribution shifted: PSI {psi_value:.3f}, KS {ks:.3f} "
                    f"(last {fmt_duration(self.recent_seconds)} vs the {fmt_duration(self.reference_seconds)} before)"
                ),
                recent=recent_values(series[0]),
                facts={"psi": psi_value, "ks": ks, "buckets": len(series), "psi_significant": PSI_SIGNIFICANT},
            ),
        )

    def _bucket_counts(self, series: list[Series]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per-bucket (non-cumulative) observation counts in the reference and the recent window."""
        ordered = sorted(series, key=lambda s: _le(s.labels["le"]))
        end = max(float(s.timestamps[-1]) for s in ordered if len(s))
        split, start = end - self.recent_seconds, end - self.recent_seconds - self.reference_seconds
        ref_cum, cur_cum = [], []
        for s in ordered:
            ref_cum.append(_increase(s.timestamps, s.values, start, split))
            cur_cum.append(_increase(s.timestamps, s.values, split, end))
        ref, cur = np.diff(np.array(ref_cum), prepend=0.0), np.diff(np.array(cur_cum), prepend=0.0)
        if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(cur))) or ref.sum() <= 0 or cur.sum() <= 0:
            return None, None
        return np.maximum(ref, 0.0), np.maximum(cur, 0.0)


def _le(value: str) -> float:
    return math.inf if value in ("+Inf", "Inf", "inf") else float(value)


def _increase(t: np.ndarray, v: np.ndarray, start: float, end: float) -> float:
    """Counter increase within [start, end], summing across counter resets (as PromQL does)."""
    m = (t >= start) & (t <= end) & ~np.isnan(v)
    x = v[m]
    if x.shape[0] < 2:
        return math.nan
    d = np.diff(x)
    # After a reset the counter restarts from 0: the new value is the increase.
    return float(np.where(d >= 0, d, x[1:]).sum())


def psi(reference: np.ndarray, current: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index between two binned distributions (counts or shares)."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two binned cumulative distributions (two-sample KS statistic)."""
    p = np.cumsum(reference) / np.sum(reference)
    q = np.cumsum(current) / np.sum(current)
    return float(np.max(np.abs(p - q)))


@dataclass(frozen=True)
class _Line:
    """Least-squares line over a trailing window at every point (NaN where too few points)."""

    count: np.ndarray
    xbar: np.ndarray
    ybar: np.ndarray
    sxx: np.ndarray
    slope: np.ndarray
    residual_var: np.ndarray


def _rolling_line(x: np.ndarray, y: np.ndarray, n: int, *, minimum: int) -> _Line:
    valid = ~np.isnan(y)
    frame = pd.DataFrame({
        "n": valid.astype(np.float64), "x": np.where(valid, x, 0.0), "y": np.where(valid, y, 0.0),
    })
    frame["xx"], frame["xy"], frame["yy"] = frame.x * frame.x, frame.x * frame.y, frame.y * frame.y
    sums = frame.rolling(n, min_periods=1).sum()
    count = sums["n"].to_numpy()
    count = np.where(count >= minimum, count, np.nan)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xbar, ybar = sums["x"].to_numpy() / count, sums["y"].to_numpy() / count
        sxx = np.fmax(sums["xx"].to_numpy() - count * xbar * xbar, 0.0)
        sxy = sums["xy"].to_numpy() - count * xbar * ybar
        syy = np.fmax(sums["yy"].to_numpy() - count * ybar * ybar, 0.0)
        slope = np.where(sxx > 0, sxy / sxx, np.nan)
        residual_var = np.fmax(syy - slope * sxy, 0.0) / np.fmax(count - 2.0, 1.0)
    return _Line(count, xbar, ybar, sxx, slope, residual_var)


def _shifted(a: np.ndarray, k: int) -> np.ndarray:
    """``a`` as it was ``k`` points earlier (NaN before the start)."""
    out = np.full(a.shape[0], np.nan)
    if 0 < k < a.shape[0]:
        out[k:] = a[:-k]
    elif k == 0:
        out[:] = a
    return out


def _declining_halves(times: Sequence[np.ndarray], worse: Sequence[np.ndarray], half: int) -> np.ndarray:
    """Per series: whether, at one of its last ``half`` points, the least-squares slopes of both
    halves of the trend window before it point towards "worse" (vectorised over series)."""
    k = 3 * half - 1  # the earlier half, the later half, and the hold
    t, y = tails(list(times), k), tails(list(worse), k)
    valid = ~np.isnan(t) & ~np.isnan(y)
    x = np.where(valid, (t - np.nanmax(t, axis=1, initial=-np.inf, keepdims=True)) / 3600.0, 0.0)
    y = np.where(valid, y, 0.0)

    def window_sums(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)
        return c[:, half:] - c[:, :-half]  # sums over each window of ``half`` points

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # absurd values: no slope
        n, sx, sy = window_sums(valid.astype(np.float64)), window_sums(x), window_sums(y)
        sxx, sxy = window_sums(x * x), window_sums(x * y)
        slope = (sxy - sx * sy / n) / (sxx - sx * sx / n)
    up = np.nan_to_num(slope, nan=0.0) > 0  # windows ending at points half-1 .. k-1
    return np.any(up[:, half:] & up[:, :-half], axis=1)
