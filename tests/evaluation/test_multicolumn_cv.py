"""Leave one machine out on multi-column data: choices made on the other machines, baselines."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.evaluation.cv import leave_one_out
from aiops.evaluation.errors import ReplayError
from aiops.evaluation.multicolumn import IsolationForestBaseline, NullMatrixBaseline, PcaReconstruction, Scored
from aiops.evaluation.multicolumn_cv import MachineRuns, machines_cross_validate


def _scored(name: str, scores: np.ndarray, labels: np.ndarray | None) -> Scored:
    n = scores.shape[0]
    return Scored(name, np.arange(n) * 60.0, scores, labels, 0.1, np.zeros((n, 1)))


def test_the_threshold_is_chosen_on_the_other_machines_and_the_fixed_one_needs_no_labels() -> None:
    labels = np.zeros(100, dtype=bool)
    labels[40:50] = True
    # Machines a and b score the incident 0.7; machine c scores everything 0.3 lower.
    base = np.where(labels, 0.7, 0.1)
    runs = MachineRuns(
        {"a": _scored("a", base, labels), "b": _scored("b", base, labels), "c": _scored("c", np.clip(base - 0.3, 0, 1), labels)},
        default_threshold=0.5,
    )
    result = machines_cross_validate("m", leave_one_out(["a", "b", "c"]), {"default": runs})
    c = next(f for f in result.folds if f.fold == "c")
    assert c.held_out["f1_best"] == pytest.approx(1.0)  # its own best threshold still separates it
    assert c.settings["threshold"] == pytest.approx(0.7)  # chosen on a and b
    assert c.held_out["f1_chosen"] == 0.0  # ... and too high for c
    assert c.held_out["f1_default"] == 0.0 and c.held_out["event_recall"] == 0.0
    a = next(f for f in result.folds if f.fold == "a")
    assert a.held_out["f1_default"] == pytest.approx(1.0)
    # Separable: no normal row needs flagging to catch the whole incident, at either false-alarm budget.
    assert c.held_out["f1_fa_0.001"] == pytest.approx(1.0) and c.held_out["f1_fa_0.01"] == pytest.approx(1.0)


def test_the_false_alarm_ceiling_says_when_f1_best_needs_many_false_alarms() -> None:
    # A weak incident: 90 of its rows score like the top 5 % of normal rows (0.85), 10 stand out
    # (0.95). F1-best flags those normal rows with it; a threshold that flags at most 1 in 100
    # normal rows can only reach the 10 rows that stand out.
    rng = np.random.default_rng(0)
    labels = np.zeros(2000, dtype=bool)
    labels[1000:1100] = True
    scores = 0.5 * rng.random(2000)
    scores[rng.choice(np.flatnonzero(~labels), 100, replace=False)] = 0.85
    scores[1000:1090] = 0.85
    scores[1090:1100] = 0.95
    runs = MachineRuns({m: _scored(m, scores, labels) for m in ("a", "b")}, default_threshold=0.9)
    held = machines_cross_validate("m", leave_one_out(["a", "b"]), {"default": runs}).folds[0].held_out
    assert held["f1_best"] == pytest.approx(2 * 100 / (2 * 100 + 100))
    assert held["f1_fa_0.01"] == pytest.approx(2 * 10 / (2 * 10 + 90)) == held["f1_default"]
    assert held["f1_fa_0.001"] == held["f1_fa_0.01"]


def test_an_unlabelled_machine_is_a_clear_error() -> None:
    with pytest.raises(ReplayError, match="a has no test_label file") as raised:
        MachineRuns({"a": _scored("a", np.zeros(10), None)}, default_threshold=None)
    assert raised.value.hint == "add test_label/<machine> files (one 0 or 1 per test row), or leave --cv out"


def test_baselines_fit_on_the_train_split() -> None:
    rng = np.random.default_rng(0)
    load = rng.random((2000, 1))
    x = np.hstack([load, 0.8 * load + 0.02 * rng.standard_normal((2000, 1)), 0.1 * rng.random((2000, 1))])
    train, test = x[:1500], x[1500:].copy()
    test[100] = [0.9, 0.0, 0.05]  # every value in range, the relation broken: PCA's case
    test[200] = [3.0, 2.4, 0.9]  # far outside every range: any method's case
    t = np.arange(500) * 60.0
    pca = PcaReconstruction().score_matrix(t, test, train=train)
    forest = IsolationForestBaseline().score_matrix(t, test, train=train)
    for scores in (pca, forest):
        assert scores.shape == (500,) and np.all((scores >= 0) & (scores <= 1))
    assert set(np.argsort(-pca)[:2]) == {100, 200}
    assert int(np.argmax(forest)) == 200 and forest[200] > IsolationForestBaseline.default_threshold
    for baseline in (PcaReconstruction(), IsolationForestBaseline()):
        with pytest.raises(ReplayError, match="fitted on the train split") as raised:
            baseline.score_matrix(t, test, train=None)
        assert raised.value.hint == "give the machines a train/ folder (the SMD layout has one)"
    assert not NullMatrixBaseline().score_matrix(t, test).any()
