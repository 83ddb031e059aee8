"""The multivariate detector's reference outlives the frame's lookback (issue 14).

Live, the daemon used to refit every cycle on the frame's lookback (6 h): an incident longer than
a few hours became part of its own reference and stopped scoring. The reference is now kept per
pool across cycles, refreshed slowly from rows that were not flagged, and saved in the state file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from aiops.model import Entity, Frame, Series, SignalInfo
from aiops.state import Store
from aiops.state.detector_state import DetectorStateBook
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
