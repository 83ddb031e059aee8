"""Rolling statistics at chosen points are pandas' rolling statistics at those points, to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from detectors._rolling_at import Windows
from detectors._univariate import grouped_rolling


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    x = rng.normal(size=n) * 10.0 ** float(rng.integers(-9, 9))
    x[rng.random(n) < rng.choice([0.0, 0.2, 0.6])] = np.nan
    if rng.random() < 0.3:
        x = np.round(x, 1)  # ties
    if rng.random() < 0.2:
        x[rng.random(n) < 0.05] = 1e300  # garbage that overflows when interpolated
    groups = np.cumsum(rng.random(n) < rng.choice([0.0, 0.02, 0.2]))
    window = int(rng.integers(1, 40))
    return x, groups, window, int(rng.integers(1, window + 1))


@pytest.mark.parametrize("seed", range(40))
def test_median_quantile_and_count_equal_pandas_at_every_point(seed: int) -> None:
    x, groups, window, min_periods = _case(seed)
    at = np.arange(x.shape[0])
    w = Windows(x, groups, at, window)
    np.testing.assert_array_equal(w.median(min_periods), grouped_rolling(x, groups, window, min_periods, "median"))
    for q in (0.25, 0.75):
        np.testing.assert_array_equal(
            w.quantile(q, min_periods), grouped_rolling(x, groups, window, min_periods, "quantile", q)
        )
    np.testing.assert_array_equal(w.counts(), grouped_rolling(x, groups, window, 1, "count"))


def test_only_the_chosen_points_are_computed() -> None:
    x = np.arange(10.0)
    w = Windows(x, np.zeros(10, dtype=np.int64), np.array([9, 2]), 3)
    np.testing.assert_array_equal(w.median(1), [8.0, 1.0])
    np.testing.assert_array_equal(w.counts(), [3.0, 3.0])


@pytest.mark.parametrize("seed", range(10))
def test_rows_of_several_series_are_each_the_series_alone_to_the_bit(seed: int) -> None:
    """Several series of one length in the rows of one matrix (the daemon's batched fits): each
    row's statistics are that series' own, NaN, ties, garbage and stretch boundaries included."""
    cases = [_case(seed * 100 + k) for k in range(6)]
    n = min(x.shape[0] for x, *_ in cases)
    window, min_periods = cases[0][2], cases[0][3]
    xs = np.stack([x[-n:] for x, *_ in cases])
    gs = np.stack([g[-n:] for _, g, *_ in cases])
    at = np.unique(np.random.default_rng(seed).integers(0, n, size=min(n, 12)))
    both = Windows(xs, gs, at, window)
    for row in range(xs.shape[0]):
        alone = Windows(xs[row], gs[row], at, window)
        np.testing.assert_array_equal(both.median(min_periods)[row], alone.median(min_periods))
        for q in (0.25, 0.75):
            np.testing.assert_array_equal(both.quantile(q, min_periods)[row], alone.quantile(q, min_periods))
        np.testing.assert_array_equal(both.counts()[row], alone.counts())
