"""The multivariate detector's reference outlives the frame's lookback (issue 14).

Live, the daemon used to refit every cycle on the frame's lookback (6 h): an incident longer than
a few hours became part of its own reference and stopped scoring. The reference is now kept per
pool across cycles, refreshed slowly from rows that were not flagged, and saved in the state file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiops.model import Entity, Frame, Series, SignalInfo
from aiops.state import Store
from aiops.state.detector_state import DetectorStateBook
from detectors import _mv_reference
from detectors._mv_reference import SavedReference
from detectors.multivariate import EntityAnomaly

STEP = 60.0
LOOKBACK = 360  # rows: the daemon's default 6 h lookback at a 1-minute step
SIGNALS = ("gpu_utilization", "gpu_temperature", "gpu_power")


def _gpu(name: str) -> Entity:
    return Entity("gpu", name, attributes=(("Hostname", f"node-{name}"), ("gpu", "0")))


def _history(hours: float, incident: tuple[float, float] | None, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, rows): a GPU whose temperature and power follow its load; during ``incident``
    (hours from the start) it runs hot whatever the load, a cooling failure."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(hours * 60)) * STEP
    util = np.clip(50 + 30 * np.sin(2 * np.pi * t / 3600) + 3 * rng.standard_normal(t.size), 0, 100)  # hourly load
    temp = 40 + 0.3 * util + rng.standard_normal(t.size)
    power = 80 + 2.5 * util + 5 * rng.standard_normal(t.size)
    if incident is not None:
        hot = (t >= incident[0] * 3600) & (t < incident[1] * 3600)
        temp[hot] = 88 + rng.standard_normal(int(hot.sum()))
    return t, np.column_stack([util, temp, power])


def _frame(t: np.ndarray, rows: np.ndarray, end: int) -> Frame:
    """The frame the collector hands the detector at row ``end``: the last LOOKBACK rows."""
    lo = max(0, end - LOOKBACK)
    series = tuple(Series(s, {"UUID": "a"}, t[lo:end], rows[lo:end, j], _gpu("a")) for j, s in enumerate(SIGNALS))
    infos = {s: SignalInfo(s, "gpu") for s in SIGNALS}
    return Frame(datetime.fromtimestamp(t[end - 1], UTC), series, infos, STEP)


def _live_scores(detector: EntityAnomaly, t: np.ndarray, rows: np.ndarray, cycles: range) -> dict[int, float]:
    """The newest row's score at each cycle (0 when nothing is reported)."""
    out = {}
    for end in cycles:
        findings = detector.detect(_frame(t, rows, end))
        out[end] = max((f.score for f in findings), default=0.0)
    return out


def test_an_incident_inside_the_lookback_does_not_become_the_reference() -> None:
    # 6 h healthy, then the GPU runs hot for 5 h. Cycles every 10 minutes from the second hour on.
    t, rows = _history(11.0, incident=(6.0, 11.0))
    detector = EntityAnomaly()
    scores = _live_scores(detector, t, rows, range(120, rows.shape[0] + 1, 10))
    # From half an hour into the incident (the smoothing window) to its end, it is critical:
    # a reference refitted on the 6 h lookback absorbed it within about three hours.
    during = {end: s for end, s in scores.items() if end >= 6.5 * 60}
    assert min(during.values()) >= 0.9, {end // 60: round(s, 3) for end, s in during.items()}
    # and the healthy hours before it stayed below a warning (0.7), its first reference only 90 rows
    assert max(s for end, s in scores.items() if end <= 6 * 60) < 0.7


def test_the_daemon_scores_every_cycle_as_the_backtest_scores_the_same_rows() -> None:
    # The same rows, the same reference schedule (a refresh every 2 h here, so several happen, and
    # the incident must not enter any of them): each cycle's newest row scores as in the backtest.
    t, rows = _history(11.0, incident=(6.0, 8.0))
    first = 120
    cycles = range(first, rows.shape[0] + 1, 7)
    live = _live_scores(EntityAnomaly(refresh_minutes=120), t, rows, cycles)
    window = 30  # the smoothing window: the first frame's newest 30 rows are scored, the rest is history
    backtest = EntityAnomaly(refresh_minutes=120).score_matrix(t[first - window :], rows[first - window :], train=rows[: first - window])
    by_row = {end: float(backtest[end - 1 - (first - window)]) for end in cycles}
    reported = {end: (s if s >= 0.5 else 0.0) for end, s in by_row.items()}
    assert set(live) == set(reported)
    for end in cycles:
        assert live[end] == pytest.approx(reported[end], rel=1e-9, abs=1e-12), end
    assert max(live.values()) > 0.9 and min(live.values()) == 0.0  # both findings and quiet cycles


def _chunks(t: np.ndarray, rows: np.ndarray, lo: int, hi: int, size: int = 240) -> list[list[Series]]:
    """Rows [lo, hi) as Prometheus hands history over: a signal's time chunk at a time."""
    return [[Series(s, {"UUID": "a"}, t[a:min(a + size, hi)], rows[a:min(a + size, hi), j], _gpu("a"))]
            for j, s in enumerate(SIGNALS) for a in range(lo, hi, size)]


def test_a_new_daemon_learns_the_day_before_its_first_frame_and_scores_as_the_backtest() -> None:
    # A new installation: Prometheus holds a day before the first frame. Learnt at start
    # (LearnsFromHistory), that day is the reference's history as the backtest's train split is:
    # every cycle scores as the backtest does with the day and the frame's older rows as history.
    t, rows = _history(36.0, incident=(31.0, 33.0))
    first = 30 * 60  # the daemon starts 30 h in; its first frame holds the 6 h before
    detector = EntityAnomaly(refresh_minutes=240)
    infos = {s: SignalInfo(s, "gpu") for s in SIGNALS}
    wanted = detector.history_wanted(infos)
    assert wanted is not None and wanted.signals == frozenset(SIGNALS) and wanted.step_seconds is None
    assert wanted.seconds == 240 * 60  # a refresh period: what a daemon that ran all along would refit on
    day = round(wanted.seconds / STEP)
    for chunk in _chunks(t, rows, first - LOOKBACK - day, first - LOOKBACK):
        detector.learn_history(chunk)
    cycles = range(first, rows.shape[0] + 1, 7)
    live = _live_scores(detector, t, rows, cycles)
    window = 30
    lo = first - LOOKBACK - day
    backtest = EntityAnomaly(refresh_minutes=240).score_matrix(
        t[first - window:], rows[first - window:], train=rows[lo:first - window])
    reported = {end: (s if s >= 0.5 else 0.0) for end in cycles
                if (s := float(backtest[end - 1 - (first - window)])) is not None}
    for end in cycles:
        assert live[end] == pytest.approx(reported[end], rel=1e-9, abs=1e-12), end
    assert max(live.values()) > 0.9  # the incident
    # Without the day, the first reference is the frame's 6 h only: the scores differ.
    young = _live_scores(EntityAnomaly(refresh_minutes=240), t, rows, cycles)
    assert young != live


def test_history_is_not_kept_where_the_lookback_already_fills_a_pools_window() -> None:
    # Each entity's share of a pool's window is its newest rows: in a pool of many entities the
    # lookback alone holds the share, and days of history would only cost memory.
    detector = EntityAnomaly(window=3_600)  # 10 entities x 360 lookback rows fill it
    t, rows = _history(12.0, incident=None)
    for gpu in range(10):
        detector.learn_history([Series(s, {"UUID": str(gpu)}, t, rows[:, j], _gpu(str(gpu))) for j, s in enumerate(SIGNALS)])
    assert detector.history_rows() <= 10 * len(SIGNALS) * (LOOKBACK + 30)
    small = EntityAnomaly(window=43_200)
    small.learn_history([Series(s, {"UUID": "a"}, t, rows[:, j], _gpu("a")) for j, s in enumerate(SIGNALS)])
    assert small.history_rows() == len(SIGNALS) * t.size


def test_the_reference_survives_a_restart(tmp_path: Path) -> None:
    # A daemon runs 8 h (incident from 6 h), saves its references in the state file and stops; a
    # new one restored from that file scores the next hours exactly as the first would have.
    t, rows = _history(11.0, incident=(6.0, 11.0))
    before, after = range(120, 481, 10), range(490, rows.shape[0] + 1, 10)
    running = EntityAnomaly()
    _live_scores(running, t, rows, before)
    book = DetectorStateBook(Store(tmp_path / "state.db"))
    bodies = running.saved_state()
    assert running.saved_state().keys() == bodies.keys()  # pending until the pipeline says it stored them
    book.save("multivariate", bodies, at=t[479])
    running.state_saved(bodies)
    assert running.saved_state() == {}

    restarted = EntityAnomaly()
    assert restarted.restore_state(DetectorStateBook(Store(tmp_path / "state.db")).load("multivariate")) == []
    expected = _live_scores(running, t, rows, after)
    assert _live_scores(restarted, t, rows, after) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert min(expected.values()) >= 0.9  # still the incident: the restart did not make it normal
    # A fresh daemon without the file refits on its lookback, which by now is mostly incident.
    blind = _live_scores(EntityAnomaly(), t, rows, after)
    assert min(blind.values()) < 0.5


def test_a_saved_reference_that_cannot_be_read_is_named_and_learnt_again() -> None:
    [problem] = EntityAnomaly().restore_state({"gpu|x": b"not a reference"})
    assert problem.startswith("gpu|x: not a saved multivariate reference")


def _pool_frame(t: np.ndarray, rows: dict[str, np.ndarray], end: int) -> Frame:
    """A frame of several GPUs (one pool): each name's rows over the last LOOKBACK rows to ``end``."""
    lo = max(0, end - LOOKBACK)
    series = tuple(Series(s, {"UUID": name}, t[lo:end], x[lo:end, j], _gpu(name))
                   for name, x in rows.items() for j, s in enumerate(SIGNALS))
    return Frame(datetime.fromtimestamp(t[end - 1], UTC), series, {s: SignalInfo(s, "gpu") for s in SIGNALS}, STEP)


def _newest_reference(detector: EntityAnomaly) -> SavedReference:
    [body] = detector.saved_state().values()  # the newest fit, pending until the pipeline stores it
    return SavedReference.from_bytes(body)


def test_a_pool_larger_than_its_window_allows_is_still_refitted_on_schedule() -> None:
    # 30 GPUs in one pool whose reference holds 600 rows: 20 rows each, fewer than the 30-row
    # smoothing window a run needs to count. The daily (here hourly) refit must not fail for that
    # and leave the first hour's model in place for good: it fits on as many GPUs as the window
    # holds a smoothing window of each.
    t, _ = _history(5.0, None)
    rows = {f"g{i:02d}": _history(5.0, None, seed=i)[1] for i in range(30)}
    detector = EntityAnomaly(window=600, refresh_minutes=60)
    for end in range(120, t.shape[0] + 1, 10):
        detector.detect(_pool_frame(t, rows, end))
    ref = _newest_reference(detector)
    assert t[-1] - ref.fitted_at < 3600 + 600, "the reference was not refitted after the first hour"
    # Each GPU gives the fit a run, however many of its rows a 600-row model flags (at 0.5, many).
    schedule = detector.schedule(STEP)
    used = {e: sum(len(s) for s in _mv_reference._segments(_mv_reference.normal_rows({e: r}, ref.fitted_at, schedule), STEP, schedule))
            for e, r in ref.rows.items()}
    assert used == {f"gpu/g{i:02d}": 30 for i in range(600 // 30)}, used


def test_replaced_entities_leave_the_pool_a_refresh_period_after_they_went() -> None:
    # Pods of a rolling deployment (GPUs here) come and go under new names: the pool's reference,
    # its newest rows per entity and what it saves must not hold every name it ever saw.
    t, _ = _history(8.0, None)
    detector = EntityAnomaly(refresh_minutes=60)
    generation = {f"g{i}": _history(8.0, None, seed=i)[1] for i in range(4)}
    names = list(generation)
    for k, end in enumerate(range(120, t.shape[0] + 1, 10)):
        if k % 3 == 2:  # every half hour one GPU is replaced by a new one
            gone = names.pop(0)
            new = f"g{int(names[-1][1:]) + 1}"
            generation[new] = _history(8.0, None, seed=int(new[1:]))[1]
            del generation[gone]
            names.append(new)
        detector.detect(_pool_frame(t, {n: generation[n] for n in names}, end))
    ref = _newest_reference(detector)
    # Gone for more than an hour (the refresh period) at the last fit: no longer part of the pool.
    assert all(ref.fitted_at - r.t[-1] <= 3600 + STEP for r in ref.rows.values()), sorted(ref.rows)
    assert len(ref.rows) <= 4 + 2  # the live four, and those replaced within the hour
    assert len(detector._newest) == 4  # the newest score is kept for live entities only


def test_a_pool_whose_features_changed_is_dropped_once_gone_for_a_refresh_period() -> None:
    # The power series stops for good (an exporter upgrade renamed it): the GPUs form a new pool of
    # two features, and the three-feature pool's reference goes a refresh period later, unless
    # its query merely failed (then nothing is known to be gone).
    t, x = _history(6.0, None)

    def frame(end: int, signals: tuple[str, ...], missing: tuple[str, ...] = ()) -> Frame:
        lo = max(0, end - LOOKBACK)
        series = tuple(Series(s, {"UUID": "a"}, t[lo:end], x[lo:end, SIGNALS.index(s)], _gpu("a")) for s in signals)
        return Frame(datetime.fromtimestamp(t[end - 1], UTC), series, {s: SignalInfo(s, "gpu") for s in SIGNALS},
                     STEP, missing_signals=missing)

    for missing in ((), ("gpu_power",)):
        detector = EntityAnomaly(refresh_minutes=60)
        for end in range(120, 181, 10):
            detector.detect(frame(end, SIGNALS))
        three = next(iter(detector._pools_state))
        for end in range(190, 320, 10):
            detector.detect(frame(end, SIGNALS[:2], missing))
        assert (three in detector._pools_state) == bool(missing)
        assert len(detector._pools_state) == 2 - (not missing)


def _pool_run(detector: EntityAnomaly, hours: float, gpus: int, churn: bool) -> list[tuple[int, tuple[object, ...], dict[str, tuple[float, float, float]]]]:
    """Cycles every 10 minutes over a pool of ``gpus`` GPUs (one replaced every half hour when
    ``churn``): per cycle, the rows the pool holds, the newest fit (its time and rows) and each
    GPU's newest row scored (time, statistic, score)."""
    t, _ = _history(hours, None)
    names = [f"g{i:02d}" for i in range(gpus)]
    out = []
    for k, end in enumerate(range(120, t.shape[0] + 1, 10)):
        if churn and k % 3 == 2:
            names = names[1:] + [f"g{int(names[-1][1:]) + 1:02d}"]
        detector.detect(_pool_frame(t, {n: _history(hours, None, seed=int(n[1:]))[1] for n in names}, end))
        [state] = detector._pools_state.values()
        assert state.saved is not None
        newest = {k[0]: (v[0], v[1], v[2]) for k, v in detector._newest.items()}
        fitted = {e: np.column_stack([r.t, r.flagged, r.x]).tobytes() for e, r in state.saved.rows.items()}
        out.append((state.kept_rows, (state.saved.fitted_at, fitted), newest))
    return out


@pytest.mark.parametrize("gpus", [30, 8])
def test_a_pool_holds_what_its_next_refit_can_use_not_every_row_since_the_last(gpus: int) -> None:
    # Between two refits a pool kept every row each entity brought: E x 1,440 rows a day, 0.6 GB
    # at 10,000 pods of 4 features, where the next refit uses at most ``window`` of them. Here
    # 600 rows, refitted every 2 h: 30 GPUs (more than the 20 the window holds a run of) or 8.
    # It holds the window, or a run (30 rows) of each GPU where that is more, two runs more of each
    # GPU to reach past its flagged rows (a 600-row model flags many at 0.5), and a cycle's rows.
    window, run, cycle_rows = 600, 30, gpus * 10
    held = [rows for rows, _, _ in _pool_run(EntityAnomaly(window=window, refresh_minutes=120), 6.0, gpus, churn=False)]
    assert max(held) <= max(window, gpus * run) + gpus * 2 * run + cycle_rows, held


@pytest.mark.parametrize(("gpus", "churn"), [(30, False), (30, True), (8, False), (8, True)])
def test_holding_less_between_refits_fits_the_same_references(monkeypatch: pytest.MonkeyPatch, gpus: int, churn: bool) -> None:
    # The rows dropped between refits are those no refit would choose: every fit is on the same
    # rows, and every GPU scores the same, as when the pool held every row since the last refit.
    # Above the 20 GPUs the window holds a run of (30) and below (8), steady or under a rollout;
    # a 600-row model flags many rows at 0.5, so GPUs reach back past flagged rows.
    params = {"window": 600, "refresh_minutes": 60}
    trimmed = _pool_run(EntityAnomaly(**params), 6.0, gpus, churn)
    with monkeypatch.context() as m:
        m.setattr(_mv_reference, "_trim", lambda state, schedule: None)
        untrimmed = _pool_run(EntityAnomaly(**params), 6.0, gpus, churn)
    assert len({at for _, (at, _), _ in trimmed}) >= 4  # several refits, each on the same rows
    assert [(fit, newest) for _, fit, newest in trimmed] == [(fit, newest) for _, fit, newest in untrimmed]
    assert sum(rows for rows, _, _ in trimmed) < sum(rows for rows, _, _ in untrimmed)


def test_a_full_pool_whose_window_its_entities_do_not_divide_refits_on_the_clock_only() -> None:
    # 7 GPUs share a 600-row window: 85 rows each, 595 in all. The pool is as full as it can be,
    # yet it counted as young (fewer than 600 rows fitted) and refitted every time its kept rows
    # doubled, every 85 minutes here, not once a refresh period (in a real pool of 1,000
    # entities: every 43 minutes instead of daily).
    t, _ = _history(9.0, None)
    rows = {f"g{i}": _history(9.0, None, seed=i)[1] for i in range(7)}
    detector = EntityAnomaly(window=600, refresh_minutes=240)
    fits = set()
    for end in range(120, t.shape[0] + 1, 10):
        detector.detect(_pool_frame(t, rows, end))
        fits.add(_newest_reference(detector).fitted_at)
    after_full = sorted(f for f in fits if f - t[0] >= 3 * 3600)
    assert len(after_full) <= 2, [round((f - t[0]) / 60) for f in sorted(fits)]


class _FirstFeature:
    """A stand-in model whose score is a row's first feature (1: flagged), so a test says which
    rows are flagged; the second feature names the entity, to see whom a fit was given."""

    window = 1

    def log_members_of(self, blocks: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [b[:, :1].T for b in blocks]

    def combine(self, log_members: np.ndarray) -> np.ndarray:
        return np.asarray(log_members[0])

    def statistic(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows[:, 0])

    def calibrate(self, statistic: np.ndarray) -> np.ndarray:
        return statistic


def test_one_flagged_row_drops_that_row_from_a_large_pools_refit_not_the_entity() -> None:
    # 30 entities share a 600-row window: 20 are fitted on, a 30-row run (a smoothing window) each,
    # the least that counts. Entity 5 is flagged for one row every 45 minutes: it has plenty of
    # normal history, but its newest 30 rows held the flagged one at some refits, and the broken
    # run left it out of the reference altogether. It keeps its newest normal run instead.
    schedule = _mv_reference.Schedule(window=600, refresh_seconds=3600, min_reference=50, report_floor=0.5, smooth_rows=30)
    fits: list[list[np.ndarray]] = []

    def fit(segments: Sequence[np.ndarray]) -> _FirstFeature:
        fits.append([np.asarray(s) for s in segments])
        return _FirstFeature()

    state: _mv_reference.PoolState[_FirstFeature] = _mv_reference.PoolState(STEP)
    for k in range(5 * 60):
        blocks = [_mv_reference.Block(f"e{i:02d}", np.array([k * STEP]), np.array([[float(i == 5 and k % 45 == 44), i]]), 0)
                  for i in range(30)]
        state, _ = _mv_reference.advance(state, blocks, kind="gpu", features=("flag", "id"), fit=fit, schedule=schedule)
    later = fits[1:]  # the first fit came as soon as a run of any two was whole
    assert len(later) >= 3
    for segments in later:
        rows = np.concatenate(segments)
        assert not rows[:, 0].any(), "a flagged row was fitted on"
        held = {int(i): int((rows[:, 1] == i).sum()) for i in np.unique(rows[:, 1])}
        assert held == {i: 30 for i in range(20)}, held



def test_a_refit_that_finds_too_little_normal_history_is_retried_once_a_run_could_have_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    # 30 entities, refitted every 2 h, all flagged from the first hour on (a fleet-wide incident):
    # from the first clock refit on, no entity has a normal run within its reach (rows flagged in
    # the last 2 h are not normal). The refit was retried on every row of every entity, 30 a
    # minute here (4,500 tries in 3 h); now once per smoothing window (30 minutes), the least
    # time in which new rows can make a run that counts, and it goes on being retried.
    schedule = _mv_reference.Schedule(window=600, refresh_seconds=7200, min_reference=50, report_floor=0.5, smooth_rows=30)
    tries: list[float] = []
    refit = _mv_reference._refit

    def counted(state: _mv_reference.PoolState[_FirstFeature], now: float, *args: Any) -> _mv_reference.PoolState[_FirstFeature]:
        tries.append(now)
        return refit(state, now, *args)

    monkeypatch.setattr(_mv_reference, "_refit", counted)
    state: _mv_reference.PoolState[_FirstFeature] = _mv_reference.PoolState(STEP)
    end = 5 * 3600
    for k in range(round(end / STEP)):
        blocks = [_mv_reference.Block(f"e{i:02d}", np.array([k * STEP]), np.array([[float(k >= 60), i]]), 0) for i in range(30)]
        state, _ = _mv_reference.advance(state, blocks, kind="gpu", features=("flag", "id"), fit=lambda s: _FirstFeature(), schedule=schedule)
    assert state.saved is not None and state.saved.fitted_at < 3600  # fitted once, before the incident
    failed = [at for at in tries if at >= state.saved.fitted_at + 7200]
    assert len(failed) >= 2 and failed[-1] >= end - 1800 - STEP, failed
    assert min(np.diff(failed)) >= 1800, len(failed)


def test_the_backoff_is_the_same_whether_rows_come_a_cycle_at_a_time_or_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # One entity whose 50-row window cannot reach past a flagged stretch: its refits fail from
    # the third hour on. The daemon (a few rows a cycle) and the backtest (every row at once)
    # try them at the same instants and score every row the same.
    schedule = _mv_reference.Schedule(window=50, refresh_seconds=7200, min_reference=50, report_floor=0.5, smooth_rows=30)
    refit = _mv_reference._refit
    t = np.arange(6 * 60) * STEP
    x = np.column_stack([(t >= 3600).astype(float), np.zeros(t.size)])
    runs = []
    for size in (1, 7, t.size):
        tries: list[float] = []

        def counted(state: _mv_reference.PoolState[_FirstFeature], now: float, *args: Any, tries: list[float] = tries) -> _mv_reference.PoolState[_FirstFeature]:
            tries.append(now)
            return refit(state, now, *args)

        monkeypatch.setattr(_mv_reference, "_refit", counted)
        state: _mv_reference.PoolState[_FirstFeature] = _mv_reference.PoolState(STEP)
        scores = []
        for lo in range(0, t.size, size):
            block = _mv_reference.Block("e", t[lo : lo + size], x[lo : lo + size], 0)
            state, [scored] = _mv_reference.advance(state, [block], kind="gpu", features=("flag", "id"), fit=lambda s: _FirstFeature(), schedule=schedule)
            scores.append(scored.scores)
        runs.append((tries, np.concatenate(scores)))
    [(tries, scores), *others] = runs
    assert len(tries) >= 5 and min(np.diff([at for at in tries if at >= 3 * 3600])) >= 1800, tries
    for other_tries, other_scores in others:
        assert other_tries == tries
        np.testing.assert_array_equal(other_scores, scores)


def test_history_of_an_entity_with_several_series_of_a_signal_is_trimmed_by_time() -> None:
    # A GPU's temperature comes from two series (two exporters' labels): its share of the window
    # is the newest ``share`` steps of both, not the newest ``share`` samples of whichever came last.
    t, rows = _history(5.0, incident=None)
    share = 100
    detector = EntityAnomaly(window=share)  # one entity: its share is the whole window
    detector.learn_history([Series(s, {"UUID": "a"}, t, rows[:, j], _gpu("a")) for j, s in enumerate(SIGNALS)])
    for sensor in ("1", "2"):  # the second temperature series, a chunk at a time
        for a in range(0, t.size, 120):
            detector.learn_history([Series("gpu_temperature", {"UUID": "a", "sensor": sensor}, t[a:a + 120],
                                           rows[a:a + 120, 1] + float(sensor), _gpu("a"))])
    kept = detector._history[(_gpu("a"), "gpu_temperature")][0]
    assert np.unique(kept).tolist() == t[-share:].tolist()
    assert kept.size == 3 * share  # each of the three series' newest steps
    assert detector.history_rows() == 5 * share
