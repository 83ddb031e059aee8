"""EntityAnomaly: is this node / pod / GPU unlike its own history and its peers, all signals at once?

Each entity is a vector of its signals (CPU, memory, restarts, GPU utilisation, temperature,
power, framebuffer, XID/ECC, latency ...) per time step. Normal operation keeps these signals in a
few stable relations (load drives CPU, power and temperature together), so the model is a
principal subspace of standardised history (scikit-learn ``PCA`` keeping ``variance`` of it) and
the raw score of a vector is its squared distance from that subspace (SPE, the Q statistic of
process monitoring): how much of the vector no normal relation explains. On SMD it separated
incidents better than nearest-neighbour distance, Hotelling's T² and per-feature z-scores.

Incidents are segments rather than single minutes, so the raw score is averaged causally over
several windows (``windows_minutes``, default 5 min, 30 min and 2 h): a sharp fault shows in the
short window, a sustained mild one (a counter that bursts more often than usual) in the long one.
The long windows count only while the shortest is itself unusual (``long_window_gate``), so that
an alarm ends with the incident instead of lingering for the length of the longest window.

Calibration is what makes one threshold fit every entity. The history is split in time: the
older part (1 - ``calibration_share``) fits the subspace, the newer part is scored out of sample,
as live rows will be, and gives each window's reference distribution (split-conformal). A score
becomes an exceedance probability ``p``: empirical in the body, a generalised Pareto tail fitted
to the highest scores above (peaks over threshold as in SPOT, Siffer et al., KDD 2017) so that
scores beyond anything seen still rank. The windows' smallest ``p`` (Bonferroni-corrected) gives
the score ``-log10(p) / decades`` capped at 1: with ``decades=6`` a score of 0.9 means "rarer than
1 in 250,000 calibration rows in at least one window", whatever the entity's own noise level.
Calibrating in-sample instead (each row's distance to its own training data, whose neighbours are
the adjacent minutes) made scores on new data look rarer than they were, by a different factor on
every machine: one reason no single threshold fitted all SMD machines. With this model, SMD point
F1 (no point adjustment, mean of 4 machines) is 0.51 at the default threshold 0.9; the settings
were chosen on SMD, and ASD, the out-of-sample check, gives 0.18 (see ``aiops backtest``).

The model is trained on a rolling window of history, causally: the score of a point depends only
on points before it. Live (``detect``) it is refitted every cycle on the frame's window, pooled
over the entities of one kind. In a backtest (``score_matrix``) it is fitted on the last ``window``
rows of the history given, and refitted every ``refit_every`` rows when that is set; unset (the
default) keeps the model once ``window`` rows exist, because refitting on live data lets a long
incident become the new normal.

A deviation along the normal relations (everything busier together) is not what this detector
flags; the univariate detectors watch each signal's own level. The evidence names the features
that contributed most: how far each one is from the value the other features predict for it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.stats import genpareto
from sklearn.decomposition import PCA

from aiops.model import Entity, Evidence, Finding, Frame, from_epoch
from aiops.plugins import Detector
from detectors._isolation import isolated

__all__ = ["EntityAnomaly", "SubspaceModel", "TailCalibration"]

# Below this many reference rows a subspace and its calibration say nothing useful.
MIN_REFERENCE = 50
# The calibration tail: the top 2 % of calibration scores, and at least this many for a
# generalised Pareto fit (fewer get an exponential tail, the GPD with shape 0).
TAIL_SHARE = 0.02
MIN_TAIL_FIT = 20
# A heavier tail than this is an artefact of few exceedances; it would make real outliers look common.
# A negative shape (a bounded tail) is not bounded below: the fit may then put the tail's end point
# at the largest calibration score, so anything beyond what calibration saw scores 1. On SMD this is
# what lets one threshold fit all machines (clipping the shape at -1 drops machine-1-6 from 0.87 to
# 0.19 F1); its cost is more alarms where calibration is short (about 1 % of rows on a noisy synthetic).
MAX_TAIL_SHAPE = 0.5
DEFAULT_WINDOWS_MINUTES = (5.0, 30.0, 120.0)
# A smoothing window is calibrated only with at least this many of its lengths of calibration rows.
MIN_WINDOWS_PER_CALIBRATION = 20


@dataclass(frozen=True)
class TailCalibration:
    """Exceedance probability of a score among calibration scores: empirical body, GPD tail."""

    ordered: np.ndarray  # sorted calibration scores
    tail_start: float
    tail_share: float  # fraction of calibration scores above tail_start
    shape: float
    scale: float

    @classmethod
    def fit(cls, scores: np.ndarray) -> TailCalibration:
        ordered = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
        n = ordered.shape[0]
        if n < 2:
            raise ValueError(f"need at least 2 calibration scores, got {n}")
        n_tail = max(int(TAIL_SHARE * n), min(MIN_TAIL_FIT, n // 2), 1)
        start = float(ordered[n - n_tail - 1])
        excess = ordered[n - n_tail :] - start
        # A floor on the scale: a calibration set of identical scores must not make a rounding error rare.
        floor = 1e-9 * max(abs(start), 1.0)
        shape, scale = 0.0, max(float(excess.mean()), floor)
        if n_tail >= MIN_TAIL_FIT and float(excess.max()) > floor:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fitted_shape, _, fitted_scale = genpareto.fit(excess, floc=0.0)
                if math.isfinite(fitted_shape) and math.isfinite(fitted_scale) and fitted_scale > 0:
                    shape, scale = float(min(fitted_shape, MAX_TAIL_SHAPE)), max(float(fitted_scale), floor)
            except (RuntimeError, ValueError, FloatingPointError):
                pass  # the exponential tail above stands
        return cls(ordered, start, n_tail / (n + 1), shape, scale)

    def exceedance(self, scores: np.ndarray) -> np.ndarray:
        """P(calibration score >= s) per score; NaN scores get 1 (no evidence of anything)."""
        s = np.asarray(scores, dtype=float)
        n = self.ordered.shape[0]
        body = (n - np.searchsorted(self.ordered, s, side="left") + 1) / (n + 1)
        with np.errstate(all="ignore"):
            tail = self.tail_share * genpareto.sf(s - self.tail_start, self.shape, 0.0, self.scale)
        p = np.where(s > self.tail_start, np.minimum(tail, self.tail_share), body)
        return np.where(np.isnan(s), 1.0, np.clip(p, 1e-300, 1.0))


@dataclass(frozen=True)
class SubspaceModel:
    """A fitted reference window: scaling, principal subspace, and a calibration per window."""

    center: np.ndarray
    scale: np.ndarray
    mean: np.ndarray  # of the standardised fit rows
    components: np.ndarray  # (k x features), orthonormal rows; k < features
    windows: tuple[int, ...]  # smoothing windows, in rows
    calibrations: tuple[TailCalibration, ...]  # one per window
    decades: float
    gate: float = 0.3  # see exceedance()

    @classmethod
    def fit(
        cls,
        segments: Sequence[np.ndarray],
        windows: Sequence[int],
        *,
        variance: float = 0.99,
        decades: float = 6.0,
        calibration_share: float = 0.3,
        min_scale: float = 0.01,
        gate: float = 0.3,
    ) -> SubspaceModel:
        """Fit on the older part of each contiguous history segment, calibrate on the newer part.

        A window longer than the calibration rows allow (``MIN_WINDOWS_PER_CALIBRATION`` of it)
        is left out: a tail fitted to a handful of overlapping means is noise. The shortest stays.
        """
        parts = [np.asarray(s, dtype=float) for s in segments]
        parts = [s[~np.all(np.isnan(s), axis=1)] for s in parts if s.ndim == 2 and s.shape[0]]
        rows = sum(s.shape[0] for s in parts)
        if rows < MIN_REFERENCE:
            raise ValueError(f"need at least {MIN_REFERENCE} reference rows, got {rows}")
        cuts = [max(1, min(s.shape[0] - 1, round(s.shape[0] * (1.0 - calibration_share)))) for s in parts]
        fit_rows = np.concatenate([s[:c] for s, c in zip(parts, cuts)])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
            center = np.nanmean(fit_rows, axis=0)
            spread = np.nanstd(fit_rows, axis=0)
        center = np.nan_to_num(center, nan=0.0)
        # A floor on the scale: a feature that was constant must not turn a tiny wobble into a huge z.
        scale = np.maximum(np.nan_to_num(spread, nan=0.0), min_scale * np.maximum(np.abs(center), 1.0))
        z = _standardise(fit_rows, center, scale)
        pca = PCA(svd_solver="full").fit(z)
        # At least one dimension stays outside the subspace: with every component kept, nothing is residual.
        explained = np.cumsum(pca.explained_variance_ratio_)
        k = min(int(np.searchsorted(explained, variance, side="right")) + 1, z.shape[1] - 1, pca.components_.shape[0])
        calibration_rows = sum(s.shape[0] - c for s, c in zip(parts, cuts))
        ordered = sorted(set(windows))
        usable = tuple(w for w in ordered if w == ordered[0] or w * MIN_WINDOWS_PER_CALIBRATION <= calibration_rows)
        base = cls(center, scale, pca.mean_, pca.components_[:k], usable, (), decades, gate)
        calibrations = []
        for w_index in range(len(base.windows)):
            scores = [base.smooth(base.raw(s[c:]))[w_index] for s, c in zip(parts, cuts)]
            calibrations.append(TailCalibration.fit(np.concatenate(scores)))
        return cls(center, scale, pca.mean_, pca.components_[:k], base.windows, tuple(calibrations), decades, gate)

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """Squared distance of each row from the normal subspace (NaN features sit at the centre)."""
        z = _standardise(np.asarray(rows, dtype=float), self.center, self.scale) - self.mean
        residual = z - (z @ self.components.T) @ self.components
        return np.einsum("ij,ij->i", residual, residual)

    def smooth(self, raw: np.ndarray) -> np.ndarray:
        """Causal rolling means of the raw score, one row per window (windows x points)."""
        series = pd.Series(np.asarray(raw, dtype=float))
        return np.vstack([series.rolling(w, min_periods=1).mean().to_numpy() for w in self.windows])

    def exceedance(self, smoothed: np.ndarray) -> np.ndarray:
        """Bonferroni-corrected smallest exceedance probability over the windows, per point.

        The longer windows speak only while the shortest one is itself unusual (``p <= gate``):
        their mean remembers an incident for hours after it ended, and an alarm must not outlive it.
        """
        p = np.vstack([c.exceedance(s) for c, s in zip(self.calibrations, np.atleast_2d(smoothed))])
        p[1:, p[0] > self.gate] = 1.0
        return np.minimum(p.min(axis=0) * len(self.calibrations), 1.0)

    def calibrate(self, smoothed: np.ndarray) -> np.ndarray:
        score = -np.log10(self.exceedance(smoothed)) / self.decades
        return np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0)

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """How far each feature is from what the others predict, squared (in standard deviations).

        Each feature is left out in turn and reconstructed from the rest through the subspace.
        The squared residual alone cannot name the culprit when the residual has few dimensions
        (a hot GPU at low load leaves residual on utilisation too), but utilisation and power
        agree with each other and predict a cool GPU, so only the temperature is far off.
        """
        z = _standardise(np.asarray(row, dtype=float), self.center, self.scale) - self.mean
        out = np.empty(z.shape[0])
        for j in range(z.shape[0]):
            others = np.arange(z.shape[0]) != j
            coords, *_ = np.linalg.lstsq(self.components[:, others].T, z[others], rcond=None)
            out[j] = (z[j] - self.components[:, j] @ coords) ** 2
        return out


def _standardise(x: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (x - center) / scale
    return np.nan_to_num(z, nan=0.0, posinf=1e6, neginf=-1e6)


def _window_rows(minutes: Sequence[float], step_seconds: float) -> tuple[int, ...]:
    step = step_seconds if math.isfinite(step_seconds) and step_seconds > 0 else 60.0
    return tuple(max(1, round(m * 60.0 / step)) for m in minutes)


class EntityAnomaly(Detector):
    """Multivariate anomaly score per entity from all its signals (see the module docstring)."""

    name: ClassVar[str] = "multivariate"
    default_signals: ClassVar[tuple[str, ...]] = (
        "node_cpu_utilization",
        "node_memory_usage_ratio",
        "node_filesystem_usage_ratio",
        "pod_memory_usage_ratio",
        "pod_restarts",
        "gpu_utilization",
        "gpu_memory_usage_ratio",
        "gpu_temperature",
        "gpu_power",
        "gpu_xid",
        "gpu_ecc_dbe_rate",
        "inference_latency_p99",
        "inference_kv_cache_usage",
    )

    def __init__(
        self,
        signals: Sequence[str] | None = None,
        report_floor: float = 0.5,
        *,
        variance: float = 0.99,
        windows_minutes: Sequence[float] = DEFAULT_WINDOWS_MINUTES,
        calibration_share: float = 0.3,
        long_window_gate: float = 0.3,
        decades: float = 6.0,
        window: int = 43_200,
        refit_every: int | None = None,
        min_reference: int = MIN_REFERENCE,
        min_scale: float = 0.01,
        top_features: int = 3,
        **params: Any,
    ) -> None:
        super().__init__(signals, report_floor, **params)
        if not 0.0 < variance < 1.0:
            raise ValueError("variance must be in (0, 1): the share of normal variation the subspace keeps, e.g. 0.99")
        windows = tuple(float(m) for m in windows_minutes)
        if not windows or min(windows) <= 0:
            raise ValueError("windows_minutes must list at least one positive window, e.g. [5, 30, 120]")
        if not 0.05 <= calibration_share <= 0.8:
            raise ValueError("calibration_share must be in [0.05, 0.8]: the newest share of history used to calibrate")
        if not 0.0 < long_window_gate <= 1.0:
            raise ValueError("long_window_gate must be in (0, 1]: how unusual the shortest window must be for longer ones to count (1 = always)")
        if decades <= 0:
            raise ValueError("decades must be positive (4 maps a 1-in-10,000 point to score 1.0)")
        if top_features < 1:
            raise ValueError("top_features must be at least 1")
        if min_reference < MIN_REFERENCE or window < min_reference:
            raise ValueError(f"need window >= min_reference >= {MIN_REFERENCE} rows")
        if refit_every is not None and refit_every < 1:
            raise ValueError("refit_every must be at least 1 row (or unset: fit once on the history)")
        if min_scale <= 0:
            raise ValueError("min_scale must be positive (the smallest feature scale, relative to max(|mean|, 1))")
        self.variance = variance
        self.windows_minutes = windows
        self.calibration_share = calibration_share
        self.long_window_gate = long_window_gate
        self.decades = decades
        self.window = window
        self.refit_every = refit_every
        self.min_reference = min_reference
        self.min_scale = min_scale
        self.top_features = top_features

    def _fit(self, segments: Sequence[np.ndarray], step_seconds: float) -> SubspaceModel:
        return SubspaceModel.fit(
            segments,
            _window_rows(self.windows_minutes, step_seconds),
            variance=self.variance,
            decades=self.decades,
            calibration_share=self.calibration_share,
            min_scale=self.min_scale,
            gate=self.long_window_gate,
        )

    # -- backtest --------------------------------------------------------------------------------
    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        """One causal score in [0, 1] per row of ``X`` (rows in time order, one column per feature).

        ``train`` is history that precedes ``X`` at the same step. The model is refitted every
        ``refit_every`` rows on the last ``window`` rows seen before the block it scores; rows
        scored before ``min_reference`` rows of history exist get 0 (no opinion). Smoothing
        windows are converted to rows with the median step of ``timestamps``.
        """
        x = np.asarray(X, dtype=float)
        t = np.asarray(timestamps, dtype=float)
        if x.ndim != 2 or t.shape != (x.shape[0],):
            raise ValueError(f"X must be (points x features) with one timestamp per row, got {x.shape} and {t.shape}")
        history = np.empty((0, x.shape[1])) if train is None else np.asarray(train, dtype=float)
        if history.ndim != 2 or history.shape[1] != x.shape[1]:
            raise ValueError(f"train must have the same {x.shape[1]} feature columns as X, got shape {history.shape}")
        x = np.where(np.isfinite(x), x, np.nan)
        history = np.where(np.isfinite(history), history, np.nan)
        step = float(np.median(np.diff(t))) if t.shape[0] > 1 else float("nan")
        raw = np.full(x.shape[0], np.nan)
        models: list[tuple[int, SubspaceModel | None]] = []
        starts = self._block_starts(history.shape[0], x.shape[0])
        for start, stop in zip(starts, starts[1:] + [x.shape[0]]):
            reference = np.concatenate([history, x[:start]])[-self.window :]
            usable = int((~np.all(np.isnan(reference), axis=1)).sum())
            model = self._fit([reference], step) if usable >= self.min_reference else None
            models.append((start, model))
            if model is not None:
                raw[start:stop] = model.raw(x[start:stop])
        first = next((m for _, m in models if m is not None), None)
        if first is None:
            return np.zeros(x.shape[0])
        # Rolling means run across block boundaries, seeded with the newest history rows (scored
        # out of sample: they are in the calibration part of the first model's reference).
        longest = max(_window_rows(self.windows_minutes, step))
        seed = first.raw(history[-longest:]) if models[0][1] is not None else np.empty(0)
        series = np.concatenate([seed, raw])
        scores = np.zeros(x.shape[0])
        for (start, model), nxt in zip(models, [m[0] for m in models[1:]] + [x.shape[0]]):
            if model is not None:
                # Each model smooths with its own windows: a refit on longer history may calibrate more of them.
                lo, hi = seed.shape[0] + start, seed.shape[0] + nxt
                scores[start:nxt] = model.calibrate(model.smooth(series[max(0, lo - longest) : hi])[:, lo - max(0, lo - longest) :])
        empty = np.all(np.isnan(x), axis=1)
        scores[empty] = 0.0  # a row with no data has no opinion
        return scores

    def _block_starts(self, history_rows: int, rows: int) -> list[int]:
        """Row indices of X where the model is (re)fitted on the rows before them.

        With ``refit_every`` set, every that many rows. Without it the model is fitted once on the
        given history; when that is short, it is refitted as history doubles until ``window`` rows
        exist, then kept: refitting on live data lets a long incident become the new normal.
        """
        if rows == 0:
            return [0]
        if self.refit_every is not None:
            return list(range(0, rows, self.refit_every))
        starts, size = [0], max(history_rows, 1)
        while size < self.window:
            size = max(2 * size, self.min_reference)
            start = size - history_rows
            if start >= rows:
                break
            if start > starts[-1]:
                starts.append(start)
        return starts

    # -- live ------------------------------------------------------------------------------------
    def detect(self, frame: Frame) -> list[Finding]:
        findings: list[Finding] = []
        for (kind, features), tables in self._pools(frame).items():
            # A pool is fitted as a whole; should its fit fail, only that pool is skipped.
            pool = f"{kind} pool of {len(tables)} ({', '.join(features)})"
            findings.extend(isolated(self.name, pool, self._score_pool, frame, kind, features, tables) or ())
        return findings

    def _pools(self, frame: Frame) -> dict[tuple[str, tuple[str, ...]], dict[Entity, pd.DataFrame]]:
        """Entities grouped by kind and feature set; each as a (time x signal) table on the step grid."""
        wanted = [s for s in self.signals if s not in frame.missing_signals]
        by_entity: dict[Entity, dict[str, pd.Series]] = {}
        step = max(frame.step_seconds, 1e-9)
        for series in frame.series:
            if series.signal not in wanted or len(series) == 0:
                continue
            grid = np.round(series.timestamps / step) * step
            finite = np.where(np.isfinite(series.values), series.values, np.nan)  # Inf is a gap, not a value
            values = pd.Series(finite, index=grid).groupby(level=0).max()
            columns = by_entity.setdefault(series.entity, {})
            # Several series of one signal (containers, mountpoints): the worst one speaks for the entity.
            columns[series.signal] = values if series.signal not in columns else pd.concat([columns[series.signal], values]).groupby(level=0).max()
        pools: dict[tuple[str, tuple[str, ...]], dict[Entity, pd.DataFrame]] = {}
        for entity, columns in by_entity.items():
            features = tuple(sorted(columns))
            table = pd.DataFrame(columns).sort_index()[list(features)]
            pools.setdefault((entity.kind, features), {})[entity] = table
        return pools

    def _score_pool(
        self, frame: Frame, kind: str, features: tuple[str, ...], tables: dict[Entity, pd.DataFrame]
    ) -> list[Finding]:
        windows = _window_rows(self.windows_minutes, frame.step_seconds)
        # Reference: every entity's history except its own newest rows, which are what gets scored.
        # Each entity contributes its newest rows, an equal share of the window, so that a large
        # fleet is represented by all its members rather than by whichever came last; each share
        # is split in time into fit and calibration parts.
        recent = 2 * windows[0]
        histories = [t.to_numpy(dtype=float)[:-recent] for t in tables.values() if len(t) > recent]
        share = max(1, self.window // max(len(histories), 1))
        segments = [h[-share:] for h in histories]
        if sum(int((~np.all(np.isnan(s), axis=1)).sum()) for s in segments) < self.min_reference:
            return []  # too little history to say what normal is: no opinion rather than a guess
        model = self._fit(segments, frame.step_seconds)
        found = (
            isolated(self.name, entity, self._score_entity, frame, entity, features, table, model, max(windows))
            for entity, table in tables.items()
        )
        return [f for f in found if f is not None]

    def _score_entity(
        self, frame: Frame, entity: Entity, features: tuple[str, ...], table: pd.DataFrame, model: SubspaceModel, longest: int
    ) -> Finding | None:
        # The longest window's rows: the rolling means end at the newest row.
        rows = table.to_numpy(dtype=float)[-longest:]
        if rows.shape[0] == 0 or np.all(np.isnan(rows[-1])):
            return None
        smoothed = model.smooth(model.raw(rows))[:, -1:]
        score = float(model.calibrate(smoothed)[0])
        if score < self.report_floor:
            return None
        return self._finding(frame, entity, features, table, model, rows[-1], score, smoothed)

    def _finding(
        self,
        frame: Frame,
        entity: Entity,
        features: tuple[str, ...],
        table: pd.DataFrame,
        model: SubspaceModel,
        row: np.ndarray,
        score: float,
        smoothed: np.ndarray,
    ) -> Finding:
        contrib = model.contributions(row)
        total = float(contrib.sum())
        order = np.argsort(-contrib)[: self.top_features]
        top = [
            {
                "feature": features[j],
                "value": _num(row[j]),
                "typical": _num(model.center[j]),
                "share": round(float(contrib[j] / total), 3) if total > 0 else 0.0,
            }
            for j in order
            if contrib[j] > 0
        ]
        described = ", ".join(
            f"{t['feature']} {_fmt(t['value'])} (typical {_fmt(t['typical'])}, {t['share']:.0%} of the deviation)" for t in top
        )
        p = float(model.exceedance(smoothed)[0])
        summary = f"{entity} is unlike its own history and its peers (1 in {_rarity(p)} rows)" + (
            f": {described}" if described else ""
        )
        first_signal = top[0]["feature"] if top else features[0]
        recent = tuple(float(v) for v in table[first_signal].to_numpy()[-30:])
        return Finding(
            detector=self.name,
            signal="entity_features",
            entity=entity,
            score=score,
            observed_at=from_epoch(float(table.index[-1])) if len(table) else frame.now,
            evidence=Evidence(
                summary=summary,
                recent=recent,
                facts={
                    "top_features": top,
                    "features": list(features),
                    "raw_score": float(smoothed[0, 0]),
                    "exceedance_probability": p,
                    "windows_minutes": list(self.windows_minutes),
                },
                related=tuple(t["feature"] for t in top),
            ),
        )


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _rarity(p: float) -> str:
    # Beyond what history holds the figure is an extrapolation: two significant digits at most.
    if p <= 0:
        return "more than 1e300"
    return f"{1 / p:,.0f}" if 1 / p < 10_000 else f"{1 / p:.1e}"
