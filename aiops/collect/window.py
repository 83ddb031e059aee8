"""A bounded rolling window of points per series, merged incrementally each cycle.

Each series keeps its points in preallocated arrays with a live slice ``[start, end)``: a steady
cycle appends its few new points and advances ``start`` past expired ones, so the work per cycle is
proportional to the new points, not to the window (concatenating whole windows every cycle made
collection cost O(series x window)). The arrays handed to detectors are views of the live slice;
they stay valid for the cycle they were taken in.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from aiops.collect.prometheus import RawSeries

LabelKey = tuple[tuple[str, str], ...]

_MIN_CAPACITY = 64


def _capacity(n: int) -> int:
    # 1/8 headroom: a full window grows by a few points a cycle while the same number expire, so
    # it is reallocated once every window/8 cycles (amortised O(1) a point) at +12.5 % memory.
    return max(_MIN_CAPACITY, n + n // 8)


class _Buffer:
    __slots__ = ("_ts", "_vs", "end", "labels", "start")

    def __init__(self, labels: dict[str, str], timestamps: np.ndarray, values: np.ndarray) -> None:
        self.labels = labels
        n = timestamps.shape[0]
        cap = _capacity(n)
        self._ts = np.empty(cap, dtype=np.float64)
        self._vs = np.empty(cap, dtype=np.float64)
        self._ts[:n], self._vs[:n] = timestamps, values
        self.start, self.end = 0, n

    @property
    def timestamps(self) -> np.ndarray:
        return self._ts[self.start : self.end]

    @property
    def values(self) -> np.ndarray:
        return self._vs[self.start : self.end]

    def __len__(self) -> int:
        return self.end - self.start

    def cut_from(self, t: float) -> None:
        """Drop the points at or after ``t`` (they are about to be refetched)."""
        ts, end, start = self._ts, self.end, self.start
        # Steady cycles refetch a couple of points: walk back, binary-search only a long tail.
        steps = 0
        while end > start and ts[end - 1] >= t:
            end -= 1
            steps += 1
            if steps == 8 and end > start and ts[end - 1] >= t:
                end = start + int(np.searchsorted(ts[start:end], t, side="left"))
                break
        self.end = end

    def append(self, timestamps: np.ndarray, values: np.ndarray) -> None:
        n = timestamps.shape[0]
        if n == 0:
            return
        if self.end + n > self._ts.shape[0]:
            # Reallocate rather than move in place: views handed out earlier keep their values.
            live = self.end - self.start
            cap = _capacity(live + n)
            ts, vs = np.empty(cap, dtype=np.float64), np.empty(cap, dtype=np.float64)
            ts[:live], vs[:live] = self._ts[self.start : self.end], self._vs[self.start : self.end]
            self._ts, self._vs, self.start, self.end = ts, vs, 0, live
        self._ts[self.end : self.end + n] = timestamps
        self._vs[self.end : self.end + n] = values
        self.end += n

    def trim_before(self, cutoff: float) -> None:
        ts, start, end = self._ts, self.start, self.end
        steps = 0
        while start < end and ts[start] < cutoff:
            start += 1
            steps += 1
            if steps == 8 and start < end and ts[start] < cutoff:
                start += int(np.searchsorted(ts[start:end], cutoff, side="left"))
                break
        self.start = start


def _normalise(raw: RawSeries) -> tuple[np.ndarray, np.ndarray]:
    timestamps, values = raw.timestamps, raw.values
    n = timestamps.shape[0]
    if n <= 16:
        # A steady cycle's handful of points: plain Python beats numpy's per-call overhead.
        t, v = timestamps.tolist(), values.tolist()
        if all(a < b for a, b in itertools.pairwise(t)) and all(math.isfinite(x) for x in v):
            return timestamps, values
    if n > 1 and not (np.diff(timestamps) > 0).all():
        # Out of order or duplicated (a misbehaving proxy or remote-read source): sort, and for a
        # repeated timestamp keep the last value given.
        order = np.argsort(timestamps, kind="stable")
        timestamps, values = timestamps[order], values[order]
        last = np.append(timestamps[1:] != timestamps[:-1], True)
        timestamps, values = timestamps[last], values[last]
    if values.size and not np.isfinite(values).all():
        # +/-Inf (a division by a zero limit) carries no usable magnitude: treat it as a gap.
        values = np.where(np.isfinite(values), values, np.nan)
    return timestamps, values


class RollingWindow:
    """Points per (signal, label set), at most ``lookback_seconds`` old.

    A refetch overlapping earlier points replaces them (late samples and recording rules can change
    the last few evaluations). Series that stop appearing age out with the window, so the memory
    held is bounded by series x lookback / step (plus 1/8 headroom for appends).
    """

    def __init__(self, lookback_seconds: float) -> None:
        self.lookback_seconds = lookback_seconds
        self._buffers: dict[str, dict[LabelKey, _Buffer]] = {}

    def merge(self, signal: str, fetched_from: float, series: list[RawSeries]) -> None:
        buffers = self._buffers.setdefault(signal, {})
        seen: set[LabelKey] = set()
        for raw in series:
            key = tuple(sorted(raw.labels.items()))
            seen.add(key)
            timestamps, values = _normalise(raw)
            buf = buffers.get(key)
            if buf is None:
                buffers[key] = _Buffer(raw.labels, timestamps, values)
                continue
            buf.cut_from(min(fetched_from, float(timestamps[0])) if timestamps.size else fetched_from)
            buf.append(timestamps, values)
        for key, buf in buffers.items():
            if key not in seen:
                # Absent from the refetched range: drop only the points that range covered.
                buf.cut_from(fetched_from)

    def trim(self, now: float) -> None:
        cutoff = now - self.lookback_seconds
        for signal, buffers in list(self._buffers.items()):
            for key, buf in list(buffers.items()):
                buf.trim_before(cutoff)
                if len(buf) == 0:
                    del buffers[key]
            if not buffers:
                del self._buffers[signal]

    def items(self, signal: str) -> list[_Buffer]:
        return list(self._buffers.get(signal, {}).values())

    def keyed(self, signal: str) -> dict[LabelKey, _Buffer]:
        return self._buffers.get(signal, {})

    @property
    def series_count(self) -> int:
        return sum(len(b) for b in self._buffers.values())
