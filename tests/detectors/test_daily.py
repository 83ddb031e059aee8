"""The daemon's daily maxima: the cheap per-cycle update keeps exactly the bins a full merge keeps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from detectors._daily import DailyMaxima


@pytest.mark.parametrize("seed", range(12))
def test_update_keeps_the_bins_merge_keeps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = int(rng.integers(0, 4))
    fast, full = DailyMaxima(days), DailyMaxima(days)
    step = float(rng.choice([10.0, 60.0, 300.0, 900.0]))
    lookback = int(rng.integers(5, 400))
    t_all = 1.7e9 + float(rng.integers(0, 1000)) + step * np.arange(3000)
    y_all = rng.normal(0, 1, 3000)
    y_all[rng.random(3000) < 0.1] = np.nan
    y_all[rng.random(3000) < 0.01] = np.inf
    end = int(rng.integers(1, 30))
    for _ in range(80):
        end = min(3000, end + int(rng.choice([0, 1, 1, 1, 2, 5, 100])))  # cycles, a stall, an outage
        t, y = t_all[max(0, end - lookback) : end].copy(), y_all[max(0, end - lookback) : end].copy()
        if rng.random() < 0.2 and t.shape[0] > 3:
            y[-3:] = rng.normal(0, 1, 3)  # the refetched overlap changed
        if rng.random() < 0.1:
            kept = rng.random(t.shape[0]) > 0.5  # points missing from the grid
            t, y = t[kept], y[kept]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fast.update("k", t, y)
            full.merge("k", t, y)
        if "k" in full._data:
            (f1, d1), (f2, d2) = fast._data["k"], full._data["k"]
            assert f1 == f2 and d1.dtype == d2.dtype
            np.testing.assert_array_equal(d1, d2)
        else:
            assert "k" not in fast._data


@pytest.mark.parametrize("seed", range(6))
def test_a_few_points_read_the_same_precedents_as_the_whole_series(seed: int) -> None:
    """The daemon asks about its newest points only (each bin's forward maximum read directly);
    a backtest asks about every point (one rolling maximum): the same counts."""
    from detectors._daily import BIN_SECONDS, DAY_SECONDS, benign_days, bin_maxima

    rng = np.random.default_rng(seed)
    t = 1.7e9 + 60.0 * np.arange(int(4.5 * DAY_SECONDS / 60))
    y = 0.5 + 0.4 * np.sin(2 * np.pi * t / DAY_SECONDS) + rng.normal(0, 0.05, t.shape[0])
    y[rng.random(t.shape[0]) < 0.2] = np.nan
    here, margin = y + rng.normal(0, 0.05, t.shape[0]), np.full(t.shape[0], 0.02)
    bins = bin_maxima(t, y)
    horizon = float(rng.choice([600.0, 3600.0, 7200.0]))
    everywhere = benign_days(t, here, 1.0, margin, bins, horizon, 3)
    assert everywhere.max() > 0
    for size in (1, 16, 60):
        few = slice(t.shape[0] - size, None)
        np.testing.assert_array_equal(benign_days(t[few], here[few], 1.0, margin[few], bins, horizon, 3), everywhere[few])
    assert BIN_SECONDS == 300.0
