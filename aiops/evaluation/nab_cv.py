"""NAB scoring plugged into cross-validation: leave one category out, thresholds chosen on the rest.

NAB itself optimises one threshold per profile on the whole corpus it then scores, which is an
in-sample figure. Here the threshold of each profile (and, when several are given, the detector
configuration, chosen by the standard profile) comes from the training categories and is applied
unchanged to the held-out one.

Per-fold normalised scores are undefined for a category without labelled windows (NAB's
``artificialNoAnomaly``: a detector can only lose points there), so the fold mean is over the
folds that have windows; the *pooled* figure adds every held-out fold's raw score and normalises
the sum over the whole corpus, which counts the false alarms of such a category too.

With ``fixed_threshold`` the held-out folds are also scored at one given threshold (the daemon's
own alarm level): a reading in which no threshold is learnt from labels at all, so it cannot
overfit one; it shows whether a score means the same on every category.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from aiops.evaluation.cv import CvResult, Fit, Fold, cross_validate, mean_metrics
from aiops.evaluation.nab import PROFILES, PreparedFile, score_prepared

__all__ = ["OBJECTIVE_PROFILE", "nab_cross_validate", "nab_evaluate", "nab_fit"]

# The profile whose training score chooses between candidate configurations.
OBJECTIVE_PROFILE = "standard"


def nab_fit(prepared: Mapping[str, PreparedFile], items: Sequence[str]) -> Fit:
    """The corpus-optimal threshold of each profile on ``items``; objective = standard score there."""
    sub = {k: prepared[k] for k in items}
    results = {name: score_prepared(sub, profile) for name, profile in PROFILES.items()}
    return Fit(results[OBJECTIVE_PROFILE].normalized, {"threshold": {n: r.threshold for n, r in results.items()}})


def nab_evaluate(prepared: Mapping[str, PreparedFile], settings: Mapping[str, Any], items: Sequence[str]) -> dict[str, float]:
    """Normalised score of each profile on ``items`` at the given thresholds, with the raw parts."""
    sub = {k: prepared[k] for k in items}
    out: dict[str, float] = {}
    for name, profile in PROFILES.items():
        r = score_prepared(sub, profile, settings["threshold"][name])
        out[name] = r.normalized
        out[f"{name}.raw"], out[f"{name}.null"], out[f"{name}.perfect"] = r.raw, r.null, r.perfect
    return out


def nab_cross_validate(
    method: str,
    folds: Sequence[Fold],
    candidates: Mapping[str, Mapping[str, PreparedFile]],
    fixed_threshold: float | None = None,
) -> CvResult:
    """Leave-one-fold-out NAB scores of one method (its candidates' prepared replays).

    ``fixed_threshold``: also score each held-out fold (with the candidate chosen on its training
    folds) at this threshold for every profile, in ``extra["fixed_threshold"]``.
    """
    result = cross_validate(method, folds, candidates, nab_fit, nab_evaluate)
    result.extra["held_out_pooled"] = _pooled([f.held_out for f in result.folds])
    result.extra["in_sample_pooled"] = _pooled([f.in_sample for f in result.folds])
    if fixed_threshold is not None:
        at = {name: fixed_threshold for name in PROFILES}
        rows = {
            f.fold: nab_evaluate(candidates[f.candidate], {"threshold": at}, fold.test)
            for f, fold in zip(result.folds, folds)
        }
        result.extra["fixed_threshold"] = {
            "threshold": fixed_threshold,
            "folds": rows,
            "mean": mean_metrics(list(rows.values())),
            "pooled": _pooled(list(rows.values())),
        }
    # The classic figure: one threshold per profile optimised over, and scored on, every file.
    corpus = candidates[result.in_sample_candidate]
    result.extra["in_sample_corpus"] = {n: score_prepared(corpus, p).normalized for n, p in PROFILES.items()}
    return result


def _pooled(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    out = {}
    for name in PROFILES:
        raw, null, perfect = (sum(r[f"{name}.{part}"] for r in rows) for part in ("raw", "null", "perfect"))
        out[name] = 100.0 * (raw - null) / (perfect - null) if perfect != null else math.nan
    return out
