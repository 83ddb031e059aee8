"""EntityAnomaly on synthetic cases with known answers: backtest (score_matrix) and live (detect)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from aiops import plugins
from aiops.model import Entity, Frame, Series, SignalInfo
from detectors.multivariate import Calibration, EntityAnomaly, ReferenceModel


def _correlated(n: int, rng: np.random.Generator) -> np.ndarray:
    """Three features that move together (load drives CPU, power and temperature) plus noise."""
    load = rng.random(n)
    return np.column_stack([load, 0.8 * load + 0.05 * rng.standard_normal(n), 0.5 + 0.3 * load + 0.03 * rng.standard_normal(n)])


def test_flags_a_broken_correlation_and_not_normal_rows() -> None:
    rng = np.random.default_rng(1)
    train, test = _correlated(2000, rng), _correlated(500, rng)
    # Each value is within its usual range, but high load with low power is unlike any history.
    test[300:310] = [0.95, 0.05, 0.8]
    scores = EntityAnomaly().score_matrix(np.arange(500) * 60.0, test, train=train)
    assert scores.shape == (500,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[303:310].min() > 0.5
    assert np.quantile(scores[:290], 0.95) < 0.5


def test_no_look_ahead_changing_future_rows_never_changes_past_scores() -> None:
    rng = np.random.default_rng(2)
    train, test = _correlated(600, rng), _correlated(400, rng)
    altered = test.copy()
    altered[250:] = rng.random((150, 3)) * 10
    for detector in (EntityAnomaly(), EntityAnomaly(refresh_minutes=100 / 60, window=500)):
        a = detector.score_matrix(np.arange(400.0), test, train=train)
        b = detector.score_matrix(np.arange(400.0), altered, train=train)
        np.testing.assert_array_equal(a[:250], b[:250])
        assert not np.array_equal(a[250:], b[250:])
    # Without history the model is refitted as rows accumulate: still only on rows already seen.
    a = EntityAnomaly().score_matrix(np.arange(400.0), test)
    b = EntityAnomaly().score_matrix(np.arange(400.0), altered)
    np.testing.assert_array_equal(a[:250], b[:250])


def test_without_history_it_warms_up_silently_then_scores() -> None:
    rng = np.random.default_rng(3)
    x = _correlated(1000, rng)
    x[900] = [0.9, 0.0, 0.2]
    scores = EntityAnomaly().score_matrix(np.arange(1000.0), x)
    assert np.all(scores[:50] == 0.0)  # fewer than min_reference rows of history: no opinion
    assert scores[900] > 0.5


def test_nan_and_gaps_give_finite_scores_and_empty_rows_no_opinion() -> None:
    rng = np.random.default_rng(4)
    train, test = _correlated(500, rng), _correlated(200, rng)
    train[::7, 1] = np.nan
    test[10, 0] = np.nan
    test[20] = np.nan
    test[30, 2] = np.inf
    scores = EntityAnomaly().score_matrix(np.arange(200.0), test, train=train)
    assert np.all(np.isfinite(scores))
    assert scores[20] == 0.0


def test_bad_shapes_and_parameters_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="feature columns"):
        EntityAnomaly().score_matrix(np.arange(10.0), np.zeros((10, 3)), train=np.zeros((100, 2)))
    with pytest.raises(ValueError, match="alarm_rate"):
        EntityAnomaly(alarm_rate=0.0)
    with pytest.raises(ValueError, match="variance"):
        EntityAnomaly(variance=1.0)
    with pytest.raises(ValueError, match="smooth_minutes"):
        EntityAnomaly(smooth_minutes=-5)
    with pytest.raises(ValueError, match="neighbours"):
        EntityAnomaly(neighbours=-1)
    with pytest.raises(ValueError, match="decades"):
        EntityAnomaly(decades=6)


def _gpu(name: str) -> Entity:
    return Entity("gpu", name, attributes=(("Hostname", f"node-{name}"), ("gpu", "0")))


def _frame(hot_gpu: str | None) -> Frame:
    rng = np.random.default_rng(5)
    t = np.arange(360) * 60.0
    series = []
    for name in ("a", "b", "c", "d"):
        util = np.clip(50 + 30 * np.sin(t / 3600) + 3 * rng.standard_normal(t.size), 0, 100)
        temp = 40 + 0.3 * util + rng.standard_normal(t.size)
        power = 80 + 2.5 * util + 5 * rng.standard_normal(t.size)
        if name == hot_gpu:
            temp[-12:] = 92.0  # hot while lightly loaded: a cooling problem
        for signal, values in (("gpu_utilization", util), ("gpu_temperature", temp), ("gpu_power", power)):
            series.append(Series(signal, {"UUID": name}, t, values, _gpu(name)))
    infos = {s: SignalInfo(s, "gpu") for s in ("gpu_utilization", "gpu_temperature", "gpu_power")}
    return Frame(datetime.fromtimestamp(t[-1], UTC), tuple(series), infos, 60.0)


def test_detect_names_the_entity_and_its_top_feature() -> None:
    detector = plugins.instantiate(plugins.DETECTORS, "multivariate")
    findings = detector.detect(_frame("c"))
    assert [f.entity.name for f in findings] == ["c"]
    finding = findings[0]
    assert finding.score > 0.5
    assert finding.entity.attr("Hostname") == "node-c"
    assert finding.evidence.facts["top_features"][0]["feature"] == "gpu_temperature"
    assert "gpu_temperature" in finding.evidence.summary


def test_detect_is_quiet_on_a_healthy_fleet_and_without_history() -> None:
    detector = EntityAnomaly()
    assert detector.detect(_frame(None)) == []
    short = _frame("c")
    tiny = Frame(short.now, tuple(Series(s.signal, s.labels, s.timestamps[-5:], s.values[-5:], s.entity) for s in short.series), short.signals, 60.0)
    assert EntityAnomaly().detect(tiny) == []  # a fresh daemon: no reference yet


def test_one_threshold_fits_machines_with_very_different_noise() -> None:
    # Calibration on each machine's own out-of-sample history: the same score means the same
    # rarity, so a quiet and a noisy machine raise about as few false alarms at one threshold.
    rng = np.random.default_rng(6)
    for noise in (0.01, 0.2):
        load = rng.random(6000)
        x = np.column_stack([load, load + noise * rng.standard_normal(6000), 1 - load + noise * rng.standard_normal(6000)])
        train, test = x[:4000], x[4000:].copy()
        test[1500:1560, 1] += 6 * noise  # one feature drifts off the relation for an hour
        detector = EntityAnomaly()
        scores = detector.score_matrix(np.arange(2000) * 60.0, test, train=train)
        # Few normal rows reach 0.9: about alarm_rate of them, in runs (the scores are 30-minute
        # means, so one excursion is tens of rows); far fewer than the 3 % of rows in the incident.
        assert np.mean(scores[:1400] >= 0.9) < 10 * detector.alarm_rate
        assert scores[1510:1560].min() >= 0.9


def test_smoothing_catches_a_sustained_mild_deviation_that_single_rows_miss() -> None:
    rng = np.random.default_rng(7)
    x = _correlated(12000, rng)
    train, test = x[:10000], x[10000:].copy()
    test[1000:1200, 1] += 0.1  # barely above the noise each minute, but for 200 minutes
    t = np.arange(2000) * 60.0
    single = EntityAnomaly(smooth_minutes=0).score_matrix(t, test, train=train)
    smoothed = EntityAnomaly().score_matrix(t, test, train=train)
    assert np.mean(single[1000:1200] >= 0.9) < 0.2
    assert np.mean(smoothed[1030:1200] >= 0.9) > 0.9
    assert np.mean(smoothed[:900] >= 0.9) < 0.03


def test_smoothing_is_in_time_not_rows() -> None:
    rng = np.random.default_rng(8)
    train, test = _correlated(3000, rng), _correlated(600, rng)
    test[300:330, 1] += 0.15
    # (refreshed once at most: a day is 1,440 of the one and 288 of the other)
    per_minute = EntityAnomaly(smooth_minutes=30, refresh_minutes=1e6).score_matrix(np.arange(600) * 60.0, test, train=train)
    per_5_minutes = EntityAnomaly(smooth_minutes=150, refresh_minutes=1e6).score_matrix(np.arange(600) * 300.0, test, train=train)
    # 30 minutes of 1-minute rows and 150 minutes of 5-minute rows are both 30 rows.
    np.testing.assert_allclose(per_minute, per_5_minutes)


def test_alarm_ends_with_the_incident_plus_at_most_the_smoothing_window() -> None:
    rng = np.random.default_rng(10)
    x = _correlated(12000, rng)
    train, test = x[:10000], x[10000:].copy()
    test[1000:1020] = [0.95, -1.0, 0.8]  # a gross break for 20 minutes, then healthy
    scores = EntityAnomaly().score_matrix(np.arange(2000) * 60.0, test, train=train)
    assert scores[1000:1020].min() >= 0.9
    assert np.mean(scores[1060:1200] >= 0.9) < 0.01  # 30 minutes after the end the mean has let go


def test_the_calibrated_alarm_rate_holds_on_data_like_the_history() -> None:
    rng = np.random.default_rng(11)
    x = _correlated(40000, rng)
    train, test = x[:20000], x[20000:]
    for rate in (0.001, 0.01):
        scores = EntityAnomaly(alarm_rate=rate, smooth_minutes=0).score_matrix(np.arange(20000) * 60.0, test, train=train)
        assert rate / 3 < np.mean(scores >= 0.9) < rate * 3


def test_calibration_rows_are_smoothed_with_out_of_sample_rows_only() -> None:
    # Each calibration row's smoothing window reached back into the rows the model was fitted on
    # (a neighbour finds such a row itself), so the reference looked calmer than any live row:
    # on short histories (a large pool shares its row budget out) flat noise was flagged at
    # 1 in 260 about four times as often as that.
    rng = np.random.default_rng(3)
    window, nominal = 30, 1 / 260
    model = ReferenceModel.fit([0.3 + 0.01 * rng.standard_normal((120, 1)) for _ in range(32)], window)
    live = np.array([model.statistic(0.3 + 0.01 * rng.standard_normal((window, 1)))[-1] for _ in range(4000)])
    assert np.mean(model.exceedance(live) <= nominal) < 2 * nominal


def test_rows_far_beyond_the_history_keep_their_order_instead_of_tying_at_one() -> None:
    rng = np.random.default_rng(12)
    train = _correlated(3000, rng)
    test = np.array([[0.5, 0.4 + d, 0.65] for d in (0.5, 2.0, 8.0, 32.0, 128.0)])
    scores = EntityAnomaly(smooth_minutes=0).score_matrix(np.arange(5) * 60.0, test, train=train)
    assert scores[0] > 0.9
    assert np.all(np.diff(scores) > 0) and scores[-1] < 1.0


def test_the_neighbour_distance_sees_levels_never_seen_together() -> None:
    # Two operating points (idle, busy) on one linear relation: halfway between them lies on the
    # relation, so the subspace sees nothing, but no history row was ever there.
    rng = np.random.default_rng(13)
    busy = rng.random(11000) < 0.5
    a = np.where(busy, 1.0, 0.0) + 0.02 * rng.standard_normal(11000)
    x = np.column_stack([a, a + 0.02 * rng.standard_normal(11000), 0.3 * a + 0.02 * rng.standard_normal(11000)])
    train, test = x[:10000], x[10000:].copy()  # 3,000 reference rows: enough to resolve 1 in 1,000
    test[500] = [0.5, 0.5, 0.15]
    t = np.arange(1000) * 60.0
    with_neighbours = EntityAnomaly(smooth_minutes=0).score_matrix(t, test, train=train)
    residual_only = EntityAnomaly(smooth_minutes=0, neighbours=0).score_matrix(t, test, train=train)
    assert int(np.argmax(with_neighbours)) == 500 and with_neighbours[500] > 0.7
    assert residual_only[500] < 0.5


def test_calibration_ranks_beyond_the_reference_and_ignores_nan() -> None:
    rng = np.random.default_rng(9)
    calibration = Calibration.fit(np.log(rng.exponential(1.0, 5000)))
    p = np.exp(calibration.log_exceedance(np.log(np.array([1e-6, 1.0, 5.0, 12.0, 30.0, np.nan]))))
    assert p[0] == pytest.approx(1.0, abs=1e-3)
    assert p[1] == pytest.approx(np.exp(-1.0), abs=0.02)
    assert np.all(np.diff(p[:5]) < 0)  # still ranking far beyond the largest reference score
    assert p[3] < 1 / 5000
    assert p[5] == 1.0
    # A reference of identical values: the same value is common, anything above is beyond all of it.
    flat = Calibration.fit(np.zeros(100))
    assert flat.log_exceedance(np.array([0.0]))[0] == 0.0
    assert flat.log_exceedance(np.array([1e-3]))[0] < np.log(1 / 100)


def test_the_daemon_scores_an_entity_as_the_backtest_scores_its_newest_row() -> None:
    # One entity: live, the model is fitted on its history before the smoothing window and the
    # newest row is scored; the backtest given the same split must say exactly the same.
    frame = _frame("c")
    only_c = Frame(frame.now, tuple(s for s in frame.series if s.entity.name == "c"), frame.signals, 60.0)
    [finding] = EntityAnomaly().detect(only_c)
    columns = {s.signal: s.values for s in only_c.series}
    features = finding.evidence.facts["features"]
    rows = np.column_stack([columns[f] for f in features])
    window = 30  # smooth_minutes at a 60 s step
    t = only_c.series[0].timestamps
    backtest = EntityAnomaly().score_matrix(t[-window:], rows[-window:], train=rows[:-window])
    assert finding.score == pytest.approx(backtest[-1], rel=1e-9)


def test_absurd_exporter_values_give_no_finding_and_no_numpy_warnings() -> None:
    # A GPU exporting 1e200 degrees: overflow to inf, which scores nothing, silently (a daemon's
    # log is not flooded with numpy warnings, as for the other detectors).
    import warnings
    from dataclasses import replace

    frame = _frame(None)
    series = tuple(
        replace(s, values=np.where(np.arange(s.values.size) >= s.values.size - 12, 1e200, s.values))
        if s.signal == "gpu_temperature" and s.labels["UUID"] == "c" else s
        for s in frame.series
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        findings = plugins.instantiate(plugins.DETECTORS, "multivariate").detect(replace(frame, series=series))
    assert findings == []
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_a_pool_whose_scoring_raised_names_its_entities_as_unjudged(monkeypatch) -> None:
    """A pool is scored as a whole, so one that raises is skipped whole: each of its entities has
    no finding for want of a score, which the act stage must not take for health."""
    detector = plugins.instantiate(plugins.DETECTORS, "multivariate")

    def broken(*args: object) -> list[object]:
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr(EntityAnomaly, "_score_pool", broken)
    detection = plugins.run_detector(detector, _frame("c"))
    assert detection.findings == []
    assert sorted(detection.skipped) == [_gpu(n).key for n in "abcd"]
