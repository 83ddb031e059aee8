"""The per-signal window: one (series x step-slot) matrix, merged chunk by chunk, against a naive model."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.collect.decode import Block, RawSeries
from aiops.collect.window import SignalWindow

STEP = 60.0


def raw(labels: dict[str, str], ts: list[float], vs: list[float]) -> RawSeries:
    return RawSeries(labels, np.array(ts, dtype=np.float64), np.array(vs, dtype=np.float64))


def as_dict(win: SignalWindow) -> dict[str, tuple[list[float], list[float]]]:
    return {
        labels["pod"]: (view.timestamps.tolist(), view.values.tolist())
        for labels, view in ((v.labels, v) for _, v in win.series())
    }


def test_series_share_one_grid_and_one_timestamp_array() -> None:
    win = SignalWindow(600, STEP)
    win.merge(0.0, [raw({"pod": "a"}, [0, 60, 120], [1, 2, 3]), raw({"pod": "b"}, [60, 120], [5, 6])])
    (_, a), (_, b) = win.series()
    assert a.timestamps.base is b.timestamps.base is not None  # views of one array
    assert a.values.base is b.values.base is not None
    assert as_dict(win) == {"a": ([0, 60, 120], [1, 2, 3]), "b": ([60, 120], [5, 6])}


def test_a_series_absent_from_a_refetch_loses_only_the_refetched_range() -> None:
    win = SignalWindow(3600, STEP)
    win.merge(0.0, [raw({"pod": "a"}, [0, 60, 120, 180], [1, 2, 3, 4]), raw({"pod": "b"}, [0, 60, 120, 180], [1, 1, 1, 1])])
    win.merge(120.0, [raw({"pod": "a"}, [120, 180, 240], [30, 40, 50])])
    got = as_dict(win)
    assert got["a"] == ([0, 60, 120, 180, 240], [1, 2, 30, 40, 50])
    assert got["b"] == ([0, 60], [1, 1])  # ends where the refetch began: it stopped reporting


def test_chunks_of_one_fetch_add_up_and_series_may_start_in_a_later_chunk() -> None:
    win = SignalWindow(3600, STEP)
    win.begin(0.0)
    win.write(Block.from_series([raw({"pod": "a"}, [0, 60], [1, 2])]))
    win.write(Block.from_series([raw({"pod": "a"}, [120, 180], [3, 4]), raw({"pod": "c"}, [180], [9])]))
    win.end()
    assert as_dict(win) == {"a": ([0, 60, 120, 180], [1, 2, 3, 4]), "c": ([180], [9])}


def test_a_write_outside_a_fetch_is_refused() -> None:
    with pytest.raises(RuntimeError, match="begin"):
        SignalWindow(600, STEP).write(Block.from_series([raw({"pod": "a"}, [0], [1])]))


def test_rows_are_reused_empty_after_their_series_ages_out() -> None:
    win = SignalWindow(120, STEP)
    win.merge(0.0, [raw({"pod": "old"}, [0, 60], [7, 7])])
    win.trim(60)
    win.merge(120.0, [raw({"pod": "new"}, [120, 180, 240], [1, 2, 3])])
    win.trim(240)
    assert as_dict(win) == {"new": ([120, 180, 240], [1, 2, 3])}
    assert len(win) == 1


def test_gaps_and_nan_samples_are_nan_and_a_nan_newest_sample_is_not_vanishing() -> None:
    win = SignalWindow(3600, STEP)
    win.merge(0.0, [raw({"pod": "a"}, [0, 180, 240], [1, 2, float("nan")])])
    ts, vs = as_dict(win)["a"]
    assert ts == [0, 60, 120, 180, 240]
    assert np.isnan(vs[1]) and np.isnan(vs[2]) and np.isnan(vs[4]) and vs[3] == 2
    assert ts[-1] == 240  # the series did report at 240 (a NaN sample): it is current


@pytest.mark.parametrize("hold_views", [True, False])
def test_window_matches_a_naive_model_over_many_random_cycles(hold_views: bool) -> None:
    """Many series that appear, pause and vanish, refetched with overlap: same as recomputing,
    whether the columns slide in place (no view held) or move to new arrays (views held)."""
    rng = np.random.default_rng(11)
    lookback = 30 * STEP
    win = SignalWindow(lookback, STEP)
    truth: dict[str, dict[float, float]] = {}
    views: list[tuple[np.ndarray, np.ndarray]] = []
    now = 1000 * STEP
    fetched_until: float | None = None
    for _ in range(200):
        now += STEP
        start = now - lookback if fetched_until is None else max(now - lookback, fetched_until - 2 * STEP)
        grid = np.arange(start, now + 1, STEP)
        series = []
        for pod in ("a", "b", "c", "d", "e"):
            if rng.random() < 0.2:
                continue  # absent from this fetch
            keep = grid[rng.random(grid.size) < 0.9]
            if keep.size == 0:
                continue
            vals = rng.random(keep.size)
            series.append(raw({"pod": pod}, keep.tolist(), vals.tolist()))
        # What the model says: points in the refetched range are replaced by what came back.
        for pts in truth.values():
            for t in [t for t in pts if t >= start]:
                del pts[t]
        for s in series:
            truth.setdefault(s.labels["pod"], {}).update(zip(s.timestamps.tolist(), s.values.tolist()))
        win.merge(start, series)
        win.trim(now)
        fetched_until = now
        got = as_dict(win)
        cutoff = now - lookback
        for pod, pts in truth.items():
            live = {t: v for t, v in pts.items() if t >= cutoff}
            if not live:
                assert pod not in got
                continue
            ts, vs = got[pod]
            # From its first point (or the window's start, once that point expired) to its last.
            assert ts[0] == max(cutoff, min(pts)) and ts[-1] == max(live)
            assert np.all(np.diff(ts) == STEP)
            for t, v in zip(ts, vs):
                if t in live:
                    assert v == live[t]
                else:
                    assert np.isnan(v)
        if hold_views:
            views += [(v.values.copy(), v.values) for _, v in win.series()]
        del got
    if not hold_views:
        # Nothing outside the window saw its arrays past a cycle: they were never replaced.
        assert win.slides > 0 and win.moves == 0
        return
    assert win.moves > 0 and win.slides == 0
    # Trimming and moving to a new array never changed data under a view handed out earlier
    # (bar the three refetched slots: the last fetch's end and the two-step overlap before it).
    for copy, view in views[:50]:
        np.testing.assert_array_equal(copy[:-3], view[:-3])


def test_a_label_list_seen_before_maps_to_its_rows_until_a_row_changes_hands() -> None:
    """The client hands out the same label list while an answer's labels repeat: the window maps
    it to rows once, and maps it afresh after a row was given or taken back."""
    win = SignalWindow(180, STEP)
    labels = [{"pod": "a"}, {"pod": "b"}]

    def fetch(start: float, a: list[float], b: list[float]) -> None:
        win.begin(start)
        ts = np.array(a + b)
        win.write(Block(labels, np.array([len(a), len(b)], dtype=np.int64), ts, ts / 60))
        win.end()

    fetch(0, [0], [0, 60])
    fetch(60, [60], [60, 120])  # the same list: the remembered rows
    assert as_dict(win) == {"a": ([0, 60], [0, 1]), "b": ([0, 60, 120], [0, 1, 2])}
    win.trim(300)  # "a" ages out (its newest point is older than 120), its row is free
    assert as_dict(win) == {"b": ([120], [2])}
    fetch(300, [300], [300])  # the same list again: "a" gets a row afresh, not the freed one
    got = as_dict(win)
    assert got["a"] == ([300], [5]) and got["b"][0] == [120, 180, 240, 300]
    np.testing.assert_array_equal(got["b"][1], [2, np.nan, np.nan, 5])


def test_a_steady_window_never_allocates_a_new_matrix() -> None:
    """One new step a cycle over a full window (here 10 h at one minute, past the minimum size):
    when the headroom fills, the columns slide back in the same arrays every time."""
    win = SignalWindow(600 * STEP, STEP)
    now = 10_000 * STEP
    win.merge(now - 600 * STEP, [raw({"pod": "a"}, list(np.arange(now - 600 * STEP, now + 1, STEP)), [1.0] * 601)])
    win.trim(now)
    for _ in range(300):
        now += STEP
        win.merge(now - 2 * STEP, [raw({"pod": "a"}, [now - 2 * STEP, now - STEP, now], [2.0, 3.0, 4.0])])
        win.trim(now)
    assert win.slides >= 3 and win.moves == 0
    [(_, view)] = win.series()
    assert view.timestamps[0] == now - 600 * STEP and view.timestamps[-1] == now and len(view) == 601
