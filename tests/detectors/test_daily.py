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
