"""A bounded rolling window of points per series, merged incrementally each cycle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiops.collect.prometheus import RawSeries

LabelKey = tuple[tuple[str, str], ...]


@dataclass
class _Buffer:
    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray


class RollingWindow:
    """Points per (signal, label set), at most ``lookback_seconds`` old.

    A refetch overlapping earlier points replaces them (late samples and recording rules can change
    the last few evaluations). Series that stop appearing age out with the window, so the memory
    held is bounded by series x lookback / step.
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
            timestamps, values = raw.timestamps, raw.values
            if timestamps.size > 1 and not (np.diff(timestamps) > 0).all():
                # Out of order or duplicated (a misbehaving proxy or remote-read source): sort, and for
                # a repeated timestamp keep the last value given.
                order = np.argsort(timestamps, kind="stable")
                timestamps, values = timestamps[order], values[order]
                last = np.append(timestamps[1:] != timestamps[:-1], True)
                timestamps, values = timestamps[last], values[last]
            if values.size and not np.isfinite(values).all():
                # +/-Inf (a division by a zero limit) carries no usable magnitude: treat it as a gap.
                values = np.where(np.isfinite(values), values, np.nan)
            buf = buffers.get(key)
            if buf is None:
                buffers[key] = _Buffer(raw.labels, timestamps, values)
                continue
            keep = buf.timestamps < min(fetched_from, timestamps[0] if timestamps.size else fetched_from)
            buf.timestamps = np.concatenate((buf.timestamps[keep], timestamps))
            buf.values = np.concatenate((buf.values[keep], values))
        for key, buf in buffers.items():
            if key not in seen:
                # Absent from the refetched range: drop only the points that range covered.
                keep = buf.timestamps < fetched_from
                if not keep.all():
                    buf.timestamps, buf.values = buf.timestamps[keep], buf.values[keep]

    def trim(self, now: float) -> None:
        cutoff = now - self.lookback_seconds
        for signal, buffers in list(self._buffers.items()):
            for key, buf in list(buffers.items()):
                if buf.timestamps.size and buf.timestamps[0] < cutoff:
                    start = int(np.searchsorted(buf.timestamps, cutoff, side="left"))
                    buf.timestamps, buf.values = buf.timestamps[start:], buf.values[start:]
                if buf.timestamps.size == 0:
                    del buffers[key]
            if not buffers:
                del self._buffers[signal]

    def items(self, signal: str) -> list[_Buffer]:
        return list(self._buffers.get(signal, {}).values())

    def forget(self, signal: str) -> None:
        self._buffers.pop(signal, None)

    @property
    def series_count(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    @property
    def point_count(self) -> int:
        return sum(buf.timestamps.size for b in self._buffers.values() for buf in b.values())
