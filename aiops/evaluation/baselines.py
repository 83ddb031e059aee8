"""Reference detectors every backtest reports next to the detector under test.

A score only means something next to what doing nothing (null), guessing (random) and the plain
textbook method (rolling z-score) achieve on the same data with the same scoring.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

__all__ = ["BASELINES", "NullBaseline", "RandomBaseline", "RollingZScore"]


class NullBaseline:
    """Never raises anything: NAB's null detector, the floor of the normalised score."""

    name = "null"

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.zeros(np.asarray(values).shape[0])


class RandomBaseline:
    """Uniform random scores, seeded from the series length so that a rerun gives the same figures."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        n = np.asarray(values).shape[0]
        rng = np.random.default_rng(zlib.crc32(f"{self.seed}:{n}".encode()))
        return np.asarray(rng.random(n))


class RollingZScore:
    """|x - mean| / std over the previous ``window`` points, squashed to [0, 1) by z / (1 + z).

    Causal: the statistics exclude the current point. Gaps (NaN) score 0.
    """

    name = "rolling_zscore"

    def __init__(self, window: int = 288, min_periods: int = 30) -> None:
        if min_periods < 2 or window < min_periods:
            raise ValueError("rolling z-score needs min_periods >= 2 and window >= min_periods")
        self.window = window
        self.min_periods = min_periods

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        x = pd.Series(np.asarray(values, dtype=float))
        past = x.shift(1).rolling(self.window, min_periods=self.min_periods)
        mean, std = past.mean(), past.std()
        z = ((x - mean).abs() / std.where(std > 0)).to_numpy()
        # A change out of a flat history has undefined z but is plainly anomalous.
        flat_break = (std == 0).to_numpy() & (x != mean).to_numpy()
        z = np.where(flat_break, np.inf, z)
        with np.errstate(invalid="ignore"):
            score = np.where(np.isinf(z), 1.0, z / (1.0 + z))
        return np.nan_to_num(score, nan=0.0)


BASELINES = (NullBaseline, RandomBaseline, RollingZScore)
