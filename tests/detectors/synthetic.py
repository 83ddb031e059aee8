"""Small generated series and frames for the univariate detector tests (seeded, no data files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from aiops.model import Entity, Frame, Series, SignalInfo, from_epoch

T0 = 1_750_000_000.0  # a fixed epoch so that failures are reproducible
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

SIGNALS: dict[str, SignalInfo] = {
    "pod_memory_usage_ratio": SignalInfo("pod_memory_usage_ratio", "pod", "ratio", capacity=1.0, bad_direction="up"),
    "inference_latency_p99": SignalInfo("inference_latency_p99", "model", "seconds", bad_direction="up"),
    "model_accuracy": SignalInfo("model_accuracy", "model", "ratio", bad_direction="down"),
    "business_conversion_rate": SignalInfo("business_conversion_rate", "model", "ratio", bad_direction="down"),
}


def grid(hours: float, step: float = MINUTE) -> np.ndarray:
    return T0 + np.arange(0.0, hours * HOUR, step)


def daily(t: np.ndarray, base: float, amplitude: float, noise: float, seed: int = 0) -> np.ndarray:
    """A daily cycle (peak mid-day) with Gaussian noise."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * ((t - T0) % DAY) / DAY
    return base + amplitude * np.sin(phase - np.pi / 2) + rng.normal(0.0, noise, t.shape[0])


def frame(
    series: Mapping[str, Sequence[tuple[Entity, np.ndarray, np.ndarray]]],
    signals: Mapping[str, SignalInfo] = SIGNALS,
    step: float = MINUTE,
) -> Frame:
    """A frame from ``{signal: [(entity, timestamps, values), ...]}``; ``now`` is the last timestamp."""
    out = []
    last = T0
    for signal, items in series.items():
        for entity, t, y in items:
            labels = {"name": entity.name, "namespace": entity.namespace}
            out.append(Series(signal, labels, np.asarray(t, float), np.asarray(y, float), entity))
            last = max(last, float(t[-1]))
    return Frame(now=from_epoch(last), series=tuple(out), signals=dict(signals), step_seconds=step)


POD = Entity("pod", "web-0", "shop")
MODEL = Entity("model", "ranker", "ml")
