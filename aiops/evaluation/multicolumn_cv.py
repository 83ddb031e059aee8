"""Leave one machine out on multi-column data (SMD, ASD): settings chosen on the other machines.

Every machine is replayed once per method and candidate configuration (a detector learns nothing
across machines), then :func:`aiops.evaluation.cv.cross_validate` holds each machine out in turn.
On the training machines it chooses the candidate with the best mean F1-best and the one alarm
threshold best for them together; the held-out machine is scored with both, unchanged:

* ``f1_best``: F1 at the held-out machine's own best threshold, point-wise without point
  adjustment -- the figure published SMD/ASD results compare. Only the threshold peeks at the
  held-out labels; the configuration was chosen without them.
* ``f1_default``: F1 at the method's own fixed threshold, chosen with no labels at all (the
  detector's calibrated alarm level, IsolationForest's ``contamination="auto"`` rule). Methods
  without one (PCA reconstruction, random, null) have none.
* ``f1_chosen``: F1 at the threshold the training machines chose.
* ``event_recall``: labelled segments with at least one alarm at the fixed threshold.
* ``f1_fa_0.001``, ``f1_fa_0.01``: the best F1 of any threshold that flags at most 1 in 1,000
  (1 in 100) of the held-out machine's normal rows. It peeks at labels, like ``f1_best``: it is the
  ceiling of every threshold that keeps that false-alarm rate -- a calibrated level, a streaming
  peaks-over-threshold (SPOT) level, a conformal level updated online -- so it says whether the
  fixed threshold falls short of F1-best through its calibration (``f1_default`` below this
  figure) or because F1-best needs more false alarms than a daemon can raise (this figure far
  below ``f1_best``).

The in-sample figure makes the same choices on every machine, the held-out one included; the gap
between the two is what choosing settings on the scored data would have flattered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiops.evaluation.errors import Failure, ReplayError
from aiops.evaluation.cv import CvResult, Fit, Fold, cross_validate, format_cv_table
from aiops.evaluation.metrics import best_f1_threshold, event_metrics, label_segments, point_metrics
from aiops.evaluation.multicolumn import MatrixScorer, Scored, replay_machines

__all__ = ["FALSE_ALARM_RATES", "METRICS", "MachineRuns", "format_machines_cv", "machines_cross_validate", "replay_candidates"]

# False-alarm rates whose best F1 (a label-peeking ceiling) is reported beside F1-best.
FALSE_ALARM_RATES = (0.001, 0.01)
METRICS = ("f1_best", "f1_default", "f1_chosen", "event_recall", *(f"f1_fa_{rate:g}" for rate in FALSE_ALARM_RATES))


@dataclass(frozen=True)
class MachineRuns:
    """One candidate's replay of every labelled machine, and the threshold it brings of its own."""

    scored: Mapping[str, Scored]
    default_threshold: float | None

    def __post_init__(self) -> None:
        unlabelled = sorted(name for name, s in self.scored.items() if s.labels is None)
        if unlabelled:
            raise ReplayError(
                f"cross-validation needs labels for every machine; {', '.join(unlabelled)} has no test_label file",
                hint="add test_label/<machine> files (one 0 or 1 per test row), or leave --cv out",
            )


def _labels(s: Scored) -> np.ndarray:
    assert s.labels is not None  # checked when MachineRuns is built
    return s.labels


def fit_machines(runs: MachineRuns, items: Sequence[str]) -> Fit:
    """Objective: mean F1-best over ``items``; setting: the one threshold best for them together."""
    chosen = [runs.scored[name] for name in items]
    best = [best_f1_threshold([_labels(s)], [s.scores])[1] for s in chosen]
    threshold, _ = best_f1_threshold([_labels(s) for s in chosen], [s.scores for s in chosen])
    return Fit(float(np.mean(best)), {"threshold": threshold})


def evaluate_machines_cv(runs: MachineRuns, settings: Mapping[str, Any], items: Sequence[str]) -> dict[str, float]:
    """Mean figures over ``items`` (one machine per fold in leave-one-out)."""
    rows = []
    for name in items:
        s = runs.scored[name]
        y = _labels(s)
        row = {
            "f1_best": best_f1_threshold([y], [s.scores])[1],
            "f1_chosen": point_metrics(y, s.scores >= settings["threshold"]).f1,
            "f1_default": float("nan"),
            "event_recall": float("nan"),
        }
        for rate in FALSE_ALARM_RATES:
            row[f"f1_fa_{rate:g}"] = best_f1_threshold([y], [s.scores], max_false_alarm_rate=rate)[1]
        if runs.default_threshold is not None:
            flagged = s.scores >= runs.default_threshold
            row["f1_default"] = point_metrics(y, flagged).f1
            row["event_recall"] = event_metrics(label_segments(y), flagged, s.timestamps).recall
        rows.append(row)
    return {key: float(np.mean([r[key] for r in rows])) for key in METRICS}


def machines_cross_validate(method: str, folds: Sequence[Fold], candidates: Mapping[str, MachineRuns]) -> CvResult:
    """Leave-one-fold-out figures of one method (its candidates' replays).

    ``extra["candidates"]`` holds every candidate's mean F1-best over all machines: how much the
    choice among them matters, and how the default ranks.
    """
    result = cross_validate(method, folds, candidates, fit_machines, evaluate_machines_cv)
    every = [item for fold in folds for item in fold.test]
    result.extra["candidates"] = {name: fit_machines(runs, every).objective for name, runs in candidates.items()}
    return result


def replay_candidates(
    root: Path,
    makers: Mapping[str, Callable[[], MatrixScorer]],
    step_seconds: float,
    default_threshold: float | None,
    names: Sequence[str],
    *,
    progress: bool = True,
    desc: str = "replay",
    failed: dict[str, Failure] | None = None,
) -> dict[str, MachineRuns]:
    """Every candidate's replay of the machines ``names``, keyed like ``makers`` (``failed``: as
    :func:`~aiops.evaluation.multicolumn.replay_machines`)."""
    out = {}
    for candidate, make in makers.items():
        scored = replay_machines(
            root, make, step_seconds, progress=progress, desc=f"{desc} {candidate}", names=names, failed=failed
        )
        out[candidate] = MachineRuns({s.machine: s for s in scored}, default_threshold)
    return out


def points_per_second(candidates: Mapping[str, MachineRuns]) -> float:
    runs = [s for c in candidates.values() for s in c.scored.values()]
    seconds = sum(s.seconds for s in runs)
    return sum(s.scores.shape[0] for s in runs) / seconds if seconds > 0 else math.inf


def format_machines_cv(results: Sequence[CvResult]) -> str:
    """The held-out/in-sample table and, for the first method, the figures of each held-out machine."""
    lines = [
        "Point-wise, without point adjustment; means over held-out machines. f1_best: each machine's own best",
        "threshold; f1_default: the method's fixed threshold (no labels); f1_chosen: the threshold best for the",
        "other machines; event_recall: segments with an alarm at the fixed threshold; F1@fa: the best F1 of any",
        "threshold flagging at most that share of normal rows (peeks at labels: the ceiling of a threshold that",
        "keeps that false-alarm rate). Held-out: configuration and threshold chosen on the other machines;",
        "in-sample: chosen on all machines, same folds.",
        format_cv_table(
            results, METRICS, ["F1-best", "F1@thr", "F1@chosen", "ev.rec", *(f"F1@fa{r:g}" for r in FALSE_ALARM_RATES)], decimals=3
        ),
        "",
        f"{results[0].method} per held-out machine (configuration chosen on the others):",
    ]
    candidates = results[0].extra.get("candidates", {})
    if len(candidates) > 1:
        lines.insert(-1, f"{results[0].method} candidates, mean F1-best over all machines (in-sample):")
        lines[-1:-1] = [f"  {value:.3f}  {name}" for name, value in sorted(candidates.items(), key=lambda kv: -kv[1])] + [""]
    for f in results[0].folds:
        h = f.held_out
        lines.append(
            f"  {f.fold:<20} F1-best {h['f1_best']:.3f}  F1@thr {h['f1_default']:.3f}  F1@fa0.001 {h['f1_fa_0.001']:.3f}"
            f"  F1@chosen {h['f1_chosen']:.3f} (threshold {f.settings['threshold']:.4f})  {f.candidate}"
        )
    return "\n".join(lines)
