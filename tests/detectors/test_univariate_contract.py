"""The backtest contract shared by every univariate detector: causal, bounded, robust to bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors._univariate import check_series, segment_ids, typical_step
from detectors.ensemble import DefaultEnsemble
from detectors.exhaustion import ExhaustionForecast
from detectors.quality_drift import QualityDrift
from detectors.seasonal import SeasonalBaseline
from tests.detectors.synthetic import DAY, HOUR, T0, daily

STEP = 300.0


def detectors() -> list[object]:
    return [
        ExhaustionForecast(window_seconds=2 * HOUR),
        SeasonalBaseline(),
        QualityDrift(reference_seconds=6 * HOUR),
        DefaultEnsemble(members={"seasonal": {}}),
    ]


def messy_series(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Three days at 5 min: a daily cycle, a trend, spikes, a reset, NaNs and a 3 h gap."""
    t = T0 + np.arange(0.0, 3 * DAY, STEP)
    y = daily(t, 0.5, 0.1, 0.01, seed) + 0.05 * (t - T0) / DAY
    y[400] += 0.4
    y[600:] -= 0.2  # a drop, as after a restart
    y[[100, 101, 450]] = np.nan
    keep = (t < T0 + 1.5 * DAY) | (t > T0 + 1.5 * DAY + 3 * HOUR)
    return t[keep], y[keep]


@pytest.mark.parametrize("detector", detectors(), ids=lambda d: type(d).__name__)
def test_changing_future_points_never_changes_past_scores(detector: object) -> None:
    t, y = messy_series()
    full = detector.score_series(t, y)  # type: ignore[attr-defined]
    rng = np.random.default_rng(7)
    for cut in (80, 300, 500, len(t) - 1):
        changed = y.copy()
        changed[cut:] = rng.normal(5.0, 3.0, len(t) - cut)  # wild future values
        np.testing.assert_array_equal(detector.score_series(t, changed)[:cut], full[:cut])  # type: ignore[attr-defined]
        # A prefix alone (the daemon at that instant) scores its points exactly as the full replay did.
        np.testing.assert_array_equal(detector.score_series(t[:cut], y[:cut]), full[:cut])  # type: ignore[attr-defined]


@pytest.mark.parametrize("detector", detectors(), ids=lambda d: type(d).__name__)
def test_one_score_in_unit_interval_per_point_and_nan_never_alarms(detector: object) -> None:
    t, y = messy_series()
    y = y.copy()
    y[200:210] = np.nan
    y[220] = np.inf
    s = detector.score_series(t, y)  # type: ignore[attr-defined]
    assert s.shape == t.shape and np.all(np.isfinite(s))
    assert s.min() >= 0.0 and s.max() <= 1.0
    assert np.all(s[200:210] == 0.0) and s[220] == 0.0


@pytest.mark.parametrize("detector", detectors(), ids=lambda d: type(d).__name__)
def test_empty_tiny_and_all_nan_series(detector: object) -> None:
    score = detector.score_series  # type: ignore[attr-defined]
    assert score(np.zeros(0), np.zeros(0)).shape == (0,)
    assert score(np.array([T0]), np.array([0.5])).shape == (1,)
    t = T0 + np.arange(50) * STEP
    assert np.all(score(t, np.full(50, np.nan)) == 0.0)


@pytest.mark.parametrize("detector", detectors(), ids=lambda d: type(d).__name__)
def test_bad_input_says_what_to_fix(detector: object) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        detector.score_series(np.arange(3.0), np.arange(4.0))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="sort the series"):
        detector.score_series(np.array([3.0, 2.0, 1.0]), np.ones(3))  # type: ignore[attr-defined]


def test_repeated_timestamps_are_accepted() -> None:
    t, y = check_series(np.array([0.0, 60.0, 60.0, 120.0]), np.array([1.0, 2.0, 2.0, np.inf]))
    assert np.isnan(y[-1]) and typical_step(t) == 60.0


def test_step_is_read_from_the_start_so_later_gaps_cannot_change_it() -> None:
    t = np.arange(0.0, 100 * 60, 60.0)
    later_gaps = np.concatenate([t, t[-1] + 3600 * np.arange(1, 200)])
    assert typical_step(t) == typical_step(later_gaps) == 60.0


def test_segments_break_at_jumps_and_long_gaps_not_at_nans() -> None:
    t = np.arange(10.0) * 60
    t[7:] += 3600  # a one-hour gap before index 7
    y = np.array([0.5, 0.51, np.nan, 0.52, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25])
    seg = segment_ids(t, y, max_jump=0.1, max_gap_seconds=600)
    assert list(seg) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.0, -1.0, 1e12, -1e300, 1e300, float("nan")]),
)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ys=st.lists(values, min_size=0, max_size=120),
    steps=st.lists(st.sampled_from([0.0, 60.0, 60.0, 60.0, 61.0, 3600.0]), min_size=120, max_size=120),
)
def test_garbage_never_crashes_and_stays_in_range(ys: list[float], steps: list[float]) -> None:
    """Any values (NaN, inf, huge, negative), repeated timestamps and gaps: scores, never errors
    (nor the numpy warnings that would flood a daemon's log)."""
    y = np.array(ys, dtype=np.float64)
    t = T0 + np.cumsum(np.array(steps[: len(ys)], dtype=np.float64))
    for detector in detectors():
        s = detector.score_series(t, y)  # type: ignore[attr-defined]
        assert s.shape == y.shape and np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))


def _segment_ids_with_pandas(t: np.ndarray, y: np.ndarray, max_jump: object, max_gap_seconds: float, confirm: int) -> np.ndarray:
    """The confirmed-jump rule as first written with pandas rolling calls: the reference."""
    import pandas as pd

    n = t.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.flatnonzero(~np.isnan(y))
    breaks = np.zeros(n, dtype=bool)
    if idx.shape[0] > 1:
        yv, tv = y[idx], t[idx]
        limit = np.broadcast_to(np.asarray(max_jump, dtype=np.float64), t.shape)[idx]
        gap = np.concatenate([[False], np.diff(tv) > max_gap_seconds])
        before = pd.Series(yv).shift(confirm).rolling(confirm, min_periods=confirm).median().to_numpy()
        dev = yv - before
        up = pd.Series((dev > limit).astype(float)).rolling(confirm).sum().to_numpy() == confirm
        down = pd.Series((dev < -limit).astype(float)).rolling(confirm).sum().to_numpy() == confirm
        jump = up | down
        candidates = np.flatnonzero(jump)
        jump[:] = False
        last = -(10**9)
        for j in candidates.tolist():
            if j - last > 2 * confirm:
                jump[j] = True
            last = j
        breaks[idx[jump | gap]] = True
    return np.cumsum(breaks)


@pytest.mark.parametrize("seed", range(10))
def test_confirmed_jumps_are_found_as_the_pandas_reference_finds_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(0, 300))
        t = np.cumsum(rng.choice([1.0, 1.0, 1.0, 50.0], n))
        y = np.cumsum(rng.normal(0, 1, n)) + (rng.random(n) < 0.05) * rng.normal(0, 20, n)
        y[rng.random(n) < 0.2] = np.nan
        limit = rng.uniform(0.5, 5) if rng.random() < 0.5 else np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.5, 5, n))
        confirm = int(rng.integers(2, 6))
        np.testing.assert_array_equal(
            segment_ids(t, y, max_jump=limit, max_gap_seconds=20, confirm=confirm),
            _segment_ids_with_pandas(t, y, limit, 20, confirm),
        )


def test_tails_pads_short_arrays_and_copies_full_ones() -> None:
    from detectors._univariate import tails

    arrays = [np.arange(5.0), np.arange(3), np.arange(10.0, 16.0)]
    np.testing.assert_array_equal(tails(arrays, 4), [[1, 2, 3, 4], [np.nan, 0, 1, 2], [12, 13, 14, 15]])
    np.testing.assert_array_equal(tails(arrays, 2, right=False), [[0, 1], [0, 1], [10, 11]])
    full = tails([np.arange(3), np.arange(3)], 3)
    assert full.dtype == np.float64 and not np.shares_memory(full, arrays[1])



@pytest.mark.parametrize("seed", range(5))
def test_the_median_of_three_before_a_value_is_the_sorted_window_s_middle_to_the_bit(seed: int) -> None:
    """level_deviation reads the median of three (the exhaustion's confirmation) with minimum and
    maximum: the same values as sorting each window, with ties, infinities, huge values. (Of a tie
    between 0.0 and -0.0 either may be the middle, as in a sort, which is not stable: callers only
    compare the deviation with a limit or take its magnitude, which cannot tell them apart.)"""
    from numpy.lib.stride_tricks import sliding_window_view

    from detectors._univariate import level_deviation

    rng = np.random.default_rng(seed)
    for n in (0, 1, 5, 6, 7, 50, 1440):
        y = np.round(rng.normal(0, 1, n), int(rng.integers(0, 3)))  # ties
        y[rng.random(n) < 0.1] = 0.0
        y[rng.random(n) < 0.1] = -0.0
        odd = rng.random(n) < 0.05
        y[odd] = rng.choice([np.inf, -np.inf, 1e300, -1e300], int(odd.sum()))
        before = np.full(n, np.nan)
        if n >= 6:
            before[5:] = np.sort(sliding_window_view(y, 3), axis=1)[:, 1][: n - 5]
        with np.errstate(invalid="ignore"):
            expected = y - before
        got = level_deviation(y, 3)
        np.testing.assert_array_equal(got, expected)
