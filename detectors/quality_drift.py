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
accuracy −6 % since 14:20"; a KPI that moved less than its own noise "holds"). A forecast trend is confirmed as an observed drop once the recent
median is significantly worse than the reference while the line still heads for the floor, so
the rollback suggestion follows the warning instead of waiting for the CUSUM's allowance.

In the daemon, each series' CUSUM and forecast hold are kept as state
(:mod:`detectors._drift_state`) and only the points a cycle adds are scored: the same figures as
:meth:`QualityDrift.trace` over the whole series, which the backtest runs (tested). A new or
restarted daemon learns the reference day before its first frame from Prometheus, so it warns
when one that ran all along would.

When the serving stack exports a histogram of predictions or features (cumulative ``le``
buckets), ``histogram_signals`` names them and the detector also reports distribution drift
between the reference and the recent window: PSI (≥ 0.25 is the usual "significant shift") and
the Kolmogorov–Smirnov distance of the binned distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from aiops.model import Entity, Evidence, Finding, Frame, Series, SignalInfo, from_epoch
from aiops.plugins import DetectorParams, HistoryWanted
from detectors._drift_state import DriftState, Newest, cusum_step, held
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
    typical_step,
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
    observed: np.ndarray  # the score of the observed drop alone (magnitude or CUSUM), without the forecast


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
        self._states: dict[object, DriftState] = {}

    # ------------------------------------------------------------------ backtest contract
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.trace(timestamps, values, self.direction or "down").score

    def spans(self, step: float) -> _Spans:
        """The windows in samples at sampling interval ``step``."""
        n = points_for(self.trend_seconds, step, minimum=6)
        return _Spans(
            recent=points_for(self.recent_seconds, step),
            reference=points_for(self.reference_seconds, step, minimum=4),
            trend=n,
            half=n // 2,
        )

    def trace(self, timestamps: np.ndarray, values: np.ndarray, direction: Direction = "down") -> DriftTrace:
        return self._trace(timestamps, values, direction)[0]

    def _trace(
        self, timestamps: np.ndarray, values: np.ndarray, direction: Direction
    ) -> tuple[DriftTrace, DriftState | None]:
        """The trace at every point, and the state the daemon continues from after the last one."""
        t, y = check_series(timestamps, values)
        n = t.shape[0]
        step = typical_step(t)
        sp = self.spans(step)
        sign = -1.0 if direction == "down" else 1.0
        origin = float(t[0]) if n else 0.0
        x = (t - origin) / 3600.0  # hours: well-conditioned sums
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pt = self._pointwise(y, x, _windows_all(y, sign * y, x, sp), sign)
        # One-sided CUSUM, Lindley recursion S_t = max(0, S_{t-1} + d_t), vectorised:
        # C_t - min_{s<=t} C_s (the daemon's DriftState runs the recursion itself).
        csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(pt.d, nan=0.0))])
        run_min = np.minimum.accumulate(csum)
        raw_cusum = (csum - run_min)[1:]
        at_min = np.where(csum == run_min, np.arange(n + 1), 0)
        # A run that starts at the next point is dated at the point itself (never in its future).
        onset = np.minimum(np.maximum.accumulate(at_min)[1:], np.arange(n))
        forecast, lead = _hold(t, pt.forecast, pt.lead, sp.half)
        score, observed = self._combine(y, pt, raw_cusum / self.cusum_h, forecast)
        forecast[np.isnan(y)] = 0.0
        trace = DriftTrace(
            score, pt.reference, pt.recent, pt.change, raw_cusum / self.cusum_h, onset.astype(np.int64),
            forecast, lead, sign * pt.floor, observed,
        )
        if n == 0:
            return trace, None
        # The state after the last point: the CUSUM's run starts at the next point while it is 0.
        run_onset = math.inf if at_min[n] == n else float(t[int(onset[-1])])
        keep = max(0, sp.half - 1) if sp.half > 1 else 0
        hold = tuple(zip(pt.forecast[n - keep:].tolist(), (t + pt.lead)[n - keep:].tolist())) if keep else ()
        state = DriftState(
            step=step, sign=sign, origin=origin, cusum=float(raw_cusum[-1]), onset_t=run_onset, hold=hold,
            last=_newest(trace, t, n - 1),
        )
        return trace, state

    def _combine(
        self, y: np.ndarray, pt: _Pointwise, cusum: np.ndarray, forecast: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score, observed score) from the pointwise figures, the CUSUM and the held forecast."""
        cusum_score = np.where(cusum >= 1.0, CUSUM_FIRED, CUSUM_FIRED * 0.8 * np.clip(cusum, 0.0, 1.0))
        # A trend is confirmed as a drop when the level test agrees with the forecast: the recent
        # median is significantly worse than the reference (the gate) while the line heads for the
        # floor. Two tests on different evidence (the level, the slope) must both hold, so the
        # rollback suggestion follows the warning without waiting for the CUSUM's 2.5 % allowance.
        confirmed = CUSUM_FIRED * np.nan_to_num(forecast / FORECAST_MAX, nan=0.0)
        observed = np.nan_to_num(
            clip01(np.fmax(np.fmax(pt.magnitude, cusum_score), confirmed) * pt.gate), nan=0.0
        )
        score = clip01(np.fmax(observed, forecast))
        missing = np.isnan(y)
        score[missing] = 0.0
        observed[missing] = 0.0
        return score, observed

    def _pointwise(self, y: np.ndarray, x: np.ndarray, w: _Windows, sign: float) -> _Pointwise:
        """Everything but the CUSUM's recursion and the forecast's hold, at the points of ``w``."""
        reference, recent = w.reference, w.recent
        magnitude = np.abs(reference)
        change = (recent - reference) / np.where(magnitude > 0, magnitude, np.nan)
        worse = sign * change  # > 0 when quality got worse
        # A noise floor of a quarter of the threshold: a noise-free synthetic gauge stays sane.
        sigma = np.maximum(w.noise, self.drop_fraction * magnitude / 4.0)
        significance = sign * (recent - reference) / (1.2533 * sigma / np.sqrt(np.maximum(w.recent_count, 1.0)))
        gate = normal_cdf(significance - MIN_SIGNIFICANCE)
        f = worse / self.drop_fraction
        magnitude_score = AT_THRESHOLD * np.clip(f, 0.0, 1.0) ** 2 + (1.0 - AT_THRESHOLD) * np.clip(f - 1.0, 0.0, 1.0)
        # The CUSUM's standardised per-point drops, allowance = half the threshold.
        u = sign * (y - reference) / sigma
        d = u - 0.5 * self.drop_fraction * magnitude / sigma
        floor = sign * reference + self.drop_fraction * magnitude  # in "worse is higher" units
        # Absurd values (1e300) overflow to inf/NaN in the line's sums, which score 0.
        forecast, lead = self._forecast(x, floor, w)
        return _Pointwise(reference, recent, change, gate, magnitude_score, d, forecast, lead, floor)

    def _forecast(self, x: np.ndarray, floor: np.ndarray, w: _Windows) -> tuple[np.ndarray, np.ndarray]:
        """Trend forecast at each point, before the hold: (score, seconds until the floor).

        A least-squares line over the trend window (of ``worse``, which rises as quality gets
        worse; ``floor`` is where it fails, in the same units) gives the level now and the slope
        with their standard errors; the noise is the line's residual spread, at least the
        reference's own. The score is P(line reaches the floor within the horizon) times, for
        each half of the window, Phi(t - 2) of its own slope: the decline must show in both
        halves on its own. A level step leaves one half flat, and noise rarely gives two
        significant slopes in a row. The price: each 15-minute half must decline by about three
        standard errors (a drift of about 3 %/h at 0.2 % noise on one-minute samples); a slower
        or noisier drift is left to the CUSUM.
        """
        whole, later = w.whole, w.later
        sigma = np.sqrt(np.fmax(whole.residual_var, np.nan_to_num(w.noise, nan=0.0) ** 2))
        sigma = np.fmax(sigma, 1e-9 * np.abs(floor))
        t_later = later.slope * np.sqrt(later.sxx) / sigma
        t_earlier = w.earlier_slope * np.sqrt(w.earlier_sxx) / sigma
        consistent = normal_cdf(t_earlier - MIN_SIGNIFICANCE) * normal_cdf(t_later - MIN_SIGNIFICANCE)
        since_centre = x - whole.xbar
        level = whole.ybar + whole.slope * since_centre
        horizon = self.horizon_seconds / 3600.0
        sd = sigma * np.sqrt(1.0 / whole.count + (since_centre**2 + horizon**2) / whole.sxx)
        reach = normal_cdf((level + whole.slope * horizon - floor) / sd)
        lead = np.where((whole.slope > 0) & (level < floor), (floor - level) / whole.slope * 3600.0, np.inf)
        return np.fmin(np.nan_to_num(reach * consistent, nan=0.0), FORECAST_MAX), lead

    # ------------------------------------------------------------------ the day before the first frame
    def history_wanted(self, signals: Mapping[str, SignalInfo]) -> HistoryWanted | None:
        """The reference window and what follows it, at the daemon's step, of the quality signals
        and their KPIs. The history is in memory: without it a new or restarted daemon compared
        with its 6-hour lookback, and restarted an hour into a slow drift it took the drift for
        the reference and warned ten hours later than one that ran all along."""
        wanted = frozenset(n for n in (*self.signals, *self.kpi_signals) if n in signals)
        if not wanted:
            return None
        return HistoryWanted(wanted, self._history.keep_seconds, None)

    def learn_history(self, series: Sequence[Series]) -> None:
        """Into the per-series history the first frame's trace seeds each state from (chunks come
        oldest first; a series that has a state keeps it)."""
        for s in series:
            if s.key not in self._states:
                isolated(self.name, s, self._learn, s)

    def _learn(self, s: Series) -> bool:
        t, y = check_series(s.timestamps, s.values)
        self._history.merge(replace(s, timestamps=t, values=y))
        return True

    # ------------------------------------------------------------------ daemon contract
    def detect(self, frame: Frame) -> list[Finding]:
        self._history.retain(frame, self.signals + self.kpi_signals)
        wanted = set(self.signals)
        live = {s.key for s in frame.series if s.signal in wanted}
        for key in [k for k in self._states if k not in live]:
            del self._states[key]  # the series left the frame (a deleted model server)
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
        """Advance each series' state by its new points; keep those whose newest score reaches
        ``report_floor``.

        The gate is the score itself, exact by construction: every series' state must see every
        point anyway (the CUSUM is a recursion), and what the newest score needs beyond it (two
        medians, two quantiles and three short lines at the new points) is cheap. A series whose
        state cannot advance is logged and skipped for this cycle alone.
        """
        direction = self._direction(frame, signal)
        kept = []
        for s in series:
            newest = isolated(self.name, s, self._advance, s, direction)
            if newest is not None and newest.score >= self.report_floor:
                kept.append(s)
        return kept

    def _advance(self, series: Series, direction: Direction) -> Newest:
        """The newest point's figures, from the state and the points the series gained since.

        A series new to the detector (or whose sampling interval or direction changed) is traced
        once over its history, which seeds its state; after that, only new points are scored.
        """
        t, y = self._history.merge(series)
        sign = -1.0 if direction == "down" else 1.0
        state = self._states.get(series.key)
        if state is not None and (state.sign != sign or typical_step(t) != state.step):
            state = None
        if state is not None and t.shape[0] and t[-1] <= state.last.t:
            return state.last
        if state is None:
            state = self._trace(t, y, direction)[1]
        else:
            state = self._continue(state, t, y)
        if state is None:
            raise ValueError(f"{series.signal} has no points to score")
        self._states[series.key] = state
        return state.last

    def _continue(self, state: DriftState, t: np.ndarray, y: np.ndarray) -> DriftState:
        """``state`` advanced by the points of the history (``t``, ``y``) after ``state.last.t``.

        The same figures as :meth:`trace` over the whole series gives at those points (tested):
        the window statistics at the new points only, then the CUSUM's recursion and the hold.
        """
        t = np.asarray(t, dtype=np.float64)
        y = np.where(np.isfinite(y), y, np.nan)
        idx = np.arange(int(np.searchsorted(t, state.last.t, side="right")), t.shape[0])
        sp = self.spans(state.step)
        x = (t - state.origin) / 3600.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pt = self._pointwise(y[idx], x[idx], _windows_at(y, state.sign * y, x, sp, idx), state.sign)
        cusum, onsets = np.empty(idx.shape[0]), np.empty(idx.shape[0])
        forecast, lead = np.empty(idx.shape[0]), np.empty(idx.shape[0])
        s, onset_t, hold = state.cusum, state.onset_t, state.hold
        for k, j in enumerate(idx.tolist()):
            s, onset_t, onsets[k] = cusum_step(s, onset_t, float(pt.d[k]), float(t[j]))
            cusum[k] = s
            forecast[k], at, hold = held(hold, float(pt.forecast[k]), float(t[j] + pt.lead[k]), sp.half)
            lead[k] = at - t[j]
        score, _ = self._combine(y[idx], pt, cusum / self.cusum_h, forecast)
        forecast[np.isnan(y[idx])] = 0.0
        last = Newest(
            t=float(t[-1]), score=float(score[-1]), reference=float(pt.reference[-1]), recent=float(pt.recent[-1]),
            change=float(pt.change[-1]), cusum=float(cusum[-1] / self.cusum_h), onset_t=float(onsets[-1]),
            forecast=float(forecast[-1]), lead=float(lead[-1]), floor=float(state.sign * pt.floor[-1]),
        )
        return DriftState(state.step, state.sign, state.origin, s, onset_t, hold, last)

    def _direction(self, frame: Frame, signal: str) -> Direction:
        if self.direction:
            return self.direction
        info = frame.signals.get(signal)
        return "up" if info is not None and info.bad_direction == "up" else "down"

    def explain(self, frame: Frame, series: Series) -> Finding | None:
        p = self._advance(series, self._direction(frame, series.signal))
        if not np.isfinite(p.reference):
            return None  # not enough reference history yet
        since = from_epoch(p.onset_t)
        summary = (
            f"{series.signal} {p.change * 100:+.1f} % vs the previous {fmt_duration(self.reference_seconds)} "
            f"({p.reference:.4g} → {p.recent:.4g}) since {since:%H:%M} UTC"
        )
        facts: dict[str, object] = {
            "reference": p.reference,
            "recent": p.recent,
            "relative_change": p.change,
            "drop_threshold": self.drop_fraction,
            "floor": p.floor,
            "cusum": p.cusum,
            "since": since.isoformat(),
        }
        predicted: datetime | None = None
        # A forecast that outranks the observed tests is what this finding is: it carries the
        # predicted time (policy acts on observed drops only). Once the drop is observed, the
        # forecast is context in the summary.
        if p.forecast > 0 and math.isfinite(p.lead) and p.lead > 0:
            at = from_epoch(p.t + p.lead)
            summary += f"; heading for its floor {p.floor:.4g} by {at:%H:%M} UTC"
            facts["forecast"] = p.forecast
            if p.forecast >= p.score:
                predicted = at
        change = p.change
        related: list[str] = []
        for kpi in self._kpis(frame, series.entity):
            kt, ky = self._history.merge(kpi)
            moved = self._change_since(kt, ky, since)
            if moved is None:
                continue
            kpi_change, beyond_noise = moved
            if beyond_noise:
                summary += (f"; {kpi.signal} {_percent(kpi_change)} coincides with {series.signal} "
                            f"{_percent(change)} since {since:%H:%M}")
            else:
                summary += f"; {kpi.signal} holds ({_percent(kpi_change)}, within its noise) since {since:%H:%M}"
            facts[f"{kpi.signal}_relative_change"] = kpi_change
            related.append(f"{kpi.signal}{{{','.join(f'{k}={v}' for k, v in sorted(kpi.labels.items()))}}}")
        return self.finding(
            frame, series, p.score, summary, facts, related=tuple(related), predicted_failure_at=predicted
        )

    def _kpis(self, frame: Frame, entity: Entity) -> list[Series]:
        return [s for sig in self.kpi_signals for s in frame.of(sig) if s.entity == entity and len(s)]

    def _change_since(self, t: np.ndarray, y: np.ndarray, since: datetime) -> tuple[float, bool] | None:
        """Relative change of the KPI, recent median vs the reference median before ``since``, and
        whether it is beyond the KPI's own noise: more than three standard errors of the two
        medians apart (each ~1.25 robust sigma of the reference over the root of its points). A
        KPI that only wobbles has not moved with the drop, and must not read as if it had."""
        if t.shape[0] == 0:
            return None
        cut = since.timestamp()
        before = y[(t < cut) & (t >= cut - self.reference_seconds)]
        after = y[t >= max(cut, t[-1] - self.recent_seconds)]
        before, after = before[~np.isnan(before)], after[~np.isnan(after)]
        if before.shape[0] < 3 or after.shape[0] == 0:
            return None
        ref = float(np.median(before))
        if not ref:
            return None
        shift = float(np.median(after)) - ref
        sigma = 1.4826 * float(np.median(np.abs(before - ref)))
        error = 1.2533 * sigma * math.sqrt(1.0 / before.shape[0] + 1.0 / after.shape[0])
        return shift / abs(ref), abs(shift) > 3.0 * error

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
class _Spans:
    """The detector's windows in samples, for one sampling interval."""

    recent: int
    reference: int
    trend: int
    half: int


@dataclass(frozen=True)
class _Line:
    """Least-squares line over a trailing window at each point (NaN where too few points)."""

    count: np.ndarray
    xbar: np.ndarray
    ybar: np.ndarray
    sxx: np.ndarray
    slope: np.ndarray
    residual_var: np.ndarray


@dataclass(frozen=True)
class _Windows:
    """The window statistics the score at a point reads (at every point, or at chosen ones)."""

    reference: np.ndarray  # median of the reference window, which ends where the recent one starts
    noise: np.ndarray  # the reference's interquartile range as a standard deviation
    recent: np.ndarray  # median of the recent window
    recent_count: np.ndarray
    whole: _Line  # the trend window's line, of the values towards "worse"
    later: _Line  # its later half's
    earlier_slope: np.ndarray  # the later half's line half a window earlier
    earlier_sxx: np.ndarray


@dataclass(frozen=True)
class _Pointwise:
    reference: np.ndarray
    recent: np.ndarray
    change: np.ndarray
    gate: np.ndarray
    magnitude: np.ndarray
    d: np.ndarray  # the CUSUM's increment
    forecast: np.ndarray  # before the hold
    lead: np.ndarray
    floor: np.ndarray  # in "worse is higher" units


def _line(count: np.ndarray, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray,
          *, minimum: int) -> _Line:
    """The line from the window's sums (of the valid points only)."""
    count = np.where(count >= minimum, count, np.nan)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xbar, ybar = sx / count, sy / count
        sxx = np.fmax(sxx - count * xbar * xbar, 0.0)
        sxy = sxy - count * xbar * ybar
        syy = np.fmax(syy - count * ybar * ybar, 0.0)
        slope = np.where(sxx > 0, sxy / sxx, np.nan)
        residual_var = np.fmax(syy - slope * sxy, 0.0) / np.fmax(count - 2.0, 1.0)
    return _Line(count, xbar, ybar, sxx, slope, residual_var)


def _rolling_line(x: np.ndarray, y: np.ndarray, n: int, *, minimum: int) -> _Line:
    valid = ~np.isnan(y)
    frame = pd.DataFrame({
        "n": valid.astype(np.float64), "x": np.where(valid, x, 0.0), "y": np.where(valid, y, 0.0),
    })
    frame["xx"], frame["xy"], frame["yy"] = frame.x * frame.x, frame.x * frame.y, frame.y * frame.y
    sums = frame.rolling(n, min_periods=1).sum()
    return _line(*(sums[c].to_numpy() for c in ("n", "x", "y", "xx", "xy", "yy")), minimum=minimum)


def _line_at(x: np.ndarray, y: np.ndarray, ends: np.ndarray, n: int, *, minimum: int) -> _Line:
    """:func:`_rolling_line` at the points ``ends`` only (NaN for an index before the start)."""
    sums = np.full((6, ends.shape[0]), np.nan)
    for k, j in enumerate(ends):
        if j < 0:
            continue
        xs, ys = x[max(0, j - n + 1): j + 1], y[max(0, j - n + 1): j + 1]
        valid = ~np.isnan(ys)
        xv, yv = np.where(valid, xs, 0.0), np.where(valid, ys, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            sums[:, k] = (valid.sum(), xv.sum(), yv.sum(), (xv * xv).sum(), (xv * yv).sum(), (yv * yv).sum())
    return _line(*sums, minimum=minimum)


def _windows_all(y: np.ndarray, worse: np.ndarray, x: np.ndarray, sp: _Spans) -> _Windows:
    """The window statistics at every point (the backtest's trace)."""
    s = pd.Series(y)
    recent = s.rolling(sp.recent, min_periods=1)
    # The reference ends where the recent window starts, so a fresh drop is not in both.
    ref_roll = s.shift(sp.recent).rolling(sp.reference, min_periods=max(3, sp.reference // 4))
    noise = (ref_roll.quantile(0.75).to_numpy() - ref_roll.quantile(0.25).to_numpy()) * IQR_TO_SIGMA
    whole = _rolling_line(x, worse, sp.trend, minimum=max(4, sp.trend // 2))
    later = _rolling_line(x, worse, sp.half, minimum=max(3, sp.half // 2))
    return _Windows(
        ref_roll.median().to_numpy(), noise, recent.median().to_numpy(), recent.count().to_numpy(), whole, later,
        _shifted(later.slope, sp.half), _shifted(later.sxx, sp.half),
    )


def _windows_at(y: np.ndarray, worse: np.ndarray, x: np.ndarray, sp: _Spans, idx: np.ndarray) -> _Windows:
    """:func:`_windows_all` at the points ``idx`` only, from the values before them: the daemon's
    cost per cycle is the new points', not the history's."""
    k = idx.shape[0]
    reference, noise, recent, count = (np.full(k, np.nan) for _ in range(4))
    minimum = max(3, sp.reference // 4)
    for i, j in enumerate(idx):
        r = y[max(0, j - sp.recent + 1): j + 1]
        r = r[~np.isnan(r)]
        count[i] = r.shape[0]
        if r.shape[0]:
            recent[i] = np.median(r)
        end = j - sp.recent
        if end >= 0:
            ref = y[max(0, end - sp.reference + 1): end + 1]
            ref = ref[~np.isnan(ref)]
            if ref.shape[0] >= minimum:
                q25, q50, q75 = np.quantile(ref, (0.25, 0.5, 0.75))
                reference[i], noise[i] = q50, (q75 - q25) * IQR_TO_SIGMA
    whole = _line_at(x, worse, idx, sp.trend, minimum=max(4, sp.trend // 2))
    later = _line_at(x, worse, idx, sp.half, minimum=max(3, sp.half // 2))
    earlier = _line_at(x, worse, idx - sp.half, sp.half, minimum=max(3, sp.half // 2))
    return _Windows(reference, noise, recent, count, whole, later, earlier.slope, earlier.sxx)


def _hold(t: np.ndarray, score: np.ndarray, lead: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """The forecast held for half a window once made (the daemon's :func:`held`, vectorised).

    A few minutes of weaker evidence (noise in the halves' slopes) do not retract a forecast and
    send people "resolved, firing, resolved"; it keeps the predicted time it was made with.
    """
    if not (score.shape[0] and half > 1):
        return score.copy(), lead.copy()
    padded = np.concatenate([np.zeros(half - 1), score])
    windows = np.lib.stride_tricks.sliding_window_view(padded, half)
    # The latest point holding the window's maximum (argmax of the reversed window).
    back = np.argmax(windows[:, ::-1], axis=1)
    source = np.arange(score.shape[0]) - back
    at = t[source] + lead[source]
    return score[source], at - t


def _newest(tr: DriftTrace, t: np.ndarray, i: int) -> Newest:
    return Newest(
        t=float(t[i]), score=float(tr.score[i]), reference=float(tr.reference[i]), recent=float(tr.recent[i]),
        change=float(tr.change[i]), cusum=float(tr.cusum[i]), onset_t=float(t[int(tr.onset[i])]),
        forecast=float(tr.forecast[i]), lead=float(tr.lead[i]), floor=float(tr.floor[i]),
    )


def _shifted(a: np.ndarray, k: int) -> np.ndarray:
    """``a`` as it was ``k`` points earlier (NaN before the start)."""
    out = np.full(a.shape[0], np.nan)
    if 0 < k < a.shape[0]:
        out[k:] = a[:-k]
    elif k == 0:
        out[:] = a
    return out


def _percent(change: float) -> str:
    """A relative change for people: whole percent from 10 % on, one decimal under it (a KPI that
    moved 0.4 % printed "-0 %", which reads as not at all)."""
    return f"{change * 100:+.0f} %" if abs(change) >= 0.1 else f"{change * 100:+.1f} %"
