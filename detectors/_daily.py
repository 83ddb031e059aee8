"""Has the series been here at this time of day before, and did it fail then?

A daily peak near the wall (a KV cache at 0.9 every lunchtime, a batch window every night) climbs
the same way each day and stops short of failing. A trend extrapolated from the morning climb
says "full by noon" every day. So the forecaster asks the previous days: at this time of day, in
the horizon that followed, did the series reach the level it is at now, and did it stay below the
failure point? Each such day is one more benign precedent (Laplace's rule, as for resets). A leak
on top of a daily pattern outgrows the previous days' levels and loses the discount.

Only 5-minute maxima of the last few days are kept per series (a float32 each, ~3.5 KiB per series
for three days), the same bins in the daemon and in a backtest, so both score alike.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from aiops.model import Series
from detectors._isolation import isolated
from detectors._univariate import tails

BIN_SECONDS = 300.0
DAY_SECONDS = 86400.0
BINS_PER_DAY = int(DAY_SECONDS / BIN_SECONDS)
# The layout of a saved series' bins (bins_to_bytes); a body of another format is learnt again.
FORMAT = 1
# New points a cycle folds in with plain Python in DailyMaxima.update (more: the numpy merge).
_FEW_POINTS = 64
# The newest points of each series DailyMaxima.update_many reads at once: the last bin held is
# folded again (a refetch may have changed it), so this covers a bin of 1-minute points and a
# few new ones; a series with more points from the last bin on takes DailyMaxima.update.
_TAIL = 12


def bin_maxima(t: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray]:
    """(index of the first bin, the maximum of each 5-minute bin from there on; NaN where empty)."""
    ok = np.isfinite(y)
    if not ok.any():
        return 0, np.zeros(0)
    bins = np.floor(t[ok] / BIN_SECONDS).astype(np.int64)
    first = int(bins[0])
    dense = np.full(int(bins[-1]) - first + 1, np.nan)
    np.fmax.at(dense, bins - first, y[ok])
    return first, dense


def merged_bins(old: tuple[int, np.ndarray] | None, t: np.ndarray, y: np.ndarray, keep: int) -> tuple[int, np.ndarray]:
    """The bins ``old`` (first bin, bins; None: none yet) with the points ``(t, y)`` folded in,
    as float64, the newest ``keep`` of them. Only the points from the last bin held on are read:
    a cycle adds a bin or two."""
    if old is not None and old[1].shape[0]:
        cut = int(np.searchsorted(t, (old[0] + old[1].shape[0] - 1) * BIN_SECONDS, side="left"))
        t, y = t[cut:], y[cut:]
    return max_bins(old, bin_maxima(t, y), keep)


def max_bins(old: tuple[int, np.ndarray] | None, new: tuple[int, np.ndarray], keep: int) -> tuple[int, np.ndarray]:
    """Two spans of bins as one: their union, the maximum of both where they overlap, as float64,
    the newest ``keep`` bins of it (a series' points folded in, or another series' days)."""
    first, dense = new[0], np.asarray(new[1], dtype=np.float64)
    if old is not None and old[1].shape[0] and dense.shape[0]:
        o_first, o_dense = old[0], old[1].astype(np.float64)
        start, end = min(first, o_first), max(first + dense.shape[0], o_first + o_dense.shape[0])
        merged = np.full(end - start, np.nan)
        merged[o_first - start : o_first - start + o_dense.shape[0]] = o_dense
        part = merged[first - start : first - start + dense.shape[0]]
        merged[first - start : first - start + dense.shape[0]] = np.fmax(part, dense)
        first, dense = start, merged
    elif old is not None and not dense.shape[0]:
        first, dense = old[0], old[1].astype(np.float64)
    if dense.shape[0] > keep:
        first, dense = first + dense.shape[0] - keep, dense[-keep:]
    return first, dense


def as_float32(a: np.ndarray) -> np.ndarray:
    """``a`` as the bins hold it: past float32's range is +/-inf (a broken exporter's 1e300 is a
    record all the same), without a RuntimeWarning in the daemon's log each cycle."""
    with np.errstate(over="ignore"):
        return np.asarray(a, dtype=np.float32)


class DailyMaxima:
    """The daemon's per-series bins, kept across cycles for ``days`` days (the frame holds hours).

    All series share one float32 matrix, a row each, used as a ring: bin ``b`` of a series sits
    in column ``b % (days + 1) * BINS_PER_DAY`` of its row, and the row's span ``[first, end)``
    says which bins are held (the columns outside it are stale and never read). A steady cycle
    brings every series a point or two: :meth:`update_many` folds them in for a whole signal with
    a few numpy calls, where a per-series update cost ~10 us of Python each (most of the
    exhaustion detector's steady cycle at 10k series). Anything unusual for a series (a new one,
    a long refetch, a gap of several bins) takes the per-series path, which keeps the same bins.
    """

    def __init__(self, days: int) -> None:
        self.keep = (days + 1) * BINS_PER_DAY
        self._rows: dict[Hashable, int] = {}
        self._free: list[int] = []
        self._bins = np.full((0, self.keep), np.nan, dtype=np.float32)
        self._first = np.zeros(0, dtype=np.int64)
        self._end = np.zeros(0, dtype=np.int64)
        # For the state file, per series: the end (bin index) of the bins it holds, and of those
        # handed over and not yet acknowledged (state_saved), by the body's key.
        self._stored: dict[Hashable, int] = {}
        self._pending: dict[str, tuple[Hashable, int]] = {}

    # -- rows ---------------------------------------------------------------------------------------
    def get(self, key: Hashable) -> tuple[int, np.ndarray] | None:
        """(first bin, float32 bins) held for ``key`` (a copy), None when none."""
        row = self._rows.get(key)
        return None if row is None else self._bins_of(row)

    def _bins_of(self, row: int) -> tuple[int, np.ndarray]:
        first, end = int(self._first[row]), int(self._end[row])
        return first, self._bins[row, np.arange(first, end) % self.keep]

    def _set(self, key: Hashable, first: int, dense: np.ndarray) -> None:
        """Hold ``dense`` (at most ``keep`` bins) from bin ``first`` on for ``key``."""
        row = self._rows.get(key)
        if row is None:
            if not self._free:
                self._grow()
            row = self._rows[key] = self._free.pop()
        n = dense.shape[0]
        self._bins[row, np.arange(first, first + n) % self.keep] = dense
        self._first[row], self._end[row] = first, first + n

    def _grow(self) -> None:
        had = self._bins.shape[0]
        more = max(16, had // 2)  # half again: a full row is ~1 KiB a day held
        self._bins = np.concatenate([self._bins, np.full((more, self.keep), np.nan, dtype=np.float32)])
        self._first = np.concatenate([self._first, np.zeros(more, dtype=np.int64)])
        self._end = np.concatenate([self._end, np.zeros(more, dtype=np.int64)])
        self._free.extend(range(had + more - 1, had - 1, -1))

    def _drop(self, key: Hashable) -> None:
        row = self._rows.pop(key)
        self._first[row] = self._end[row] = 0
        self._free.append(row)
        # Nor is it said to be in the state file any more: its body ages out there, and a rollout
        # renames every pod (a name held here for each pod series the cluster ever had).
        self._stored.pop(key, None)

    # -- folding points in --------------------------------------------------------------------------
    def merge(self, key: Hashable, t: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray]:
        """Fold the frame's points into the series' bins; return all bins held (float64)."""
        first, dense = merged_bins(self.get(key), t, y, self.keep)
        self._set(key, first, as_float32(dense))
        return first, dense

    def absorb(self, key: Hashable, first: int, dense: np.ndarray) -> None:
        """Fold another series' bins into ``key``'s (:func:`max_bins`): a departed pod's days into
        its workload's."""
        start, merged = max_bins(self.get(key), (first, dense), self.keep)
        self._set(key, start, as_float32(merged))

    def learn(self, key: Hashable, t: np.ndarray, y: np.ndarray) -> None:
        """Fold points read from history (before the daemon's first frame) into ``key``'s bins, by
        maximum per bin (:meth:`absorb`): learning days held already, restored from the state
        file, changes nothing, and any order of chunks gives the same bins."""
        first, dense = bin_maxima(np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64))
        if dense.shape[0]:
            self.absorb(key, first, dense)

    def update(self, key: Hashable, t: np.ndarray, y: np.ndarray) -> None:
        """:meth:`merge` without the result: the same bins held, at a fraction of the cost.

        A cycle brings a point or two into the last bin or the next: those few points are binned
        in plain Python, and anything else (a new series, a long refetch) goes through :meth:`merge`.
        """
        row = self._rows.get(key)
        if row is None or self._end[row] == self._first[row] or not t.shape[0]:
            self.merge(key, t, y)
            return
        last = int(self._end[row]) - 1
        cut = int(t.searchsorted(last * BIN_SECONDS))
        if t.shape[0] - cut > _FEW_POINTS:
            self.merge(key, t, y)
            return
        top: dict[int, float] = {}
        for tv, yv in zip(t[cut:].tolist(), y[cut:].tolist()):
            if math.isfinite(yv):
                b = math.floor(tv / BIN_SECONDS)  # np.floor(t / BIN_SECONDS), the same float
                m = top.get(b)
                if m is None or yv > m:
                    top[b] = yv
        if not top:
            return  # nothing new that is finite: the bins held stay as they are
        self._fold(np.full(len(top), row, dtype=np.int64), np.fromiter(top, np.int64, len(top)),
                   np.fromiter(top.values(), np.float64, len(top)))

    def _fold(self, rows: np.ndarray, bins: np.ndarray, values: np.ndarray) -> None:
        """Fold finite ``values`` into ``bins`` of ``rows`` (each bin at or after its row's last bin
        held; the points of one row next to each other), as :meth:`update` always did: the span
        grows to the newest bin and keeps the newest ``keep`` bins."""
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        touched = rows[starts]
        end = self._end[touched]
        new_end = np.maximum(end, np.maximum.reduceat(bins, starts) + 1)
        new_first = np.maximum(self._first[touched], new_end - self.keep)
        # Bins new to a row are empty: their columns still hold a bin of ``keep`` bins before.
        grown = np.minimum(new_end - end, self.keep)
        if grown.any():
            offset = np.arange(int(grown.sum())) - np.repeat(np.cumsum(grown) - grown, grown)
            self._bins[np.repeat(touched, grown), (np.repeat(end, grown) + offset) % self.keep] = np.nan
        # A bin already out of the kept span (a gap longer than the ring) would land on a kept one.
        counts = np.diff(np.r_[starts, rows.shape[0]])
        inside = bins >= np.repeat(new_first, counts)
        # fmax of the float32 held and the value rounded to float32: rounding is monotonic, so this
        # keeps what update's float64 comparison kept.
        np.fmax.at(self._bins, (rows[inside], bins[inside] % self.keep), as_float32(values[inside]))
        self._end[touched] = new_end
        self._first[touched] = new_first

    def update_many(self, keys: Sequence[Hashable], ts: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> None:
        """:meth:`update` for many series at once (one signal's, every cycle): the same bins held.

        The newest ``_TAIL`` points of every series are compared with their row's last bin in one
        pass; a series with more new points than that, a gap of more than ``_TAIL`` bins, or none
        held yet takes :meth:`update`.
        """
        rows = np.fromiter((self._rows.get(k, -1) for k in keys), np.int64, len(keys))
        lengths = np.fromiter((t.shape[0] for t in ts), np.int64, len(keys))
        slow = rows < 0
        slow[~slow] = self._end[rows[~slow]] == self._first[rows[~slow]]
        slow |= lengths == 0
        fast = np.flatnonzero(~slow)
        if fast.shape[0]:
            r = rows[fast]
            last = self._end[r] - 1
            t = tails([ts[i] for i in fast.tolist()], _TAIL)
            y = tails([ys[i] for i in fast.tolist()], _TAIL)
            with np.errstate(invalid="ignore"):
                new = t >= (last * BIN_SECONDS)[:, None]
                bins = np.floor(t / BIN_SECONDS)
                ok = new & np.isfinite(y)
                # The whole tail new (there may be more new points than it holds), or a gap.
                odd = (new[:, 0] & (lengths[fast] >= _TAIL)) | (np.where(ok, bins, -np.inf).max(axis=1) - last > _TAIL)
            slow[fast[odd]] = True
            i, j = np.nonzero(ok & ~odd[:, None])
            if i.shape[0]:
                self._fold(r[i], bins[i, j].astype(np.int64), y[i, j])
        for k in np.flatnonzero(slow).tolist():
            self.update(keys[k], ts[k], ys[k])

    def update_signal(self, detector: str, series: Sequence[Series]) -> list[Hashable]:
        """Fold one signal's series in (:meth:`update_many`) and return their keys. Should that
        raise, each series is folded in alone, and one that raises is skipped (:func:`isolated`):
        one bad series never costs the others their days."""
        keys = [s.key for s in series]
        try:
            self.update_many(keys, [s.timestamps for s in series], [s.values for s in series])
        except Exception:  # contained on purpose: each series again, alone
            for s, key in zip(series, keys):
                isolated(detector, s, self.update, key, s.timestamps, s.values)
        return keys

    # -- reading and keeping ------------------------------------------------------------------------
    def held(self) -> Iterator[tuple[Hashable, int, np.ndarray]]:
        """(key, first bin index, float32 bins) of each series held, for a detector saving them."""
        for key, row in list(self._rows.items()):
            first, dense = self._bins_of(row)
            yield key, first, dense

    def put(self, key: Hashable, first: int, dense: np.ndarray) -> None:
        """Hold saved bins for ``key`` (a restart): the newest ``days + 1`` days of them."""
        dense = as_float32(dense)
        if dense.shape[0] > self.keep:
            first, dense = first + dense.shape[0] - self.keep, dense[-self.keep :]
        self._set(key, first, dense)

    def retain(
        self,
        live: Iterable[Hashable],
        unanswered: Collection[str] = (),
        dropped: Callable[[Hashable, int, np.ndarray], None] | None = None,
    ) -> None:
        """Drop the series not in ``live``: those gone from their signal's answer. A series of a
        signal whose query failed this cycle (``unanswered``: the frame's missing signals) is not
        known to be gone, so its days stay; one Prometheus error must not cost a day of history.
        Keys are :attr:`Series.key`, (signal, labels). ``dropped`` is handed each dropped
        series' bins first."""
        keep, failed = set(live), set(unanswered)
        for key in [k for k in self._rows if k not in keep]:
            if not (failed and isinstance(key, tuple) and key and key[0] in failed):
                if dropped is not None:
                    dropped(key, *self._bins_of(self._rows[key]))
                self._drop(key)

    def forget_before(self, bin_index: int) -> None:
        """Drop the rows whose newest bin is older than ``bin_index``."""
        for key in [k for k, row in self._rows.items() if self._end[row] <= bin_index]:
            self._drop(key)

    # -- the daemon's state file (aiops.plugins.KeepsState, through the detector holding them) ----
    def saved_state(self, only: Collection[Hashable] | None = None) -> dict[str, bytes]:
        """The bins of each series that gained a bin since they were stored, by series (of the
        series in ``only``, when given).

        Once per new 5-minute bin, not every cycle: the points since (within the newest bin) come
        back from the lookback after a restart. Pending until :meth:`state_saved`.
        """
        self._pending = {}
        bodies = {}
        for key, row in self._rows.items():
            end = int(self._end[row])
            if self._stored.get(key) == end or (only is not None and key not in only):
                continue
            first, dense = self._bins_of(row)
            signal, labels = series_key(key)
            name = row_key(signal, labels)
            bodies[name] = bins_to_bytes(signal, labels, first, dense)
            self._pending[name] = (key, end)
        return bodies

    def state_saved(self, keys: Iterable[str]) -> None:
        """The pipeline stored these bodies; a series that gained a bin since stays pending."""
        for name in keys:
            held = self._pending.pop(name, None)
            if held is not None and held[0] in self._rows:  # not dropped while it was written
                self._stored[held[0]] = held[1]

    def restore_state(self, saved: Mapping[str, bytes]) -> list[str]:
        """Take up the bins a previous run saved; a problem per body it could not read (that
        series learns its days again). :meth:`stored` lists the series taken up."""
        bodies, problems = read_bodies(saved)
        for key, first, dense in bodies:
            self.take_up(key, first, dense)
        return problems

    def take_up(self, key: Hashable, first: int, dense: np.ndarray) -> None:
        """Hold bins read back from the state file (:func:`read_bodies`), as stored there."""
        self.put(key, first, dense)
        self._stored[key] = first + dense.shape[0]

    def stored(self) -> list[tuple[Hashable, float]]:
        """(key, epoch second its bins there end) of each series the state file holds, restored
        from it or saved to it."""
        return [(key, end * BIN_SECONDS) for key, end in self._stored.items()]

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._rows


def benign_days(
    t: np.ndarray,
    here: np.ndarray,
    wall: float,
    margin: np.ndarray,
    bins: tuple[int, np.ndarray],
    horizon_seconds: float,
    days: int,
) -> np.ndarray:
    """Per point: how many of the previous ``days`` reached ``here - margin`` within the horizon
    after this time of day and stayed below ``wall`` (only bins at least a day old are read)."""
    first, dense = bins
    count = np.zeros(t.shape[0])
    if dense.shape[0] == 0 or t.shape[0] == 0:
        return count
    if days < 1:
        return count
    width = max(1, int(np.ceil(horizon_seconds / BIN_SECONDS)) + 1)
    now_bin = np.floor(t / BIN_SECONDS).astype(np.int64)
    reads = [now_bin - k * BINS_PER_DAY - first for k in range(1, days + 1)]
    wanted = np.unique(np.concatenate(reads))
    wanted = wanted[(wanted >= 0) & (wanted < dense.shape[0])]
    # Forward maximum over the horizon: bin j holds max(dense[j : j + width]) (NaN: no value).
    ahead = np.full(dense.shape[0], np.nan)
    if wanted.shape[0] * width <= dense.shape[0]:
        # The daemon reads a few bins: each one's maximum directly (the same float).
        cells = wanted[:, None] + np.arange(width)[None, :]
        inside = cells < dense.shape[0]
        ahead[wanted] = np.fmax.reduce(np.where(inside, dense[np.where(inside, cells, 0)], np.nan), axis=1)
    else:
        ahead = pd.Series(dense[::-1]).rolling(width, min_periods=1).max().to_numpy()[::-1]
    for j in reads:
        inside = (j >= 0) & (j < dense.shape[0])
        peak = np.full(t.shape[0], np.nan)
        peak[inside] = ahead[j[inside]]
        # Causal: with a horizon under a day, every bin read ended before the current one began.
        with np.errstate(invalid="ignore"):
            count += (peak >= here - margin) & (peak < wall)
    return count


def row_key(signal: str, labels: tuple[tuple[str, str], ...]) -> str:
    """The series' body key in the state file, as Prometheus writes a series: ``signal{k="v"}``."""
    return signal + "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in labels) + "}"


def series_key(key: Hashable) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A held key as (signal, sorted label pairs): what :attr:`Series.key` is."""
    if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
        raise TypeError(f"not a series key: {key!r}")
    return key[0], tuple((str(k), str(v)) for k, v in key[1])


def read_bodies(saved: Mapping[str, bytes]) -> tuple[list[tuple[Hashable, int, np.ndarray]], list[str]]:
    """The (key, first bin, bins) of each saved body, and a problem per body that cannot be read."""
    bodies: list[tuple[Hashable, int, np.ndarray]] = []
    problems = []
    for name, body in saved.items():
        try:
            signal, labels, first, dense = bins_from_bytes(body)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        bodies.append(((signal, labels), first, dense))
    return bodies, problems


def bins_to_bytes(signal: str, labels: tuple[tuple[str, str], ...], first: int, dense: np.ndarray) -> bytes:
    """One series' bins as the state file stores them: a JSON header and the float32 bins in an
    npz (no pickle, like the multivariate references)."""
    header = {"format": FORMAT, "signal": signal, "labels": [list(p) for p in labels], "first": int(first)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                        bins=as_float32(dense))
    return buffer.getvalue()


def bins_from_bytes(body: bytes) -> tuple[str, tuple[tuple[str, str], ...], int, np.ndarray]:
    """(signal, labels, first bin, bins) that :func:`bins_to_bytes` wrote; ValueError when the
    body is not that (say so, learn the series again)."""
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode())
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')}, this release reads {FORMAT}")
            dense = np.asarray(data["bins"])
        if dense.dtype != np.float32 or dense.ndim != 1:
            raise ValueError(f"bins of {dense.dtype} in {dense.ndim} dimension(s), expected float32 in 1")
        labels = tuple((str(k), str(v)) for k, v in header["labels"])
        return str(header["signal"]), labels, int(header["first"]), dense
    except Exception as exc:  # whatever the bytes are, they are not bins this release wrote
        raise ValueError(f"not saved daily bins ({type(exc).__name__}: {exc})") from None
