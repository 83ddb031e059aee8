"""Cross-validation machinery: folds, selection on training folds only, NAB held-out scoring."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aiops.evaluation.cv import Fit, Fold, category_folds, cross_validate, format_cv_table, leave_one_out, param_grid
from aiops.evaluation.errors import ReplayError
from aiops.evaluation.nab import prepare_corpus, score_prepared
from aiops.evaluation.nab_cv import nab_cross_validate


def test_category_folds_group_by_top_folder_and_refuse_flat_or_single_category() -> None:
    folds = category_folds(["b/x.csv", "a/y.csv", "a/z.csv"])
    assert folds == [Fold("a", ("a/y.csv", "a/z.csv")), Fold("b", ("b/x.csv",))]
    with pytest.raises(ReplayError, match="'x.csv' is not inside a category folder") as raised:
        category_folds(["x.csv", "a/y.csv"])
    assert raised.value.hint == (
        "--cv holds out one top-level folder of DATA at a time: put the files in one folder per category"
        " (like NAB's realTweets/, realTraffic/, ...)"
    )
    with pytest.raises(ReplayError, match="at least two category folders") as raised:
        category_folds(["a/x.csv", "a/y.csv"])
    assert raised.value.hint == "put the files in two or more category folders, or leave --cv out"
    assert leave_one_out(["m2", "m1"]) == [Fold("m1", ("m1",)), Fold("m2", ("m2",))]
    with pytest.raises(ReplayError, match="at least two") as raised:
        leave_one_out(["m1"])
    assert raised.value.hint == "give at least two machines, or leave --cv out"


def test_param_grid_names_every_combination() -> None:
    grid = param_grid({"base": 1}, {"b": [1, 2], "a": ["x"]})
    assert grid == {"a=x,b=1": {"base": 1, "a": "x", "b": 1}, "a=x,b=2": {"base": 1, "a": "x", "b": 2}}
    assert param_grid({"k": 3}, {}) == {"default": {"k": 3}}


def test_the_candidate_is_chosen_on_training_folds_only() -> None:
    # "lucky" is perfect on fold A and useless elsewhere; "steady" is decent everywhere.
    quality = {"lucky": {"A": 1.0, "B": 0.0, "C": 0.0}, "steady": {"A": 0.6, "B": 0.6, "C": 0.6}}
    fold_of = {"a1": "A", "b1": "B", "c1": "C"}
    seen: list[set[str]] = []

    def fit(outputs: dict[str, float], items) -> Fit:  # noqa: ANN001
        seen.append(set(items))
        return Fit(sum(outputs[fold_of[i]] for i in items) / len(items), {"k": 1})

    def evaluate(outputs: dict[str, float], settings, items) -> dict[str, float]:  # noqa: ANN001
        return {"q": sum(outputs[fold_of[i]] for i in items) / len(items)}

    folds = [Fold("A", ("a1",)), Fold("B", ("b1",)), Fold("C", ("c1",))]
    result = cross_validate("m", folds, quality, fit, evaluate)
    by_fold = {f.fold: f for f in result.folds}
    assert by_fold["A"].candidate == "steady" and by_fold["A"].held_out["q"] == pytest.approx(0.6)
    assert {"a1"} not in seen and {"b1", "c1"} in seen  # fold A's own items never chose for fold A
    assert result.mean_held_out()["q"] == pytest.approx(0.6)
    table = format_cv_table([result], ["q"], decimals=2)
    assert "held-out" in table and "in-sample" in table and "0.60" in table


def _scores(n: int, hits: dict[int, float], start: str = "2024-01-01") -> pd.DataFrame:
    s = np.zeros(n)
    for i, v in hits.items():
        s[i] = v
    return pd.DataFrame({"timestamp": pd.date_range(start, periods=n, freq="5min"), "anomaly_score": s})


def test_nab_thresholds_of_a_held_out_category_come_from_the_others() -> None:
    ts = pd.date_range("2024-01-01", periods=400, freq="5min")
    win = [(ts[300], ts[320])]
    # In "a" the anomaly scores 0.9, in "b" 0.6 (with a 0.5 false alarm), "c" has no anomaly but a 0.95 blip.
    scores = {
        "a/1.csv": _scores(400, {310: 0.9}),
        "b/1.csv": _scores(400, {150: 0.5, 305: 0.6}),
        "c/1.csv": _scores(400, {200: 0.95}),
    }
    windows = {"a/1.csv": win, "b/1.csv": win, "c/1.csv": []}
    prepared = prepare_corpus(scores, windows)
    result = nab_cross_validate("m", category_folds(list(scores)), {"default": prepared})
    by_fold = {f.fold: f for f in result.folds}
    expected = score_prepared({k: prepared[k] for k in ("a/1.csv", "c/1.csv")}).threshold
    assert by_fold["b"].settings["threshold"]["standard"] == expected
    assert math.isnan(by_fold["c"].held_out["standard"])  # no windows: normalised score undefined
    assert by_fold["c"].held_out["standard.raw"] <= 0.0
    pooled = result.extra["held_out_pooled"]["standard"]
    assert math.isfinite(pooled) and pooled <= result.extra["in_sample_corpus"]["standard"] + 1e-9


def test_nab_scores_at_a_fixed_threshold_choose_nothing_on_labels() -> None:
    # The daemon alarms at one fixed score: that reading chooses no threshold, on any fold.
    ts = pd.date_range("2024-01-01", periods=400, freq="5min")
    win = [(ts[300], ts[320])]
    scores = {
        "a/1.csv": _scores(400, {310: 0.9}),
        "b/1.csv": _scores(400, {150: 0.75, 305: 0.6}),  # at 0.7: a false alarm and a missed window
        "c/1.csv": _scores(400, {200: 0.95}),
    }
    windows = {"a/1.csv": win, "b/1.csv": win, "c/1.csv": []}
    prepared = prepare_corpus(scores, windows)
    result = nab_cross_validate("m", category_folds(list(scores)), {"default": prepared}, fixed_threshold=0.7)
    fixed = result.extra["fixed_threshold"]
    assert fixed["threshold"] == 0.7
    for fold in ("a", "b"):
        sub = {k: v for k, v in prepared.items() if k.startswith(f"{fold}/")}
        assert fixed["folds"][fold]["standard"] == pytest.approx(score_prepared(sub, "standard", 0.7).normalized)
    assert fixed["folds"]["b"]["standard"] < 0.0 < fixed["folds"]["a"]["standard"]
    assert fixed["mean"]["standard"] == pytest.approx((fixed["folds"]["a"]["standard"] + fixed["folds"]["b"]["standard"]) / 2)
    every = score_prepared(prepared, "standard", 0.7)  # pooled over all folds = the corpus at 0.7
    assert fixed["pooled"]["standard"] == pytest.approx(every.normalized)
    assert "fixed_threshold" not in nab_cross_validate("m", category_folds(list(scores)), {"default": prepared}).extra
