"""The Numenta Anomaly Benchmark scoring method (numenta/NAB ``nab/sweeper.py``), vectorised.

How NAB scores a detector, and what this module reproduces exactly:

* Each labelled anomaly is a window ``[start, end]`` (inclusive, timestamps of the file).
* A detection is a row whose anomaly score is ``>= threshold``. Only the earliest detection
  inside a window counts; it earns ``tp_weight * S(p) / S(-1)`` where ``p`` is its relative
  position in the window (``-1`` at the left edge, towards ``0`` at the right edge) and
  ``S(p) = 2 * sigmoid(-5 p) - 1`` is NAB's scaled sigmoid. A window without a detection costs
  ``-fn_weight``.
* Every detection outside a window costs ``fp_weight * S(p)`` where ``p`` is its distance past the
  end of the preceding window in window widths (so a detection just after a window costs little);
  before the first window of a file the cost is the full ``-fp_weight``.
* The first 15 % of each file (at most 750 rows) is probationary and not scored.
* The threshold is one number for the whole corpus, chosen per profile by sweeping every
  distinct anomaly score and keeping the best total (NAB's optimizer).
* normalised score = ``100 * (raw - null) / (perfect - null)``: ``perfect`` is ``tp_weight`` per
  labelled window, ``null`` is the score of a detector that never fires (what NAB's null detector
  scores at its optimal threshold).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aiops.evaluation.errors import ReplayError

__all__ = [
    "PROFILES",
    "FileScore",
    "NabResult",
    "Profile",
    "Window",
    "PreparedFile",
    "load_windows",
    "prepare_corpus",
    "probationary_length",
    "scaled_sigmoid",
    "score_all_profiles",
    "score_corpus",
    "score_prepared",
]

Window = tuple[pd.Timestamp, pd.Timestamp]

PROBATION_PERCENT = 0.15
LABELS_HINT = (
    "give label windows in NAB's combined_windows.json shape, "
    '{"folder/file.csv": [["2024-01-01 00:00:00", "2024-01-01 06:00:00"], ...]}, keys relative to DATA'
)


@dataclass(frozen=True)
class Profile:
    """NAB cost matrix. ``tn`` is part of NAB's profiles but does not enter the score."""

    name: str
    tp: float
    fp: float
    fn: float
    tn: float = 1.0


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP": Profile("reward_low_FP", tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN": Profile("reward_low_FN", tp=1.0, fp=0.11, fn=2.0),
}

# NAB's maxTP: the sigmoid value at the left edge of a window, which the TP weight is scaled by.
_MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0


@dataclass(frozen=True)
class FileScore:
    """One file's share of the corpus score at the corpus threshold. Counts are in rows, as NAB's."""

    raw: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int  # labelled windows with at least one scored (non-probationary) row
    detected_windows: int


@dataclass(frozen=True)
class NabResult:
    profile: str
    threshold: float
    normalized: float
    raw: float
    null: float
    perfect: float
    per_file: dict[str, FileScore]


def load_windows(path: str | Path) -> dict[str, list[Window]]:
    """Read NAB's ``combined_windows.json``: relative file path -> list of ``[start, end]``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReplayError(
            f"label file {path} does not exist",
            hint="pass NAB's combined_windows.json with --labels, or leave --labels out to replay without scoring",
        ) from None
    except OSError as exc:
        raise ReplayError(f"cannot read label file {path}: {exc.strerror or exc}", hint=LABELS_HINT) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReplayError(f"label file {path} is not valid JSON ({exc})", hint=LABELS_HINT) from exc
    if not isinstance(doc, dict):
        raise ReplayError(f"label file {path} does not map file paths to lists of windows", hint=LABELS_HINT)
    out: dict[str, list[Window]] = {}
    for key, windows in doc.items():
        try:
            parsed = [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in windows]
        except (TypeError, ValueError) as exc:
            raise ReplayError(
                f"label file {path}: a window of {key!r} is not a [start, end] pair of timestamps", hint=LABELS_HINT
            ) from exc
        for start, end in parsed:
            if end < start:
                raise ReplayError(
                    f"label file {path}: a window of {key!r} ends ({end}) before it starts ({start})",
                    hint="swap the window's two timestamps: [start, end]",
                )
        out[_normalise_key(key)] = sorted(parsed)
    return out


def probationary_length(rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that NAB does not score: 15 % of the file, at most 750."""
    return int(min(math.floor(percent * rows), percent * 5000))


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's ``scaledSigmoid``: ``2 * sigmoid(-5 p) - 1``, and exactly -1 from ``p >= 3``."""
    p = np.asarray(position, dtype=float)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0
    return np.where(p >= 3.0, -1.0, value)


@dataclass(frozen=True)
class PreparedFile:
    """The scored (non-probationary) rows of one file, ready to weight by a profile."""

    scores: np.ndarray  # anomaly score per row
    unweighted: np.ndarray  # scaled sigmoid per row
    window: np.ndarray  # index of the window the row is in (file-local), -1 outside
    windows: int  # windows with at least one scored row
    labelled: int  # windows in the labels (all of them count towards the perfect score)


def _prepare(path: str, frame: pd.DataFrame, windows: Sequence[Window], percent: float) -> PreparedFile:
    missing = {"timestamp", "anomaly_score"} - set(frame.columns)
    if missing:
        raise ValueError(f"scores of {path} lack column(s) {', '.join(sorted(missing))}; expected timestamp,anomaly_score")
    ts = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[ns]")
    scores = pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy(dtype=float)
    n = ts.shape[0]
    if np.isnan(scores).any():
        bad = int(np.isnan(scores).sum())
        raise ValueError(f"scores of {path} have {bad} missing/NaN anomaly_score value(s); the replay must score every row")
    # Repeated timestamps occur in NAB's own data; like NAB, a window bound is its first occurrence.
    if n > 1 and (np.diff(ts) < np.timedelta64(0)).any():
        raise ValueError(f"timestamps of {path} are not in increasing order; sort the file by timestamp")

    unweighted = np.full(n, -1.0)  # before the first window: FP at full cost (NAB: position 3.0)
    window = np.full(n, -1, dtype=np.int64)
    idx = np.arange(n)
    prev_right: int | None = None
    prev_width = 0.0
    for w, (start, end) in enumerate(windows):
        left = int(np.searchsorted(ts, np.datetime64(start.to_datetime64(), "ns"), side="left"))
        end64 = np.datetime64(end.to_datetime64(), "ns")
        right = int(np.searchsorted(ts, end64, side="left"))
        if right >= n or ts[right] != end64:
            right -= 1  # the bound is not a row: the window ends at the last row before it
        if right < left:
            raise ReplayError(
                f"window [{start}, {end}] of {path} contains no row of the file",
                hint="check that the labels are of this file: its rows span "
                + (f"{pd.Timestamp(ts[0])} to {pd.Timestamp(ts[-1])}" if n else "nothing (it has no rows)"),
            )
        if prev_right is not None:
            if left <= prev_right:
                raise ReplayError(
                    f"windows of {path} overlap at [{start}, {end}]",
                    hint="merge the overlapping windows into one: NAB windows must be disjoint",
                )
            gap = slice(prev_right + 1, left)
            unweighted[gap] = scaled_sigmoid((idx[gap] - prev_right) / max(prev_width - 1.0, 1.0))
        width = float(right - left + 1)
        inside = slice(left, right + 1)
        unweighted[inside] = scaled_sigmoid(-(right - idx[inside] + 1) / width)
        window[inside] = w
        prev_right, prev_width = right, width
    if prev_right is not None:
        tail = slice(prev_right + 1, n)
        unweighted[tail] = scaled_sigmoid((idx[tail] - prev_right) / max(prev_width - 1.0, 1.0))

    start_row = probationary_length(n, percent)
    kept_windows = window[start_row:]
    return PreparedFile(
        scores=scores[start_row:],
        unweighted=unweighted[start_row:],
        window=kept_windows,
        windows=int(np.unique(kept_windows[kept_windows >= 0]).size),
        labelled=len(windows),
    )


def _weights(rows: PreparedFile, profile: Profile) -> np.ndarray:
    return np.where(rows.window >= 0, rows.unweighted * profile.tp / _MAX_TP, rows.unweighted * profile.fp)


def _sweep(prepared: Sequence[PreparedFile], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Corpus score for every candidate threshold, highest threshold first (NAB's calcScoreByThreshold)."""
    scores = np.concatenate([r.scores for r in prepared]) if prepared else np.empty(0)
    weights = np.concatenate([_weights(r, profile) for r in prepared]) if prepared else np.empty(0)
    # Window ids made unique across the corpus.
    offsets = np.cumsum([0] + [r.labelled for r in prepared[:-1]])
    window = np.concatenate([np.where(r.window >= 0, r.window + off, -1) for r, off in zip(prepared, offsets)]) if prepared else np.empty(0, dtype=np.int64)
    base = -profile.fn * sum(r.windows for r in prepared)
    top = max(1.1, float(np.nextafter(scores.max(), np.inf))) if scores.size else 1.1
    if not scores.size:
        return np.array([top]), np.array([base])

    order = np.argsort(-scores, kind="stable")
    s, w, g = scores[order], weights[order], window[order]
    increments = np.where(g < 0, w, 0.0)
    in_window = g >= 0
    if in_window.any():
        # A window contributes the best (earliest) detection so far, replacing its -fn.
        wf = pd.DataFrame({"g": g[in_window], "w": w[in_window]})
        best = wf.groupby("g", sort=False)["w"].cummax()
        before = best.groupby(wf["g"], sort=False).shift(1, fill_value=-profile.fn)
        increments[in_window] = np.maximum(best.to_numpy(), -profile.fn) - np.maximum(before.to_numpy(), -profile.fn)
    totals = base + np.cumsum(increments)
    last_of_run = np.append(s[1:] != s[:-1], True)
    thresholds = np.concatenate([[top], s[last_of_run]])
    return thresholds, np.concatenate([[base], totals[last_of_run]])


def _score_file(rows: PreparedFile, profile: Profile, threshold: float) -> FileScore:
    weights = _weights(rows, profile)
    detected = rows.scores >= threshold
    outside = rows.window < 0
    raw = float(weights[detected & outside].sum())
    detected_windows = 0
    for w in np.unique(rows.window[~outside]):
        hits = detected & (rows.window == w)
        if hits.any():
            raw += float(weights[hits].max())
            detected_windows += 1
        else:
            raw -= profile.fn
    return FileScore(
        raw=raw,
        tp=int((detected & ~outside).sum()),
        fp=int((detected & outside).sum()),
        fn=int((~detected & ~outside).sum()),
        tn=int((~detected & outside).sum()),
        windows=rows.windows,
        detected_windows=detected_windows,
    )


def _resolve_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown NAB profile {profile!r}; choose one of {', '.join(PROFILES)}") from None


def _normalise_key(path: str) -> str:
    return Path(path).as_posix()


def prepare_corpus(
    scores: Mapping[str, pd.DataFrame], windows: Mapping[str, Sequence[Window]], percent: float = PROBATION_PERCENT
) -> dict[str, PreparedFile]:
    """Each file's scored rows, placed in its windows once, to be scored by any profile, threshold
    or subset of files (cross-validation scores many subsets of one replay)."""
    labelled = {_normalise_key(k): v for k, v in windows.items()}
    prepared: dict[str, PreparedFile] = {}
    for path, frame in scores.items():
        key = _normalise_key(path)
        if key not in labelled:
            raise ValueError(f"no label windows for {key!r}; every scored file needs an entry (an empty list if it has no anomaly)")
        prepared[key] = _prepare(key, frame, labelled[key], percent)
    return prepared


def score_prepared(
    prepared: Mapping[str, PreparedFile], profile: str | Profile = "standard", threshold: float | None = None
) -> NabResult:
    """NAB score of prepared files (see :func:`prepare_corpus`); ``threshold=None`` optimises it over them.

    Over files without any labelled window (``perfect == null``) the normalised score is NaN: a
    detector can only lose points there, and the raw score says how many.
    """
    profile = _resolve_profile(profile)
    rows = list(prepared.values())
    if threshold is None:
        thresholds, totals = _sweep(rows, profile)
        # First best = highest threshold among ties, as NAB's stable sort picks.
        threshold = float(thresholds[int(np.argmax(totals))])
    per_file = {path: _score_file(r, profile, threshold) for path, r in prepared.items()}
    raw = float(sum(f.raw for f in per_file.values()))
    null = -profile.fn * sum(r.windows for r in rows)
    perfect = profile.tp * sum(r.labelled for r in rows)
    normalized = 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")
    return NabResult(profile.name, threshold, normalized, raw, null, perfect, per_file)


def score_corpus(
    scores: Mapping[str, pd.DataFrame],
    windows: Mapping[str, Sequence[Window]],
    profile: str | Profile = "standard",
    threshold: float | None = None,
    probation_percent: float = PROBATION_PERCENT,
) -> NabResult:
    """NAB score of a detector's output over a corpus.

    ``scores`` maps each file's relative path to a frame with ``timestamp`` and ``anomaly_score``
    columns (one row per row of the data file). ``threshold=None`` optimises it over the whole
    corpus for this profile, as NAB does; pass a number to score at a fixed threshold.
    """
    return score_prepared(prepare_corpus(scores, windows, probation_percent), _resolve_profile(profile), threshold)


def score_all_profiles(
    scores: Mapping[str, pd.DataFrame],
    windows: Mapping[str, Sequence[Window]],
    probation_percent: float = PROBATION_PERCENT,
) -> dict[str, NabResult]:
    """:func:`score_corpus` for each of NAB's three profiles, each with its own optimised threshold."""
    prepared = prepare_corpus(scores, windows, probation_percent)
    return {name: score_prepared(prepared, profile, None) for name, profile in PROFILES.items()}
