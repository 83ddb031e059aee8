"""Point/event metrics, baselines and replay on small generated series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops.evaluation.baselines import NullBaseline, RandomBaseline, RollingZScore
from aiops.evaluation.metrics import (
    alarm_onsets,
    best_f1_threshold,
    event_metrics,
    false_alarms_per_day,
    label_segments,
    point_metrics,
)
from aiops.evaluation.replay import (
    ReplayError,
    epoch_seconds,
    find_series_files,
    read_series_csv,
    replay_series,
)


def test_point_metrics_count_rows_without_point_adjustment() -> None:
    labels = np.array([0, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    flagged = np.array([0, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    m = point_metrics(labels, flagged)
    # One hit in a 4-row segment is recall 1/4, not 4/4 as point adjustment would claim.
    assert (m.tp, m.fp, m.fn) == (1, 1, 3)
    assert m.precision == 0.5 and m.recall == 0.25
    assert m.f1 == pytest.approx(1 / 3)


def test_best_f1_threshold_keeps_ties_together() -> None:
    labels = [np.array([0, 1, 1, 0], dtype=bool)]
    scores = [np.array([0.1, 0.9, 0.8, 0.8])]
    threshold, f1 = best_f1_threshold(labels, scores)
    assert threshold == 0.8 and f1 == pytest.approx(0.8)


def test_best_f1_under_a_false_alarm_budget_only_counts_thresholds_within_it() -> None:
    # 10 incident rows; 100 normal rows, 5 of which score above the weak half of the incident.
    labels = np.r_[np.ones(10, dtype=bool), np.zeros(100, dtype=bool)]
    scores = np.r_[np.full(5, 0.9), np.full(5, 0.5), np.full(5, 0.6), np.linspace(0.0, 0.4, 95)]
    assert best_f1_threshold([labels], [scores]) == (0.5, pytest.approx(2 * 10 / (2 * 10 + 5)))
    # At most 1 in 100 normal rows flagged: only the strong half of the incident is within reach.
    assert best_f1_threshold([labels], [scores], max_false_alarm_rate=0.01) == (0.9, pytest.approx(2 * 5 / (2 * 5 + 5)))
    # No threshold flags nothing normal when the top score is a tie of normal and incident rows.
    tied = np.r_[np.ones(10), np.ones(100)]
    assert best_f1_threshold([labels], [tied], max_false_alarm_rate=0.001) == (float("inf"), 0.0)


def test_segments_events_lead_and_false_alarms() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    assert label_segments(labels) == [(2, 4), (7, 8)]
    flagged = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=bool)
    t = np.arange(10) * 3600.0
    ev = event_metrics(label_segments(labels), flagged, t, references=[4 * 3600.0, 8 * 3600.0])
    assert (ev.events, ev.detected) == (2, 1)
    assert ev.leads_seconds == (3600.0,)  # first detection at row 3, the labelled instant at row 4
    assert alarm_onsets(flagged).tolist() == [0, 3, 9]
    # Two onsets outside events (rows 0 and 9) over 9 hours.
    assert false_alarms_per_day(flagged, labels, t) == pytest.approx(2 / (9 / 24))


def test_baselines_are_causal_bounded_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_normal(500)
    y[400] = 12.0
    t = np.arange(500) * 300.0
    z = RollingZScore().score_series(t, y)
    assert z.argmax() == 400 and z[400] > 0.9
    changed = y.copy()
    changed[450:] = 100.0
    np.testing.assert_array_equal(RollingZScore().score_series(t, changed)[:450], z[:450])
    assert np.all(NullBaseline().score_series(t, y) == 0)
    r = RandomBaseline().score_series(t, y)
    np.testing.assert_array_equal(r, RandomBaseline().score_series(t, y))
    assert np.all((r >= 0) & (r < 1))
    gaps = y.copy()
    gaps[100:120] = np.nan
    assert np.all(np.isfinite(RollingZScore().score_series(t, gaps)))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_read_series_csv_and_clear_errors(tmp_path: Path) -> None:
    good = _write(tmp_path / "a" / "x.csv", "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,oops\n")
    frame = read_series_csv(good)
    assert frame["timestamp"].dt.tz is not None
    assert np.isnan(frame["value"].iloc[1])  # unreadable value = a gap, not a crash
    with pytest.raises(ReplayError, match="lacks column.s. timestamp, value") as raised:
        read_series_csv(_write(tmp_path / "bad.csv", "time,v\n1,2\n"))
    assert raised.value.hint == "give it a header line 'timestamp,value' and one sample per line (a NAB-format CSV file)"
    with pytest.raises(ReplayError, match="unreadable timestamp"):
        read_series_csv(_write(tmp_path / "ts.csv", "timestamp,value\nyesterday-ish,1\n"))
    assert [rel for rel, _ in find_series_files(tmp_path / "a")] == ["x.csv"]
    with pytest.raises(ReplayError, match="does not exist"):
        find_series_files(tmp_path / "nope")


def test_numeric_timestamps_are_unix_seconds(tmp_path: Path) -> None:
    # Prometheus (the HTTP API, promtool, most exporters' CSVs) writes Unix seconds. Read as
    # nanoseconds (pandas' default for integers) a week of 5-minute samples lands within one
    # second of 1970 and is scored with a step of 300 ns, silently.
    frame = read_series_csv(_write(tmp_path / "epoch.csv", "timestamp,value\n1700000000,1\n1700000300,2\n1700000600.5,3\n"))
    assert epoch_seconds(frame["timestamp"]).tolist() == [1700000000.0, 1700000300.0, 1700000600.5]
    with pytest.raises(ReplayError, match="past the year 5000") as raised:
        read_series_csv(_write(tmp_path / "ms.csv", "timestamp,value\n1700000000000,1\n1700000300000,2\n"))
    assert raised.value.hint == "if they are milliseconds, divide them by 1000 (or write them as text, 2024-01-01 00:00:00)"


class _Recorder:
    """Scores each point by its position; remembers what the detector was shown."""

    def __init__(self) -> None:
        self.seen: np.ndarray | None = None

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        self.seen = timestamps
        return np.linspace(0, 1, timestamps.shape[0])


def test_replay_shows_repeated_timestamps_once_and_copies_their_score() -> None:
    ts = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00", "2024-01-01 02:00"], utc=True)
    frame = pd.DataFrame({"timestamp": ts, "value": [1.0, 2.0, 3.0, 4.0]})
    recorder = _Recorder()
    scores = replay_series(recorder, frame)
    assert recorder.seen is not None and recorder.seen.tolist() == [1704067200.0, 1704070800.0, 1704074400.0]
    assert scores.tolist() == [0.0, 0.5, 0.5, 1.0]


def test_replay_rejects_a_detector_that_breaks_the_contract() -> None:
    class Broken:
        def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
            return np.full(timestamps.shape[0], 2.0)

    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC"), "value": np.ones(5)})
    with pytest.raises(ReplayError, match="outside"):
        replay_series(Broken(), frame)
