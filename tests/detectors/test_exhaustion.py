"""ExhaustionForecast on series whose crossing time is known."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from aiops.model import Entity, SignalInfo
from aiops.plugins import DETECTORS, PluginError, instantiate
from detectors._univariate import check_series, typical_step
from detectors.exhaustion import ExhaustionForecast
from tests.detectors.synthetic import DAY, HOUR, MINUTE, POD, SIGNALS, T0, frame, grid


def leak(
    hours: float, start: float, cross_at_hours: float, noise: float = 0.005, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Memory ratio climbing linearly from ``start`` to 1.0 at ``cross_at_hours``."""
    t = grid(hours)
    rng = np.random.default_rng(seed)
    y = start + (1.0 - start) * (t - T0) / (cross_at_hours * HOUR) + rng.normal(0, noise, t.shape[0])
    return t, y


def memory_frame(t: np.ndarray, y: np.ndarray, entity: Entity = POD):
    return frame({"pod_memory_usage_ratio": [(entity, t, y)]})


def test_climbing_memory_predicts_the_true_crossing() -> None:
    t, y = leak(hours=3.0, start=0.4, cross_at_hours=3.5)  # crosses 30 min after the last point
    (f,) = ExhaustionForecast().detect(memory_frame(t, y))
    true_crossing = f.observed_at + timedelta(seconds=T0 + 3.5 * HOUR - t[-1])
    assert f.detector == "exhaustion" and f.signal == "pod_memory_usage_ratio" and f.entity == POD
    assert f.score >= 0.9
    assert f.predicted_failure_at is not None and f.failure_interval is not None
    assert abs(f.predicted_failure_at - true_crossing) < timedelta(minutes=5)
    earliest, latest = f.failure_interval
    assert earliest <= true_crossing <= latest
    assert timedelta(0) < f.lead_time < timedelta(hours=1)  # type: ignore[operator]
    assert "full in ~" in f.evidence.summary  # no failure point declared: it fails when full
    assert f.evidence.facts["slope_per_hour"] == pytest.approx(0.6 / 3.5, rel=0.1)
    assert len(f.evidence.recent) > 0


def test_score_rises_as_the_failure_approaches() -> None:
    t, y = leak(hours=6.0, start=0.2, cross_at_hours=6.0)
    score = ExhaustionForecast().score_series(t, y)
    at = {h: score[int(h * HOUR / MINUTE) - 1] for h in (2.0, 3.0, 4.75, 5.5)}
    assert at[2.0] < 0.05 and at[3.0] < 0.05  # beyond the 2 h horizon: calm
    assert at[4.75] > 0.9 and at[5.5] > 0.99  # well within it: near certain
    assert at[2.0] <= at[3.0] <= at[4.75] <= at[5.5]


@pytest.mark.parametrize("level, noise", [(0.5, 0.01), (0.93, 0.01), (0.8, 0.05)])
def test_flat_or_noisy_series_stays_low(level: float, noise: float) -> None:
    t = grid(6.0)
    y = level + np.random.default_rng(1).normal(0, noise, t.shape[0])
    score = ExhaustionForecast().score_series(t, y)
    assert score.max() < 0.3
    assert ExhaustionForecast().detect(memory_frame(t, y)) == []


def test_spike_that_recovers_is_not_a_trend() -> None:
    t = grid(4.0)
    y = 0.6 + np.random.default_rng(2).normal(0, 0.005, t.shape[0])
    y[150:155] = 0.97  # a short burst near the limit, then back
    score = ExhaustionForecast().score_series(t, y)
    assert score[160:].max() < 0.2


def test_restart_drop_starts_a_new_fit() -> None:
    # Climbs, is restarted (drops to 0.3), climbs again faster: only the new climb counts.
    t = grid(3.5)
    y = np.where(t < T0 + 2 * HOUR, 0.5 + 0.1 * (t - T0) / HOUR, 0.3 + 0.4 * (t - T0 - 2 * HOUR) / HOUR)
    tr = ExhaustionForecast().trace(t, y, 1.0)
    last = len(t) - 1
    assert tr.segment[last] == 1
    assert tr.slope[last] * HOUR == pytest.approx(0.4, rel=0.02)
    # Across the drop a least-squares fit would see a falling series; the forecaster sees 0.4/h.
    (f,) = ExhaustionForecast().detect(memory_frame(t, y))
    assert f.predicted_failure_at is not None
    expected = (1.0 - y[-1]) / 0.4 * HOUR
    assert f.lead_time.total_seconds() == pytest.approx(expected, rel=0.05)  # type: ignore[union-attr]


def test_sawtooth_that_always_resets_below_the_limit_is_discounted() -> None:
    # GC / log rotation: climbs 0.3 -> 0.9 in 80 minutes, drops back, again and again.
    t = grid(8.0)
    period = 80 * MINUTE
    y = 0.3 + 0.6 * ((t - T0) % period) / period
    tr = ExhaustionForecast().trace(t, y, 1.0)
    first_cycle = t < T0 + period
    assert tr.score[first_cycle].max() > 0.5  # the first climb is indistinguishable from a leak
    later = t > T0 + 3 * period
    assert tr.score[later].max() <= 1 / 3 + 1e-9  # after two resets it is a known pattern
    # A climb that outgrows the old peaks is not discounted.
    leak = y.copy()
    tail = t > T0 + 7 * HOUR
    leak[tail] = np.linspace(0.5, 0.99, int(tail.sum()))
    # (Without the 15 min hold: 15 minutes ago it had not outgrown the old peaks yet.)
    assert ExhaustionForecast(hold_seconds=0).trace(t, leak, 1.0).score[-1] > 0.9


def test_nan_and_gap_do_not_break_the_forecast() -> None:
    t, y = leak(hours=3.0, start=0.4, cross_at_hours=3.5)
    y[60:70] = np.nan
    keep = (t < T0 + 2.2 * HOUR) | (t > T0 + 2.4 * HOUR)  # 12 minutes of missing scrapes
    (f,) = ExhaustionForecast().detect(memory_frame(t[keep], y[keep]))
    assert abs(f.lead_time.total_seconds() - 30 * MINUTE) < 5 * MINUTE  # type: ignore[union-attr]


def test_stale_point_gives_no_finding() -> None:
    t, y = leak(hours=3.0, start=0.4, cross_at_hours=3.5)
    y[-1] = np.nan
    assert ExhaustionForecast().detect(memory_frame(t, y)) == []


def test_at_the_limit_is_certain_and_due_now() -> None:
    t = grid(1.0)
    y = np.full(t.shape[0], 0.7)
    y[-1] = 1.0
    (f,) = ExhaustionForecast().detect(memory_frame(t, y))
    assert f.score == 1.0 and f.predicted_failure_at == f.observed_at


def test_only_signals_with_a_capacity_are_forecast() -> None:
    t, y = leak(hours=3.0, start=0.4, cross_at_hours=3.5)
    signals = dict(SIGNALS, pod_memory_usage_ratio=SignalInfo("pod_memory_usage_ratio", "pod", "ratio", capacity=None))
    assert ExhaustionForecast().detect(frame({"pod_memory_usage_ratio": [(POD, t, y)]}, signals)) == []


def test_capacity_in_bytes_is_used_from_the_catalog() -> None:
    t, y = leak(hours=3.0, start=0.4, cross_at_hours=3.5)
    gib = 2.0**30
    signals = {"disk": SignalInfo("disk", "node", "bytes", capacity=4 * gib, bad_direction="up")}
    node = Entity("node", "n1")
    (f,) = ExhaustionForecast(signals=["disk"]).detect(frame({"disk": [(node, t, y * 4 * gib)]}, signals))
    assert abs(f.lead_time.total_seconds() - 30 * MINUTE) < 5 * MINUTE  # type: ignore[union-attr]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="horizon_seconds"):
        ExhaustionForecast(horizon_seconds=0)
    with pytest.raises(ValueError, match="jump_fraction"):
        ExhaustionForecast(jump_fraction=2)
    # Through the registry, as the daemon builds it from the config: the message names the key.
    with pytest.raises(PluginError, match="exhaustion.*horizon"):
        instantiate(DETECTORS, "exhaustion", {"horizon": "1h"})


def _mixed_memory_frame(count: int, seed: int):
    """Flat, leaking, sawtooth, near-the-wall and garbage series at several steps and lengths."""
    rng = np.random.default_rng(seed)
    items = []
    for k in range(count):
        n, step = int(rng.integers(3, 300)), float(rng.choice([15.0, 60.0, 300.0]))
        t = T0 + np.arange(n) * step
        kind = k % 5
        if kind == 0:
            y = rng.uniform(0.2, 0.99) + rng.normal(0, rng.uniform(0, 0.05), n)
        elif kind == 1:
            y = rng.uniform(0.1, 0.6) + np.arange(n) * step * rng.uniform(0, 2e-4) + rng.normal(0, 0.01, n)
        elif kind == 2:
            y = (np.arange(n) % rng.integers(5, 80)) * 0.01 + rng.uniform(0.3, 0.9)
        elif kind == 3:
            y = rng.uniform(0.9, 1.0) + rng.normal(0, 0.02, n)
        else:
            y = rng.uniform(0, 1.2, n)
            y[rng.random(n) < 0.2] = np.nan
        items.append((Entity("pod", f"p{k}", "shop"), t, y))
    return frame({"pod_memory_usage_ratio": items})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_screen_skips_only_series_that_cannot_reach_the_report_floor(seed: int) -> None:
    f = _mixed_memory_frame(150, seed)
    screened = ExhaustionForecast().detect(f)
    everything = ExhaustionForecast()
    everything.screen = lambda frame, signal, series: series  # type: ignore[method-assign]
    expected = everything.detect(f)
    assert expected, "the mix must contain findings for the comparison to mean anything"
    assert [(x.entity, x.score) for x in screened] == [(x.entity, x.score) for x in expected]


def test_screen_keeps_a_climb_that_only_the_half_window_fit_sees() -> None:
    # A climb that began 23 minutes ago: the half window's pair slopes (15 min apart) are all
    # steep, the full window's (30 min apart) are not yet, so only the short fit reaches the wall.
    # The screen bounded that fit with the full window's pairs and dropped these series.
    t = grid(3.0)
    climb = np.maximum(0.0, np.arange(t.shape[0]) - (t.shape[0] - 24)) * MINUTE * 2e-6
    levels = np.linspace(0.984, 0.988, 21)
    items = [(Entity("pod", f"p{i}", "shop"), t, now - climb[-1] + climb) for i, now in enumerate(levels)]
    f = frame({"pod_memory_usage_ratio": items})
    everything = ExhaustionForecast(hold_seconds=0)
    everything.screen = lambda frame, signal, series: series  # type: ignore[method-assign]
    expected = everything.detect(f)
    assert 0 < len(expected) < len(items), "the capacity must fall inside the span of levels"
    screened = ExhaustionForecast(hold_seconds=0).detect(f)
    assert [(x.entity, x.score) for x in screened] == [(x.entity, x.score) for x in expected]


def _accelerating_memory_frame(count: int, seed: int):
    """Climbs that start anywhere in the last hour and steepen or ease, with noise, resets and gaps."""
    rng = np.random.default_rng(seed)
    items = []
    for k in range(count):
        step = float(rng.choice([15.0, 60.0, 300.0]))
        n = int(rng.integers(5, 400))
        i = np.arange(n)
        knee = n - 1 - int(rng.integers(1, max(2, min(n - 1, int(4000 / step)))))
        slope = rng.uniform(0, 3e-5) * 60 / step**0.5
        bend = rng.uniform(0.2, 2) ** ((i - knee) / n)
        y = 0.3 + np.where(i > knee, (i - knee) * step * slope * bend, 0.0)
        y += rng.normal(0, rng.choice([0.0, 1e-3, 1e-2, 3e-2]), n)
        if rng.random() < 0.3:
            y[i % int(rng.integers(5, 90)) == 0] -= rng.uniform(0, 0.3)
        if rng.random() < 0.3:
            y[rng.random(n) < 0.1] = np.nan
        y += rng.uniform(0.5, 1.0) - np.nanmax(y[-5:])
        items.append((Entity("pod", f"p{k}", "shop"), T0 + i * step, y))
    return frame({"pod_memory_usage_ratio": items})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [6, 7, 9])
@pytest.mark.parametrize("hold", [0.0, 300.0])
def test_screen_loses_nothing_on_accelerating_climbs(seed: int, hold: float) -> None:
    f = _accelerating_memory_frame(300, seed)
    everything = ExhaustionForecast(hold_seconds=hold)
    everything.screen = lambda frame, signal, series: series  # type: ignore[method-assign]
    expected = everything.detect(f)
    assert len(expected) > 50, "the mix must contain findings for the comparison to mean anything"
    screened = ExhaustionForecast(hold_seconds=hold).detect(f)
    assert [(x.entity, x.score) for x in screened] == [(x.entity, x.score) for x in expected]


def test_flat_series_are_screened_out_and_a_leak_is_not() -> None:
    t = grid(6.0)
    flat = 0.5 + 0.01 * np.sin(np.arange(t.shape[0]))
    _, leaking = leak(hours=6.0, start=0.4, cross_at_hours=6.5)
    f = frame(
        {
            "pod_memory_usage_ratio": [(Entity("pod", f"flat-{k}", "shop"), t, flat) for k in range(50)]
            + [(POD, t, leaking)]
        }
    )
    det = ExhaustionForecast()
    assert [s.entity for s in det.screen(f, "pod_memory_usage_ratio", list(f.series))] == [POD]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_last_point_only_forecast_equals_the_full_trace(seed: int) -> None:
    det = ExhaustionForecast()
    for series in _mixed_memory_frame(80, seed).series:
        full = det.trace(series.timestamps, series.values, 1.0)
        last = det.trace(series.timestamps, series.values, 1.0, last_only=True)
        for name in ("score", "slope", "slope_sigma", "level", "noise_sigma", "discount"):
            np.testing.assert_array_equal(getattr(last, name)[-1:], getattr(full, name)[-1:], err_msg=name)
        np.testing.assert_array_equal(last.segment, full.segment)


def _varied_series(seed: int):
    """Leaks, sawtooths, steps, daily peaks, rounding, gaps, NaN and garbage, at several steps."""
    rng = np.random.default_rng(seed)
    for k in range(60):
        n, step = int(rng.integers(1, 1500)), float(rng.choice([15.0, 60.0, 300.0]))
        t = T0 + np.arange(n) * step
        kind = k % 5
        y = rng.uniform(0.1, 0.9) + rng.uniform(-1, 3) * 1e-4 * np.arange(n) * step / 60
        y = y + rng.normal(0, rng.choice([1e-4, 1e-3, 1e-2]), n)
        if kind == 1:
            period = int(rng.integers(30, 400))
            y = rng.uniform(0.1, 0.5) + (np.arange(n) % period) / period * rng.uniform(0.1, 0.8)
        elif kind == 2:
            y = y + 0.2 * (np.arange(n) > n // 2)
        elif kind == 3:
            y = np.round(y, 2)
        elif kind == 4:
            y = 0.5 + 0.4 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.01, n)
        y[rng.random(n) < rng.choice([0.0, 0.05, 0.3])] = np.nan
        if rng.random() < 0.2 and n > 10:
            t[int(rng.integers(1, n)) :] += rng.choice([600.0, 7200.0, DAY])
        if rng.random() < 0.1:
            y[int(rng.integers(0, n))] = 1e300
        params = {}
        if rng.random() < 0.3:
            params["hold_seconds"] = float(rng.choice([0.0, 60.0, 3600.0, 7200.0]))
        if rng.random() < 0.3:
            params["window_seconds"] = float(rng.choice([600.0, 1800.0, 7200.0]))
        if rng.random() < 0.2:
            params["daily_memory_days"] = 0
        yield ExhaustionForecast(**params), t, y, float(rng.choice([1.0, 0.9, 0.95]))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_daemon_forecast_is_the_last_point_of_the_trace_to_the_bit(seed: int) -> None:
    """``forecast_now`` (what the daemon explains with) fits only the points the newest score
    reads; every number must still be the trace's."""
    for det, t, y, wall in _varied_series(seed):
        tr = det.trace(t, y, wall, last_only=True)
        now = det.forecast_now(t, y, wall)
        i = t.shape[0] - 1
        expected = (tr.score[i], tr.slope[i], tr.slope_sigma[i], tr.level[i], tr.noise_sigma[i], tr.discount[i])
        got = (now.score, now.slope, now.slope_sigma, now.level, now.noise_sigma, now.discount)
        np.testing.assert_array_equal(np.array(got), np.array(expected, dtype=np.float64))
        assert now.segment_start == int(np.flatnonzero(tr.segment == tr.segment[i])[0])


def _same_length_series(seed: int, count: int = 40):
    """The daemon's case for the batched fits: most series of one length on one step (some
    shorter), with leaks, sawtooths, steps, rounding, gaps, NaN, garbage and a NaN newest point."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        n = int(rng.choice([1440, 1440, 1440, 90, 7]))
        t = T0 + np.arange(n) * MINUTE
        y = rng.uniform(0.1, 0.9) + rng.uniform(-1, 3) * 1e-4 * np.arange(n)
        y = y + rng.normal(0, rng.choice([1e-4, 1e-3, 1e-2]), n)
        if k % 4 == 1:
            period = int(rng.integers(30, 400))
            y = rng.uniform(0.1, 0.5) + (np.arange(n) % period) / period * rng.uniform(0.1, 0.8)
        elif k % 4 == 2:
            y = y + 0.2 * (np.arange(n) > n - int(rng.integers(1, 60)))
        elif k % 4 == 3:
            y = np.round(y, 2)
        y[rng.random(n) < rng.choice([0.0, 0.05, 0.3])] = np.nan
        if rng.random() < 0.2 and n > 10:
            y[-int(rng.integers(1, min(n, 40))) :] = np.nan  # a gap up to now
        if rng.random() < 0.2 and n > 10:
            t[int(rng.integers(1, n)) :] += rng.choice([600.0, 7200.0])
            t -= t[-1] - (T0 + (n - 1) * MINUTE)  # still ending now
        if rng.random() < 0.1:
            y[int(rng.integers(0, n))] = 1e300
        yield Entity("pod", f"web-{k}", "shop"), t, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_forecasts_fitted_together_are_each_series_alone_to_the_bit(seed: int) -> None:
    """``prepare`` fits a cycle's screened series as the rows of one matrix; every forecast is the
    one that series gets alone (and so the trace's newest point, tested above)."""
    items = list(_same_length_series(seed))
    fr = frame({"pod_memory_usage_ratio": items})
    together, alone = ExhaustionForecast(), ExhaustionForecast()
    together.prepare(fr, "pod_memory_usage_ratio", list(fr.series))
    assert len(together._fitted) == len(items)

    def same(got, want, what):  # noqa: ANN001, ANN202
        np.testing.assert_array_equal(np.array(list(vars(got).values()), dtype=float),
                                      np.array(list(vars(want).values()), dtype=float), err_msg=what)

    for s in fr.series:
        same(together.forecast_now(s.timestamps, s.values, 1.0), alone.forecast_now(s.timestamps, s.values, 1.0), str(s.entity))
    # Read only for the very arrays it was made from, at the same failure point.
    s = fr.series[0]
    same(together.forecast_now(s.timestamps.copy(), s.values, 1.0), alone.forecast_now(s.timestamps, s.values, 1.0), "copy")
    same(together.forecast_now(s.timestamps, s.values, 0.9), alone.forecast_now(s.timestamps, s.values, 0.9), "0.9")


@pytest.mark.parametrize("seed", [0, 1])
def test_findings_are_the_same_with_the_fits_made_together_or_one_by_one(seed: int) -> None:
    """Through ``detect``: the findings of a frame are equal, facts and intervals included, whether
    the screened series were prepared together or each explained on its own."""
    fr = frame({"pod_memory_usage_ratio": list(_same_length_series(seed, 60))})

    class OneByOne(ExhaustionForecast):
        def prepare(self, frame, signal, series):  # noqa: ANN001, ANN201
            pass

    def key(f):  # noqa: ANN001, ANN202
        return (str(f.entity), f.score, f.evidence.summary, sorted(f.evidence.facts.items()), f.failure_interval)

    got = sorted(map(key, ExhaustionForecast(report_floor=0.0).detect(fr)))
    want = sorted(map(key, OneByOne(report_floor=0.0).detect(fr)))
    assert got == want and len(got) > 30


def test_a_failed_preparation_leaves_each_series_to_its_own_explanation(caplog) -> None:  # noqa: ANN001
    fr = frame({"pod_memory_usage_ratio": list(_same_length_series(0, 10))})

    class Broken(ExhaustionForecast):
        def _now_fits(self, inputs):  # noqa: ANN001, ANN201
            if len(inputs) > 1:
                raise RuntimeError("boom")
            return super()._now_fits(inputs)

    got = Broken(report_floor=0.0).detect(fr)
    want = ExhaustionForecast(report_floor=0.0).detect(fr)
    assert [(f.entity, f.score) for f in got] == [(f.entity, f.score) for f in want]
    assert "preparing pod_memory_usage_ratio failed" in caplog.text


@pytest.mark.parametrize("seed", [0, 1])
def test_the_noise_is_read_only_where_it_can_start_a_stretch_and_the_stretches_are_the_same(seed: int) -> None:
    """The rolling noise median over the whole series (as first written, with pandas) and the
    one read only where a deviation exceeds the jump fraction give the same stretches."""
    import math

    import pandas as pd

    from detectors._univariate import points_for, segment_ids, typical_step
    from detectors.exhaustion import CONFIRM_POINTS, JUMP_SIGMAS, MAD_TO_SIGMA

    breaks = 0
    rng = np.random.default_rng(seed)
    for det, t, y, wall in _varied_series(seed):
        # Noisy, and with a small jump fraction: where the noise, not the fraction, decides.
        det = ExhaustionForecast(jump_fraction=float(rng.choice([0.02, 0.05, 0.1])))
        y = np.where(np.isfinite(y), y, np.nan) + rng.normal(0, rng.choice([0.0, 0.02, 0.05]), t.shape[0])
        step = typical_step(t)
        window = points_for(det.params.window_seconds, step, minimum=4)
        valid = np.flatnonzero(~np.isnan(y))
        dy = np.full(t.shape[0], np.nan)
        dy[valid[1:]] = np.diff(y[valid])
        noise = pd.Series(np.abs(dy)).shift(1).rolling(window, min_periods=4).median().to_numpy() * MAD_TO_SIGMA
        everywhere = np.fmax(det.params.jump_fraction * max(abs(wall), 1e-12), JUMP_SIGMAS * noise / math.sqrt(2.0))
        gap = max(det.max_gap_seconds, 2 * step)
        expected = segment_ids(t, y, max_jump=everywhere, max_gap_seconds=gap, confirm=CONFIRM_POINTS)
        got = segment_ids(t, y, max_jump=det._max_jump(y, valid, wall, window), max_gap_seconds=gap, confirm=CONFIRM_POINTS)
        np.testing.assert_array_equal(got, expected)
        breaks += int(expected[-1]) if expected.shape[0] else 0
    assert breaks > 10  # resets and steps were in play


def test_last_point_only_forecast_on_a_day_of_resets_and_a_leak() -> None:
    det = ExhaustionForecast()
    t = grid(24.0)
    rng = np.random.default_rng(5)
    sawtooth = 0.3 + 0.6 * ((t - T0) % (2 * HOUR)) / (2 * HOUR) + rng.normal(0, 0.005, t.shape[0])
    _, leaking = leak(hours=24.0, start=0.2, cross_at_hours=24.5)
    for y in (sawtooth, leaking, np.where(t > T0 + 20 * HOUR, leaking, sawtooth)):
        full = det.trace(t, y, 1.0)
        last = det.trace(t, y, 1.0, last_only=True)
        assert last.score[-1] == full.score[-1] and last.discount[-1] == full.discount[-1]
        assert full.score[-1] > 0.0 or full.discount[-1] < 1.0  # not a trivially quiet case


def _catalog_info(signal: str) -> SignalInfo:
    from aiops.collect.collector import signal_info
    from aiops.config import parse_config

    return signal_info(signal, parse_config({}).resolved_signals()[signal])


@pytest.mark.parametrize(("mountpoint", "point"), [("/", 0.90), ("/var/lib/containerd", 0.85)])
def test_disk_fill_is_forecast_to_diskpressure_not_to_full(mountpoint: str, point: float) -> None:
    """The kubelet evicts at nodefs.available < 10 % (imagefs < 15 %): that is the failure to predict."""
    info = _catalog_info("node_filesystem_usage_ratio")
    node = Entity("node", "gpu-node-1")
    t = grid(2.5)  # 0.80 at the end: DiskPressure at 0.85/0.90 is still ahead
    rng = np.random.default_rng(3)
    rate = 0.12 / HOUR  # 12 % of the disk per hour
    y = 0.5 + rate * (t - T0) + rng.normal(0, 0.002, t.shape[0])
    from aiops.model import Frame, Series, from_epoch

    s = Series(info.name, {"instance": node.name, "mountpoint": mountpoint}, t, y, node)
    fr = Frame(from_epoch(t[-1]), (s,), {info.name: info}, MINUTE)
    [f] = ExhaustionForecast(report_floor=0.0).detect(fr)
    crossing = T0 + (point - 0.5) / rate
    full = T0 + 0.5 / rate
    assert f.predicted_failure_at is not None
    assert abs(f.predicted_failure_at.timestamp() - crossing) < 5 * MINUTE
    assert f"DiskPressure (kubelet eviction: {'imagefs' if point < 0.9 else 'nodefs'}" in f.evidence.summary
    assert abs(f.evidence.facts["full_in_seconds"] - (full - t[-1])) < 5 * MINUTE
    assert "full in ~" in f.evidence.summary
    assert f.evidence.facts["failure_point"] == point


def test_inode_exhaustion_is_forecast_to_diskpressure_and_advised() -> None:
    """Millions of small files (a log spammer, an unpacked dataset) run out of inodes with space to
    spare: the kubelet evicts at nodefs.inodesFree < 5 %. The default catalog reads inodes, the
    exhaustion forecast targets 0.95, and the disk-filling rule advises on the node."""
    from aiops.config import parse_config
    from aiops.engine.decide import Policy
    from aiops.model import Frame, Mode, Series, from_epoch

    info = _catalog_info("node_filesystem_inodes_usage_ratio")
    node = Entity("node", "gpu-node-1")
    t = grid(3)
    rng = np.random.default_rng(4)
    rate = 0.1 / HOUR
    y = 0.55 + rate * (t - T0) + rng.normal(0, 0.001, t.shape[0])  # 0.85 at the end
    s = Series(info.name, {"instance": node.name, "mountpoint": "/"}, t, y, node)
    [f] = ExhaustionForecast().detect(Frame(from_epoch(t[-1]), (s,), {info.name: info}, MINUTE))
    assert f.evidence.facts["failure_point"] == 0.95
    assert "DiskPressure (kubelet eviction: nodefs.inodesFree < 5%)" in f.evidence.summary
    assert f.predicted_failure_at is not None
    assert abs(f.predicted_failure_at.timestamp() - (T0 + 0.4 / rate)) < 5 * MINUTE
    assert info.name in ExhaustionForecast().signals
    _, decisions = Policy(parse_config({}).policy, Mode.AUTO).decide([f], now=f.observed_at)
    assert [(d.action, d.target.key, d.rule) for d in decisions] == [("advise", "node/gpu-node-1", "disk-filling")]


def test_failure_points_are_configurable_per_signal() -> None:
    from aiops.collect.collector import signal_info
    from aiops.config import parse_config

    cfg = parse_config({"signals": {"node_filesystem_usage_ratio": {"failure_points": [{"value": 0.8, "name": "custom eviction"}]}}})
    info = signal_info("node_filesystem_usage_ratio", cfg.resolved_signals()["node_filesystem_usage_ratio"])
    assert ExhaustionForecast.failure_of(info, {"mountpoint": "/"}) == (0.8, "custom eviction")
    bare = SignalInfo("x", "node", "ratio", capacity=1.0)
    assert ExhaustionForecast.failure_of(bare, {}) == (1.0, "full")
    from aiops.config import ConfigError

    with pytest.raises(ConfigError, match="not a regular expression"):
        parse_config({"signals": {"node_filesystem_usage_ratio": {"failure_points": [{"value": 0.8, "name": "x", "match": {"mountpoint": "("}}]}}})


def _lunchtime_peak(hours: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Memory that climbs to 0.9 of its limit every day around 14:00 and falls back, with noise."""
    t = grid(hours)
    hour_of_day = ((t - T0) % DAY) / HOUR
    return t, 0.35 + 0.55 * np.exp(-0.5 * ((hour_of_day - 14) / 3) ** 2) + rng.normal(0, 0.004, t.shape[0])


def test_daily_peaks_near_the_wall_stop_paging_once_the_previous_days_are_known() -> None:
    """A lunchtime peak at 0.9 climbs like a leak; the previous days show it stops short of the wall."""
    rng = np.random.default_rng(0)
    t, y = _lunchtime_peak(72, rng)
    score = ExhaustionForecast().score_series(t, y)
    per_day = [score[d * 1440 : (d + 1) * 1440].max() for d in range(3)]
    assert per_day[0] > 0.9  # the first day there is nothing to compare with
    assert per_day[1] < 0.5 and per_day[2] < 0.5


def test_a_level_shift_after_a_deploy_is_not_a_trend() -> None:
    rng = np.random.default_rng(1)
    t = grid(10)
    for after in (0.62, 0.75, 0.88):
        y = np.where(t >= T0 + 5 * HOUR, after, 0.5) + rng.normal(0, 0.004, t.shape[0])
        assert ExhaustionForecast().score_series(t, y).max() < 0.05, after


def test_a_staircase_leak_is_a_trend_and_is_warned_an_hour_ahead() -> None:
    """Steps of 12 % every 30 min (a cache growing in chunks): each is a jump, together a leak."""
    rng = np.random.default_rng(2)
    t = grid(8)
    steps = np.clip(np.floor((t - T0 - 4 * HOUR) / (30 * MINUTE)) + 1, 0, None)
    y = 0.35 + 0.12 * steps + rng.normal(0, 0.003, t.shape[0])
    score = ExhaustionForecast().score_series(t, y)
    crossing = int(np.flatnonzero(y >= 1.0)[0])
    first = int(np.flatnonzero(score >= 0.7)[0])
    assert (crossing - first) * MINUTE >= HOUR


def test_the_daemon_keeps_daily_maxima_so_its_score_matches_the_backtest() -> None:
    """The frame holds hours; the previous days come from the bins the daemon kept, cycle by cycle."""
    from aiops.model import Frame, Series, from_epoch

    rng = np.random.default_rng(3)
    t, y = _lunchtime_peak(50, rng)
    full = ExhaustionForecast(report_floor=0.0).score_series(t, y)
    daemon = ExhaustionForecast(report_floor=0.0)
    lookback = int(6 * HOUR / MINUTE)
    checked = 0
    for i in range(60, t.shape[0], 30):
        lo = max(0, i + 1 - lookback)
        s = Series("pod_memory_usage_ratio", {"pod": "web-0"}, t[lo : i + 1], y[lo : i + 1], POD)
        [f] = daemon.detect(Frame(from_epoch(t[i]), (s,), SIGNALS, MINUTE))
        if i >= 26 * 60:  # a day and a lookback in: the daily comparison is fully in play
            assert f.score == pytest.approx(full[i], abs=1e-9), i
            checked += 1
    assert checked > 20


def _lunchtime_peak_on_pods(pods: list[tuple[str, str, str, float] | tuple[str, str, str, float, float]],
                            restart_at_h: float | None = None) -> dict[str, float]:
    """The daemon, cycle by cycle every 30 min over three days of a lunchtime peak at 0.9, with
    the pods ``(name, created_by_kind, created_by_name, from hour[, to hour])`` serving it (each
    until the next one starts, or until its own end) and their kube_pod_info; the highest score
    of each pod on the last day. ``restart_at_h``: the daemon restarts then, from its state."""
    from aiops.model import Frame, Series, from_epoch

    rng = np.random.default_rng(5)
    t, y = _lunchtime_peak(72, rng)
    daemon = ExhaustionForecast(report_floor=0.0)
    signals = {**SIGNALS, "pod_info": SignalInfo("pod_info", "pod", "bool")}
    lookback = int(6 * HOUR / MINUTE)
    spans = []
    for k, (name, kind, creator, since, *until) in enumerate(pods):
        end = until[0] if until else next((p[3] for p in pods[k + 1 :] if len(p) == 4), 1e9)
        spans.append((name, kind, creator, since, end))
    worst: dict[str, float] = {}
    for i in range(60, t.shape[0], 30):
        series = []
        for name, kind, creator, since, end in spans:
            if not T0 + since * HOUR <= t[i] < T0 + end * HOUR:
                continue
            lo = max(0, i + 1 - lookback, int(since * 60))
            pod = Entity("pod", name, "shop")
            info = Entity("pod", name, "shop", attributes=(("created_by_kind", kind), ("created_by_name", creator)))
            series += [
                Series("pod_memory_usage_ratio", {"namespace": "shop", "pod": name, "container": "web"},
                       t[lo : i + 1], y[lo : i + 1], pod),
                Series("pod_info", {"namespace": "shop", "pod": name, "created_by_kind": kind, "created_by_name": creator},
                       t[lo : i + 1], np.ones(i + 1 - lo), info),
            ]
        if restart_at_h is not None and t[i] >= T0 + restart_at_h * HOUR:
            restart_at_h, saved = None, daemon.saved_state()
            daemon = ExhaustionForecast(report_floor=0.0)
            assert daemon.restore_state(saved) == []
        findings = daemon.detect(Frame(from_epoch(t[i]), tuple(series), signals, MINUTE))
        if t[i] >= T0 + 2 * DAY:
            for f in findings:
                worst[f.entity.name] = max(worst.get(f.entity.name, 0.0), f.score)
    return worst


def test_a_rollout_keeps_the_days_its_deployment_learnt() -> None:
    """A Deployment rolled out overnight serves from pods with new names (a new ReplicaSet). The
    daily peak they meet is the one the old pods met the days before: not a page. The days
    belong to the workload (the Deployment, its container), not to one pod's name; a pod of
    another workload, or a bare pod, starts with no days."""
    rolled = _lunchtime_peak_on_pods([
        ("web-6f7d8b9c4d-x2x9k", "ReplicaSet", "web-6f7d8b9c4d", 0.0),
        ("web-5c9d7f8b6b-qz7lm", "ReplicaSet", "web-5c9d7f8b6b", 46.0),  # 22:00 on the second day
    ])
    assert rolled["web-5c9d7f8b6b-qz7lm"] < 0.5
    for other in (("api-7d9c8b5f4c-k2m4p", "ReplicaSet", "api-7d9c8b5f4c"), ("web-debug", "<none>", "")):
        stranger = _lunchtime_peak_on_pods([
            ("web-6f7d8b9c4d-x2x9k", "ReplicaSet", "web-6f7d8b9c4d", 0.0), (*other, 46.0),
        ])
        assert stranger[other[0]] > 0.9, other


def test_a_restart_keeps_the_days_of_a_deployment_s_departed_pods() -> None:
    """The departed pods' days are in the state file: a daemon restarted between the rollout and
    the next morning still knows the peak its Deployment met."""
    rolled = _lunchtime_peak_on_pods([
        ("web-6f7d8b9c4d-x2x9k", "ReplicaSet", "web-6f7d8b9c4d", 0.0),
        ("web-5c9d7f8b6b-qz7lm", "ReplicaSet", "web-5c9d7f8b6b", 46.0),
    ], restart_at_h=47.0)
    assert rolled["web-5c9d7f8b6b-qz7lm"] < 0.5


def test_a_replica_added_by_a_scale_out_reads_its_siblings_days() -> None:
    """A replica the HPA adds on the third morning has no days of its own; the replicas beside it
    (the same Deployment) met this peak the days before."""
    worst = _lunchtime_peak_on_pods([
        ("web-6f7d8b9c4d-x2x9k", "ReplicaSet", "web-6f7d8b9c4d", 0.0, 1e9),
        ("web-6f7d8b9c4d-7hq2n", "ReplicaSet", "web-6f7d8b9c4d", 57.0, 1e9),  # 09:00 on the third day
    ])
    assert worst["web-6f7d8b9c4d-x2x9k"] < 0.5
    assert worst["web-6f7d8b9c4d-7hq2n"] < 0.5


def test_a_daemonset_s_pods_keep_its_days_through_a_rollout_and_on_a_new_node() -> None:
    """A DaemonSet's rollout replaces its pod on each node under a new name (<daemonset>-<id>, no
    ReplicaSet between), and a node the autoscaler adds gets a pod of its own: either meets the
    peak the DaemonSet's pods met the days before. A bare pod of a similar name starts with none."""
    rolled = _lunchtime_peak_on_pods([
        ("log-agent-x2x9k", "DaemonSet", "log-agent", 0.0),
        ("log-agent-qz7lm", "DaemonSet", "log-agent", 46.0),  # the rollout, 22:00 on the second day
    ])
    assert rolled["log-agent-qz7lm"] < 0.5
    joined = _lunchtime_peak_on_pods([
        ("log-agent-x2x9k", "DaemonSet", "log-agent", 0.0, 1e9),
        ("log-agent-7hq2n", "DaemonSet", "log-agent", 57.0, 1e9),  # a node joined at 09:00, third day
    ])
    assert joined["log-agent-7hq2n"] < 0.5
    stranger = _lunchtime_peak_on_pods([
        ("log-agent-x2x9k", "DaemonSet", "log-agent", 0.0), ("log-agent-debug", "<none>", "", 46.0),
    ])
    assert stranger["log-agent-debug"] > 0.9


def _daemonset_pods(names: list[str], t: np.ndarray, ys: list[np.ndarray]) -> list:
    """The memory series of a DaemonSet's pods (``log-agent-<id>``, one per node) and their
    kube_pod_info, from the points ``(t, y)`` of each."""
    from aiops.model import Series

    series = []
    for name, y in zip(names, ys):
        pod = Entity("pod", name, "ops")
        info = Entity("pod", name, "ops", attributes=(("created_by_kind", "DaemonSet"), ("created_by_name", "log-agent")))
        series += [
            Series("pod_memory_usage_ratio", {"namespace": "ops", "pod": name, "container": "agent"}, t, y, pod),
            Series("pod_info", {"namespace": "ops", "pod": name, "created_by_kind": "DaemonSet", "created_by_name": "log-agent"},
                   t, np.ones(t.shape[0]), info),
        ]
    return series


@pytest.mark.parametrize("pods", [10, 40])
def test_a_daemonset_s_young_pods_read_their_siblings_days_once_per_cycle(pods: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after a DaemonSet's rollout every pod is young and climbing, so each one is explained
    and reads its siblings' days. Those are merged once per workload and cycle: the bins read
    (DailyMaxima.get) and the spans folded (max_bins) grow with the pods, not with their square
    (an 800-pod DaemonSet cost 5.7 s a cycle when each pod folded all the others' days)."""
    from aiops.model import Frame, from_epoch
    from detectors import _daily, exhaustion

    rng = np.random.default_rng(pods)
    t = grid(2)  # rolled out 2 h ago: every pod's bins span less than a day
    ys = [0.5 + 0.2 * (t - T0) / HOUR + rng.normal(0, 0.003, t.shape[0]) for _ in range(pods)]  # at 0.9, +0.2/h
    names = [f"log-agent-{k:05d}" for k in range(pods)]
    signals = {**SIGNALS, "pod_info": SignalInfo("pod_info", "pod", "bool")}
    frame = Frame(from_epoch(t[-1]), tuple(_daemonset_pods(names, t, ys)), signals, MINUTE)
    det = ExhaustionForecast()
    det.detect(frame)  # the first cycle learns the pods; the next one is steady

    calls = {"get": 0, "max_bins": 0}
    get, max_bins = _daily.DailyMaxima.get, exhaustion.max_bins

    def counted_get(self: _daily.DailyMaxima, key: object) -> object:
        calls["get"] += 1
        return get(self, key)

    def counted_max_bins(*args: object) -> object:
        calls["max_bins"] += 1
        return max_bins(*args)

    monkeypatch.setattr(_daily.DailyMaxima, "get", counted_get)
    monkeypatch.setattr(exhaustion, "max_bins", counted_max_bins)
    t2 = np.append(t, t[-1] + MINUTE)
    frame = Frame(from_epoch(t2[-1]), tuple(_daemonset_pods(names, t2, [np.append(y, y[-1] + 0.003) for y in ys])), signals, MINUTE)
    findings = det.detect(frame)
    assert len(findings) == pods  # every pod passed the screen and was explained
    assert calls["get"] <= 3 * pods, calls  # its own, its workload's departed pods', the siblings' once
    assert calls["max_bins"] <= 2 * pods, calls  # each sibling into the merge once, the merge into each pod


def _rollout_scenario(seed: int) -> list:
    """Frames every 30 min over three days (6 h lookback) of a lunchtime peak near the wall, served
    by a DaemonSet on five nodes rolled out pod by pod at random times on the second evening, a
    node that joins on the third morning, a Deployment scaled out then, and a bare pod; each pod
    with its own amplitude, noise and scrape offset (float64 values no float32 holds)."""
    from aiops.model import Frame, Series, from_epoch

    rng = np.random.default_rng(seed)
    t = grid(72)
    hour_of_day = ((t - T0) % DAY) / HOUR
    shape = np.exp(-0.5 * ((hour_of_day - 14) / 3) ** 2)
    pods = []  # (name, kind, creator, since, until)
    for node in range(5):
        at = 46.0 + rng.uniform(0, 3)
        pods += [(f"log-agent-a{node}", "DaemonSet", "log-agent", 0.0, at), (f"log-agent-b{node}", "DaemonSet", "log-agent", at, 1e9)]
    pods += [("log-agent-c5", "DaemonSet", "log-agent", 57.0 + rng.uniform(0, 1), 1e9)]
    pods += [("web-6f7d8b9c4d-x2x9k", "ReplicaSet", "web-6f7d8b9c4d", 0.0, 1e9), ("web-6f7d8b9c4d-7hq2n", "ReplicaSet", "web-6f7d8b9c4d", 0.0, 1e9),
             ("web-6f7d8b9c4d-p4k8d", "ReplicaSet", "web-6f7d8b9c4d", 55.0, 1e9), ("web-debug", "<none>", "", 50.0, 1e9)]
    curves = {name: (0.34 + 0.56 * rng.uniform(0.95, 1.0) * shape + rng.normal(0, rng.uniform(0.002, 0.01), t.shape[0]),
                     rng.uniform(0, 30)) for name, *_ in pods}
    signals = {**SIGNALS, "pod_info": SignalInfo("pod_info", "pod", "bool")}
    lookback = int(6 * HOUR / MINUTE)
    frames = []
    for i in range(60, t.shape[0], 30):
        series = []
        for name, kind, creator, since, until in pods:
            if not T0 + since * HOUR <= t[i] < T0 + until * HOUR:
                continue
            lo = max(0, i + 1 - lookback, int(np.ceil(since * 60)))
            y, offset = curves[name]
            attrs = (("created_by_kind", kind), ("created_by_name", creator))
            series += [
                Series("pod_memory_usage_ratio", {"namespace": "shop", "pod": name, "container": "c"},
                       t[lo : i + 1] + offset, y[lo : i + 1], Entity("pod", name, "shop")),
                Series("pod_info", {"namespace": "shop", "pod": name, **dict(attrs)}, t[lo : i + 1], np.ones(i + 1 - lo),
                       Entity("pod", name, "shop", attributes=attrs)),
            ]
        frames.append(Frame(from_epoch(t[i] + 30), tuple(series), signals, MINUTE))
    return frames


class _ReferenceDays(ExhaustionForecast):
    """Checks, for every series explained, that the days handed to the forecast are those the
    first version computed (each pod folding each live sibling's days in turn), to the bit."""

    checked = 0  # series explained
    from_siblings = 0  # siblings' days that changed the days a pod reads

    def explain(self, frame, series):  # noqa: ANN001, ANN201
        from detectors._daily import BINS_PER_DAY, max_bins, merged_bins

        expected = merged_bins(self._daily.get(series.key), series.timestamps, series.values, self._daily.keep)
        workload = self._workload_key(frame, series)
        if workload is not None:
            others = []
            if expected[1].shape[0] < BINS_PER_DAY:
                others = [self._daily.get(s.key) for s in frame.of(series.signal)
                          if s.key != series.key and self._workload_key(frame, s) == workload]
            for k, days in enumerate([self._lineage.get(workload), *others]):
                if days is not None:
                    before, expected = expected, max_bins(days, expected, self._daily.keep)
                    self.from_siblings += k > 0 and not (
                        before[0] == expected[0] and np.array_equal(before[1], expected[1], equal_nan=True))
        handed = []
        forecast_now = self.forecast_now

        def recorded(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            handed.append(kwargs["daily"])
            return forecast_now(*args, **kwargs)

        self.forecast_now = recorded  # type: ignore[method-assign]
        try:
            finding = super().explain(frame, series)
        finally:
            del self.forecast_now
        [daily] = handed
        assert daily[0] == expected[0], series.key
        np.testing.assert_array_equal(daily[1], expected[1], err_msg=str(series.key))
        self.checked += 1
        return finding


@pytest.mark.parametrize("seed", range(3))
def test_the_days_a_pod_reads_from_its_siblings_are_the_first_version_s_to_the_bit(seed: int) -> None:
    """A DaemonSet rolled out pod by pod, a node joining, a Deployment scaled out: every forecast
    is handed the days that folding each live sibling's in turn gave (merged once per workload
    now), so every finding is the same."""
    det = _ReferenceDays(report_floor=0.0)
    young = {}
    for cycle in _rollout_scenario(seed):
        for f in det.detect(cycle):
            if cycle.now.timestamp() >= T0 + 2 * DAY and f.entity.name.startswith("log-agent-"):
                young[f.entity.name] = max(young.get(f.entity.name, 0.0), f.score)
    assert det.checked > 1000 and det.from_siblings > 500, (det.checked, det.from_siblings)
    assert max(young.values()) < 0.5  # the DaemonSet's days, its siblings' among them, reached every new pod


def _reset_discount_before(det, t, y, seg, drop_ended, level, noise, capacity):
    """The reset discount as computed before the daemon's path read only its newest points (verbatim)."""
    out = np.ones(t.shape[0])
    if drop_ended.shape[0] < 2:
        return out
    bounds = np.flatnonzero(np.diff(seg, prepend=seg[0] - 1) != 0)
    ends = np.append(bounds[1:], t.shape[0])
    with np.errstate(all="ignore"):
        peaks = np.array([np.nanmax(y[a:b]) if np.any(~np.isnan(y[a:b])) else np.nan for a, b in zip(bounds, ends)])
    end_times = t[ends - 1]
    resetting = drop_ended & (peaks < capacity)
    here = np.where(np.isfinite(level), level, y)
    for k in range(1, bounds.shape[0]):
        prior = np.flatnonzero(resetting[:k] & (end_times[:k] >= t[bounds[k]] - det.params.reset_memory_seconds))
        if prior.shape[0] == 0:
            continue
        a, b = bounds[k], ends[k]
        margin = np.fmax(2.0 * np.nan_to_num(noise[a:b], nan=0.0), 0.02 * abs(capacity))
        reached = np.sum(peaks[prior][None, :] >= (here[a:b] - margin)[:, None], axis=1)
        out[a:b] = np.where(reached > 0, 1.0 / (reached + 2.0), 1.0)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_reset_discount_from_the_newest_points_is_the_previous_computation_to_the_bit(seed: int) -> None:
    """Sawtooths (resets), steps, NaN, gaps and garbage: peaks from one reduceat, and only the points
    from ``since`` on computed, give the floats of the per-stretch loop over the whole series."""
    rng = np.random.default_rng(100 + seed)
    checked = 0
    for det, t, y, wall in _varied_series(seed):
        if t.shape[0] < 2:
            continue
        tr = det.trace(t, y, wall)
        _, yc = check_series(t, y)
        _, drop_ended = det._segments(t, yc, wall, max(4, round(det.params.window_seconds / typical_step(t))), typical_step(t))
        args = (t, yc, tr.segment, drop_ended, tr.level, tr.noise_sigma, wall)
        before = _reset_discount_before(det, *args)
        np.testing.assert_array_equal(det._reset_discount(*args), before)
        since = int(rng.integers(0, t.shape[0]))
        np.testing.assert_array_equal(det._reset_discount(*args, since)[since:], before[since:])
        checked += int(np.any(before < 1.0))
    assert checked, "some series must be discounted for the comparison to mean anything"


def test_a_cycle_whose_query_failed_keeps_the_previous_days() -> None:
    """Prometheus answers one cycle's query with an error (the signal is missing, not gone): the
    daily maxima held stay, so the next lunchtime peak is still known to stop short of the wall."""
    from dataclasses import replace

    from aiops.model import Frame, Series, from_epoch

    rng = np.random.default_rng(3)
    t, y = _lunchtime_peak(50, rng)
    steady, gapped = ExhaustionForecast(report_floor=0.0), ExhaustionForecast(report_floor=0.0)
    lookback = int(6 * HOUR / MINUTE)
    failed_at = 30 * 60  # the next day's morning, before its peak
    scores: dict[str, list[float]] = {"steady": [], "gapped": []}
    for i in range(60, t.shape[0], 30):
        lo = max(0, i + 1 - lookback)
        frame = Frame(from_epoch(t[i]), (Series("pod_memory_usage_ratio", {"pod": "web-0"}, t[lo : i + 1], y[lo : i + 1], POD),), SIGNALS, MINUTE)
        for name, det in (("steady", steady), ("gapped", gapped)):
            if name == "gapped" and i == failed_at:
                assert det.detect(replace(frame, series=(), missing_signals=("pod_memory_usage_ratio",))) == []
                continue
            [f] = det.detect(frame)
            if i > failed_at:
                scores[name].append(f.score)
    assert max(scores["steady"]) < 0.5  # the peak is known from the previous day
    assert scores["gapped"] == pytest.approx(scores["steady"], abs=1e-9)


def test_a_restart_resumes_the_daily_maxima_from_the_state_file(tmp_path) -> None:  # noqa: ANN001
    """The frame holds 6 h, so after a restart only the saved bins know that yesterday's lunchtime
    peak stopped short of the wall: restored, the restarted daemon scores as the one that never
    stopped; without them, the peak pages as a leak."""
    from aiops.model import Frame, Series, from_epoch
    from aiops.plugins import KeepsState
    from aiops.state.detector_state import DetectorStateBook
    from aiops.state import Store

    rng = np.random.default_rng(3)
    t, y = _lunchtime_peak(50, rng)
    lookback = int(6 * HOUR / MINUTE)
    stop = 30 * 60  # the next day's morning, before its peak; down for 10 minutes

    def cycle(det: ExhaustionForecast, i: int) -> float:
        lo = max(0, i + 1 - lookback)
        s = Series("pod_memory_usage_ratio", {"pod": "web-0"}, t[lo : i + 1], y[lo : i + 1], POD)
        [f] = det.detect(Frame(from_epoch(t[i]), (s,), SIGNALS, MINUTE))
        return f.score

    running = ExhaustionForecast(report_floor=0.0)
    assert isinstance(running, KeepsState)
    book = DetectorStateBook(Store(tmp_path / "state.db"))
    for i in range(60, stop, 30):
        cycle(running, i)
        bodies = running.saved_state()
        book.save("exhaustion", bodies, float(t[i]))
        running.state_saved(bodies)
    assert running.saved_state() == {}  # all stored: nothing pending

    restarted, fresh = ExhaustionForecast(report_floor=0.0), ExhaustionForecast(report_floor=0.0)
    assert restarted.restore_state(DetectorStateBook(Store(tmp_path / "state.db")).load("exhaustion")) == []
    after = range(stop + 10, t.shape[0], 30)
    expected = [cycle(running, i) for i in after]
    assert max(expected) < 0.5  # the peak is known from the previous day
    assert [cycle(restarted, i) for i in after] == pytest.approx(expected, abs=1e-9)
    assert max(cycle(fresh, i) for i in after) >= 0.7  # warns: policy's warning level


def test_a_new_daemon_learns_the_previous_days_from_the_history_prometheus_holds() -> None:
    """A new installation (or a new pod: the state file is on an emptyDir) knew nothing of
    yesterday's lunchtime peak, and paged it as a leak for its first day, although Prometheus held
    every day of it. Given the days before its first frame, at the 5-minute steps it asks for, it
    knows the peak stops short of the wall, as a daemon that ran all along does."""
    from aiops.model import Frame, Series, from_epoch
    from aiops.plugins import HistoryWanted, LearnsFromHistory

    rng = np.random.default_rng(3)
    t, y = _lunchtime_peak(50, rng)
    lookback = int(6 * HOUR / MINUTE)
    start = 30 * 60  # installed the next day's morning, before its peak

    def cycle(det: ExhaustionForecast, i: int) -> float:
        lo = max(0, i + 1 - lookback)
        s = Series("pod_memory_usage_ratio", {"pod": "web-0"}, t[lo : i + 1], y[lo : i + 1], POD)
        [f] = det.detect(Frame(from_epoch(t[i]), (s,), SIGNALS, MINUTE))
        return f.score

    learnt, fresh = ExhaustionForecast(report_floor=0.0), ExhaustionForecast(report_floor=0.0)
    assert isinstance(learnt, LearnsFromHistory)
    wanted = learnt.history_wanted(SIGNALS)
    assert wanted == HistoryWanted(frozenset({"pod_memory_usage_ratio"}), 3 * DAY, 300.0)
    first_frame = start + 1 - lookback
    back = int(wanted.seconds / MINUTE)
    every = int(wanted.step_seconds / MINUTE)
    history = slice(max(0, first_frame - back), first_frame, every)  # what a range query at 5 min gives
    learnt.learn_history([Series("pod_memory_usage_ratio", {"pod": "web-0"}, t[history], y[history], POD)])
    after = range(start, t.shape[0], 5)  # a cycle every 5 minutes: the forecast of a climb is brief
    assert max(cycle(learnt, i) for i in after) < 0.5  # the peak is known from the previous day
    assert max(cycle(fresh, i) for i in after) >= 0.9  # without it: paged as a leak
    # Nothing to learn for a detector that keeps no days, nor for a signal it does not forecast.
    assert ExhaustionForecast(daily_memory_days=0).history_wanted(SIGNALS) is None


def test_only_series_the_screen_let_through_are_saved() -> None:
    """The days are read only for screened series: a cluster's flat series cost nothing in the
    state file, a daily peak near the wall is saved."""
    from aiops.model import Frame, Series, from_epoch

    rng = np.random.default_rng(4)
    t, peak = _lunchtime_peak(30, rng)
    det = ExhaustionForecast()
    lookback = int(6 * HOUR / MINUTE)
    saved: set[str] = set()
    for i in range(60, t.shape[0], 30):
        lo = max(0, i + 1 - lookback)
        series = [Series("pod_memory_usage_ratio", {"pod": "web-0"}, t[lo : i + 1], peak[lo : i + 1], POD)]
        series += [
            Series("pod_memory_usage_ratio", {"pod": f"flat-{k}"}, t[lo : i + 1], 0.3 + rng.normal(0, 0.01, i + 1 - lo),
                   Entity("pod", f"flat-{k}", "shop"))
            for k in range(20)
        ]
        det.detect(Frame(from_epoch(t[i]), tuple(series), SIGNALS, MINUTE))
        bodies = det.saved_state()
        det.state_saved(bodies)
        saved |= set(bodies)
    assert saved == {'pod_memory_usage_ratio{pod="web-0"}'}


@pytest.mark.parametrize(("key", "workload"), [
    (("pod_memory_usage_ratio", (("container", "web"), ("namespace", "shop"), ("pod", "web-*"))), True),
    (("pod_memory_usage_ratio", (("container", "web"), ("namespace", "shop"), ("pod", "web-6f7d8b9c4d-x2x9k"))), False),
    (("inference_kv_cache_usage", (("exported_pod", "web-*"), ("namespace", "shop"), ("pod", "vllm-0"))), False),
    (("node_filesystem_usage_ratio", (("instance", "n1"), ("mountpoint", "/"))), False),
])
def test_saved_bodies_of_workloads_are_told_from_series(key: tuple[str, tuple[tuple[str, str], ...]], workload: bool) -> None:
    from detectors.exhaustion import _is_workload

    assert _is_workload(key) is workload


def test_one_absurd_newest_sample_is_not_a_series_at_its_failure_point() -> None:
    """A healthy pod at 0.45 whose newest sample is 1e300 (a broken exporter or relabelling): the
    fit already ignored such values, but the at-the-wall shortcut compared the raw newest value with
    the wall and scored 1.0 "at its failure point" (critical: the pod-memory rule restarts it). A
    value past any measurement of the signal is not at its wall; one just past it (1.002, cgroup
    accounting) still is."""
    t = grid(3)
    y = np.full(t.size, 0.45)
    y[-1] = 1e300
    findings = ExhaustionForecast(report_floor=0.0).detect(frame({"pod_memory_usage_ratio": [(POD, t, y)]}))
    assert all(f.score < 0.5 for f in findings), [(f.score, f.evidence.summary) for f in findings]
    y[-1] = 1.002
    [at_wall] = ExhaustionForecast(report_floor=0.0).detect(frame({"pod_memory_usage_ratio": [(POD, t, y)]}))
    assert at_wall.score == 1.0 and "at its failure point" in at_wall.evidence.summary
