from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aiops.collect.collector import entity_of, signal_info
from aiops.config import parse_config
from detectors.conditions import ConditionDetector
from aiops.model import Frame, Series

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNALS = parse_config({}).resolved_signals()
TS = NOW.timestamp() - 60.0 * np.arange(60)[::-1]


def frame(signal: str, labels: dict[str, str], values: list[float]) -> Frame:
    v = np.array(values, dtype=float)
    s = Series(signal, labels, TS[-len(v):], v, entity_of(SIGNALS[signal], labels))
    return Frame(NOW, (s,), {n: signal_info(n, c) for n, c in SIGNALS.items()}, 60.0)


def test_crash_loop_held_long_enough_is_a_confirmed_failure() -> None:
    pod = {"namespace": "shop", "pod": "cache-0"}
    (f,) = ConditionDetector().detect(frame("pod_crashlooping", pod, [0.0] * 50 + [1.0] * 10))
    assert f.confirmed and f.score == 0.95 and f.entity.key == "pod/shop/cache-0"
    assert "CrashLoopBackOff since 11:51 UTC" in f.evidence.summary
    # Two minutes is a restart, not a loop yet.
    assert ConditionDetector().detect(frame("pod_crashlooping", pod, [0.0] * 58 + [1.0] * 2)) == []
    assert ConditionDetector().detect(frame("pod_crashlooping", pod, [1.0] * 50 + [0.0] * 10)) == []


def test_node_not_ready() -> None:
    (f,) = ConditionDetector().detect(frame("node_ready", {"node": "gpu-3"}, [1.0] * 55 + [0.0] * 5))
    assert f.confirmed and f.score == 1.0 and f.entity.key == "node/gpu-3" and "NotReady" in f.evidence.summary
    assert ConditionDetector().detect(frame("node_ready", {"node": "gpu-3"}, [1.0] * 60)) == []


def test_old_oom_kill_is_not_a_new_failure() -> None:
    pod = {"namespace": "ml", "pod": "trainer-0"}
    (fresh,) = ConditionDetector().detect(frame("pod_oom_killed", pod, [0.0] * 40 + [1.0] * 20))
    assert fresh.confirmed and fresh.score == 0.9
    (old,) = ConditionDetector().detect(frame("pod_oom_killed", pod, [1.0] * 60))
    assert not old.confirmed and old.score == 0.5
    assert ConditionDetector(report_floor=0.6).detect(frame("pod_oom_killed", pod, [1.0] * 60)) == []


def test_gaps_and_nan_are_not_failures() -> None:
    assert ConditionDetector().detect(frame("node_ready", {"node": "n"}, [np.nan] * 60)) == []


def test_latency_above_its_objective_for_five_minutes() -> None:
    model = {"namespace": "inference", "model_name": "llama"}
    # The objective comes from the signal (catalog default for TTFT p99: 2 s).
    (f,) = ConditionDetector().detect(frame("serving_ttft_p99", model, [0.4] * 50 + [5.0] * 10))
    assert f.confirmed and f.entity.key == "model/inference/llama" and f.score == 1.0
    assert "above its objective of 2 seconds since 11:51 UTC" in f.evidence.summary
    assert ConditionDetector().detect(frame("serving_ttft_p99", model, [0.4] * 57 + [5.0] * 3)) == []
    custom = ConditionDetector(objectives={"serving_ttft_p99": 6.0})
    assert custom.detect(frame("serving_ttft_p99", model, [0.4] * 50 + [5.0] * 10)) == []


def test_end_to_end_llm_latency_is_never_an_objective() -> None:
    model = {"namespace": "inference", "model_name": "llama"}
    # Seconds to minutes by design: it grows with the length of the output.
    assert ConditionDetector().detect(frame("inference_latency_p99", model, [30.0] * 60)) == []


def test_a_fresh_oom_kill_reported_as_kube_state_metrics_reports_it_is_a_new_failure() -> None:
    """kube-state-metrics has a last_terminated_reason="OOMKilled" series only once the last
    termination was an OOMKill (the signal is sparse): a pod OOM-killed 20 minutes ago has a
    series of 1s that begins then, no 0 before it. It was read as "for the whole window" (0.5, not
    confirmed): the confirmed failure that pages and confirms the memory forecast was lost. A series
    that begins inside the frame's window began with the failure; one as old as the window is old news."""
    pod = {"namespace": "ml", "pod": "trainer-0"}
    other = Series("node_ready", {"node": "gpu-1"}, TS, np.ones(60), entity_of(SIGNALS["node_ready"], {"node": "gpu-1"}))

    def with_window(f: Frame) -> Frame:  # the frame's other series span its whole window
        return Frame(f.now, (other, *f.series), f.signals, f.step_seconds)

    (fresh,) = ConditionDetector().detect(with_window(frame("pod_oom_killed", pod, [1.0] * 20)))
    assert fresh.confirmed and fresh.score == 0.9 and "since 11:41 UTC" in fresh.evidence.summary
    (old,) = ConditionDetector().detect(with_window(frame("pod_oom_killed", pod, [1.0] * 60)))
    assert not old.confirmed and old.score == 0.5


def test_an_oom_kill_is_new_for_an_hour_not_for_as_long_as_the_window_remembers_it() -> None:
    """kube-state-metrics keeps the last termination reason until the next termination: the pod
    restarted and has run well for 90 minutes. Confirmed for as long as the OOMKill was inside the
    lookback (6 h), it paged again at each repeat interval; it is news for an hour."""
    ts = NOW.timestamp() - 60.0 * np.arange(180)[::-1]
    pod = {"namespace": "ml", "pod": "trainer-0"}

    def at(minutes_ago: int) -> Frame:
        v = np.where(ts >= NOW.timestamp() - 60.0 * minutes_ago, 1.0, 0.0)
        s = Series("pod_oom_killed", pod, ts, v, entity_of(SIGNALS["pod_oom_killed"], pod))
        return Frame(NOW, (s,), {n: signal_info(n, c) for n, c in SIGNALS.items()}, 60.0)

    (fresh,) = ConditionDetector().detect(at(20))
    assert fresh.confirmed and fresh.score == 0.9
    (old,) = ConditionDetector().detect(at(90))
    assert not old.confirmed and old.score == 0.5 and "since" in old.evidence.summary
