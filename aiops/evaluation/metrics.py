"""Point-wise and event-wise detection metrics, without point adjustment.

Point adjustment (counting a whole labelled segment as detected once any point in it is) inflates
F1 so much that a random detector looks good, so point metrics here count rows as they are. Event
metrics answer the on-call question instead: was the incident flagged at all, and how early.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EventMetrics",
    "PointMetrics",
    "alarm_onsets",
    "best_f1_threshold",
    "event_metrics",
    "false_alarms_per_day",
    "label_segments",
    "point_metrics",
]

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class PointMetrics:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class EventMetrics:
    events: int
    detected: int
    # Per detected event: reference time minus first detection, in seconds (positive = early).
    leads_seconds: tuple[float, ...]

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else float("nan")

    @property
    def median_lead_seconds(self) -> float:
        return float(np.median(self.leads_seconds)) if self.leads_seconds else float("nan")


def point_metrics(labels: np.ndarray, detections: np.ndarray) -> PointMetrics:
    """Row-wise precision/recall/F1 of boolean ``detections`` against boolean ``labels``."""
    y = np.asarray(labels, dtype=bool)
    d = np.asarray(detections, dtype=bool)
    if y.shape != d.shape:
        raise ValueError(f"labels and detections differ in shape: {y.shape} vs {d.shape}")
    tp = int((y & d).sum())
    fp = int((~y & d).sum())
    fn = int((y & ~d).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PointMetrics(precision, recall, f1, tp, fp, fn)


def best_f1_threshold(
    labels: Sequence[np.ndarray], scores: Sequence[np.ndarray], *, max_false_alarm_rate: float | None = None
) -> tuple[float, float]:
    """The one threshold that maximises pooled point F1 over several series, and that F1.

    This peeks at labels, so report it as an upper bound next to a fixed threshold's figure.
    With ``max_false_alarm_rate`` only thresholds that flag at most that share of the normal rows
    compete: the best any threshold keeping that false-alarm rate could do. ``(inf, 0.0)`` when
    no threshold qualifies or nothing is labelled.
    """
    y = np.concatenate([np.asarray(v, dtype=bool) for v in labels])
    s = np.concatenate([np.asarray(v, dtype=float) for v in scores])
    if not y.any():
        return float("inf"), 0.0
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    flagged = np.arange(1, s.shape[0] + 1)
    last_of_run = np.append(s_sorted[1:] != s_sorted[:-1], True)  # a threshold keeps ties together
    precision = tp[last_of_run] / flagged[last_of_run]
    recall = tp[last_of_run] / y.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    if max_false_alarm_rate is not None:
        false_alarms = (flagged - tp)[last_of_run]
        f1 = np.where(false_alarms <= max_false_alarm_rate * (~y).sum(), f1, -1.0)
        if f1.max() < 0:
            return float("inf"), 0.0
    best = int(np.argmax(f1))
    return float(s_sorted[last_of_run][best]), float(f1[best])


def label_segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of True as inclusive ``(first, last)`` row indices."""
    y = np.asarray(labels, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], y, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def event_metrics(
    segments: Sequence[tuple[int, int]],
    detections: np.ndarray,
    timestamps: np.ndarray,
    references: Sequence[float] | None = None,
) -> EventMetrics:
    """Event recall and lead time of the first detection in each segment.

    ``references`` gives the instant each event is measured against (epoch seconds): NAB's
    labelled anomaly instant, or the segment start for SMD-style labels (then the lead is minus
    the detection delay). Defaults to each segment's first timestamp.
    """
    d = np.asarray(detections, dtype=bool)
    t = np.asarray(timestamps, dtype=float)
    leads: list[float] = []
    for k, (first, last) in enumerate(segments):
        hits = np.flatnonzero(d[first : last + 1])
        if hits.size:
            reference = t[first] if references is None else references[k]
            leads.append(float(reference - t[first + hits[0]]))
    return EventMetrics(events=len(segments), detected=len(leads), leads_seconds=tuple(leads))


def alarm_onsets(detections: np.ndarray) -> np.ndarray:
    """Indices where a run of detections starts: one alarm per run, as a pager would ring."""
    d = np.asarray(detections, dtype=bool)
    return np.flatnonzero(d & ~np.concatenate([[False], d[:-1]]))


def false_alarms_per_day(detections: np.ndarray, in_event: np.ndarray, timestamps: np.ndarray) -> float:
    """Alarms (runs of detections) that start outside any labelled event, per day of data."""
    t = np.asarray(timestamps, dtype=float)
    onsets = alarm_onsets(detections)
    false = int((~np.asarray(in_event, dtype=bool)[onsets]).sum())
    days = (t[-1] - t[0]) / SECONDS_PER_DAY if t.shape[0] > 1 else 0.0
    return false / days if days > 0 else float("nan")
