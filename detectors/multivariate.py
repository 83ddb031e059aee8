"""EntityAnomaly: is this node / pod / GPU unlike its own history and its peers, all signals at once?

Each entity is a vector of its signals (CPU, memory, restarts, GPU utilisation, temperature,
power, framebuffer, XID/ECC, latency ...) per time step, standardised with the history's own mean
and spread. Two plain scores look at the vector from two sides:

* **PCA residual.** Normal operation keeps the signals in a few stable relations (load drives
  CPU, power and temperature together), so the model is the principal subspace keeping
  ``variance`` of the history (scikit-learn ``PCA``). The residual off that subspace is divided,
  feature by feature, by that feature's typical residual on history, squared and averaged: a
  feature the others always explain tightly counts when it breaks away, a noisy one does not
  drown the rest.
* **Nearest-neighbour distance** (``neighbours`` closest history rows, scikit-learn
  ``NearestNeighbors``): a vector can satisfy every linear relation and still sit where history
  never was (levels never seen together); the subspace cannot see that, the distance can.

Incidents are segments rather than single minutes, so each score is first averaged causally over
``smooth_minutes``.

**Calibration** (split conformal) is what makes one threshold mean the same on every entity. The
history is split in time: the older part (1 - ``calibration_share``) fits the model, the newer
part is scored out of sample, as live rows will be, and is the reference. Each score becomes an
exceedance probability among the reference's scores, and the two are combined by Fisher's method
(the sum of their -log p), itself calibrated on the same reference rows: one score far out raises
it while the other is unremarkable, two moderately unusual ones raise it together, and there is no
weight to tune. Within the reference ``p`` is the empirical survival function, interpolated so
that rows keep their order; beyond its largest value ``p`` falls by a factor e per nat of the
statistic, so rows past anything the reference holds still rank.

The score's odds are ``9 x alarm_rate / p``: 0.9, the policy's *critical*, where ``p`` equals
``alarm_rate`` (default 1 in 1,000), 0.7 at about 1 in 260, 0.5 (``report_floor``) at 1 in 110.
It never reaches 1, so no two rows tie however far out they are. On data that drifts after the
history (the SMD and ASD test periods do) many more than ``alarm_rate`` of normal rows reach 0.9.
The default is a daemon's: a healthy fleet must stay quiet. On SMD/ASD, whose test periods are
1-16 % anomalous, ``alarm_rate: 0.01`` flags closer to the best threshold (see bench/README.md).

The level is not adapted online (streaming peaks-over-threshold, a rolling conformal level):
on SMD and ASD the best F1 of *any* threshold that flags at most 1 in 1,000 normal rows is
0.26 / 0.28, against 0.63 / 0.41 at each machine's best threshold, which flags 0.6-16 % of its
rows. SPOT (Siffer et al., KDD 2017) scores within 0.02 of this calibration; DSPOT follows drift
but gains only by flagging 5-85 % of normal rows; an online quantile at 1 in 1,000 absorbs any
incident longer than a thousandth of its window (``bench/smd_thresholds.py``).

This replaced a more elaborate pipeline (three smoothing windows with a gate, a generalised Pareto
tail, the score capped at "1 in a million") that, on SMD and ASD machines it had not been tuned
on, lost to a plain PCA reconstruction by a factor of two: the cap tied every row beyond the
calibration range at 1.0, and its settings had been chosen on the development machines. The
leave-one-machine-out figures against PCA reconstruction and IsolationForest are printed by
``aiops backtest DATA --format smd --cv`` (see bench/README.md for the command and the figures).

The model is trained on history, causally: the score of a point depends only on points before it.
The reference is a state that outlives the frame's lookback (detectors/_mv_reference.py): per
pool (entities of one kind with one feature set) it keeps the last ``window`` rows not flagged
lately, an equal share of each entity's, is refitted on them every ``refresh_minutes`` (a day;
sooner while it doubles, young; a refit that finds too little is tried again a smoothing window
later), and is saved in the daemon's state file, so a restart does not blind it. Live (``detect``) and
in a backtest (``score_matrix``: one entity, the train split as history) the same transition
scores the same rows identically. It replaced a refit on the frame's window every cycle: a
6-hour reference follows every change, incidents included (SMD F1-best 0.199, null 0.191).
A new daemon (a new installation, a new pod) first reads a refresh period before its first frame
from Prometheus (:class:`~aiops.plugins.LearnsFromHistory`): it is the history of the entities
the reference has not seen, as the train split is in the backtest, so a new daemon scores as
one that ran all along would after its next refit (tested: live equals backtest). Only each
entity's share of the pool's ``window`` is kept until the first frame.

A deviation along the normal relations (everything busier together) is not what the residual
flags; the univariate detectors watch each signal's own level. The evidence names the features
that contributed most: how far each one is from the value the other features predict for it, in
units of its typical residual.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator
from scipy.special import expit
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from aiops.model import Entity, Evidence, Finding, Frame, Series, SignalInfo, from_epoch
from aiops.plugins import Detector, DetectorParams, HistoryWanted, skipped_entity
from detectors._isolation import isolated
from detectors._mv_reference import Block, PoolState, SavedReference, Schedule, advance, restored

__all__ = ["Calibration", "EntityAnomaly", "ReferenceModel"]

# Below this many reference rows a model and its calibration say nothing useful.
MIN_REFERENCE = 50
# The nearest-neighbour index holds at most this many fit rows (evenly spaced in time): a bound
# on the cost of a live cycle whatever the fleet size, and on SMD no loss against the full index.
MAX_NEIGHBOUR_ROWS = 4000
# Scores are compared in logs; a zero distance (a row seen before exactly) is this small instead.
RAW_FLOOR = 1e-12


@dataclass(frozen=True)
class Calibration:
    """Exceedance probability of a statistic (higher = more unusual) among out-of-sample reference values.

    Within the reference it is the empirical survival function, interpolated so that values keep
    their order. Beyond the largest reference value it falls by a factor e per unit of the
    statistic -- statistics here are in nats (log raw scores, sums of -log p) -- so rows past
    anything the reference holds still rank, and a short reference extrapolates the alarm level
    instead of claiming "rarer than anything seen" for everything beyond it.
    """

    values: np.ndarray  # the distinct reference values, sorted
    below: np.ndarray  # how many reference values lie below each of them
    count: int

    @classmethod
    def fit(cls, values: np.ndarray) -> Calibration:
        v = np.asarray(values, dtype=float)
        ordered = np.sort(v[np.isfinite(v)])
        if ordered.shape[0] < 2:
            raise ValueError(f"need at least 2 calibration values, got {ordered.shape[0]}")
        distinct, below = np.unique(ordered, return_index=True)
        return cls(distinct, below.astype(float), int(ordered.shape[0]))

    def log_exceedance(self, values: np.ndarray) -> np.ndarray:
        """Natural log of P(reference value >= v) per value (conformal: counting v itself); NaN gets 0."""
        v = np.asarray(values, dtype=float)
        n, top = self.count, float(self.values[-1])
        body = (n + 1 - np.interp(v, self.values, self.below)) / (n + 1)
        log_p = np.where(v > top, -math.log(n + 1) - (v - top), np.log(np.maximum(body, 1e-300)))
        return np.where(np.isnan(v), 0.0, np.minimum(log_p, 0.0))


@dataclass(frozen=True)
class ReferenceModel:
    """A fitted reference window: scaling, principal subspace, neighbour index and calibration."""

    center: np.ndarray
    scale: np.ndarray
    mean: np.ndarray  # of the standardised fit rows
    components: np.ndarray  # (k x features), orthonormal rows; k < features
    residual_scale: np.ndarray  # each feature's typical residual on the fit rows
    neighbours: NearestNeighbors | None
    window: int  # smoothing window, in rows
    alarm_rate: float
    member_calibrations: tuple[Calibration, ...] = ()  # one per member, of its smoothed log raw score
    calibration: Calibration | None = None  # of the combined statistic

    @classmethod
    def fit(
        cls,
        segments: Sequence[np.ndarray],
        window: int,
        *,
        variance: float = 0.95,
        neighbours: int = 5,
        alarm_rate: float = 0.001,
        calibration_share: float = 0.3,
        min_scale: float = 0.05,
        min_residual: float = 0.1,
    ) -> ReferenceModel:
        """Fit on the older part of each contiguous history segment, calibrate on the newer part."""
        parts = [np.asarray(s, dtype=float) for s in segments]
        parts = [s[~np.all(np.isnan(s), axis=1)] for s in parts if s.ndim == 2 and s.shape[0]]
        rows = sum(s.shape[0] for s in parts)
        if rows < MIN_REFERENCE:
            raise ValueError(f"need at least {MIN_REFERENCE} reference rows, got {rows}")
        cuts = [max(1, min(s.shape[0] - 1, round(s.shape[0] * (1.0 - calibration_share)))) for s in parts]
        fit_rows = np.concatenate([s[:c] for s, c in zip(parts, cuts)])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: they sit at 0 below
            center = np.nan_to_num(np.nanmean(fit_rows, axis=0), nan=0.0)
            spread = np.nan_to_num(np.nanstd(fit_rows, axis=0), nan=0.0)
        # A floor on the scale: a feature that was (nearly) constant must not turn a wobble into a huge z.
        scale = np.maximum(spread, min_scale * np.maximum(np.abs(center), 1.0))
        z = _standardise(fit_rows, center, scale)
        pca = PCA(svd_solver="full").fit(z)
        # At least one dimension stays outside the subspace: with every component kept, nothing is residual.
        explained = np.cumsum(pca.explained_variance_ratio_)
        k = min(int(np.searchsorted(explained, variance, side="right")) + 1, z.shape[1] - 1, pca.components_.shape[0])
        components = pca.components_[: max(k, 0)]
        centred = z - pca.mean_
        residual = centred - (centred @ components.T) @ components
        residual_scale = np.maximum(np.sqrt(np.mean(residual**2, axis=0)), min_residual)
        index = None
        if neighbours > 0:
            sample = z[:: max(1, math.ceil(z.shape[0] / MAX_NEIGHBOUR_ROWS))]
            index = NearestNeighbors(n_neighbors=min(neighbours, sample.shape[0])).fit(sample)
        model = cls(center, scale, pca.mean_, components, residual_scale, index, max(1, int(window)), alarm_rate)
        # Each calibration part is smoothed among its own rows. A window reaching back into the fit
        # rows averaged in-sample scores in (a neighbour finds its own row) and made the reference
        # calmer than live rows: flat noise on short histories flagged ~4x the rate. The first rows
        # of a part average fewer rows, so its tail is if anything heavier: fewer alarms, not more.
        reference = np.hstack(model.log_members_of([s[c:] for s, c in zip(parts, cuts)]))
        model = replace(model, member_calibrations=tuple(Calibration.fit(m) for m in reference))
        return replace(model, calibration=Calibration.fit(model.combine(reference)))

    def members(self, rows: np.ndarray) -> np.ndarray:
        """Raw member scores per row (members x rows): PCA residual, then neighbour distance if any."""
        z = _standardise(np.asarray(rows, dtype=float), self.center, self.scale)
        centred = z - self.mean
        residual = (centred - (centred @ self.components.T) @ self.components) / self.residual_scale
        out = [np.mean(residual**2, axis=1)]
        if self.neighbours is not None:
            distance, _ = self.neighbours.kneighbors(z)
            out.append(np.mean(distance, axis=1) ** 2 / z.shape[1])
        return np.vstack(out)

    def log_members(self, rows: np.ndarray) -> np.ndarray:
        """Log of each member's score averaged causally over the last ``window`` rows (members x rows)."""
        return self.log_members_of([rows])[0]

    def log_members_of(self, blocks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`log_members` of several contiguous blocks (entities), scored in one batch."""
        raw = self.members(np.concatenate(blocks)) if blocks else np.empty((0, 0))
        edges = np.cumsum([0] + [b.shape[0] for b in blocks])
        out = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            smoothed = pd.DataFrame(raw[:, lo:hi].T).rolling(self.window, min_periods=1).mean().to_numpy().T
            out.append(np.asarray(np.log(np.maximum(smoothed, RAW_FLOOR))))
        return out

    def combine(self, log_members: np.ndarray) -> np.ndarray:
        """Fisher's statistic: the sum over members of -log of each one's exceedance probability."""
        return np.asarray(-np.sum([c.log_exceedance(m) for c, m in zip(self.member_calibrations, log_members)], axis=0))

    def statistic(self, rows: np.ndarray) -> np.ndarray:
        """The combined statistic per row of ``rows`` (higher = more unusual), before calibration."""
        return self.combine(self.log_members(rows))

    def exceedance(self, statistic: np.ndarray) -> np.ndarray:
        assert self.calibration is not None, "a ReferenceModel is used after ReferenceModel.fit"
        return np.asarray(np.exp(self.calibration.log_exceedance(statistic)))

    def calibrate(self, statistic: np.ndarray) -> np.ndarray:
        """Score in [0, 1) whose odds are 9 x ``alarm_rate`` / p: 0.9 where p = ``alarm_rate``."""
        assert self.calibration is not None, "a ReferenceModel is used after ReferenceModel.fit"
        log_odds = math.log(9.0 * self.alarm_rate) - self.calibration.log_exceedance(statistic)
        return np.asarray(expit(log_odds))

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """How far each feature is from what the others predict, squared, in units of its typical residual.

        Each feature is left out in turn and reconstructed from the rest through the subspace.
        The residual alone cannot name the culprit when it has few dimensions (a hot GPU at low
        load leaves residual on utilisation too), but utilisation and power agree with each other
        and predict a cool GPU, so only the temperature is far off.
        """
        z = _standardise(np.asarray(row, dtype=float), self.center, self.scale) - self.mean
        out = np.empty(z.shape[0])
        for j in range(z.shape[0]):
            others = np.arange(z.shape[0]) != j
            predicted = 0.0
            if self.components.shape[0]:
                coords, *_ = np.linalg.lstsq(self.components[:, others].T, z[others], rcond=None)
                predicted = float(self.components[:, j] @ coords)
            out[j] = ((z[j] - predicted) / self.residual_scale[j]) ** 2
        return out


def _on_grid(timestamps: np.ndarray, values: np.ndarray, step: float) -> pd.Series:
    """A series on the step grid, one value per step (the largest), Inf a gap like NaN."""
    grid = np.round(np.asarray(timestamps, dtype=float) / step) * step
    finite = np.where(np.isfinite(values), values, np.nan)
    return pd.Series(finite, index=grid).groupby(level=0).max()


def _standardise(x: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (x - center) / scale
    return np.asarray(np.nan_to_num(z, nan=0.0, posinf=1e6, neginf=-1e6))


def _window_rows(minutes: float, step_seconds: float) -> int:
    step = step_seconds if math.isfinite(step_seconds) and step_seconds > 0 else 60.0
    return max(1, round(minutes * 60.0 / step))


class EntityAnomalyParams(DetectorParams):
    """The parameters of :class:`EntityAnomaly`, documented there."""

    # The share of normal variation the subspace keeps.
    variance: float = Field(default=0.95, gt=0, lt=1)
    # 0 leaves the nearest-neighbour score out; a whole number, never True.
    neighbours: int = Field(default=5, strict=True, ge=0)
    # The causal averaging window (0: each row alone).
    smooth_minutes: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    # The share of reference rows that score 0.9 or more.
    alarm_rate: float = Field(default=0.001, gt=0, lt=0.5)
    # The newest share of history used to calibrate.
    calibration_share: float = Field(default=0.3, ge=0.05, le=0.8)
    min_reference: int = Field(default=MIN_REFERENCE, ge=MIN_REFERENCE)
    # The most rows a pool's reference holds (30 days at a 1-minute step).
    window: int = 43_200
    # How often the reference is refitted on the rows not flagged since (a day).
    refresh_minutes: float = Field(default=1440.0, gt=0, allow_inf_nan=False)
    # Floors on a feature's scale and typical residual.
    min_scale: float = Field(default=0.05, gt=0)
    min_residual: float = Field(default=0.1, gt=0)
    top_features: int = Field(default=3, ge=1)

    @field_validator("window")
    @classmethod
    def _window_holds_the_reference(cls, window: int, info: ValidationInfo) -> int:
        least = info.data.get("min_reference", MIN_REFERENCE)
        if window < least:
            raise ValueError(f"window must be at least min_reference ({least} rows)")
        return window


class EntityAnomaly(Detector):
    """Multivariate anomaly score per entity from all its signals (see the module docstring)."""

    name: ClassVar[str] = "multivariate"
    Params = EntityAnomalyParams
    params: EntityAnomalyParams
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

    def __init__(self, signals: Sequence[str] | None = None, **params: Any) -> None:
        super().__init__(signals, **params)
        p = self.params
        self.variance = p.variance
        self.neighbours = p.neighbours
        self.smooth_minutes = float(p.smooth_minutes)
        self.alarm_rate = p.alarm_rate
        self.calibration_share = p.calibration_share
        self.window = p.window
        self.refresh_minutes = float(p.refresh_minutes)
        # Live: each pool's reference between cycles (see detectors/_mv_reference.py), and the
        # references fitted since the daemon last saved them.
        self._pools_state: dict[tuple[str, tuple[str, ...]], PoolState[ReferenceModel]] = {}
        self._unsaved: dict[str, SavedReference] = {}
        # Each entity's newest scored row (its time, statistic, score and model): a cycle that
        # brings nothing new reports it again rather than rescoring it with a later model.
        self._newest: dict[tuple[str, str], tuple[float, float, float, ReferenceModel]] = {}
        # A new daemon's days before its first frame (LearnsFromHistory), by entity and signal,
        # until the first frame takes them up as its entities' history.
        self._history: dict[tuple[Entity, str], tuple[np.ndarray, np.ndarray]] = {}
        self._history_entities: dict[str, set[Entity]] = {}
        self.min_reference = p.min_reference
        self.min_scale = p.min_scale
        self.min_residual = p.min_residual
        self.top_features = p.top_features

    def reference_model(self, segments: Sequence[np.ndarray], step_seconds: float) -> ReferenceModel:
        """The model this detector's settings fit on history ``segments`` (contiguous rows at ``step_seconds``)."""
        return ReferenceModel.fit(
            segments,
            _window_rows(self.smooth_minutes, step_seconds),
            variance=self.variance,
            neighbours=self.neighbours,
            alarm_rate=self.alarm_rate,
            calibration_share=self.calibration_share,
            min_scale=self.min_scale,
            min_residual=self.min_residual,
        )

    def schedule(self, step_seconds: float) -> Schedule:
        """When a reference is refitted and what it keeps, at ``step_seconds`` between rows."""
        return Schedule(
            window=self.window,
            refresh_seconds=self.refresh_minutes * 60.0,
            min_reference=self.min_reference,
            report_floor=self.report_floor,
            smooth_rows=_window_rows(self.smooth_minutes, step_seconds),
        )

    # -- backtest --------------------------------------------------------------------------------
    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        """One causal score in [0, 1] per row of ``X`` (rows in time order, one column per feature).

        ``train`` is history that precedes ``X`` at the same step. The reference is kept as the
        daemon keeps it (:func:`detectors._mv_reference.advance`): fitted on the history, refitted
        every ``refresh_minutes`` (and as it doubles while young) on the last ``window`` rows that
        scored below ``report_floor``. Rows scored before ``min_reference`` rows of history exist
        get 0 (no opinion). The smoothing window is converted to rows with the median step of
        ``timestamps``; it reaches back into the history before each row, as it would live.
        """
        x = np.asarray(X, dtype=float)
        t = np.asarray(timestamps, dtype=float)
        if x.ndim != 2 or t.shape != (x.shape[0],):
            raise ValueError(f"X must be (points x features) with one timestamp per row, got {x.shape} and {t.shape}")
        history = np.empty((0, x.shape[1])) if train is None else np.asarray(train, dtype=float)
        if history.ndim != 2 or history.shape[1] != x.shape[1]:
            raise ValueError(f"train must have the same {x.shape[1]} feature columns as X, got shape {history.shape}")
        if x.shape[0] == 0:
            return np.zeros(0)
        rows = np.concatenate([history, x])
        rows = np.where(np.isfinite(rows), rows, np.nan)
        h = history.shape[0]
        step = float(np.median(np.diff(t))) if t.shape[0] > 1 else 60.0
        step = step if math.isfinite(step) and step > 0 else 60.0
        times = np.concatenate([t[0] - step * np.arange(h, 0, -1), t])
        features = tuple(f"x{j}" for j in range(x.shape[1]))
        _, [scored] = advance(
            PoolState(step), [Block("backtest", times, rows, h)],
            kind="backtest", features=features, fit=lambda s: self.reference_model(s, step), schedule=self.schedule(step),
        )
        return scored.scores

    # -- a new daemon's first reference (LearnsFromHistory) ----------------------------------------
    def history_wanted(self, signals: Mapping[str, SignalInfo]) -> HistoryWanted | None:
        """A refresh period before the first frame, at the daemon's step: the rows a daemon that
        had run all along would refit its reference on next (the backtest's train split)."""
        wanted = frozenset(s for s in self.signals if s in signals)
        return HistoryWanted(wanted, self.refresh_minutes * 60.0, None) if wanted else None

    def learn_history(self, series: Sequence[Series]) -> None:
        """Keep each entity's history of a signal until the first frame: at most its share of a
        pool's ``window`` in steps (the newest rows of an entity are the ones a fit uses, and in a
        pool of many entities the frame's own lookback already holds that share)."""
        touched = set()
        for s in series:
            if s.signal not in self.signals or len(s) == 0:
                continue
            self._history_entities.setdefault(s.signal, set()).add(s.entity)
            key = (s.entity, s.signal)
            old = self._history.get(key)
            t, v = (s.timestamps, s.values) if old is None else (np.concatenate([old[0], s.timestamps]), np.concatenate([old[1], s.values]))
            self._history[key] = (np.asarray(t, dtype=float), np.asarray(v, dtype=float))
            touched.add(s.signal)
        for signal in touched:  # a share shrinks as a signal's entities arrive: all of them are trimmed to it
            entities = self._history_entities[signal]
            share = max(1, math.ceil(self.window / len(entities)))
            for entity in entities:
                t, v = self._history[(entity, signal)]
                if t.shape[0] > share:
                    # By time, not position: an entity's several series of a signal (containers,
                    # mountpoints) arrive one after another, and each keeps the newest steps.
                    steps = np.unique(t)
                    if steps.shape[0] > share:
                        keep = t >= steps[-share]
                        self._history[(entity, signal)] = (t[keep], v[keep])

    def history_rows(self) -> int:
        """Points of history held until the first frame takes them up."""
        return sum(t.shape[0] for t, _ in self._history.values())

    # -- live ------------------------------------------------------------------------------------
    def detect(self, frame: Frame) -> list[Finding]:
        findings: list[Finding] = []
        history, self._history, self._history_entities = self._history, {}, {}
        pools = self._pools(frame, history)
        for (kind, features), tables in pools.items():
            # A pool is fitted as a whole; should its fit fail, only that pool is skipped.
            pool = f"{kind} pool of {len(tables)} ({', '.join(features)})"
            # Absurd exporter values (1e200) overflow to inf, which scores nothing: silently, so a
            # daemon's log is not flooded with numpy warnings.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                scored = isolated(self.name, pool, self._score_pool, frame, kind, features, tables)
            if scored is None:  # skipped whole: none of its entities was judged this cycle
                for entity in tables:
                    skipped_entity(entity.key)
            findings.extend(scored or ())
        self._forget_departed(frame, pools)
        return findings

    def _forget_departed(self, frame: Frame, pools: Mapping[tuple[str, tuple[str, ...]], Mapping[Entity, Any]]) -> None:
        """Entities come and go (a rollout renames every pod): keep the newest scores of this
        frame's entities only, and drop a pool not in the frame and not seen for a refresh period
        (its saved body ages out of the state file, state.detector_state_retention)."""
        live = {(entity.key, kind) for (kind, _), tables in pools.items() for entity in tables}
        self._newest = {k: v for k, v in self._newest.items() if k in live}
        since = frame.now.timestamp() - self.refresh_minutes * 60.0
        for key in [k for k in self._pools_state if k not in pools]:
            if any(f in frame.missing_signals for f in key[1]):
                continue  # its query failed this cycle: not known to be gone
            if max(self._pools_state[key].seen.values(), default=-math.inf) < since:
                del self._pools_state[key]

    def _pools(
        self, frame: Frame, history: Mapping[tuple[Entity, str], tuple[np.ndarray, np.ndarray]] | None = None
    ) -> dict[tuple[str, tuple[str, ...]], dict[Entity, pd.DataFrame]]:
        """Entities grouped by kind and feature set; each as a (time x signal) table on the step
        grid. ``history`` (the first frame's only) goes before the frame's rows of an entity the
        reference has not seen."""
        wanted = [s for s in self.signals if s not in frame.missing_signals]
        by_entity: dict[Entity, dict[str, pd.Series]] = {}
        step = max(frame.step_seconds, 1e-9)
        for series in frame.series:
            if series.signal not in wanted or len(series) == 0:
                continue
            values = _on_grid(series.timestamps, series.values, step)
            columns = by_entity.setdefault(series.entity, {})
            # Several series of one signal (containers, mountpoints): the worst one speaks for the entity.
            columns[series.signal] = values if series.signal not in columns else pd.concat([columns[series.signal], values]).groupby(level=0).max()
        if history:
            seen = {e for state in self._pools_state.values() for e in state.seen}
            for (entity, signal), (t, v) in history.items():
                columns = by_entity.get(entity, {})
                if signal in columns and entity.key not in seen:
                    column = columns[signal]
                    before = _on_grid(t, v, step)
                    columns[signal] = pd.concat([before[before.index < column.index[0]], column])
        pools: dict[tuple[str, tuple[str, ...]], dict[Entity, pd.DataFrame]] = {}
        for entity, columns in by_entity.items():
            features = tuple(sorted(columns))
            table = pd.DataFrame(columns).sort_index()[list(features)]
            pools.setdefault((entity.kind, features), {})[entity] = table
        return pools

    def _score_pool(
        self, frame: Frame, kind: str, features: tuple[str, ...], tables: dict[Entity, pd.DataFrame]
    ) -> list[Finding]:
        """Advance the pool's reference by the rows the frame adds, and report its entities' newest rows.

        An entity the reference has not seen brings its lookback as history, all but its newest
        smoothing window, which is scored (the backtest's train/test split); after that each
        cycle scores the rows added since. The reference is refitted only on its schedule, on rows
        that were not flagged (detectors/_mv_reference.py): not on the lookback every cycle.
        """
        step = float(frame.step_seconds)
        window = _window_rows(self.smooth_minutes, step)
        key = (kind, features)
        state = self._pools_state.get(key)
        if state is None or state.step != step:
            state = PoolState(step)
        order = sorted(tables, key=lambda e: e.key)
        blocks = []
        for entity in order:
            table = tables[entity]
            t = np.asarray(table.index, dtype=float)
            start = 0 if entity.key in state.seen else max(0, t.shape[0] - window)
            blocks.append(Block(entity.key, t, table.to_numpy(dtype=float), start))
        before = state.saved
        state, scored = advance(
            state, blocks, kind=kind, features=features,
            fit=partial(self.reference_model, step_seconds=step), schedule=self.schedule(step),
        )
        self._pools_state[key] = state
        if state.saved is not None and state.saved is not before:
            self._unsaved[state.saved.key] = state.saved
        found = []
        for entity, block, done in zip(order, blocks, scored):
            rows = block.x
            if not rows.shape[0] or np.all(np.isnan(rows[-1])):
                continue  # an entity without a newest row has no opinion
            if done.scores.shape[0] and done.model is not None and math.isfinite(done.statistics[-1]):
                self._newest[(entity.key, key[0])] = (float(block.t[-1]), float(done.statistics[-1]), float(done.scores[-1]), done.model)
            newest = self._newest.get((entity.key, key[0]))
            if newest is None or newest[0] != float(block.t[-1]):
                continue  # no model had scored its newest row: too little history, no opinion
            _, statistic, score, model = newest
            if score < self.report_floor:
                continue
            finding = isolated(self.name, entity, self._score_entity, frame, entity, features, tables[entity], model, rows[-1], statistic, score)
            if finding is not None:
                found.append(finding)
        return found

    # -- the reference's state, handed to the daemon's state file ---------------------------------
    def saved_state(self) -> dict[str, bytes]:
        """The references fitted and not yet stored, by pool, as the state file stores them."""
        return {k: ref.to_bytes() for k, ref in self._unsaved.items()}

    def state_saved(self, keys: Iterable[str]) -> None:
        """The pipeline stored these references; a newer fit of the same pool stays pending."""
        for key in keys:
            self._unsaved.pop(key, None)

    def restore_state(self, saved: Mapping[str, bytes]) -> list[str]:
        """Take up the references a previous run saved; returns a problem per one it could not read
        (that pool learns again from its lookback)."""
        problems = []
        for key, body in saved.items():
            try:
                ref = SavedReference.from_bytes(body)
                state = restored(ref, partial(self.reference_model, step_seconds=ref.step), self.schedule(ref.step))
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
                continue
            self._pools_state[(ref.kind, ref.features)] = state
        return problems

    def _score_entity(
        self,
        frame: Frame,
        entity: Entity,
        features: tuple[str, ...],
        table: pd.DataFrame,
        model: ReferenceModel,
        row: np.ndarray,
        statistic: float,
        score: float,
    ) -> Finding | None:
        contrib = model.contributions(row)
        total = float(contrib.sum())
        # Of the deviation: an infinite one (an absurd value) is shared by the features that are infinite.
        infinite = np.isinf(contrib)
        if infinite.any():
            shares = infinite / np.count_nonzero(infinite)
        else:
            shares = contrib / total if total > 0 else np.zeros_like(contrib)
        order = np.argsort(-contrib)[: self.top_features]
        top = [
            {
                "feature": features[j],
                "value": _num(row[j]),
                "typical": _num(model.center[j]),
                "share": round(float(shares[j]), 3),
            }
            for j in order
            if contrib[j] > 0
        ]
        described = ", ".join(
            f"{t['feature']} {_fmt(t['value'])} (typical {_fmt(t['typical'])}, {t['share']:.0%} of the deviation)" for t in top
        )
        p = float(model.exceedance(np.array([statistic]))[0])
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
                    "statistic": statistic,
                    "exceedance_probability": p,
                    "smooth_minutes": self.smooth_minutes,
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
