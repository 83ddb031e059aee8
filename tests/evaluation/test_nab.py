"""NAB scoring against hand-computed cases and a plain row-by-row reading of NAB's rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from aiops.evaluation.errors import ReplayError
from aiops.evaluation.nab import (
    LABELS_HINT,
    PROFILES,
    load_windows,
    probationary_length,
    scaled_sigmoid,
    score_all_profiles,
    score_corpus,
)

START = pd.Timestamp("2024-01-01")


def _frame(scores: np.ndarray) -> pd.DataFrame:
    ts = pd.date_range(START, periods=len(scores), freq="5min")
    return pd.DataFrame({"timestamp": ts, "anomaly_score": scores})


def _window(first: int, last: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    step = pd.Timedelta(minutes=5)
    return START + first * step, START + last * step


def _sig(p: float) -> float:
    return -1.0 if p >= 3 else 2 / (1 + math.exp(5 * p)) - 1


MAX_TP = _sig(-1.0)


def test_probationary_length_is_15_percent_capped_at_750() -> None:
    assert probationary_length(1000) == 150
    assert probationary_length(4000) == 600
    assert probationary_length(20000) == 750


def test_scaled_sigmoid_matches_nab_reference_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(3.0) == -1.0


def test_perfect_detector_scores_100_and_null_scores_0() -> None:
    windows = {"a.csv": [_window(300, 399)], "b.csv": [_window(500, 549), _window(800, 849)]}
    perfect = {"a.csv": np.zeros(1000), "b.csv": np.zeros(1000)}
    perfect["a.csv"][300] = 1.0
    perfect["b.csv"][[500, 800]] = 1.0
    null = {k: np.zeros(1000) for k in perfect}
    for profile in PROFILES:
        best = score_corpus({k: _frame(v) for k, v in perfect.items()}, windows, profile)
        assert best.normalized == pytest.approx(100.0)
        assert best.perfect == 3.0
        nothing = score_corpus({k: _frame(v) for k, v in null.items()}, windows, profile)
        assert nothing.normalized == pytest.approx(0.0)
        assert nothing.raw == pytest.approx(-PROFILES[profile].fn * 3)


def test_hand_computed_detection_mid_window_and_false_positives() -> None:
    # 1000 rows: rows 0..149 probationary. Window rows 400..499 (width 100).
    scores = np.zeros(1000)
    scores[200] = 0.9  # FP before any window: full cost -fp
    scores[450] = 0.8  # TP halfway: position -(499-450+1)/100 = -0.5
    scores[470] = 0.8  # later detection in the same window: does not count again
    scores[600] = 0.7  # FP 101 rows after the window: position 101/99
    scores[100] = 1.0  # probationary: ignored whatever it is
    result = score_corpus({"f.csv": _frame(scores)}, {"f.csv": [_window(400, 499)]}, "standard", threshold=0.5)
    expected = -0.11 + _sig(-0.5) / MAX_TP + 0.11 * _sig(101 / 99)
    assert result.raw == pytest.approx(expected)
    file = result.per_file["f.csv"]
    assert (file.tp, file.fp, file.detected_windows) == (2, 2, 1)
    assert result.normalized == pytest.approx(100 * (expected + 1) / 2)


def test_threshold_is_optimised_over_the_corpus() -> None:
    # A high score on the window start, a lower one on a false positive: the optimum keeps only the first.
    scores = np.zeros(1000)
    scores[400] = 0.9
    scores[700] = 0.6
    result = score_corpus({"f.csv": _frame(scores)}, {"f.csv": [_window(400, 499)]})
    assert result.threshold == pytest.approx(0.9)
    assert result.normalized == pytest.approx(100.0)


def _reference(scores: dict[str, np.ndarray], windows: dict[str, list[tuple[int, int]]], profile: str, threshold: float) -> float:
    """NAB's rules applied row by row, written independently of the vectorised implementation."""
    cost = PROFILES[profile]
    total = 0.0
    for name, s in scores.items():
        n = len(s)
        prob = probationary_length(n)
        credited: dict[int, float] = {}
        for i in range(n):
            inside = [k for k, (a, b) in enumerate(windows[name]) if a <= i <= b]
            if inside:
                a, b = windows[name][inside[0]]
                weight = _sig(-(b - i + 1) / (b - a + 1)) * cost.tp / MAX_TP
            else:
                before = [(a, b) for a, b in windows[name] if b < i]
                if before:
                    a, b = before[-1]
                    weight = _sig((i - b) / (b - a)) * cost.fp
                else:
                    weight = -cost.fp
            if i < prob:
                continue
            if inside:
                credited.setdefault(inside[0], -cost.fn)
                if s[i] >= threshold:
                    credited[inside[0]] = max(credited[inside[0]], weight)
            elif s[i] >= threshold:
                total += weight
        total += sum(credited.values())
    return total


@pytest.mark.slow
def test_matches_row_by_row_reading_on_random_detectors() -> None:
    rng = np.random.default_rng(7)
    windows = {"x.csv": [(200, 239), (500, 559)], "y.csv": [(700, 760)], "z.csv": []}
    scores = {name: np.round(rng.random(900), 2) for name in windows}
    frames = {k: _frame(v) for k, v in scores.items()}
    stamps = {k: [_window(a, b) for a, b in v] for k, v in windows.items()}
    for profile in PROFILES:
        for threshold in (0.5, 0.9, 0.99):
            got = score_corpus(frames, stamps, profile, threshold=threshold).raw
            assert got == pytest.approx(_reference(scores, windows, profile, threshold))
        best = score_corpus(frames, stamps, profile)
        candidates = [1.1, *np.unique(np.concatenate(list(scores.values())))]
        assert best.raw == pytest.approx(max(_reference(scores, windows, profile, t) for t in candidates))
    assert set(score_all_profiles(frames, stamps)) == set(PROFILES)


def test_load_windows_reads_nab_json(tmp_path) -> None:
    path = tmp_path / "windows.json"
    path.write_text(json.dumps({"a/b.csv": [["2024-01-01 00:00:00.000000", "2024-01-01 01:00:00.000000"]], "c.csv": []}))
    windows = load_windows(path)
    assert windows["a/b.csv"] == [(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01 01:00"))]
    assert windows["c.csv"] == []


def test_bad_input_is_a_clear_error(tmp_path) -> None:
    scores = np.zeros(100)
    scores[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        score_corpus({"f.csv": _frame(scores)}, {"f.csv": []})
    with pytest.raises(ValueError, match="no label windows"):
        score_corpus({"g.csv": _frame(np.zeros(10))}, {"f.csv": []})
    with pytest.raises(ReplayError, match="no row") as raised:
        score_corpus({"f.csv": _frame(np.zeros(10))}, {"f.csv": [_window(50, 60)]})
    assert raised.value.hint.startswith("check that the labels are of this file: its rows span ")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReplayError, match="not valid JSON") as raised:
        load_windows(bad)
    assert raised.value.hint == LABELS_HINT and not raised.value.temporary
