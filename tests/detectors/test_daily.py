"""The daemon's daily maxima: the cheap per-cycle updates keep exactly the bins a full merge keeps,
and the shared ring holds what one array per series held."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from detectors._daily import BIN_SECONDS, DailyMaxima, merged_bins


def _reference_merge(data: dict[str, tuple[int, np.ndarray]], keep: int, key: str, t: np.ndarray, y: np.ndarray) -> None:
    """The bins as one float32 array per series held them (DailyMaxima.merge before the ring)."""
    first, dense = merged_bins(data.get(key), t, y, keep)
    data[key] = (first, dense.astype(np.float32))


def _held(daily: DailyMaxima) -> dict[object, tuple[int, np.ndarray]]:
    return {key: (first, bins) for key, first, bins in daily.held()}


@pytest.mark.parametrize("seed", range(12))
def test_update_keeps_the_bins_merge_keeps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    days = int(rng.integers(0, 4))
    fast, full = DailyMaxima(days), DailyMaxima(days)
    reference: dict[str, tuple[int, np.ndarray]] = {}
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
            _reference_merge(reference, full.keep, "k", t, y)
        assert _held(fast).keys() == _held(full).keys() == reference.keys()
        if "k" in reference:
            (f1, d1), (f2, d2), (f3, d3) = _held(fast)["k"], _held(full)["k"], reference["k"]
            assert f1 == f2 == f3 and d1.dtype == d2.dtype == d3.dtype == np.float32
            np.testing.assert_array_equal(d1, d3)
            np.testing.assert_array_equal(d2, d3)


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


@pytest.mark.parametrize("seed", range(10))
def test_update_many_keeps_the_bins_update_keeps(seed: int) -> None:
    """One signal's series folded in at once keep the bins each folded in alone keeps: series that
    start late, stop, stall, come back after a gap longer than the days held, refetch a changed
    overlap, carry NaN and +/-Inf, or go; on a ring small enough to wrap many times."""
    rng = np.random.default_rng(100 + seed)
    days = int(rng.integers(0, 2))
    many, one = DailyMaxima(days), DailyMaxima(days)
    count, total = 24, 6000
    steps = rng.choice([15.0, 60.0, 60.0, 300.0, 900.0], count)
    offsets = rng.integers(0, 3000, count).astype(float)
    values = rng.normal(0, 1, (count, total))
    values[rng.random((count, total)) < 0.1] = np.nan
    values[rng.random((count, total)) < 0.005] = np.inf
    values[rng.random((count, total)) < 0.005] = -np.inf
    values[rng.random((count, total)) < 0.002] = 1e300  # past float32: held as inf, as before
    born = rng.integers(0, 200, count)
    end = 1
    for _ in range(120):
        end = min(total, end + int(rng.choice([1, 1, 1, 1, 2, 3, 7, 80, 900])))
        keys, ts, ys = [], [], []
        for k in range(count):
            lo = max(born[k], end - int(rng.integers(1, 400)))
            if lo >= end or rng.random() < 0.05:
                continue  # not born yet, or gone from this cycle's answer
            t = 1.7e9 + offsets[k] + steps[k] * np.arange(lo, end)
            y = values[k, lo:end].copy()
            if rng.random() < 0.1 and y.shape[0] > 2:
                y[-2:] = rng.normal(0, 1, 2)  # the refetched overlap changed
            if rng.random() < 0.05:
                kept = rng.random(t.shape[0]) > 0.3
                t, y = t[kept], y[kept]
            keys.append(f"s{k}")
            ts.append(t)
            ys.append(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            many.update_many(keys, ts, ys)
            for key, t, y in zip(keys, ts, ys):
                one.update(key, t, y)
        if rng.random() < 0.1:
            gone = [f"s{k}" for k in range(count) if rng.random() < 0.7]
            many.retain(gone)
            one.retain(gone)
        a, b = _held(many), _held(one)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key][0] == b[key][0], key
            np.testing.assert_array_equal(a[key][1], b[key][1])


def test_a_gap_longer_than_the_days_held_forgets_them() -> None:
    daily = DailyMaxima(0)  # one day of bins: the ring wraps every 288
    t = 1.7e9 + 60.0 * np.arange(600)
    daily.update_many(["k"], [t], [np.arange(600.0)])
    daily.update_many(["k"], [t[-1:] + 2 * 86400.0], [np.array([-5.0])])
    [(key, first, bins)] = list(daily.held())
    assert first + bins.shape[0] - 1 == int((t[-1] + 2 * 86400.0) // BIN_SECONDS)
    assert bins.shape[0] == daily.keep and bins[-1] == -5.0 and np.isnan(bins[:-1]).all()


def test_a_value_past_float32_is_held_as_inf_without_a_warning() -> None:
    """A gauge past float32's range (a broken exporter's 1e300) is held as +inf, as the bins always
    held it, without a RuntimeWarning each cycle in the daemon's log."""
    key = ("gpu_memory_used", (("gpu", "0"),))
    t = 1.7e9 + 60.0 * np.arange(30)
    y = np.full(t.shape, 1e300)
    y[:5] = -1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one, many, merged = DailyMaxima(1), DailyMaxima(1), DailyMaxima(1)
        one.update(key, t, y)
        many.update_many([key], [t], [y])
        merged.merge(key, t, y)
        restored = DailyMaxima(1)
        assert restored.restore_state(merged.saved_state()) == []
    for daily in (one, many, merged, restored):
        [(held_key, _, dense)] = list(daily.held())
        assert held_key == key
        bins = dense[~np.isnan(dense)]
        assert bins.size >= 5 and np.all(np.isinf(bins)) and np.isposinf(bins[-1])


def test_a_dropped_series_hands_its_bins_over_and_absorb_keeps_the_maximum_of_both() -> None:
    """What exhaustion passes from a departed pod to its workload: the bins the ring held for it,
    exactly, folded bin by bin (the maximum where both have one, the union of their spans)."""
    t0 = 1.7e9 - 1.7e9 % BIN_SECONDS
    old, new = ("m", (("pod", "web-a"),)), ("m", (("pod", "web-b"),))
    daily = DailyMaxima(1)
    t = t0 + 60.0 * np.arange(120)
    daily.update(old, t, np.linspace(0.1, 0.5, 120))
    daily.update(new, t + 3600.0, np.full(120, 0.3))
    [(_, first, bins)] = [(k, f, d) for k, f, d in daily.held() if k == old]
    handed: list[tuple[object, int, np.ndarray]] = []
    daily.retain([new], dropped=lambda key, f, d: handed.append((key, f, d.copy())))
    assert [k for k, _, _ in daily.held()] == [new]
    [(key, f, d)] = handed
    assert key == old and f == first
    np.testing.assert_array_equal(d, bins)

    workload = ("m", (("pod", "web-*"),))
    lineage = DailyMaxima(1)
    lineage.absorb(workload, f, d)
    got = lineage.get(workload)
    assert got is not None and got[0] == f
    np.testing.assert_array_equal(got[1], d)
    [(_, f2, d2)] = list(daily.held())
    lineage.absorb(workload, f2, d2)
    got = lineage.get(workload)
    assert got is not None
    expect = merged_bins((f, d), (f2 + np.arange(d2.shape[0])) * BIN_SECONDS, d2.astype(np.float64), lineage.keep)
    assert got[0] == expect[0] == f
    np.testing.assert_array_equal(got[1], expect[1].astype(np.float32))
    assert got[1].shape[0] == f2 + d2.shape[0] - f  # the union of both spans

    lineage.forget_before(f2 + d2.shape[0] - 1)
    assert lineage.get(workload) is not None  # its newest bin is still in
    lineage.forget_before(f2 + d2.shape[0])
    assert lineage.get(workload) is None


def test_a_rollout_leaves_only_the_live_series_in_what_the_state_file_is_said_to_hold() -> None:
    """Pods renamed every two hours for two days: the series the state file is said to hold
    (:meth:`stored`, read back at a restart) are the live ones, not every name ever saved. Each
    dropped name was kept before (a few hundred bytes per pod series a cluster ever created)."""
    t0 = 1.7e9 - 1.7e9 % BIN_SECONDS
    daily = DailyMaxima(1)
    live: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for cycle in range(48 * 12):  # 5-minute cycles
        now = t0 + cycle * BIN_SECONDS
        generation = cycle // 24
        live = [("m", (("pod", f"web-{generation}-{i}"),)) for i in range(4)]
        t = now + 60.0 * np.arange(5)
        daily.update_many(live, [t] * 4, [np.full(5, 0.5)] * 4)
        daily.retain(live)
        bodies = daily.saved_state()
        if cycle % 7:  # a save that failed now and then: those stay pending, then go
            daily.state_saved(bodies)
    assert {key for key, _ in daily.stored()} <= set(live)
    daily.state_saved(daily.saved_state())
    assert {key for key, _ in daily.stored()} == set(live)


def test_an_acknowledgement_after_the_series_was_dropped_does_not_bring_it_back() -> None:
    t0 = 1.7e9 - 1.7e9 % BIN_SECONDS
    daily = DailyMaxima(1)
    gone, kept = ("m", (("pod", "a"),)), ("m", (("pod", "b"),))
    daily.update_many([gone, kept], [t0 + 60.0 * np.arange(5)] * 2, [np.ones(5)] * 2)
    bodies = daily.saved_state()
    daily.retain([kept])  # the pod went while its body was being written
    daily.state_saved(bodies)
    assert [key for key, _ in daily.stored()] == [kept]
