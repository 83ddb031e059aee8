"""The multivariate detector's reference outlives the frame's lookback (issue 14).

Live, the daemon used to refit every cycle on the frame's lookback (6 h): an incident longer than
a few hours became part of its own reference and stopped scoring. The reference is now kept per
pool across cycles, refreshed slowly from rows that were not flagged, and saved in the state file.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aiops.model import Entity, Frame, Series, SignalInfo
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
    util = np.clip(50 + 30 * np.sin(t / 3600) + 3 * rng.standard_normal(t.size), 0, 100)
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
    # 6 h healthy, then the GPU runs hot for 5 h. Cycles every 10 minutes from the first 6 h on.
    t, rows = _history(11.0, incident=(6.0, 11.0))
    detector = EntityAnomaly()
    scores = _live_scores(detector, t, rows, range(LOOKBACK, rows.shape[0] + 1, 10))
    # From half an hour into the incident (the smoothing window) to its end, it is critical:
    # a reference refitted on the 6 h lookback absorbed it within about three hours.
    during = {end: s for end, s in scores.items() if end >= 6.5 * 60}
    assert min(during.values()) >= 0.9, {end // 60: round(s, 3) for end, s in during.items()}
    # and a healthy hour before it was quiet
    assert max(s for end, s in scores.items() if end < 6 * 60) < 0.5
