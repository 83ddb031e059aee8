"""Every installed detector that can be backtested never looks ahead: changing the future of a
series never changes the scores of its past. This is what makes a backtest honest."""

from __future__ import annotations

import numpy as np
import pytest

from aiops import plugins

SERIES_DETECTORS = sorted(
    name for name in plugins.available(plugins.DETECTORS)
    if callable(getattr(plugins.load(plugins.DETECTORS, name), "score_series", None))
)


def _series(rng: np.random.Generator, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    t = 1.7e9 + np.arange(n) * 300.0
    y = 0.4 + 0.1 * np.sin(2 * np.pi * t / 86_400) + 0.01 * rng.standard_normal(n) + np.linspace(0, 0.3, n)
    y[rng.integers(0, n, 5)] += 0.3
    y[1000:1010] = np.nan
    return t, np.clip(y, 0, 1)


@pytest.mark.parametrize("name", SERIES_DETECTORS)
def test_changing_future_points_never_changes_past_scores(name: str) -> None:
    rng = np.random.default_rng(11)
    t, y = _series(rng)
    cut = 2000
    future = y.copy()
    future[cut:] = np.clip(rng.random(y.shape[0] - cut) * 3, 0, 1)
    detector = plugins.instantiate(plugins.DETECTORS, name)
    before = detector.score_series(t, y)
    after = plugins.instantiate(plugins.DETECTORS, name).score_series(t, future)
    assert before.shape == y.shape
    assert np.all((before >= 0) & (before <= 1))
    np.testing.assert_array_equal(before[:cut], after[:cut])
    # The prefix alone scores the same as the prefix inside the longer series.
    prefix = plugins.instantiate(plugins.DETECTORS, name).score_series(t[:cut], y[:cut])
    np.testing.assert_allclose(prefix, before[:cut], rtol=0, atol=1e-12)
