"""Prometheus answers decoded straight into numpy, without a Python object per sample.

A range answer is mostly samples: ``[1767225600,"0.53"]`` pairs, one Python list, float and string
each when decoded as JSON (about 150 bytes a point, and millions of tracked objects that make the
cyclic garbage collector walk the heap again and again). :func:`decode_answer` instead cuts the
``"values"`` arrays out of the body, parses the small remainder (status, labels) with the JSON
module, and hands the samples to numpy (small answers: a steady cycle's few points per series)
or to pandas' C CSV reader as ``t,v`` lines (large ones): about three times faster than the JSON
module and a fraction of the memory, measured on answers of a few thousand series (see
bench/README.md).

The cut is exact for what Prometheus and its HTTP-compatible stores write (compact JSON, sample
values as strings): outside a string a ``"`` can only open or close one, and inside one it is
escaped, so ``,"values":[`` cannot occur within a label value. Anything else (pretty-printed JSON
from a proxy, a sample the CSV reader would misparse) falls back to the plain JSON decode.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from aiops.errors import TemporaryError


@dataclass(frozen=True)
class RawSeries:
    labels: dict[str, str]
    timestamps: np.ndarray  # float64 epoch seconds, ascending, unique
    values: np.ndarray  # float64; Prometheus's NaN/Inf strings become nan/inf

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


@dataclass(frozen=True)
class Block:
    """One decoded answer (or chunk of one): the points of all its series in flat arrays.

    Series ``i`` has the label set ``labels[i]`` and the next ``counts[i]`` points of
    ``timestamps``/``values``, in the order Prometheus gave them.
    """

    labels: list[dict[str, str]]
    counts: np.ndarray  # int64, one per series
    timestamps: np.ndarray  # float64 epoch seconds
    values: np.ndarray  # float64; Prometheus's "NaN", "+Inf", "-Inf" become nan/inf

    @property
    def points(self) -> int:
        return int(self.timestamps.shape[0])

    @classmethod
    def from_series(cls, series: Sequence[RawSeries]) -> Block:
        counts = np.fromiter((len(s) for s in series), dtype=np.int64, count=len(series))
        if not series:
            return cls([], counts, np.empty(0), np.empty(0))
        ts = np.concatenate([np.asarray(s.timestamps, dtype=np.float64) for s in series])
        vs = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
        return cls([dict(s.labels) for s in series], counts, ts, vs)

    def split(self) -> list[RawSeries]:
        ends = np.cumsum(self.counts)
        starts = ends - self.counts
        return [
            RawSeries(lab, self.timestamps[a:b], self.values[a:b])
            for lab, a, b in zip(self.labels, starts.tolist(), ends.tolist())
        ]


class AnswerError(TemporaryError, ValueError):
    """The body is not a JSON object (a proxy's login page, a truncated answer): the query is
    retried next cycle."""


def _labels(result: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{str(k): str(v) for k, v in (item.get("metric") or {}).items()} for item in result]


def decode_result(result: list[dict[str, Any]]) -> Block:
    """A ``matrix`` or ``vector`` result already decoded as JSON, as one :class:`Block`."""
    points = [item.get("values") or ([item["value"]] if item.get("value") else []) for item in result]
    counts = np.fromiter(map(len, points), dtype=np.int64, count=len(points))
    pairs = list(chain.from_iterable(points))
    ts = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))
    # numpy parses the sample strings in C, Prometheus's "NaN", "+Inf" and "-Inf" included.
    vs = np.array([p[1] for p in pairs], dtype=np.float64) if pairs else np.empty(0)
    return Block(_labels(result), counts, ts, vs)


# One sample array: ``"values":[``, its ``[t,"v"]`` pairs (a sample holds no ``]``), ``]``. The
# key cannot match inside a string: there its closing quote would be escaped (``\"values\":[``).
_VALUES = re.compile(rb'"values":\[((?:\[[^\]]*\](?:,\[[^\]]*\])*)?)\]')
_SAMPLE_CHARS = re.compile(rb"[^0-9eE.+\-NaInf,\n]")
# Outside the cut samples, a member value that is not a string, an array or an object.
_BARE_VALUE = re.compile(rb'":[^"\[{]')


@dataclass(frozen=True)
class _Decoded:
    """What an answer's text without its samples decoded to."""

    rest: bytes
    answer: dict[str, Any]
    result: list[dict[str, Any]]
    has_values: list[bool]
    labels: list[dict[str, str]]


class LabelMemo:
    """The last answer's label text and what it decoded to, for one query.

    A steady cycle asks each signal's query for a few new points of the same series as the cycle
    before, and Prometheus writes them in the same order with the same labels: the answer's text
    without its samples is then byte for byte the last one, and so is its decode. Reusing it
    skips the JSON decode of the labels and hands out the very same label list, which the
    window recognises (aiops/collect/window.py) so it skips mapping each series to its row.
    """

    def __init__(self) -> None:
        self._last: _Decoded | None = None

    def get(self, rest: bytes) -> _Decoded | None:
        last = self._last
        return last if last is not None and last.rest == rest else None

    def put(self, decoded: _Decoded) -> None:
        self._last = decoded


def decode_answer(body: bytes, memo: LabelMemo | None = None) -> tuple[dict[str, Any], Block | None]:
    """The answer's JSON without its samples, and its samples as a Block (None: not a result).

    ``memo``: the same query's last answer (:class:`LabelMemo`); the result is the same with or
    without it. Raises :class:`AnswerError` when the body is not JSON.
    """
    # [before, samples, between, samples, ..., after]: one pass in C, not a step per series.
    parts = _VALUES.split(body)
    regions = parts[1::2]
    if not regions:
        return _plain(body)
    rest = b'"values":[]'.join(parts[0::2])
    del parts
    known = memo.get(rest) if memo is not None else None
    if known is None:
        try:
            answer = json.loads(rest)
        except ValueError:
            return _plain(body)
        result = _result_of(answer)
        if result is None:
            return answer, None
        has_values = [("values" in item) for item in result]
        if sum(has_values) != len(regions) or any(item["values"] for item in result if "values" in item):
            return _plain(body)
        labels = _matrix_labels(rest, result) or _labels(result)
    else:
        answer, result, has_values, labels = known.answer, known.result, known.has_values, known.labels
    per_region = [region.count(b"],[") + 1 if region else 0 for region in regions]
    if len(regions) == len(result):  # a matrix: every series has its "values"
        counts = np.array(per_region, dtype=np.int64)
    else:
        counts = np.zeros(len(result), dtype=np.int64)
        counts[np.array(has_values, dtype=bool)] = per_region
    samples = _samples(regions, int(counts.sum()))
    if samples is None:
        return _plain(body)
    if memo is not None and known is None:
        memo.put(_Decoded(rest, answer, result, has_values, labels))
    return answer, Block(labels, counts, *samples)


def _matrix_labels(rest: bytes, result: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """The label sets as the JSON module gave them, when the answer's text shows they hold only
    strings (a steady cycle decodes thousands of them; copying each with ``str()`` was a tenth of
    its decode). None: look at each one (:func:`_labels`).

    Sure from counts alone: every series has ``"metric":{`` and ``"values":[``, the answer has
    ``"data":{`` and ``"result":[``; any other object or array, anywhere, adds to those counts (a
    quote inside a string is escaped, which only adds more), and no member is a bare number,
    ``true``, ``false`` or ``null``.
    """
    metrics = [item.get("metric") for item in result]
    n = len(result)
    if (
        sum(1 for m in metrics if isinstance(m, dict)) != n
        or sum(1 for item in result if "values" in item) != n
        or rest.count(b'":{') != n + 1
        or rest.count(b'":[') != n + 1
        or _BARE_VALUE.search(rest)
    ):
        return None
    return metrics  # type: ignore[return-value]


# Below this many points an answer's samples are parsed by numpy from a list of tokens; above it
# by pandas' C CSV reader, which costs ~0.3 ms a call before the first point but less per point.
# A steady cycle's answers (a few points per series) are far below it, a cold cycle's chunks far
# above (bench/README.md, "Issue 17: steady collect").
_SMALL_ANSWER_POINTS = 1024


def _samples(regions: list[bytes], points: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Timestamps and values of the ``[t,"v"],...`` regions; None where they are not plain samples."""
    if points == 0:
        return np.empty(0), np.empty(0)
    sep = b"," if points < _SMALL_ANSWER_POINTS else b"\n"
    text = sep.join(r for r in regions if r).replace(b"],[", sep).translate(None, b'"[]')
    if _SAMPLE_CHARS.search(text):
        return None
    try:
        if points < _SMALL_ANSWER_POINTS:
            flat = np.array(text.split(b","), dtype=np.float64)
            if flat.shape[0] != 2 * points:
                return None
            return flat[0::2].copy(), flat[1::2].copy()
        # Only Prometheus's own NaN is missing: by default the reader also takes an empty field
        # for NaN, where the JSON decode refuses it.
        table = pd.read_csv(
            io.BytesIO(text), header=None, names=["t", "v"], dtype=np.float64, engine="c",
            keep_default_na=False, na_values=["NaN", "nan"],
        ).to_numpy()
    except (ValueError, pd.errors.ParserError):
        return None
    if table.shape[0] != points:
        return None
    return np.ascontiguousarray(table[:, 0]), np.ascontiguousarray(table[:, 1])


def _result_of(answer: Any) -> list[dict[str, Any]] | None:
    if not isinstance(answer, dict):
        return None
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") not in ("matrix", "vector"):
        return None  # an error, or a scalar/string result: the caller says what is wrong
    result = data.get("result")
    return result if isinstance(result, list) and all(isinstance(i, dict) for i in result) else None


def _plain(body: bytes) -> tuple[dict[str, Any], Block | None]:
    try:
        answer = json.loads(body)
    except ValueError:
        raise AnswerError("not JSON") from None
    if not isinstance(answer, dict):
        raise AnswerError("not a JSON object")
    result = _result_of(answer)
    return answer, (decode_result(result) if result is not None else None)
