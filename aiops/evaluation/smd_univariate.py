"""A labelled univariate corpus in NAB's layout, built from SMD-layout machines' interpretation labels.

NAB's dev folder (34 files, 5 categories) cannot rank univariate variants within a few points,
and the default was tuned on it. SMD and ASD label every anomalous test segment with the metrics
that explain it (``interpretation_label/<machine>.txt``: ``start-end:dim,dim,...``, dims 1-based),
which makes each named metric a labelled univariate operations series:

* one file per (machine, metric) that at least one segment names: the train rows, then the test
  rows, on a regular grid (``step`` seconds: 60 for SMD, 300 for ASD), so the detector has the
  history it would have had live. Train has no labels; its unlabelled anomalies cost every
  detector alike.
* a segment's bounds are the labelled test rows (``test_label``) inside ``start-end``: the two
  datasets write ``end`` differently (SMD exclusive, ASD inclusive) and the row labels are exact.
* windows follow NAB's own rule (numenta/NAB ``labeler.py``): each window is 10 % of the file's
  length divided by the file's number of anomalies, centred on the anomaly (here on the middle of
  the segment, widened to cover a segment longer than the window), clipped to the file, and
  overlapping windows merged. The label instant of ``combined_labels.json`` is the segment's first row.
* one category folder per machine (``<dataset>-<machine>``), so ``aiops backtest --cv`` leaves
  one machine out.

Nothing here ships data: the corpus is written at run time from the dataset's own files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aiops.evaluation.errors import ReplayError
from aiops.evaluation.multicolumn import find_machines, read_machine

__all__ = [
    "Conversion",
    "Segment",
    "convert",
    "nab_windows",
    "read_interpretation",
]

START = pd.Timestamp("2020-01-01 00:00:00")
WINDOW_FRACTION = 0.10  # NAB's windowSize
_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")
_STAMP = "%Y-%m-%d %H:%M:%S.%f"
INTERPRETATION_HINT = "write one 'start-end:dim,dim,...' line per segment, test rows 0-based and dims 1-based (SMD's interpretation_label)"


@dataclass(frozen=True)
class Segment:
    """Test rows ``first..last`` (inclusive, 0-based) and the 1-based metrics that explain them."""

    first: int
    last: int
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Conversion:
    files: int
    windows: int
    segments: int
    points: int
    skipped: dict[str, str]


def read_interpretation(path: Path, labels: np.ndarray | None = None) -> list[Segment]:
    """Parse ``start-end:dim,...`` lines; with row labels, bound each segment by its labelled rows."""
    segments = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ReplayError(f"{path}:{number}: {line.strip()!r} is not 'start-end:dim,dim,...'", hint=INTERPRETATION_HINT)
        start, end = int(match[1]), int(match[2])
        dims = tuple(sorted({int(d) for d in match[3].split(",")}))
        if end < start or 0 in dims:
            raise ReplayError(f"{path}:{number}: end before start or a dim of 0 in {line.strip()!r}", hint=INTERPRETATION_HINT)
        first, last = start, end
        if labels is not None:
            inside = np.flatnonzero(labels[start : end + 1]) + start
            if inside.size:
                first, last = int(inside[0]), int(inside[-1])
        segments.append(Segment(first, last, dims))
    return segments


def nab_windows(rows: int, segments: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """NAB's windows (inclusive row ranges) for anomalies at ``(first, last)`` rows of a file of ``rows``."""
    if not segments:
        return []
    length = int(WINDOW_FRACTION * rows / len(segments))
    spans = []
    for first, last in sorted(segments):
        centre = (first + last) / 2.0
        lo = min(first, int(np.floor(centre - length / 2.0)))
        hi = max(last, int(np.ceil(centre + length / 2.0)))
        spans.append((max(lo, 0), min(hi, rows - 1)))
    merged = [spans[0]]
    for lo, hi in spans[1:]:
        if lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _convert_machine(
    root: Path, name: str, step: int, out: Path, category: str, windows: dict[str, list[list[str]]], instants: dict[str, list[str]]
) -> tuple[int, int, int, int]:
    machine = read_machine(root, name)
    segments = read_interpretation(root / "interpretation_label" / f"{name}.txt", machine.labels)
    offset = 0 if machine.train is None else machine.train.shape[0]
    matrix = machine.test if machine.train is None else np.vstack([machine.train, machine.test])
    rows, columns = matrix.shape
    stamps = pd.date_range(START, periods=rows, freq=pd.Timedelta(seconds=step))
    text = stamps.strftime("%Y-%m-%d %H:%M:%S")
    (out / category).mkdir(parents=True, exist_ok=True)
    files = n_windows = points = 0
    for dim in sorted({d for s in segments for d in s.dims}):
        if dim > columns:
            raise ReplayError(f"{name}: interpretation label names metric {dim}, the machine has {columns}", hint=INTERPRETATION_HINT)
        spans = [(s.first + offset, s.last + offset) for s in segments if dim in s.dims]
        rel = f"{category}/dim-{dim:02d}.csv"
        pd.DataFrame({"timestamp": text, "value": matrix[:, dim - 1]}).to_csv(out / rel, index=False)
        found = nab_windows(rows, spans)
        windows[rel] = [[stamps[lo].strftime(_STAMP), stamps[hi].strftime(_STAMP)] for lo, hi in found]
        instants[rel] = sorted({stamps[first].strftime(_STAMP) for first, _ in spans})
        files, n_windows, points = files + 1, n_windows + len(found), points + rows
    return files, n_windows, len(segments), points


def convert(sources: Sequence[tuple[Path, int]], out: Path) -> Conversion:
    """Write one NAB category per machine of each ``(dataset root, step seconds)`` under ``out``.

    Writes ``out/<dataset>-<machine>/dim-NN.csv``, ``out/combined_windows.json`` and
    ``out/combined_labels.json``. A machine without an interpretation label is skipped and reported.
    """
    out.mkdir(parents=True, exist_ok=True)
    windows: dict[str, list[list[str]]] = {}
    instants: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    totals = np.zeros(4, dtype=np.int64)
    for root, step in sources:
        if step <= 0:
            raise ReplayError(
                f"{root}: step must be a positive number of seconds, got {step}",
                hint="give each dataset's sampling step in seconds (60 for SMD, 300 for ASD)",
            )
        for name in find_machines(root):
            category = f"{root.resolve().name}-{name}"
            if not (root / "interpretation_label" / f"{name}.txt").is_file():
                skipped[category] = "no interpretation_label file"
                continue
            totals += _convert_machine(root, name, step, out, category, windows, instants)
    (out / "combined_windows.json").write_text(json.dumps(windows, indent=1, sort_keys=True))
    (out / "combined_labels.json").write_text(json.dumps(instants, indent=1, sort_keys=True))
    files, n_windows, segments, points = (int(v) for v in totals)
    return Conversion(files, n_windows, segments, points, skipped)
