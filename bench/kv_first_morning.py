"""The KV-cache page on ap-autoscale's first morning (issue 16): when it comes, and what follows it.

``bench/replay_cluster.py --profile ap-autoscale`` reported one page outside incidents: the
exhaustion forecast of ``inference_kv_cache_usage`` on gemma-2-9b's base replica, on the first
morning only. Since 43d1fa1 the KV cache is told as a warning at most (``policy.severity.
warning_at_most``: a full KV cache slows vLLM, its objectives page), so the forecast no longer
pages; the ``held`` column is still what the daemon grades, short of the policy's cap. This script rebuilds the replay's fixture (same spec, so the same noise), takes that
replica's KV-cache gauge and prints, minute by minute around each morning's ramp (UTC and the
cluster's local time):

- the value, and the exhaustion forecast at that minute to the catalog's failure point, without
  the 15-minute hold (``raw``) and with it (``held``: what the daemon grades, critical >= 0.9);
  the whole series is scored at once, as ``aiops backtest --signal`` does (the same scores as the
  daemon, tested); the second morning reads the first one's daily maxima from the series;
- the model's serving TTFT p99 (``histogram_quantile(0.99, sum by (le) (rate(...[5m])))`` over
  every gemma pod) against its 2 s objective;
- how many gemma pods are Pending, Running but not Ready, and Ready (the pool's scale-up).

Run: ``PYTHONPATH=. nice -n 10 python bench/kv_first_morning.py [--seeds 7,11]``. Asserts nothing.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import numpy as np

from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.testing.cluster_history import ClusterHistory, HistorySpec, generate
from aiops.testing.cluster_profiles import profile
from detectors.exhaustion import ExhaustionForecast

MODEL = "gemma-2-9b"
OBJECTIVE_S = 2.0


def ttft_p99(hist: ClusterHistory) -> np.ndarray:
    """The model's p99 time to first token over 5-minute rates, as the catalog's query reads it."""
    n = hist.t.shape[0]
    total: np.ndarray | None = None
    for h in hist.histograms:
        if h.name != "vllm:time_to_first_token_seconds" or h.labels.get("model_name") != MODEL:
            continue
        inc = np.full_like(h.counts, np.nan)
        inc[:, 5:] = h.counts[:, 5:] - h.counts[:, :-5]
        inc = np.nan_to_num(inc, nan=0.0)
        total = inc if total is None else total + inc
        buckets = np.asarray(h.buckets)
    out = np.full(n, np.nan)
    if total is None:
        return out
    for i in range(n):
        c = total[:, i]
        if c[-1] <= 0:
            continue
        rank = 0.99 * c[-1]
        b = int(np.searchsorted(c, rank))
        if b >= buckets.shape[0]:
            out[i] = buckets[-1]  # in +Inf: histogram_quantile answers the highest finite bound
            continue
        lo, below = (0.0, 0.0) if b == 0 else (buckets[b - 1], c[b - 1])
        out[i] = lo + (buckets[b] - lo) * (rank - below) / max(c[b] - below, 1e-12)
    return out


def pod_states(hist: ClusterHistory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per minute: gemma pods Pending, Running but not Ready, Ready (kube-state-metrics as emitted)."""
    n = hist.t.shape[0]
    pending, loading, ready = np.zeros(n), np.zeros(n), np.zeros(n)
    for s in hist.gauges:
        if not s.labels.get("pod", "").startswith(f"vllm-{MODEL}-"):
            continue
        v = np.nan_to_num(s.values, nan=0.0)
        if s.name == "kube_pod_status_phase" and s.labels["phase"] == "Pending":
            pending += v
        elif s.name == "kube_pod_status_ready" and s.labels["condition"] == "false":
            loading += v
        elif s.name == "kube_pod_status_ready" and s.labels["condition"] == "true":
            ready += v
    return pending, loading, ready


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="7,11")
    a = p.parse_args()
    pf = profile("ap-autoscale")
    wall = DEFAULT_SIGNALS["inference_kv_cache_usage"].failure_points[0].value
    for seed in (int(x) for x in a.seeds.split(",")):
        # The replay's fixture exactly: bench/replay_cluster.py's defaults for 48 h.
        hist = generate(HistorySpec(hours=48, filler_pods=60, incident_offset_h=24, seed=seed, profile=pf))
        t = hist.t
        kv = [s for s in hist.gauges if s.name == "vllm:kv_cache_usage_perc" and s.labels["model_name"] == MODEL
              and np.isfinite(s.values).all()]
        assert len(kv) == 1, "one base replica reports for the whole history"
        y = kv[0].values
        held = ExhaustionForecast().trace(t, y, wall)
        raw = ExhaustionForecast(hold_seconds=0).trace(t, y, wall)
        ttft = ttft_p99(hist)
        pending, loading, ready = pod_states(hist)
        local = timedelta(hours=pf.utc_offset_h)
        print(f"\nap-autoscale seed {seed}: {kv[0].labels['pod']}, failure point {wall:g}")
        print("UTC    local  kv     raw   held  level  slope/h  ttft_p99  pending loading ready")
        for day in (0, 1):
            # Each local morning's ramp: 07:40 to 09:00 local.
            first = datetime.fromtimestamp(float(t[0]), UTC) + local
            morning = datetime(first.year, first.month, first.day, 7, 40, tzinfo=UTC) + timedelta(days=day + 1)
            a0 = (morning - local).timestamp()
            rows = np.flatnonzero((t >= a0) & (t < a0 + 80 * 60))
            for i in rows:
                at = datetime.fromtimestamp(float(t[i]), UTC)
                print(f"{at:%H:%M}  {at + local:%H:%M}  {y[i]:.3f}  {raw.score[i]:.2f}  {held.score[i]:.2f}  "
                      f"{raw.level[i]:.3f}  {raw.slope[i] * 3600:+.3f}   {ttft[i]:6.2f}    "
                      f"{pending[i]:.0f}       {loading[i]:.0f}       {ready[i]:.0f}")
            crit = rows[held.score[rows] >= 0.9]
            top = rows[int(np.argmax(raw.score[rows]))]
            print(f"-- local morning {day + 1}: held >= 0.9 (a page) "
                  + (f"from {datetime.fromtimestamp(float(t[crit[0]]), UTC):%H:%M} UTC" if crit.size else "never")
                  + f"; max held {held.score[rows].max():.2f}; at the highest raw forecast the discount for"
                  f" past peaks (earlier days, resets) is {raw.discount[top]:.2f}")


if __name__ == "__main__":
    main()
