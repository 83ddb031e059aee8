"""Generator of resource series that fail, and of benign look-alikes that must not page.

Every series is a ratio of its limit sampled each minute over three days, with the failure point
of its catalog signal (what the daemon forecasts to):

========================  ===============  =================================================
kind                      failure point    what happens there
========================  ===============  =================================================
``memory``                1.00             OOMKill at the container's memory limit
``disk``                  0.90             DiskPressure: kubelet eviction, nodefs.available < 10 %
``gpu_framebuffer``       1.00             CUDA out of memory
``kv_cache``              0.99             vLLM preempts requests
``latency_slo``           1.00             the latency objective (TTFT or ITL) is breached
========================  ===============  =================================================

Failing series idle for one to two and a half days, then leak until they cross the failure point
(the series ends there: the pod is killed, the node evicts). Leak shapes: linear, accelerating
(power 1.5–3), noisy (noise 1–4 % of the limit) and stepwise (4–12 equal steps, a cache growing in
chunks); leak durations from 1.5 h to 12 h, log-uniform; starting levels 20–70 % of the failure
point; a third carry a daily cycle.

Benign controls run the full three days and never fail:

* ``batch``: Job pods that fill up to 75–97 % of the failure point (a saturating load, τ 3–40 min),
  hold for 10 min to 3 h and end; a third recur as a CronJob every 4–24 h;
* ``gc_sawtooth``: climb to 80–95 %, collect, repeat every 10 min to 3 h; the troughs are flat;
* ``daily_peak``: a diurnal load peaking at 85–95 % of the failure point each day;
* ``level_shift``: one to three deploys that step the level by ±5–25 % (a brief surge while the
  rollout doubles the pods), then stay flat.

The benchmark draws its series from a held-out seed range that the detector was never tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP = 60.0
DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
DAYS = 3.0

# kind -> (failure point, capacity or None, the catalog signal it stands for)
SIGNALS: dict[str, tuple[float, float | None, str]] = {
    "memory": (1.0, 1.0, "pod_memory_usage_ratio"),
    "disk": (0.90, 1.0, "node_filesystem_usage_ratio"),
    "gpu_framebuffer": (1.0, 1.0, "gpu_memory_usage_ratio"),
    "kv_cache": (0.99, 1.0, "inference_kv_cache_usage"),
    "latency_slo": (1.0, None, "latency / objective"),
}
LEAKS = ("linear", "accelerating", "noisy", "stepwise")
BENIGN = ("batch", "gc_sawtooth", "daily_peak", "level_shift")


@dataclass(frozen=True)
class Generated:
    """One series: ``failure_index`` is where it crosses the failure point (None: benign)."""

    name: str
    kind: str  # signal kind (memory, disk, ...)
    shape: str  # leak shape or benign pattern
    failure_point: float
    capacity: float | None
    timestamps: np.ndarray
    values: np.ndarray
    leak_start: int | None = None
    failure_index: int | None = None

    @property
    def failing(self) -> bool:
        return self.failure_index is not None


def _noise(rng: np.random.Generator, n: int, sigma: float, kind: str) -> np.ndarray:
    if kind == "latency_slo":  # latency quantiles are noisier and right-skewed
        return sigma * 2.0 * (rng.lognormal(0.0, 0.5, n) - np.exp(0.125))
    return rng.normal(0.0, sigma, n)


def _daily(t: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    phase = rng.uniform(0, 2 * np.pi)
    return amplitude * np.sin(2 * np.pi * t / DAY + phase)


def failing(seed: int, kind: str, shape: str) -> Generated:
    rng = np.random.default_rng(seed)
    fp, cap, _ = SIGNALS[kind]
    t0 = 1_767_225_600.0 + rng.integers(0, 1440) * MINUTE  # 2026-01-01 plus a random time of day
    idle = rng.uniform(1.0, 2.5) * DAY
    duration = float(np.exp(rng.uniform(np.log(1.5 * HOUR), np.log(12 * HOUR))))
    n = int((idle + duration + 2 * HOUR) / STEP)
    t = t0 + STEP * np.arange(n)
    rel = t - t0
    base = rng.uniform(0.2, 0.7) * fp
    sigma = rng.uniform(0.01, 0.04) if shape == "noisy" else rng.uniform(0.001, 0.01)
    y = np.full(n, base) + _noise(rng, n, sigma, kind)
    if rng.random() < 1 / 3:
        y += _daily(rel, rng, rng.uniform(0.01, 0.06))
    x = np.clip((rel - idle) / duration, 0.0, None)  # 0 before the leak, 1 when it reaches the point
    rise = fp - base
    if shape in ("linear", "noisy"):
        y += rise * x
    elif shape == "accelerating":
        y += rise * x ** rng.uniform(1.5, 3.0)
    else:  # stepwise
        steps = int(rng.integers(4, 13))
        y += rise * np.floor(x * steps) / steps + rise / steps * (x > 0)  # the first step at the start
    crossed = np.flatnonzero((rel >= idle) & (y >= fp))
    if crossed.shape[0] == 0:  # cannot happen with a rise to the point, but never leave it unlabelled
        crossed = np.array([n - 1])
    end = int(crossed[0])
    return Generated(
        f"{kind}/{shape}/{seed}", kind, shape, fp, cap, t[: end + 1], y[: end + 1],
        leak_start=int(np.searchsorted(rel, idle)), failure_index=end,
    )


def benign(seed: int, kind: str, shape: str) -> Generated:
    rng = np.random.default_rng(seed)
    fp, cap, _ = SIGNALS[kind]
    t0 = 1_767_225_600.0 + rng.integers(0, 1440) * MINUTE
    n = int(DAYS * DAY / STEP)
    t = t0 + STEP * np.arange(n)
    rel = t - t0
    sigma = rng.uniform(0.001, 0.01)
    if shape == "batch":
        base = rng.uniform(0.05, 0.4) * fp
        y = np.full(n, base)
        recurring = rng.random() < 1 / 3
        period = rng.uniform(4, 24) * HOUR
        starts = (
            np.arange(rng.uniform(0, period), rel[-1], period)
            if recurring
            else np.sort(rng.uniform(0, rel[-1] - 4 * HOUR, int(rng.integers(1, 5))))
        )
        for s in starts:
            plateau = rng.uniform(0.75, 0.97) * fp
            tau = rng.uniform(3, 40) * MINUTE
            hold = rng.uniform(10 * MINUTE, 3 * HOUR) + 3 * tau
            on = (rel >= s) & (rel < s + hold)
            y[on] = base + (plateau - base) * (1 - np.exp(-(rel[on] - s) / tau))
    elif shape == "gc_sawtooth":
        trough = rng.uniform(0.3, 0.6) * fp
        peak = rng.uniform(0.8, 0.95) * fp
        period = float(np.exp(rng.uniform(np.log(10 * MINUTE), np.log(3 * HOUR))))
        cycle = (rel + rng.uniform(0, period)) % period / period
        jitter = rng.normal(0, 0.01, int(rel[-1] / period) + 3)[((rel + period) // period).astype(int)]
        y = trough + (peak - trough + jitter - 0.02) * cycle
    elif shape == "daily_peak":
        peak = rng.uniform(0.85, 0.95) * fp
        low = rng.uniform(0.2, 0.5) * fp
        centre = rng.uniform(0, DAY)
        width = rng.uniform(2, 5) * HOUR
        day_of = np.floor((rel - centre + DAY / 2) / DAY).astype(int)
        day_peak = peak - np.abs(rng.normal(0, 0.015, int(DAYS) + 3))[day_of - day_of.min()]
        offset = (rel - centre + DAY / 2) % DAY - DAY / 2
        y = low + (day_peak - low) * np.exp(-0.5 * (offset / width) ** 2)
    else:  # level_shift
        level = rng.uniform(0.3, 0.7) * fp
        y = np.full(n, level)
        for at in np.sort(rng.uniform(0.3 * DAY, rel[-1] - 2 * HOUR, int(rng.integers(1, 4)))):
            level = float(np.clip(level + rng.choice([-1, 1, 1]) * rng.uniform(0.05, 0.25), 0.1 * fp, 0.88 * fp))
            surge = rng.uniform(5, 15) * MINUTE  # a rolling update briefly runs old and new pods
            y[rel >= at] = level
            y[(rel >= at) & (rel < at + surge)] += rng.uniform(0.0, 0.05)
    y = y + _noise(rng, n, sigma, kind)
    y = np.minimum(y, fp - 0.005)  # benign by construction: never at the failure point
    return Generated(f"{kind}/{shape}/{seed}", kind, shape, fp, cap, t, y)


def series_set(first_seed: int, per_cell: int) -> list[Generated]:
    """``per_cell`` series of every (signal kind, leak shape) and every (kind, benign pattern)."""
    out: list[Generated] = []
    seed = first_seed
    for kind in SIGNALS:
        for shape in LEAKS:
            for _ in range(per_cell):
                out.append(failing(seed, kind, shape))
                seed += 1
        for shape in BENIGN:
            for _ in range(per_cell):
                out.append(benign(seed, kind, shape))
                seed += 1
    return out
