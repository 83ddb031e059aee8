"""A bounded rolling window per signal: one (series x step-slot) array, merged in place each cycle.

Prometheus evaluates a range query at ``start + k * step``, and the collector always asks for
step-aligned starts, so every series of a signal lives on one shared time grid. Each signal
therefore keeps one float64 matrix, a row per series and a column per step slot, plus one
timestamp array for all its rows (instead of a pair of arrays per series: half the memory, and a
merge is a few numpy calls per signal rather than several Python calls per series):

* a fetched chunk is written with one scatter (``values[rows, columns] = points``) and one
  vectorised pass that turns +/-Inf into NaN;
* a slot with no sample is NaN, exactly like a sample Prometheus reports as ``NaN``: detectors
  already treat both as "no value here";
* each row remembers the first and the last slot its series reported, so a series that stopped
  reporting is told apart from one whose newest value happens to be NaN.

Columns live in ``[lo, hi)`` of an array with 1/8 headroom. When a cycle runs past the end, the
live columns slide to the front of the same array if no view of it is alive any more (the steady
case: a frame's views are dropped when its cycle ends), so a steady daemon allocates no new
matrix; if a view handed out earlier is still held, they move to a new array instead, so such a
view never sees its data change.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aiops.collect.decode import Block, RawSeries

LabelKey = tuple[tuple[str, str], ...]

_MIN_ROWS = 16
_MIN_COLUMNS = 64
_NO_SLOT = np.iinfo(np.int64).min // 2


def label_key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _headroom(n: int, minimum: int) -> int:
    # 1/8 headroom: a full window gains a column a cycle while one expires, so the matrix moves
    # once every window/8 cycles (amortised O(1) a point) at +12.5 % memory.
    return max(minimum, n + n // 8)


@dataclass(frozen=True)
class SeriesView:
    """One series of a signal window: views of its row, from its first to its last reported slot."""

    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


class SignalWindow:
    """Every series of one signal on the step grid, at most ``lookback_seconds`` old."""

    def __init__(self, lookback_seconds: float, step_seconds: float) -> None:
        if not step_seconds > 0:
            raise ValueError(f"step must be positive, got {step_seconds!r}")
        self.lookback_seconds = lookback_seconds
        self.step = float(step_seconds)
        self._span = int(lookback_seconds // self.step) + 1  # slots a full window holds
        self.keys: dict[LabelKey, int] = {}
        self.labels: list[dict[str, str] | None] = []
        self._free: list[int] = []
        self._base = 0  # absolute slot (time / step) of column 0
        self._lo = self._hi = 0  # live columns
        self._values = np.full((0, 0), np.nan)
        self._ts: np.ndarray = np.empty(0)
        self.first = np.empty(0, dtype=np.int64)  # absolute slots; _NO_SLOT for a free row
        self.last = np.empty(0, dtype=np.int64)
        self._fetch_from: int | None = None
        self._present: np.ndarray = np.zeros(0, dtype=bool)
        # How often the live columns reached the end of the arrays: slid to the front in place
        # (no view of them alive), or moved to new arrays (a view of them still held).
        self.slides = 0
        self.moves = 0
        # Bumped whenever a row is given to a series or taken back: a row mapping remembered for
        # one label list (``_rows_for``) holds while it has not moved.
        self._keys_version = 0
        self._rows_memo: tuple[Sequence[dict[str, str]], int, np.ndarray] | None = None

    # ------------------------------------------------------------------ storage
    def _slot(self, t: float) -> int:
        return int(round(t / self.step))

    def _ensure_columns(self, low: int, high: int) -> None:
        """Make absolute slots [low, high] addressable (they are never older than the window)."""
        if self._values.shape[1] == 0 or not self.keys:
            # span + 1: what a full window asks for when it next runs out of room (its live
            # columns plus the new one), so that it slides in place then rather than moving.
            cols = _headroom(max(self._span + 1, high - low + 1), _MIN_COLUMNS)
            self._base, self._lo, self._hi = low, 0, 0
            self._values = np.full((self._values.shape[0], cols), np.nan)
            self._ts = (self._base + np.arange(cols)) * self.step
            return
        if high - self._base < self._values.shape[1]:
            return
        keep_from = self._base + self._lo
        live = self._hi - self._lo
        cols = _headroom(max(self._span, high - keep_from + 1), _MIN_COLUMNS)
        if cols == self._values.shape[1] and self._unshared():
            # The steady case: nothing outside the window sees the arrays any more, so the live
            # columns slide to the front of the same ones (allocating and freeing a whole matrix
            # every window/8 cycles churned the heap: bench/README.md, issue 17 memory).
            self._slide(live)
            self.slides += 1
            return
        # Move the live columns to a new array (views handed out earlier keep their data).
        values = np.full((self._values.shape[0], cols), np.nan)
        values[:, :live] = self._values[:, self._lo : self._hi]
        self._values, self._base, self._lo, self._hi = values, keep_from, 0, live
        self._ts = (self._base + np.arange(cols)) * self.step
        self.moves += 1

    def _unshared(self) -> bool:
        """True when the only references to the value matrix and the time grid are the window's
        own: no view handed out (a view holds its base array) is alive anywhere. ``getrefcount``
        counts its argument too, hence 2."""
        return sys.getrefcount(self._values) == 2 and sys.getrefcount(self._ts) == 2

    def _slide(self, live: int) -> None:
        """Copy columns [lo, hi) to [0, hi - lo) in place and clear the rest; base moves by lo."""
        shift, values = self._lo, self._values
        # In blocks no wider than the shift, so a block's source and destination never overlap
        # (an overlapping assignment would make numpy copy the whole source first).
        for at in range(0, live, max(shift, 1)):
            width = min(shift, live - at)
            values[:, at : at + width] = values[:, shift + at : shift + at + width]
        values[:, live:] = np.nan
        self._base += shift
        self._lo, self._hi = 0, live
        np.multiply(self._base + np.arange(self._ts.shape[0], dtype=np.float64), self.step, out=self._ts)

    def _rows_for(self, labels: Sequence[dict[str, str]]) -> np.ndarray:
        memo = self._rows_memo
        if memo is not None and memo[0] is labels and memo[1] == self._keys_version:
            # The very label list of an earlier chunk (the client's LabelMemo hands out the same
            # list while the answer's labels do not change), and no row was given or taken since.
            return memo[2]
        keys = list(map(label_key, labels))
        known = list(map(self.keys.get, keys))
        unseen = known.count(None)
        if not unseen:  # a steady cycle: every series has its row already
            rows = np.array(known, dtype=np.int64)
            rows.flags.writeable = False
            self._rows_memo = (labels, self._keys_version, rows)
            return rows
        self._keys_version += 1
        rows = np.empty(len(labels), dtype=np.int64)
        new: list[int] = []
        if unseen > len(self._free):
            # Grow once for the whole chunk: growing a row at a time copies the matrix ~log(n)
            # times and holds two copies at the last one (the cold fetch's peak memory).
            self._grow_rows(unseen - len(self._free))
        for i, (key, lab) in enumerate(zip(keys, labels)):
            r = self.keys.get(key)
            if r is None:
                r = self._free.pop()
                self.keys[key] = r
                self.labels[r] = dict(lab)
                new.append(r)
            rows[i] = r
        if new:
            # A reused row is all NaN from ``lo`` on (its series had no value left there), and
            # its older columns are out of sight: nothing to clear, no view disturbed.
            fresh = np.array(new, dtype=np.int64)
            self.first[fresh] = _NO_SLOT
            self.last[fresh] = _NO_SLOT
        return rows

    def _grow_rows(self, extra: int) -> None:
        old = self._values.shape[0]
        n = _headroom(old + extra, _MIN_ROWS)
        values = np.full((n, self._values.shape[1]), np.nan)
        values[:old] = self._values
        self._values = values
        self.first = np.concatenate([self.first, np.full(n - old, _NO_SLOT, dtype=np.int64)])
        self.last = np.concatenate([self.last, np.full(n - old, _NO_SLOT, dtype=np.int64)])
        self._present = np.concatenate([self._present, np.zeros(n - old, dtype=bool)])
        self.labels.extend([None] * (n - old))
        self._free.extend(range(n - 1, old - 1, -1))

    # ------------------------------------------------------------------ a fetch, chunk by chunk
    def begin(self, fetched_from: float) -> None:
        """A fetch of [fetched_from, ...] starts: what it covers will be replaced by what it brings.

        Late samples and recording rules can change the newest evaluations, so the overlap the
        collector refetches replaces the points held; a series absent from the fetch keeps only
        its points before ``fetched_from``.
        """
        f = self._slot(fetched_from)
        self._fetch_from = f
        self._present = np.zeros(self._values.shape[0], dtype=bool)
        if self.keys and f - self._base < self._hi:
            col = max(self._lo, f - self._base)
            self._values[:, col : self._hi] = np.nan
            self._hi = col

    def write(self, block: Block) -> None:
        """Write one decoded chunk (any order, duplicates: the last value given wins)."""
        if self._fetch_from is None:
            raise RuntimeError("write() outside a fetch: call begin() first")
        if not block.labels:
            return
        keep = block.counts > 0
        if keep.all():
            labels, counts = block.labels, block.counts
        else:
            labels = [lab for lab, k in zip(block.labels, keep.tolist()) if k]
            counts = block.counts[keep]
        if not labels:
            return
        slots = np.rint(block.timestamps / self.step).astype(np.int64)
        # The collector never asks for points older than the window: nothing to keep there.
        low, high = int(slots.min()), int(slots.max())
        self._ensure_columns(min(low, self._fetch_from), high)
        rows = self._rows_for(labels)
        which = np.repeat(np.arange(rows.shape[0]), counts)  # index into ``rows`` of each point
        cols = slots - self._base
        values = block.values
        inside = cols >= self._lo
        if not inside.all():  # points older than the live window (a clock far behind): dropped
            which, cols, values, slots = which[inside], cols[inside], values[inside], slots[inside]
            if cols.shape[0] == 0:
                return
        flat = rows[which] * self._values.shape[1] + cols
        if flat.shape[0] > 1 and not (np.diff(flat) > 0).all():
            # Out of order or duplicated (a misbehaving proxy or remote-read source): for a
            # repeated (series, slot) keep the last value given.
            order = np.argsort(flat, kind="stable")
            flat, values, which, slots = flat[order], values[order], which[order], slots[order]
            last = np.append(flat[1:] != flat[:-1], True)
            flat, values, which, slots = flat[last], values[last], which[last], slots[last]
        # +/-Inf (a division by a zero limit) carries no usable magnitude: a gap, like NaN.
        values = np.where(np.isinf(values), np.nan, values)
        self._values.reshape(-1)[flat] = values
        self._hi = max(self._hi, int(cols.max()) + 1)
        # First and last reported slot of each series of the chunk.
        lo = np.full(rows.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(rows.shape[0], _NO_SLOT, dtype=np.int64)
        np.minimum.at(lo, which, slots)
        np.maximum.at(hi, which, slots)
        first = self.first[rows]
        self.first[rows] = np.where(first == _NO_SLOT, lo, np.minimum(first, lo))
        # What a series held before this fetch ends before it; earlier chunks of the fetch count.
        held = self.last[rows]
        held = np.where(self._present[rows], held, np.minimum(held, self._fetch_from - 1))
        self.last[rows] = np.maximum(held, hi)
        self._present[rows] = True

    def end(self) -> None:
        """The fetch is complete: a series it did not bring ends at its last value before it."""
        f = self._fetch_from
        if f is None:
            return
        self._fetch_from = None
        n = self.last.shape[0]
        gone = np.flatnonzero(~self._present[:n] & (self.last >= f) & (self.first != _NO_SLOT))
        if gone.shape[0] == 0:
            return
        # Rare (series that just stopped reporting): their newest value held before ``f``.
        seg = self._values[gone, self._lo : max(self._lo, f - self._base)]
        known = ~np.isnan(seg)
        newest = seg.shape[1] - 1 - np.argmax(known[:, ::-1], axis=1) if seg.shape[1] else np.zeros(0, dtype=np.int64)
        has = known.any(axis=1) if seg.shape[1] else np.zeros(gone.shape[0], dtype=bool)
        self.last[gone] = np.where(has, self._base + self._lo + newest, _NO_SLOT)

    def merge(self, fetched_from: float, series: Sequence[RawSeries]) -> None:
        """One whole fetch at once (tests and callers that hold RawSeries)."""
        self.begin(fetched_from)
        self.write(Block.from_series(series))
        self.end()

    def trim(self, now: float) -> None:
        """Forget slots older than the window and series with no point left in it."""
        cutoff = int(np.ceil((now - self.lookback_seconds) / self.step - 1e-9))
        if self.keys:
            col = min(max(self._lo, cutoff - self._base), self._hi)
            # Expired columns are left as they are (views of earlier cycles may still read them);
            # they are dropped when the live columns next move to a new array.
            self._lo = max(self._lo, col)
        live = np.array(list(self.keys.values()), dtype=np.int64)
        if live.shape[0] == 0:
            return
        self.first[live] = np.maximum(self.first[live], cutoff)
        gone = live[self.last[live] < self.first[live]]
        if gone.shape[0]:
            self._keys_version += 1
            for r in gone.tolist():
                lab = self.labels[r]
                assert lab is not None
                del self.keys[label_key(lab)]
                self.labels[r] = None
                self._free.append(r)
            self.first[gone] = _NO_SLOT
            self.last[gone] = _NO_SLOT

    # ------------------------------------------------------------------ reading
    def rows(self) -> Iterator[tuple[LabelKey, dict[str, str], np.ndarray, np.ndarray, float]]:
        """(key, labels, timestamps, values, newest) of each series: views of its row and the shared
        grid, and its last timestamp as a float (what the collector asks of every series)."""
        values, ts, base, labels, step = self._values, self._ts, self._base, self.labels, self.step
        first, last = self.first.tolist(), self.last.tolist()
        for key, r in self.keys.items():
            a, b = first[r] - base, last[r] - base + 1
            if b > a:
                # ``ts`` is (base + column) * step, so this is ts[b - 1], bit for bit.
                yield key, labels[r], ts[a:b], values[r, a:b], float(last[r]) * step  # type: ignore[misc]

    def series(self) -> Iterator[tuple[LabelKey, SeriesView]]:
        for key, labels, ts, vs, _ in self.rows():
            yield key, SeriesView(labels, ts, vs)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self._values.nbytes + self._ts.nbytes + self.first.nbytes + self.last.nbytes)


class RollingWindow:
    """A :class:`SignalWindow` per signal (all on the collector's step)."""

    def __init__(self, lookback_seconds: float, step_seconds: float = 60.0) -> None:
        self.lookback_seconds = lookback_seconds
        self.step_seconds = step_seconds
        self._signals: dict[str, SignalWindow] = {}

    def get(self, name: str) -> SignalWindow | None:
        return self._signals.get(name)

    def signal(self, name: str) -> SignalWindow:
        win = self._signals.get(name)
        if win is None:
            win = self._signals[name] = SignalWindow(self.lookback_seconds, self.step_seconds)
        return win

    def merge(self, signal: str, fetched_from: float, series: Sequence[RawSeries]) -> None:
        self.signal(signal).merge(fetched_from, series)

    def drop(self, which: Callable[[str], bool]) -> None:
        """Forget the windows whose name ``which`` picks (a shard handed back to another replica)."""
        for name in [n for n in self._signals if which(n)]:
            del self._signals[name]

    def trim(self, now: float) -> None:
        for name, win in list(self._signals.items()):
            win.trim(now)
            if not len(win):
                del self._signals[name]

    def items(self, signal: str) -> list[SeriesView]:
        win = self._signals.get(signal)
        return [view for _, view in win.series()] if win is not None else []

    def keyed(self, signal: str) -> dict[LabelKey, SeriesView]:
        win = self._signals.get(signal)
        return dict(win.series()) if win is not None else {}

    @property
    def series_count(self) -> int:
        return sum(len(w) for w in self._signals.values())

    @property
    def nbytes(self) -> int:
        return sum(w.nbytes for w in self._signals.values())
