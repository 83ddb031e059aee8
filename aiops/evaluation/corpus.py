"""Evaluate replayed NAB-layout series against label windows: NAB score plus operator metrics.

Point, event and false-alarm figures use the standard profile's corpus threshold (NAB's own
choice of one threshold for all files) and the same scored rows as NAB (after the probationary
period), so every figure in a report describes the same detections.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiops.evaluation.errors import ReplayError
from aiops.evaluation.metrics import (
    EventMetrics,
    PointMetrics,
    alarm_onsets,
    event_metrics,
    point_metrics,
)
from aiops.evaluation.nab import (
    NabResult,
    Window,
    probationary_length,
    score_all_profiles,
)
from aiops.evaluation.replay import Replayed, epoch_seconds

__all__ = ["CorpusEvaluation", "evaluate_corpus", "load_instants", "window_mask"]

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class CorpusEvaluation:
    detector: str
    nab: dict[str, NabResult]
    threshold: float
    point: PointMetrics
    events: EventMetrics
    false_alarms: int
    days: float
    points: int
    detector_seconds: float

    @property
    def false_alarms_per_day(self) -> float:
        return self.false_alarms / self.days if self.days > 0 else float("nan")

    @property
    def points_per_second(self) -> float:
        return self.points / self.detector_seconds if self.detector_seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "detector": self.detector,
                "nab": {
                    name: {"normalized": r.normalized, "raw": r.raw, "threshold": r.threshold, "null": r.null, "perfect": r.perfect}
                    for name, r in self.nab.items()
                },
                "threshold": self.threshold,
                "point": asdict(self.point),
                "event_recall": self.events.recall,
                "events": self.events.events,
                "events_detected": self.events.detected,
                "median_lead_seconds": self.events.median_lead_seconds,
                "false_alarms": self.false_alarms,
                "false_alarms_per_day": self.false_alarms_per_day,
                "days": self.days,
                "points": self.points,
                "points_per_second": self.points_per_second,
            }
        )


def _json_safe(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with NaN and infinities as None (JSON has neither), nested mappings included."""
    return {
        k: _json_safe(v) if isinstance(v, dict) else None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in doc.items()
    }


def load_instants(path: str | Path) -> dict[str, list[pd.Timestamp]]:
    """Read NAB's ``combined_labels.json`` (relative path -> labelled anomaly instants)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        return {Path(k).as_posix(): [pd.Timestamp(t) for t in v] for k, v in doc.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ReplayError(
            f"cannot read labelled instants from {path} ({exc})",
            hint="give NAB's combined_labels.json shape, {\"folder/file.csv\": [timestamp, ...]}, with --instants,"
            " or move the file from beside --labels",
        ) from exc


def window_mask(timestamps: pd.Series, windows: Sequence[Window]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Rows inside any window, and each window as inclusive row indices (empty windows skipped)."""
    ts = pd.DatetimeIndex(timestamps)
    if ts.tz is not None:
        ts = ts.tz_convert(None)  # label windows are naive UTC, like NAB's files
    mask = np.zeros(len(ts), dtype=bool)
    spans = []
    for start, end in windows:
        first = int(ts.searchsorted(start, side="left"))
        last = int(ts.searchsorted(end, side="right")) - 1
        if last >= first:
            mask[first : last + 1] = True
            spans.append((first, last))
    return mask, spans


def evaluate_corpus(
    detector: str,
    replayed: Mapping[str, Replayed],
    windows: Mapping[str, Sequence[Window]],
    instants: Mapping[str, Sequence[pd.Timestamp]] | None = None,
) -> CorpusEvaluation:
    """All report figures of one detector's replay of a labelled corpus."""
    scores = {rel: r.frame.assign(timestamp=r.frame["timestamp"].dt.tz_convert(None)) for rel, r in replayed.items()}
    nab = score_all_profiles(scores, windows)
    threshold = nab["standard"].threshold
    labels: list[np.ndarray] = []
    detections: list[np.ndarray] = []
    leads: list[float] = []
    events = detected = false_alarms = 0
    days = 0.0
    for rel, frame in scores.items():
        start = probationary_length(len(frame))
        frame = frame.iloc[start:]
        if frame.empty:
            continue
        in_window, spans = window_mask(frame["timestamp"], windows.get(rel, []))
        flagged = frame["anomaly_score"].to_numpy() >= threshold
        t = epoch_seconds(frame["timestamp"])
        references = [_reference(t, span, (instants or {}).get(rel)) for span in spans]
        ev = event_metrics(spans, flagged, t, references)
        events, detected = events + ev.events, detected + ev.detected
        leads.extend(ev.leads_seconds)
        onsets = alarm_onsets(flagged)
        false_alarms += int((~in_window[onsets]).sum())
        days += (t[-1] - t[0]) / SECONDS_PER_DAY
        labels.append(in_window)
        detections.append(flagged)
    point = point_metrics(np.concatenate(labels), np.concatenate(detections)) if labels else point_metrics(np.zeros(0), np.zeros(0))
    return CorpusEvaluation(
        detector=detector,
        nab=nab,
        threshold=threshold,
        point=point,
        events=EventMetrics(events, detected, tuple(leads)),
        false_alarms=false_alarms,
        days=days,
        points=sum(len(r.frame) for r in replayed.values()),
        detector_seconds=sum(r.seconds for r in replayed.values()),
    )


def _reference(t: np.ndarray, span: tuple[int, int], instants: Sequence[pd.Timestamp] | None) -> float:
    """The labelled instant inside the window, else the window centre (NAB centres windows on it)."""
    first, last = span
    for instant in instants or ():
        stamp = pd.Timestamp(instant)
        at = (stamp if stamp.tz else stamp.tz_localize("UTC")).timestamp()
        if t[first] <= at <= t[last]:
            return float(at)
    return float((t[first] + t[last]) / 2)
