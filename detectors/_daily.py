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
from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

BIN_SECONDS = 300.0
DAY_SECONDS = 86400.0
BINS_PER_DAY = int(DAY_SECONDS / BIN_SECONDS)
# The layout of a saved series' bins (bins_to_bytes); a body of another format is learnt again.
FORMAT = 1
# New points a cycle folds in with plain Python in DailyMaxima.update (more: the numpy merge).
_FEW_POINTS = 64


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


class DailyMaxima:
    """The daemon's per-series bins, kept across cycles for ``days`` days (the frame holds hours)."""

    def __init__(self, days: int) -> None:
        self.keep = (days + 1) * BINS_PER_DAY
        self._data: dict[Hashable, tuple[int, np.ndarray]] = {}
        # For the state file, per series: the end (bin index) of the bins it holds, and of those
        # handed over and not yet acknowledged (state_saved), by the body's key.
        self._stored: dict[Hashable, int] = {}
        self._pending: dict[str, tuple[Hashable, int]] = {}

    def merge(self, key: Hashable, t: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray]:
        """Fold the frame's points into the series' bins; return all bins held (float64)."""
        old = self._data.get(key)
        if old is not None and old[1].shape[0]:
            # Only the points from the last bin held on are new: a cycle adds a bin or two.
            cut = int(np.searchsorted(t, (old[0] + old[1].shape[0] - 1) * BIN_SECONDS, side="left"))
            t, y = t[cut:], y[cut:]
        first, dense = bin_maxima(t, y)
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
        if dense.shape[0] > self.keep:
            first, dense = first + dense.shape[0] - self.keep, dense[-self.keep :]
        self._data[key] = (first, dense.astype(np.float32))
        return first, dense

    def update(self, key: Hashable, t: np.ndarray, y: np.ndarray) -> None:
        """:meth:`merge` without the result: the same bins held, at a fraction of the cost.

        Every series of the watched signals is folded in every cycle, and a cycle brings a point
        or two into the last bin or the next: those few points are binned in plain Python, and
        anything else (a new series, a long refetch) goes through :meth:`merge`.
        """
        old = self._data.get(key)
        if old is None or not old[1].shape[0] or not t.shape[0]:
            self.merge(key, t, y)
            return
        o_first, o_dense = old
        last = o_first + o_dense.shape[0] - 1
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
        high = max(top)
        if high > last:
            grown = np.full(high - o_first + 1, np.nan, dtype=np.float32)
            grown[: o_dense.shape[0]] = o_dense
            o_dense = grown
        for b, v in top.items():
            held = float(o_dense[b - o_first])  # compared in float64, as merge's fmax does
            if held != held or v > held:
                o_dense[b - o_first] = v
        if o_dense.shape[0] > self.keep:
            o_first, o_dense = o_first + o_dense.shape[0] - self.keep, o_dense[-self.keep :].copy()
        self._data[key] = (o_first, o_dense)

    def held(self) -> Iterator[tuple[Hashable, int, np.ndarray]]:
        """(key, first bin index, float32 bins) of each series held, for a detector saving them."""
        for key, (first, dense) in self._data.items():
            yield key, first, dense

    def put(self, key: Hashable, first: int, dense: np.ndarray) -> None:
        """Hold saved bins for ``key`` (a restart): the newest ``days + 1`` days of them."""
        dense = np.asarray(dense, dtype=np.float32)
        if dense.shape[0] > self.keep:
            first, dense = first + dense.shape[0] - self.keep, dense[-self.keep :]
        self._data[key] = (first, dense.copy())

    def retain(self, live: Iterable[Hashable], unanswered: Collection[str] = ()) -> None:
        """Drop the series not in ``live``: those gone from their signal's answer. A series of a
        signal whose query failed this cycle (``unanswered``: the frame's missing signals) is not
        known to be gone, so its days stay; one Prometheus error must not cost a day of history.
        Keys are :attr:`Series.key`, (signal, labels)."""
        keep, failed = set(live), set(unanswered)
        for key in [k for k in self._data if k not in keep]:
            if not (failed and isinstance(key, tuple) and key and key[0] in failed):
                del self._data[key]
        for key in [k for k in self._stored if k not in self._data]:
            del self._stored[key]

    # -- the daemon's state file (aiops.plugins.KeepsState, through the detector holding them) ----
    def saved_state(self, only: Collection[Hashable] | None = None) -> dict[str, bytes]:
        """The bins of each series that gained a bin since they were stored, by series (of the
        series in ``only``, when given).

        Once per new 5-minute bin, not every cycle: the points since (within the newest bin) come
        back from the lookback after a restart. Pending until :meth:`state_saved`.
        """
        self._pending = {}
        bodies = {}
        for key, first, dense in self.held():
            end = first + dense.shape[0]
            if self._stored.get(key) == end or (only is not None and key not in only):
                continue
            signal, labels = series_key(key)
            name = row_key(signal, labels)
            bodies[name] = bins_to_bytes(signal, labels, first, dense)
            self._pending[name] = (key, end)
        return bodies

    def state_saved(self, keys: Iterable[str]) -> None:
        """The pipeline stored these bodies; a series that gained a bin since stays pending."""
        for name in keys:
            held = self._pending.pop(name, None)
            if held is not None:
                self._stored[held[0]] = held[1]

    def restore_state(self, saved: Mapping[str, bytes]) -> list[str]:
        """Take up the bins a previous run saved; a problem per body it could not read (that
        series learns its days again). :meth:`stored` lists the series taken up."""
        problems = []
        for name, body in saved.items():
            try:
                signal, labels, first, dense = bins_from_bytes(body)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            key = (signal, labels)
            self.put(key, first, dense)
            self._stored[key] = first + dense.shape[0]
        return problems

    def stored(self) -> list[tuple[Hashable, float]]:
        """(key, epoch second its bins there end) of each series the state file holds, restored
        from it or saved to it."""
        return [(key, end * BIN_SECONDS) for key, end in self._stored.items()]

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data


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


def bins_to_bytes(signal: str, labels: tuple[tuple[str, str], ...], first: int, dense: np.ndarray) -> bytes:
    """One series' bins as the state file stores them: a JSON header and the float32 bins in an
    npz (no pickle, like the multivariate references)."""
    header = {"format": FORMAT, "signal": signal, "labels": [list(p) for p in labels], "first": int(first)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                        bins=np.asarray(dense, dtype=np.float32))
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
