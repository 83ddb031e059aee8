"""Backtests on multi-column data in the SMD layout (SMD, ASD): train/, test/, test_label/.

Each machine is a headerless CSV (optionally gzipped) with one row per time step and one column
per metric; ``test`` follows ``train`` in time and ``test_label`` holds one 0/1 per test row. The
multivariate detector sees the train rows as history and scores the test rows causally.
Metrics are point-wise without point adjustment, plus event recall and detection delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from tqdm import tqdm

from aiops.evaluation.errors import Failure, ReplayError
from aiops.evaluation.metrics import (
    PointMetrics,
    best_f1_threshold,
    event_metrics,
    false_alarms_per_day,
    label_segments,
    point_metrics,
)

__all__ = [
    "MATRIX_BASELINES",
    "FeatureZScore",
    "IsolationForestBaseline",
    "Machine",
    "MatrixScorer",
    "NullMatrixBaseline",
    "PcaReconstruction",
    "RandomMatrixBaseline",
    "Scored",
    "evaluate_machines",
    "find_machines",
    "read_machine",
    "replay_machines",
]

SUFFIXES = (".txt.gz", ".txt", ".csv.gz", ".csv")
LAYOUT_HINT = (
    "--format smd expects DATA/train/, DATA/test/ and DATA/test_label/ with one file per machine"
    " (.txt, .txt.gz, .csv): one comma-separated row per time step, no header"
)
LABELS_HINT = "give test_label/<machine> one 0 or 1 per line, one line per test row"


class MatrixScorer(Protocol):
    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Machine:
    name: str
    train: np.ndarray | None
    test: np.ndarray
    labels: np.ndarray | None


@dataclass(frozen=True)
class Scored:
    machine: str
    timestamps: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None
    seconds: float
    features: np.ndarray  # the test rows, for plots


def _stem(path: Path) -> str:
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _find(folder: Path, name: str) -> Path | None:
    for suffix in SUFFIXES:
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return None


def find_machines(root: Path) -> list[str]:
    test = root / "test"
    if not test.is_dir():
        raise ReplayError(f"{root} has no test/ folder", hint=LAYOUT_HINT)
    names = sorted({_stem(p) for p in test.iterdir() if p.is_file() and p.name.endswith(SUFFIXES)})
    if not names:
        raise ReplayError(f"no machine files (.txt, .txt.gz, .csv) in {test}", hint=LAYOUT_HINT)
    return names


def _read_matrix(path: Path) -> np.ndarray:
    try:
        frame = pd.read_csv(path, header=None)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, EOFError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}", hint=LAYOUT_HINT) from exc
    values: np.ndarray = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if values.size == 0:
        raise ReplayError(f"{path} is empty", hint=LAYOUT_HINT)
    return values


def read_machine(root: Path, name: str) -> Machine:
    test = _read_matrix(_find(root / "test", name) or root / "test" / name)
    train_path = _find(root / "train", name)
    train = _read_matrix(train_path) if train_path else None
    if train is not None and train.shape[1] != test.shape[1]:
        raise ReplayError(
            f"{name}: train has {train.shape[1]} columns but test has {test.shape[1]}",
            hint="give train and test of a machine the same metrics, in the same order",
        )
    label_path = _find(root / "test_label", name)
    labels = None
    if label_path:
        labels = _read_matrix(label_path)[:, 0]
        if labels.shape[0] != test.shape[0]:
            raise ReplayError(f"{name}: {labels.shape[0]} labels for {test.shape[0]} test rows", hint=LABELS_HINT)
        if np.isnan(labels).any():
            raise ReplayError(f"{label_path} has non-numeric labels", hint=LABELS_HINT)
        labels = labels.astype(bool)
    return Machine(name, train, test, labels)


def replay_machines(
    root: Path,
    make_scorer: Callable[[], MatrixScorer],
    step_seconds: float,
    *,
    progress: bool = True,
    desc: str = "replay",
    names: Sequence[str] | None = None,
    failed: dict[str, Failure] | None = None,
) -> list[Scored]:
    """Score every machine's test rows with a fresh detector; timestamps are synthesised at ``step_seconds``.

    With ``failed`` given, a machine that cannot be read or scored is recorded there (name ->
    :class:`Failure`) and the others are still scored; without it the first such machine raises.
    """
    out = []
    for name in tqdm(list(names or find_machines(root)), desc=desc, unit="machine", disable=not progress, leave=False):
        try:
            out.append(_score_machine(root, name, make_scorer, step_seconds))
        except Exception as exc:  # one bad machine (or a detector bug on it) never loses the others
            if failed is None:
                raise
            failed[name] = Failure.of(exc)
    return out


def _score_machine(root: Path, name: str, make_scorer: Callable[[], MatrixScorer], step_seconds: float) -> Scored:
    machine = read_machine(root, name)
    timestamps = np.arange(machine.test.shape[0], dtype=float) * step_seconds
    started = time.perf_counter()
    scores = np.asarray(make_scorer().score_matrix(timestamps, machine.test, train=machine.train), dtype=float)
    elapsed = time.perf_counter() - started
    if scores.shape != (machine.test.shape[0],) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ValueError(f"{name}: the detector must return one finite score in [0, 1] per row (a detector bug)")
    return Scored(name, timestamps, scores, machine.labels, elapsed, machine.test)


@dataclass(frozen=True)
class MachineFigures:
    machine: str
    point: PointMetrics
    best_f1: float  # with this machine's own best threshold: an upper bound that peeks at labels
    events: int
    events_detected: int
    median_delay_seconds: float
    false_alarms_per_day: float


def evaluate_machines(scored: Sequence[Scored], threshold: float) -> dict[str, Any]:
    """Figures at the fixed ``threshold`` (no label peeking) and at the best shared threshold."""
    labelled = [s for s in scored if s.labels is not None]
    labels = [s.labels for s in labelled if s.labels is not None]  # the same rows, typed as present
    per_machine = []
    for s, y in zip(labelled, labels):
        flagged = s.scores >= threshold
        segments = label_segments(y)
        ev = event_metrics(segments, flagged, s.timestamps)
        per_machine.append(
            MachineFigures(
                machine=s.machine,
                point=point_metrics(y, flagged),
                best_f1=best_f1_threshold([y], [s.scores])[1],
                events=ev.events,
                events_detected=ev.detected,
                # Lead against the segment start is minus the delay.
                median_delay_seconds=-ev.median_lead_seconds if ev.leads_seconds else float("nan"),
                false_alarms_per_day=false_alarms_per_day(flagged, y, s.timestamps),
            )
        )
    scores = [s.scores for s in labelled]
    shared_threshold, pooled_shared = best_f1_threshold(labels, scores) if labelled else (float("nan"), 0.0)
    shared = [point_metrics(y, v >= shared_threshold).f1 for y, v in zip(labels, scores)]
    pooled = point_metrics(np.concatenate(labels), np.concatenate([v >= threshold for v in scores])) if labelled else None
    events = sum(m.events for m in per_machine)
    return {
        "threshold": threshold,
        "mean_f1": float(np.mean([m.point.f1 for m in per_machine])) if per_machine else float("nan"),
        # All machines' rows as one series, as many papers report SMD.
        "pooled_f1": pooled.f1 if pooled else float("nan"),
        "pooled_f1_at_shared_best": pooled_shared,
        "event_recall": sum(m.events_detected for m in per_machine) / events if events else float("nan"),
        "median_delay_seconds": float(np.nanmedian([m.median_delay_seconds for m in per_machine])) if per_machine and not all(np.isnan(m.median_delay_seconds) for m in per_machine) else float("nan"),
        "shared_best_threshold": shared_threshold,
        "mean_f1_at_shared_best": float(np.mean(shared)) if shared else float("nan"),
        "mean_best_f1_per_machine": float(np.mean([m.best_f1 for m in per_machine])) if per_machine else float("nan"),
        "points": int(sum(s.scores.shape[0] for s in scored)),
        "seconds": float(sum(s.seconds for s in scored)),
        "machines": [{**asdict(m), "point": asdict(m.point)} for m in per_machine],
    }


def _train_rows(X: np.ndarray, train: np.ndarray | None, who: str) -> np.ndarray:
    if train is None or np.asarray(train).shape[0] < 2:
        raise ReplayError(
            f"the {who} baseline is fitted on the train split, and the machine has none",
            hint="give the machines a train/ folder (the SMD layout has one)",
        )
    rows: np.ndarray = np.nan_to_num(np.asarray(train, dtype=float))
    return rows


class NullMatrixBaseline:
    """Never raises anything. Its best F1 is what flagging every row gets: the floor of F1-best."""

    name = "null"

    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        return np.zeros(np.asarray(X).shape[0])


class PcaReconstruction:
    """The textbook baseline: ``PCA(n_components=0.95)`` fitted on the train split as shipped (no
    scaling of our own), each test row scored by its squared reconstruction error.

    The error is squashed by e / (1 + e), which keeps the order, so F1-best is the plain method's.
    It has no threshold of its own: its F1 at a fixed threshold is not reported.
    """

    name = "pca_reconstruction"
    default_threshold = None

    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        pca = PCA(n_components=0.95, svd_solver="full").fit(_train_rows(X, train, "PCA reconstruction"))
        x = np.nan_to_num(np.asarray(X, dtype=float))
        error = np.square(x - pca.inverse_transform(pca.transform(x))).sum(axis=1)
        return np.asarray(error / (1.0 + error))


class IsolationForestBaseline:
    """scikit-learn's ``IsolationForest`` with its defaults (seeded), fitted on the train split.

    The score is the paper's anomaly score s in (0, 1] (``-score_samples``); its own decision rule
    (``contamination="auto"``) flags s > 0.5, which is the threshold its fixed-threshold F1 uses.
    """

    name = "isolation_forest"
    default_threshold = 0.5

    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        forest = IsolationForest(random_state=0).fit(_train_rows(X, train, "IsolationForest"))
        return np.asarray(np.clip(-forest.score_samples(np.nan_to_num(np.asarray(X, dtype=float))), 0.0, 1.0))


class RandomMatrixBaseline:
    name = "random"

    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(np.random.default_rng(X.shape[0]).random(X.shape[0]))


class FeatureZScore:
    """The plain baseline: the largest per-feature |z| against the train rows, squashed by z / (1 + z)."""

    name = "feature_zscore"

    def score_matrix(self, timestamps: np.ndarray, X: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(X, dtype=float)
        ref = x[: max(1, x.shape[0] // 10)] if train is None else np.asarray(train, dtype=float)
        with np.errstate(all="ignore"):
            mean = np.nanmean(ref, axis=0)
            std = np.maximum(np.nan_to_num(np.nanstd(ref, axis=0)), 0.01 * np.maximum(np.abs(np.nan_to_num(mean)), 1.0))
            z = np.nanmax(np.abs((x - mean) / std), axis=1)
        z = np.nan_to_num(z, nan=0.0)
        return np.asarray(z / (1.0 + z))


# The reference methods every multi-column report computes in the same run.
MATRIX_BASELINES: tuple[tuple[str, Callable[[], MatrixScorer]], ...] = (
    ("null", NullMatrixBaseline),
    ("random", RandomMatrixBaseline),
    ("pca_reconstruction", PcaReconstruction),
    ("isolation_forest", IsolationForestBaseline),
)
