"""SeasonalBaseline on generated daily series with known anomalies."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.model import Entity, SignalInfo
from detectors.seasonal import SeasonalBaseline
from tests.detectors.synthetic import DAY, HOUR, MODEL, T0, daily, frame

STEP = 300.0
ALARM = 0.7  # the default warning threshold of policy


def week(seed: int = 0, days: float = 7.0) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + np.arange(0.0, days * DAY, STEP)
    return t, daily(t, 100.0, 30.0, 2.0, seed)


def alarms(score: np.ndarray, start: int = 0) -> int:
    return int(np.sum(score[start:] >= ALARM))


def test_daily_cycle_without_anomaly_raises_no_storm() -> None:
    t, y = week()
    score = SeasonalBaseline().score_series(t, y)
    after_warmup = int(2 * DAY / STEP)
    # A week of 5-minute points (about 1,400 after warm-up) and not one warning.
    assert alarms(score, after_warmup) == 0


def test_spike_is_caught_where_it_happens() -> None:
    t, y = week()
    i = int(5.3 * DAY / STEP)
    y[i] += 40.0  # 20 sigma
    score = SeasonalBaseline().score_series(t, y)
    assert score[i] >= ALARM
    assert alarms(score, int(2 * DAY / STEP)) == 1


def test_peak_hour_value_is_normal_at_peak_and_anomalous_at_night() -> None:
    t, y = week()
    det = SeasonalBaseline()
    night = int((5 * DAY + 0.05 * DAY) / STEP)  # the trough of the daily cycle
    peak_value = 130.0
    y_night = y.copy()
    y_night[night] = peak_value
    tr = det.trace(t, y_night)
    assert tr.score[night] >= ALARM
    assert abs(tr.seasonal[night] - 70.0) < 5.0  # the seasonal median knows nights are low


def test_level_shift_gives_a_bounded_number_of_alarms() -> None:
    t, y = week(days=7.0)
    shift_at = int(3.5 * DAY / STEP)
    y[shift_at:] += 25.0  # a new plateau that stays (a deploy, a new customer)
    score = SeasonalBaseline().score_series(t, y)
    assert score[shift_at : shift_at + 3].max() >= ALARM  # noticed
    assert alarms(score, shift_at) <= 3  # and not re-alarmed for the days it takes to re-baseline


def test_gaps_and_nans_are_tolerated() -> None:
    t, y = week()
    y[500:520] = np.nan
    keep = (t < T0 + 4 * DAY) | (t > T0 + 4 * DAY + 6 * HOUR)
    score = SeasonalBaseline().score_series(t[keep], y[keep])
    assert alarms(score, int(2 * DAY / STEP)) <= 1
    assert np.all(score[500:520] == 0.0)


def test_mostly_zero_counts_still_get_a_finite_scale() -> None:
    # Restarts per 15 minutes: usually 0, sometimes 1; then a burst.
    rng = np.random.default_rng(4)
    t = T0 + np.arange(0.0, 4 * DAY, STEP)
    y = (rng.random(t.shape[0]) < 0.05).astype(float)
    y[-5:] = 8.0
    score = SeasonalBaseline().score_series(t, y)
    assert score[-5] >= ALARM and alarms(score, int(DAY / STEP)) <= 3


def test_constant_series_is_never_surprising() -> None:
    t = T0 + np.arange(0.0, 3 * DAY, STEP)
    zeros = np.zeros(t.shape[0])
    assert SeasonalBaseline().score_series(t, zeros).max() == 0.0
    pod = Entity("pod", "healthy", "shop")
    assert SeasonalBaseline().detect(frame({"pod_restarts": [(pod, t, zeros)]}, step=STEP)) == []


def test_direction_follows_the_signal_in_the_daemon() -> None:
    t, y = week(days=3.0)
    y[-1] -= 60.0  # latency falling sharply is not bad news
    assert SeasonalBaseline().detect(frame({"inference_latency_p99": [(MODEL, t, y)]}, step=STEP)) == []
    y[-1] += 120.0  # latency jumping is
    (f,) = SeasonalBaseline().detect(frame({"inference_latency_p99": [(MODEL, t, y)]}, step=STEP))
    assert f.detector == "seasonal" and f.entity == MODEL and f.score >= ALARM
    assert "inference_latency_p99" in f.evidence.summary and f.evidence.facts["baseline"] is not None


def test_daemon_keeps_history_beyond_the_frame_lookback() -> None:
    t, y = week(days=3.0)
    det = SeasonalBaseline()
    window = int(6 * HOUR / STEP)
    # Feed the series as the daemon would: each cycle sees only the last 6 h.
    for end in range(window, len(t), 12):
        det.detect(frame({"inference_latency_p99": [(MODEL, t[end - window : end], y[end - window : end])]}, step=STEP))
    (series,) = frame({"inference_latency_p99": [(MODEL, t, y)]}).series
    table = det._where[series.key]
    assert table.count[table.rows[series.key]] > 2 * window  # days, not the 6 h lookback
    other = Entity("model", "other", "ml")
    det.detect(frame({"inference_latency_p99": [(other, t[-window:], y[-window:])]}, step=STEP))
    assert len(det._where) == 1  # the model that left the frame is forgotten


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="seasons"):
        SeasonalBaseline(seasons=0)
    with pytest.raises(ValueError, match="direction"):
        SeasonalBaseline(direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_reference_z"):
        SeasonalBaseline(min_reference_z=0)


def _online_scores(
    det: SeasonalBaseline, t: np.ndarray, y: np.ndarray, first: int, advance: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The newest point's score after each daemon cycle (6 h frames, ``advance`` new points a cycle)."""
    window = int(6 * HOUR / STEP)
    ends, scores = [], []
    for end in range(first, len(t) + 1, advance):
        lo = max(0, end - window)
        (series,) = frame({"inference_latency_p99": [(MODEL, t[lo:end], y[lo:end])]}, step=STEP).series
        det.detect(frame({"inference_latency_p99": [(MODEL, t[lo:end], y[lo:end])]}, step=STEP))
        ends.append(end - 1)
        scores.append(det._where[series.key].score(series.key))
    return np.array(ends), np.array(scores)


def _incident_week() -> tuple[np.ndarray, np.ndarray]:
    t, y = week(days=5.0)
    rng = np.random.default_rng(7)
    at = rng.integers(int(2 * DAY / STEP), len(t), 12)
    y[at] += rng.uniform(15.0, 40.0, at.shape[0])
    y[int(3.6 * DAY / STEP) : int(3.7 * DAY / STEP)] += 20.0  # a sustained shift
    y[300:310] = np.nan
    keep = (t < T0 + 4.2 * DAY) | (t > T0 + 4.3 * DAY)  # a 2.4 h gap in collection
    return t[keep], y[keep]


@pytest.mark.slow
def test_online_scores_equal_the_backtest_with_exact_scales() -> None:
    t, y = _incident_week()
    det = SeasonalBaseline(scale_stride=1, scale_refresh=1, direction="up")
    ends, online = _online_scores(det, t, y, first=int(6 * HOUR / STEP))
    backtest = det.trace(t, y, "up").score[ends]
    assert backtest.max() >= ALARM  # the comparison covers incidents, not only quiet points
    # Equal up to the float32 the seasonal grid is held in.
    np.testing.assert_allclose(online, backtest, atol=1e-5)


@pytest.mark.slow
def test_online_scores_equal_the_backtest_with_a_lower_reference_z() -> None:
    # The setting travels into the daemon's state table: online and backtest agree off the default too.
    t, y = _incident_week()
    det = SeasonalBaseline(scale_stride=1, scale_refresh=1, direction="up", min_reference_z=3.0)
    ends, online = _online_scores(det, t, y, first=int(6 * HOUR / STEP))
    backtest = det.trace(t, y, "up").score[ends]
    assert not np.allclose(backtest, SeasonalBaseline(direction="up").trace(t, y, "up").score[ends])
    np.testing.assert_allclose(online, backtest, atol=1e-5)


def test_online_scores_with_sampled_scales_track_the_backtest() -> None:
    t, y = _incident_week()
    det = SeasonalBaseline(direction="up")  # default: every 4th point sampled, scales refreshed every 8
    ends, online = _online_scores(det, t, y, first=int(6 * HOUR / STEP), advance=1)
    backtest = det.trace(t, y, "up").score[ends]
    # Sampled scales move scores by a few thousandths; only a near-tie of the refractory
    # damping (two spikes whose raw scores differ by less than that) can flip one alarm.
    assert np.sum((online >= ALARM) != (backtest >= ALARM)) <= 1
    assert np.sum((online >= ALARM) & (backtest >= ALARM)) >= 1
    assert np.mean(np.abs(online - backtest)) < 0.01


def test_a_constant_series_holds_one_number_until_it_moves() -> None:
    pod = Entity("pod", "healthy", "shop")
    t = T0 + np.arange(0.0, 2 * DAY, STEP)
    zeros = np.zeros(t.shape[0])
    det = SeasonalBaseline()
    assert det.detect(frame({"pod_restarts": [(pod, t[:-1], zeros[:-1])]}, step=STEP)) == []
    assert not det._where and len(det._constant) == 1  # no state for a series that never moved
    burst = zeros.copy()
    burst[-1] = 6.0
    (f,) = det.detect(frame({"pod_restarts": [(pod, t, burst)]}, step=STEP))
    assert f.entity == pod and f.score >= ALARM
    assert len(det._where) == 1 and not det._constant


def test_online_points_must_move_forward_in_time() -> None:
    t, y = week(days=1.0)
    det = SeasonalBaseline()
    table = det._table(STEP, "both")
    table.seed("k", t[:-2], y[:-2], det.trace(t[:-2], y[:-2]))
    with pytest.raises(ValueError, match="later than the last scored"):
        table.advance(["k"], [t[-4:-3]], [y[-4:-3]])
    with pytest.raises(ValueError, match="NaN or infinity"):
        table.advance(["k"], [np.array([np.nan])], [y[-1:]])
    table.advance(["k"], [t[-2:]], [y[-2:]])  # a rejected batch changed nothing
    assert table.last_time("k") == t[-1]


@pytest.mark.slow
@pytest.mark.parametrize("profile_seconds", [900.0, 3600.0, 0.0], ids=["15 min", "hourly", "one bucket per sample"])
def test_online_seasonal_baseline_equals_the_backtest_exactly(profile_seconds: float) -> None:
    """The daemon's per-bucket medians reproduce the backtest's profile bit for bit, gaps included."""
    t, y = _incident_week()
    y[500] = np.inf  # a division by zero in a recording rule: not part of the profile
    det = SeasonalBaseline(scale_stride=1, scale_refresh=1, direction="up", profile_seconds=profile_seconds)
    ends, _ = _online_scores(det, t, y, first=int(6 * HOUR / STEP))
    trace = det.trace(t, y, "up")
    (key,) = det._where
    point = det._where[key].point(key)
    assert point.t == t[ends[-1]] and np.isfinite(trace.seasonal[ends[-1]])
    np.testing.assert_array_equal(point.seasonal, trace.seasonal[ends[-1]])


def test_the_seasonal_state_holds_a_quarter_hour_profile_not_a_week_of_minutes() -> None:
    det = SeasonalBaseline()
    sp = det.spans(60.0)
    assert sp.bucket == 15 and sp.period // sp.bucket == 96
    t = T0 + np.arange(0.0, 2 * DAY, 60.0)
    y = daily(t, 100.0, 30.0, 2.0, 3)
    det.detect(frame({"inference_latency_p99": [(MODEL, t, y)]}, step=60.0))
    (table,) = det._tables.values()
    per_series = table.nbytes / table.count.shape[0]
    assert table.grid.shape[1] == 7 * 96 + 2  # 674 buckets instead of 10,082 one-minute slots
    assert per_series < 36 * 1024, per_series  # was ~66 KiB with the minute grid
    # A step that does not divide into hours still gets buckets that divide the period.
    assert SeasonalBaseline().spans(420.0).period % SeasonalBaseline().spans(420.0).bucket == 0


def test_known_constant_series_take_a_short_way_to_the_same_state_and_findings() -> None:
    """``_same_constant`` decides in a few numpy calls what the full check decides: same findings,
    same constants held, same state rows, cycle after cycle, through moves, NaN, Inf and bad input."""
    from dataclasses import replace

    class Checked(SeasonalBaseline):
        def _same_constant(self, key: object, t: np.ndarray, y: np.ndarray) -> bool:
            return False

    rng = np.random.default_rng(11)
    n, lookback = 2000, 300
    t_all = T0 + np.arange(n) * STEP
    values = np.zeros((24, n))
    for k in range(24):
        if k % 4 == 1:
            values[k, rng.integers(400, n) :] += rng.integers(1, 5)  # a counter that moves once
        elif k % 4 == 2:
            values[k, rng.random(n) < 0.1] = rng.choice([np.nan, np.inf, -np.inf])
        elif k % 4 == 3:
            values[k] = 3.0
            values[k, rng.random(n) < 0.01] += 1.0
    values[0, 1300:] = 7.0  # changes while the daemon is stalled for longer than its lookback
    fast, full = SeasonalBaseline(), Checked()
    for end in [*range(lookback, 1200, 25), *range(1700, n, 25)]:
        items = []
        for k in range(24):
            t = t_all[end - lookback : end].copy()
            if k == 5 and 1000 < end < 1100:
                t[10] = np.nan  # bad timestamps for a while: skipped and logged, never fatal
            items.append((Entity("pod", f"p{k}", "shop"), t, values[k, end - lookback : end]))
        f = frame({"pod_restarts": items}, step=STEP)
        got = [replace(x, id="") for x in fast.detect(f)]
        assert got == [replace(x, id="") for x in full.detect(f)]
        assert fast._constant == full._constant
        assert {k: table.rows[k] for k, table in fast._where.items()} == {
            k: table.rows[k] for k, table in full._where.items()
        }
    assert fast._constant and fast._where  # both kinds were in play


def test_one_pass_per_table_scores_as_one_pass_per_signal() -> None:
    """New points of all signals sharing a state table are scored together: the same scores,
    findings and state rows as scoring signal by signal, while series come, go and misbehave."""
    from dataclasses import replace

    from aiops.model import SignalInfo

    class PerSignal(SeasonalBaseline):
        def _advance(self, keyed, direction, pending):  # type: ignore[no-untyped-def]
            own: dict = {}
            out = super()._advance(keyed, direction, own)
            failed = self._score_pending(own)
            return [(s, key) for s, key in out if key not in failed]

    signals = {
        name: SignalInfo(name, "pod", bad_direction=direction)
        for name, direction in (("a_up", "up"), ("b_up", "up"), ("c_down", "down"), ("d_up", "up"))
    }
    n, lookback = 1400, 400
    t_all = T0 + np.arange(n) * STEP
    base = {name: daily(t_all, 10.0, 3.0, 0.5, seed=k) for k, name in enumerate(signals)}
    # Spikes on the newest point of some cycles, each larger than the last: beyond the record the
    # earlier ones set, so that there are findings to compare (below its record a point scores 0).
    spikes = np.zeros(n)
    at = np.arange(lookback - 1, n, 7)[::3]
    spikes[at] = 40.0 * (1.0 + np.arange(at.shape[0]))
    batched = SeasonalBaseline(signals=list(signals), report_floor=0.3)
    per_signal = PerSignal(signals=list(signals), report_floor=0.3)
    found = 0
    for end in range(lookback, n, 7):
        items: dict[str, list] = {name: [] for name in signals}
        for name in signals:
            for k in range(6):
                if (k + end // 100) % 5 == 0 and name != "c_down":
                    continue  # pods come and go: rows freed and handed out again across signals
                t = t_all[end - lookback : end].copy()
                y = base[name][end - lookback : end] * (1 + 0.1 * k)
                if k == 2 and 600 < end < 700:
                    t[-1] = t[-2] - 1.0  # points out of order for a while: that series is skipped
                if k == 3:
                    y = y + spikes[end - lookback : end]
                items[name].append((Entity("pod", f"{name}-{k}", "shop"), t, y))
        f = frame(items, signals=signals, step=STEP)
        got = [replace(x, id="") for x in batched.detect(f)]
        assert got == [replace(x, id="") for x in per_signal.detect(f)], end
        found += len(got)
        assert {k: (tb.rows[k], tb.score(k)) for k, tb in batched._where.items()} == {
            k: (tb.rows[k], tb.score(k)) for k, tb in per_signal._where.items()
        }
    assert len(batched._tables) == 2 and sum(len(tb) for tb in batched._tables.values()) > 12
    assert found > 5, found


def test_series_sliced_from_one_time_grid_take_the_short_way_to_the_same_state_and_findings() -> None:
    """The collector hands out each signal's series as views of one shared time grid, which
    ``_same_constant`` reads once a pass: the same findings, constants and state rows as checking
    every series' own timestamps, with grids that ascend, grids with a step back or a NaN inside
    (under a series or beside it), series shorter than half their grid, and copies."""
    from dataclasses import replace

    class Checked(SeasonalBaseline):
        def _ascending(self, t: np.ndarray) -> bool:
            return bool((t[1:] >= t[:-1]).all())

    rng = np.random.default_rng(7)
    n, lookback, headroom = 1600, 300, 40
    t_all = T0 + np.arange(n + headroom) * STEP
    values = np.full((16, n), 2.0)
    values[1, 700:] = 3.0  # moves once
    values[2, rng.random(n) < 0.05] = np.nan
    fast, full = SeasonalBaseline(), Checked()
    read = stated = 0
    for end in range(lookback, n, 20):
        grid = t_all[end - lookback : end + headroom].copy()  # the window's grid, with headroom
        if 600 < end < 700:
            grid[lookback + 5] = grid[lookback + 4] - 1.0  # a step back beside the series (headroom)
        if 800 < end < 900:
            grid[50] = np.nan  # under every series that spans it
        if 1000 < end < 1100:
            grid[lookback - 1] = grid[lookback - 3]  # under the newest points: out of order
        items = []
        for k in range(16):
            start = 0 if k % 3 else int(rng.integers(0, lookback // 2))  # some start late
            if k == 15:
                start = lookback - 100  # less than half the grid: compared on its own
            t = grid[start:lookback] if k != 14 else grid[start:lookback].copy()
            items.append((Entity("pod", f"p{k}", "shop"), t, values[k, end - lookback + start : end]))
        f = frame({"pod_restarts": items}, step=STEP)
        assert all(s.timestamps.base is grid for s in f.series if s.entity.name != "p14")
        got = [replace(x, id="") for x in fast.detect(f)]
        assert got == [replace(x, id="") for x in full.detect(f)]
        assert fast._constant == full._constant
        assert {k: table.rows[k] for k, table in fast._where.items()} == {
            k: table.rows[k] for k, table in full._where.items()
        }
        read, stated = read + len(fast._constant), stated + len(fast._where)
        assert not fast._grids  # nothing of a frame is kept
    assert read and stated  # both kinds were in play


def _traffic(t: np.ndarray, seed: int = 0) -> np.ndarray:
    """Requests a second: quiet at night, a steep ramp at 08:00 to five times as many, down at 20:00."""
    rng = np.random.default_rng(seed)
    hour = ((t - T0) % DAY) / HOUR
    level = 20 + 80 / (1 + np.exp(-(hour - 8) * 2)) - 80 / (1 + np.exp(-(hour - 20) * 2))
    return level * (1 + rng.normal(0.0, 0.05, t.shape[0]))


def _first_hours(det: SeasonalBaseline, t: np.ndarray, y: np.ndarray, start: int, *, learn: bool) -> list[float]:
    """A daemon started at ``start`` (a 6 h frame, a cycle a minute for 10 hours): the scores it
    warns at. With ``learn``, Prometheus's days before its first frame come first, in the
    collector's chunks (240 points a series)."""
    info = {"inference_request_rate": SignalInfo("inference_request_rate", "model", "1/s", bad_direction="both")}
    window = int(6 * HOUR / 60.0)
    first = start - window
    if learn:
        wanted = det.history_wanted(info)
        assert wanted is not None and wanted.signals == {"inference_request_rate"} and wanted.step_seconds is None
        lo = max(0, first - int(wanted.seconds / 60.0))
        for a in range(lo, first, 240):
            b = min(a + 240, first + 1)  # a range query's end is inclusive: the frame's first sample too
            det.learn_history(frame({"inference_request_rate": [(MODEL, t[a:b], y[a:b])]}, info, step=60.0).series)
    warned = []
    for end in range(start, start + int(10 * HOUR / 60.0)):
        found = det.detect(frame({"inference_request_rate": [(MODEL, t[end - window : end], y[end - window : end])]},
                                 info, step=60.0))
        warned += [f.score for f in found if f.score >= ALARM]
    return warned


def test_a_new_daemon_learns_the_days_before_its_first_frame_and_knows_the_morning() -> None:
    """The state is in memory: a new daemon, and every restarted one, began from its 6-hour frame,
    where the recent median stands in for the profile until two days are known. Started at 02:00,
    it warned at 08:00 on a morning ramp like every other (ap-autoscale's replay: request rates,
    latencies and every node's CPU at 0.70-0.72 for 90 minutes). With the days Prometheus holds
    before its first frame it knows mornings, and a surge on top of one still warns."""
    t = T0 + np.arange(0.0, 8 * DAY, 60.0)
    y = _traffic(t)
    start = int((7 * DAY + 2 * HOUR) / 60.0)
    assert _first_hours(SeasonalBaseline(), t, y, start, learn=False)  # the problem, reproduced
    assert _first_hours(SeasonalBaseline(), t, y, start, learn=True) == []
    surge = y.copy()
    at = int((7 * DAY + 9 * HOUR) / 60.0)
    surge[at : at + 60] *= 1.6
    assert max(_first_hours(SeasonalBaseline(), t, surge, start, learn=True)) >= 0.8


def test_the_first_frame_after_the_days_learnt_is_scored_as_one_history() -> None:
    """A seed is one trace over the days learnt and the frame's later points: the state of a
    daemon that ran through them. What it learnt is dropped after that first frame, kept compact
    while it waits (a stretch of one value as its ends), and a series that already has a state
    keeps it."""
    t = T0 + np.arange(0.0, 4 * DAY, 60.0)
    y = _traffic(t, seed=3)
    y[:480] = 20.0  # a night that held one value (an idle service): two chunks of one value
    y[-1] = 2000.0  # something to score (below the record the idle night's end set: 0)
    frame_from = int(3.7 * DAY / 60.0)
    det = SeasonalBaseline()
    for a in range(0, frame_from + 1, 240):
        b = min(a + 240, frame_from + 1)
        det.learn_history(frame({"inference_request_rate": [(MODEL, t[a:b], y[a:b])]}, step=60.0).series)
    [(key, parts)] = det._learnt.items()
    # Kept small: regular chunks as their ends and float32 values; the idle night's two as a value each.
    assert all(p.t.shape[0] == 2 and p.v.dtype == np.float32 for p in parts)
    assert sum(p.v.shape[0] for p in parts) == frame_from + 1 - 480 + 2
    gap = det._learnt[key][3]
    det._learnt[key][3] = type(gap).of(np.delete(gap.samples()[0], 7), np.delete(gap.samples()[1], 7))
    assert det._learnt[key][3].t.shape[0] == 239  # a chunk with a sample missing keeps its times
    y[3 * 240 + 7] = np.nan  # as the trace below sees it
    det.detect(frame({"inference_request_rate": [(MODEL, t[frame_from:], y[frame_from:])]}, step=60.0))
    assert not det._learnt
    table = det._where[key]
    expected = det.trace(t, y, "both")  # no catalog in this frame: both directions
    point = table.point(key)
    assert point.t == t[-1] and point.t_first == t[0]
    # Equal up to the float32 the days wait in.
    assert point.z > 50 and point.z == pytest.approx(expected.z[-1], rel=1e-5)
    assert point.score == pytest.approx(expected.score[-1], abs=1e-5)
    assert point.seasonal == pytest.approx(expected.seasonal[-1], rel=1e-6)
    # Learning again changes nothing of a series that has a state.
    det.learn_history(frame({"inference_request_rate": [(MODEL, t[:240], y[:240] * 9)]}, step=60.0).series)
    assert not det._learnt and det._where[key].point(key) == point


def test_what_cannot_be_learnt_is_skipped_alone() -> None:
    det = SeasonalBaseline()
    t = T0 + np.arange(0.0, DAY, 60.0)
    bad_t = t.copy()
    bad_t[5] = np.nan
    other = Entity("model", "other", "ml")
    det.learn_history(frame({"inference_request_rate": [(MODEL, bad_t, _traffic(t)), (other, t, _traffic(t))]},
                            step=60.0).series)
    assert [k[1] for k in det._learnt] == [(("name", "other"), ("namespace", "ml"))]
