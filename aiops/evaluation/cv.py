"""Cross-validation that cannot flatter: every setting is chosen on training folds only.

A figure measured on the data the settings were chosen on says how well the settings fit that
data, not how well the detector works. Here the items of a corpus (NAB files, SMD machines) are
split into folds (a NAB category, one machine); for each fold every setting -- which candidate
configuration of the detector, and its alarm threshold -- is chosen on the *other* folds and
then scored, unchanged, on the held-out one. The same choice made on all items and scored on
each fold is the in-sample figure; the gap between the two is how much the selection flatters.

The machinery is independent of the scoring: a caller supplies, per candidate, the scores of
every item (computed once: detectors do not learn across items), a ``fit`` that chooses the
settings on a set of items and says how good they were there, and an ``evaluate`` that scores
chosen settings on another set of items. NAB (:mod:`aiops.evaluation.nab_cv`) and the
multi-column layouts plug their scoring in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiops.evaluation.errors import ReplayError

__all__ = [
    "CvResult",
    "Fit",
    "Fold",
    "FoldResult",
    "category_folds",
    "cross_validate",
    "format_cv_table",
    "leave_one_out",
    "mean_metrics",
    "param_grid",
]

Outputs = TypeVar("Outputs")


@dataclass(frozen=True)
class Fold:
    """The items held out together; the training items are all the others."""

    name: str
    test: tuple[str, ...]


@dataclass(frozen=True)
class Fit:
    """Settings chosen on training items, and how good they were there (higher is better)."""

    objective: float
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class FoldResult:
    fold: str
    items: int
    candidate: str  # the candidate chosen on the training folds
    settings: Mapping[str, Any]  # what was chosen with it (thresholds, ...)
    held_out: Mapping[str, float]  # metrics on the held-out fold with those choices
    in_sample: Mapping[str, float]  # metrics on the same fold with choices made on every item


@dataclass(frozen=True)
class CvResult:
    method: str
    folds: tuple[FoldResult, ...]
    in_sample_candidate: str
    in_sample_settings: Mapping[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # figures the scorer adds (pooled, ...)

    def mean_held_out(self) -> dict[str, float]:
        return mean_metrics([f.held_out for f in self.folds])

    def mean_in_sample(self) -> dict[str, float]:
        return mean_metrics([f.in_sample for f in self.folds])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "held_out_mean": self.mean_held_out(),
            "in_sample_mean": self.mean_in_sample(),
            "in_sample_candidate": self.in_sample_candidate,
            "in_sample_settings": dict(self.in_sample_settings),
            "folds": [
                {
                    "fold": f.fold,
                    "items": f.items,
                    "candidate": f.candidate,
                    "settings": dict(f.settings),
                    "held_out": dict(f.held_out),
                    "in_sample": dict(f.in_sample),
                }
                for f in self.folds
            ],
            **self.extra,
        }


def category_folds(items: Sequence[str]) -> list[Fold]:
    """One fold per top-level folder of the (POSIX, relative) item paths: NAB's categories."""
    groups: dict[str, list[str]] = {}
    for item in items:
        head, sep, _ = item.partition("/")
        if not sep:
            raise ReplayError(
                f"{item!r} is not inside a category folder",
                hint="--cv holds out one top-level folder of DATA at a time: put the files in one folder per category"
                " (like NAB's realTweets/, realTraffic/, ...)",
            )
        groups.setdefault(head, []).append(item)
    if len(groups) < 2:
        raise ReplayError(
            f"cross-validation needs at least two category folders under DATA, found {len(groups)} ({', '.join(groups)})",
            hint="put the files in two or more category folders, or leave --cv out",
        )
    return [Fold(name, tuple(sorted(members))) for name, members in sorted(groups.items())]


def leave_one_out(items: Sequence[str]) -> list[Fold]:
    """One fold per item (leave one machine out)."""
    if len(items) < 2:
        raise ReplayError(
            f"leave-one-out needs at least two items, got {len(items)}", hint="give at least two machines, or leave --cv out"
        )
    return [Fold(item, (item,)) for item in sorted(items)]


def param_grid(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """Every combination of the ``grid`` values on top of ``base``, named ``k=v,k=v`` (``default`` if none)."""
    keys = sorted(grid)
    out: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*(grid[k] for k in keys)):
        name = ",".join(f"{k}={v}" for k, v in zip(keys, values)) or "default"
        out[name] = {**base, **dict(zip(keys, values))}
    return out


def cross_validate(
    method: str,
    folds: Sequence[Fold],
    candidates: Mapping[str, Outputs],
    fit: Callable[[Outputs, Sequence[str]], Fit],
    evaluate: Callable[[Outputs, Mapping[str, Any], Sequence[str]], Mapping[str, float]],
) -> CvResult:
    """Held-out and in-sample metrics of ``method`` over ``folds``.

    For each fold, every candidate is fitted on the training items and the one with the best
    objective (first among ties, in the order given) is scored on the held-out items with its
    settings. The in-sample choice is the same procedure on every item.
    """
    if not candidates:
        raise ValueError(f"{method}: no candidate configuration to cross-validate")
    every = [item for fold in folds for item in fold.test]
    in_name, in_fit = _choose(candidates, fit, every)
    results = []
    for fold in folds:
        held = set(fold.test)
        train = [item for item in every if item not in held]
        name, chosen = _choose(candidates, fit, train)
        results.append(
            FoldResult(
                fold=fold.name,
                items=len(fold.test),
                candidate=name,
                settings=chosen.settings,
                held_out=dict(evaluate(candidates[name], chosen.settings, fold.test)),
                in_sample=dict(evaluate(candidates[in_name], in_fit.settings, fold.test)),
            )
        )
    return CvResult(method, tuple(results), in_name, in_fit.settings)


def _choose(
    candidates: Mapping[str, Outputs], fit: Callable[[Outputs, Sequence[str]], Fit], items: Sequence[str]
) -> tuple[str, Fit]:
    best: tuple[str, Fit] | None = None
    for name, outputs in candidates.items():
        fitted = fit(outputs, items)
        if best is None or _better(fitted.objective, best[1].objective):
            best = (name, fitted)
    assert best is not None
    return best


def _better(a: float, b: float) -> bool:
    if math.isnan(a):
        return False
    return math.isnan(b) or a > b


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each numeric metric over the rows where it is defined (not NaN/None)."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    out: dict[str, float] = {}
    for key in keys:
        values = [float(v) for row in rows if isinstance(v := row.get(key), int | float) and math.isfinite(v)]
        out[key] = sum(values) / len(values) if values else float("nan")
    return out


def format_cv_table(
    results: Sequence[CvResult], metrics: Sequence[str], labels: Sequence[str] | None = None, decimals: int = 1
) -> str:
    """Held-out means beside in-sample means (same folds) and their gap, one row per method."""
    labels = list(labels or metrics)
    width = max(8, *(len(x) + 1 for x in labels))
    group = width * len(metrics)
    name = max(16, *(len(r.method) + 1 for r in results))
    head1 = f"{'':<{name}}{'held-out (CV mean)':>{group}}  {'in-sample (same folds)':>{group}}  {'in-sample - CV':>{group}}"
    head2 = f"{'method':<{name}}" + "  ".join("".join(f"{x:>{width}}" for x in labels) for _ in range(3))
    lines = [head1, head2, "-" * len(head2)]
    for r in results:
        cv, ins = r.mean_held_out(), r.mean_in_sample()
        cells = [
            "".join(_cell(cv.get(m), width, decimals) for m in metrics),
            "".join(_cell(ins.get(m), width, decimals) for m in metrics),
            "".join(_cell(_minus(ins.get(m), cv.get(m)), width, decimals) for m in metrics),
        ]
        lines.append(f"{r.method:<{name}}" + "  ".join(cells))
    return "\n".join(lines)


def _minus(a: float | None, b: float | None) -> float:
    return a - b if a is not None and b is not None else math.nan


def _cell(value: float | None, width: int, decimals: int) -> str:
    if value is None or not math.isfinite(value):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{decimals}f}"
