"""Replay recorded series through a detector as if live, in NAB's file layout.

Each series is scored in one causal pass (``score_series``): the score of row ``i`` depends only on
rows ``<= i``, so the output is what the daemon would have said at each instant. One detector
configuration serves every file; nothing here reads labels.

Real exports are messy. A file is read the way Prometheus ingests samples: a sample whose
timestamp is not later than every sample before it (a duplicate, or one that goes backwards) is
dropped and the first one kept, with one warning per file. A file that cannot be read or scored
at all is reported and skipped; it never takes the rest of the corpus down with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aiops import plugins
from aiops.evaluation.errors import Failure, ReplayError
from aiops.plugins import SeriesScorer

__all__ = [
    "Failure",
    "ReplayError",
    "Replayed",
    "SeriesScorer",
    "epoch_seconds",
    "find_series_files",
    "load_corpus",
    "load_scorer",
    "read_series_csv",
    "replay_corpus",
    "replay_series",
    "write_replayed",
]

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score")
_CSV_HINT = "give it a header line 'timestamp,value' and one sample per line (a NAB-format CSV file)"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replayed:
    """One replayed series: ``frame`` has timestamp (UTC datetime), value, anomaly_score."""

    path: str  # relative to the data root, POSIX separators
    frame: pd.DataFrame
    seconds: float  # time spent in the detector

    @property
    def timestamps(self) -> np.ndarray:
        return epoch_seconds(self.frame["timestamp"])


def load_scorer(name: str, params: Mapping[str, Any] | None = None) -> Callable[[], SeriesScorer]:
    """A factory of fresh detector instances of plugin ``name`` that support backtests."""
    cls = plugins.load(plugins.DETECTORS, name)
    if not callable(getattr(cls, "score_series", None)):
        raise plugins.PluginError(
            f"detector {name!r} cannot replay a single series (it has no score_series); "
            "use --format smd for multivariate detectors, or pick a univariate detector"
        )

    def make() -> SeriesScorer:
        try:
            scorer: SeriesScorer = cls(**dict(params or {}))
        except (TypeError, ValueError) as exc:
            raise plugins.PluginError(f"detector {name!r} rejected its parameters: {exc}") from exc
        return scorer

    return make


def find_series_files(data: Path) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of the CSV file ``data`` or of every CSV under the folder ``data``."""
    if data.is_file():
        return [(data.name, data)]
    if not data.is_dir():
        raise ReplayError(f"{data} does not exist", hint="pass a NAB-format CSV file (timestamp,value) or a folder of them")
    files = sorted(p for p in data.rglob("*.csv") if p.is_file())
    if not files:
        raise ReplayError(
            f"no .csv files under {data}",
            hint="pass NAB-format CSV files (a timestamp,value header), or add --format smd for the SMD layout",
        )
    return [(p.relative_to(data).as_posix(), p) for p in files]


def read_series_csv(path: Path) -> pd.DataFrame:
    """Read a ``timestamp,value`` CSV. Timestamps without a zone are taken as UTC; numeric ones
    as Unix seconds, Prometheus' unit.

    Rows whose timestamp is not later than all earlier rows are dropped (the first sample of a
    timestamp is kept, as Prometheus keeps it), with one warning for the file.
    """
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}", hint=_CSV_HINT) from exc
    missing = {"timestamp", "value"} - set(raw.columns)
    if missing:
        raise ReplayError(f"{path} lacks column(s) {', '.join(sorted(missing))}", hint=_CSV_HINT)
    ts = _timestamps(path, raw["timestamp"])
    if ts.isna().any():
        row = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise ReplayError(
            f"{path}: unreadable timestamp {raw['timestamp'].iloc[row]!r} on data row {row + 1}",
            hint="write timestamps as text (2024-01-01 00:00:00, ISO 8601 with or without a zone) or as Unix seconds",
        )
    # A non-numeric value is a gap, like a missing scrape: the detector sees NaN.
    values = pd.to_numeric(raw["value"], errors="coerce").astype(float)
    frame = pd.DataFrame({"timestamp": ts, "value": values})
    keep = _in_order(epoch_seconds(ts))
    if not keep.all():
        t = epoch_seconds(ts)
        latest = np.maximum.accumulate(t)
        repeated = int(np.sum(~keep & (t == np.concatenate([[np.nan], latest[:-1]]))))
        log.warning(
            "%s: dropped %d sample(s) whose timestamp was not later than an earlier one (%d repeated, %d going "
            "backwards, first at data row %d); kept the first sample of each timestamp, as Prometheus does",
            path, int((~keep).sum()), repeated, int((~keep).sum()) - repeated, int(np.flatnonzero(~keep)[0]) + 1,
        )
        frame = frame[keep].reset_index(drop=True)
    return frame


# Numeric timestamps beyond this many seconds (the year 5138) are milliseconds or finer.
_MAX_EPOCH_SECONDS = 1e11


def _timestamps(path: Path, column: pd.Series) -> pd.Series:
    """Datetimes of a ``timestamp`` column: text as written (no zone: UTC), numbers as Unix seconds.

    Prometheus (its HTTP API, promtool, exporters' CSVs) writes Unix seconds; pandas would read an
    integer as nanoseconds and put a week of samples within one second of 1970.
    """
    if not pd.api.types.is_numeric_dtype(column):
        return pd.to_datetime(column, utc=True, errors="coerce", format="mixed")
    seconds = column.to_numpy(dtype=np.float64)
    if seconds.shape[0] and np.nanmax(np.abs(seconds)) > _MAX_EPOCH_SECONDS:
        raise ReplayError(
            f"{path}: numeric timestamps are read as Unix seconds, and {np.nanmax(np.abs(seconds)):.0f} is past the year 5000",
            hint="if they are milliseconds, divide them by 1000 (or write them as text, 2024-01-01 00:00:00)",
        )
    return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce").to_series(index=column.index)


def _in_order(t: np.ndarray) -> np.ndarray:
    """Rows later than every earlier row (what an append-only store such as Prometheus accepts)."""
    if t.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    before = np.concatenate([[-np.inf], np.maximum.accumulate(t)[:-1]])
    return t > before


def epoch_seconds(timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    ts = pd.DatetimeIndex(timestamps)
    if ts.tz is None:
        ts = ts.tz_localize("UTC")
    # Divide a timedelta rather than read asi8: pandas 2 datetimes may be in s, ms, us or ns.
    seconds: np.ndarray = ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    return seconds


def replay_series(scorer: SeriesScorer, frame: pd.DataFrame, name: str = "series") -> np.ndarray:
    """Score one ``timestamp,value`` frame; one score in [0, 1] per row.

    Rows that repeat a timestamp (NAB has a few) are not new samples: the detector sees the first
    row of each instant, and the repeats take its score.
    """
    t = epoch_seconds(frame["timestamp"])
    y = frame["value"].to_numpy(dtype=float)
    first = np.concatenate([[True], np.diff(t) > 0]) if t.shape[0] else np.zeros(0, dtype=bool)
    scores = np.asarray(scorer.score_series(t[first], y[first]), dtype=float)
    if scores.shape != (int(first.sum()),):
        raise ReplayError(f"{name}: the detector returned {scores.shape} scores for {int(first.sum())} points")
    if not np.all(np.isfinite(scores)) or scores.min(initial=0.0) < 0.0 or scores.max(initial=0.0) > 1.0:
        raise ReplayError(f"{name}: the detector returned scores outside [0, 1] or NaN; that is a detector bug")
    per_row: np.ndarray = scores[np.cumsum(first) - 1]
    return per_row


def load_corpus(
    files: Iterable[tuple[str, Path]], *, failed: dict[str, Failure] | None = None
) -> dict[str, pd.DataFrame]:
    """Read every file once (warnings about dropped samples come once per file).

    With ``failed`` given, a file that cannot be read is recorded there (relative path ->
    :class:`Failure`) and the others are still read; without it the first such file raises.
    """
    out: dict[str, pd.DataFrame] = {}
    for rel, path in files:
        try:
            out[rel] = read_series_csv(path)
        except ReplayError as exc:
            if failed is None:
                raise
            failed[rel] = Failure.of(exc)
    return out


def replay_corpus(
    files: Iterable[tuple[str, Path]] | Mapping[str, pd.DataFrame],
    make_scorer: Callable[[], SeriesScorer],
    *,
    progress: bool = True,
    desc: str = "replay",
    failed: dict[str, Failure] | None = None,
) -> dict[str, Replayed]:
    """Replay every file (``(relative path, path)`` pairs, or frames already loaded by
    :func:`load_corpus`) with a fresh detector of the same configuration.

    With ``failed`` given, a file that cannot be read or scored is recorded there (relative path
    -> :class:`Failure`) and the others are still replayed; without it the first such file raises.
    """
    items = list(files.items()) if isinstance(files, Mapping) else list(files)
    out: dict[str, Replayed] = {}
    for rel, source in tqdm(items, desc=desc, unit="file", disable=not progress, leave=False):
        try:
            frame = source if isinstance(source, pd.DataFrame) else read_series_csv(source)
            started = time.perf_counter()
            scores = replay_series(make_scorer(), frame, rel)
            elapsed = time.perf_counter() - started
        except Exception as exc:  # one bad file (or a detector bug on it) never loses the corpus
            if failed is None:
                raise
            failed[rel] = Failure.of(exc)
            continue
        out[rel] = Replayed(rel, frame.assign(anomaly_score=scores), elapsed)
    return out


def write_replayed(replayed: Mapping[str, Replayed], out_dir: Path) -> list[Path]:
    """Write ``out_dir/<relative path>`` with columns timestamp,value,anomaly_score."""
    written = []
    for rel, item in replayed.items():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        frame = item.frame.loc[:, list(OUTPUT_COLUMNS)].copy()
        frame["timestamp"] = frame["timestamp"].dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S")
        frame.to_csv(target, index=False)
        written.append(target)
    return written
