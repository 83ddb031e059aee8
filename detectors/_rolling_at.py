"""Causal rolling statistics at a few chosen points, equal to pandas' over the whole series.

A backtest needs a rolling statistic at every point, and pandas computes that in one C pass. The
daemon needs it at the newest handful of points of each series, every cycle; there a pandas call
costs ~100 us of overhead however short the series, and an explanation made of twenty of them is
most of a steady cycle. :class:`Windows` gathers the window of each chosen point into a small
sorted matrix once, and each statistic is read off it: a median or a quantile is a function of
the window's values only, so the result is the very float pandas returns (tested against it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Windows"]


class Windows:
    """The causal windows of ``window`` points ending at each index of ``at``, sorted (NaN last).

    ``groups`` are contiguous labels: a window never reaches into an earlier group, as
    ``grouped_rolling`` restarts in each. NaN values are skipped and do not count toward
    ``min_periods``.
    """

    def __init__(self, x: np.ndarray, groups: np.ndarray, at: np.ndarray, window: int) -> None:
        # ``x`` and ``groups`` may be (..., n): one row per series, the same ``at`` in each (the
        # daemon explains several series of one length at once); each row's windows are the rows'
        # own, the same floats as for that row alone.
        at = np.asarray(at, dtype=np.int64)
        idx = at[:, None] - (window - 1) + np.arange(window)[None, :]
        inside = idx >= 0
        safe = np.where(inside, idx, 0)
        inside = inside & (groups[..., safe] == groups[..., at][..., None])
        win = np.where(inside, x[..., safe], np.nan)
        win.sort(axis=-1)
        self._flat = win.reshape(-1, window)  # a view: one window a row
        self._rows = np.arange(self._flat.shape[0])
        self.count: np.ndarray = np.sum(~np.isnan(win), axis=-1)

    def _pick(self, k: np.ndarray) -> np.ndarray:
        """The ``k``-th smallest of each window (``k`` shaped as the windows' leading axes)."""
        picked: np.ndarray = self._flat[self._rows, k.reshape(-1)].reshape(k.shape)
        return picked

    def median(self, min_periods: int) -> np.ndarray:
        """``rolling(window, min_periods).median()`` at each point."""
        count = self.count
        mid = count // 2
        upper = self._pick(np.minimum(mid, np.maximum(count - 1, 0)))
        lower = self._pick(np.maximum(mid - 1, 0))
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.where(count % 2 == 1, upper, (upper + lower) / 2)
        return np.where(count >= max(1, min_periods), out, np.nan)

    def quantile(self, q: float, min_periods: int) -> np.ndarray:
        """``rolling(window, min_periods).quantile(q)`` (linear interpolation) at each point."""
        count = self.count
        pos = q * (count - 1)
        lo = np.maximum(np.floor(pos).astype(np.int64), 0)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        vlow, vhigh = self._pick(lo), self._pick(hi)
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.where(pos == lo, vlow, vlow + (vhigh - vlow) * (pos - lo))
        return np.where(count >= max(1, min_periods), out, np.nan)

    def counts(self) -> np.ndarray:
        """``rolling(window, min_periods=1).count()``: the values in each window (pandas checks
        ``min_periods`` against the window's rows, so with 1 it never gives NaN)."""
        return self.count.astype(np.float64)
