"""Cross-signal root cause: a bad node vs a genuine model drift get different actions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aiops.collect.collector import entity_of, signal_info
from aiops.config import parse_config
from aiops.engine.correlate import correlate, unseen_entities
from aiops.engine.decide import Policy
from aiops.model import Entity, Evidence, Finding, Frame, Mode, Series

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
CFG = parse_config({"safety": {"mode": "auto"}, "policy": {"rules": [
    {"name": "root-cause-node", "detector": "root_cause", "entity_kind": "node", "action": "evacuate_node"},
    {"name": "sick-gpu", "detector": "gpu_health", "entity_kind": "gpu", "min_severity": "critical",
     "action": "restart_pod"},  # deliberately different, to see which rule acts
    {"name": "model-rollback", "signal": "model_accuracy", "entity_kind": "model", "min_severity": "warning",
     "action": "rollback_model"},
]}})
SIGNALS = CFG.resolved_signals()
INFOS = {n: signal_info(n, s) for n, s in SIGNALS.items()}
TS = NOW.timestamp() - 60.0 * np.arange(240)[::-1]


def series(signal: str, labels: dict[str, str], values: np.ndarray) -> Series:
    return Series(signal, labels, TS[-len(values):], values, entity_of(SIGNALS[signal], labels))


def accuracy(drop_at: int | None, drop: float = 0.07) -> np.ndarray:
    v = 0.92 + 0.002 * np.sin(np.arange(240) / 7)
    if drop_at is not None:
        v[drop_at:] *= 1 - drop
    return v


def frame(bad_replicas: set[int], *, vanished: tuple[Series, ...] = ()) -> Frame:
    s = []
    for i in range(3):
        pod = f"ranker-{i}"
        s.append(series("pod_info", {"namespace": "ml", "pod": pod, "node": f"node-{i}"}, np.ones(240)))
        s.append(series("model_replica_accuracy", {"namespace": "ml", "model": "ranker", "pod": pod},
                        accuracy(200 if i in bad_replicas else None)))
        s.append(series("node_ready", {"node": f"node-{i}"}, np.ones(240)))
    return Frame(NOW, tuple(s), INFOS, 60.0, vanished=vanished)


GPU_XID94 = Finding("gpu_health", "gpu_xid", Entity("gpu", "GPU-b", attributes=(("Hostname", "node-1"),)), 0.95, NOW,
                    Evidence("XID 94 (contained ECC error) and rising ECC errors"))
MODEL_DRIFT = Finding("quality_drift", "model_accuracy", Entity("model", "ranker", "ml"), 0.92, NOW,
                      Evidence("accuracy -7% vs reference"))


def test_replica_on_sick_node_targets_the_node_not_the_model() -> None:
    findings = correlate([GPU_XID94, MODEL_DRIFT], frame({1}), CFG.policy.root_cause)
    root = [f for f in findings if f.detector == "root_cause"]
    assert len(root) == 1 and root[0].entity == Entity("node", "node-1")
    text = root[0].evidence.summary
    assert "ranker-1" in text and "node-1" in text and "XID 94" in text and "other replicas" in text and "7%" in text
    drift = next(f for f in findings if f.signal == "model_accuracy")
    assert drift.cause == Entity("node", "node-1") and "attributed to node/node-1" in drift.evidence.summary
    _, decisions = Policy(CFG.policy, Mode.AUTO).decide(findings, now=NOW)
    actions = {(d.action, d.target.key) for d in decisions}
    assert ("evacuate_node", "node/node-1") in actions
    assert not any(a == "rollback_model" for a, _ in actions)


def test_all_replicas_dropping_is_a_model_drift() -> None:
    findings = correlate([GPU_XID94, MODEL_DRIFT], frame({0, 1, 2}), CFG.policy.root_cause)
    assert not [f for f in findings if f.detector == "root_cause"]
    drift = next(f for f in findings if f.signal == "model_accuracy")
    assert drift.cause is None
    _, decisions = Policy(CFG.policy, Mode.AUTO).decide(findings, now=NOW)
    assert ("rollback_model", "model/ml/ranker") in {(d.action, d.target.key) for d in decisions}


def test_replica_drop_without_infrastructure_trouble_is_not_attributed() -> None:
    findings = correlate([MODEL_DRIFT], frame({1}), CFG.policy.root_cause)
    assert [f for f in findings if f.detector == "root_cause"] == []
    assert all(f.cause is None for f in findings)


def test_vanished_gpu_on_ready_node_is_reported() -> None:
    labels = {"Hostname": "node-2", "gpu": "0", "UUID": "GPU-c", "modelName": "H100"}
    gone = Series("gpu_utilization", labels, TS[:100], np.full(100, 55.0), entity_of(SIGNALS["gpu_utilization"], labels))
    findings = correlate([], frame(set(), vanished=(gone,)), CFG.policy.root_cause)
    (f,) = findings
    assert f.signal == "gpu_metrics_missing" and f.entity.name == "GPU-c" and "node-2" in f.evidence.summary
    assert "while the node is Ready" in f.evidence.summary


def test_a_pod_leaving_a_gpu_or_the_exporter_renamed_is_not_a_gpu_that_stopped_reporting() -> None:
    """gpu_pods (dcgm-exporter's pod mapping, a sparse signal) has a series per pod attached: a pod
    that leaves the GPU (a rollout, a scale-in), or the exporter's own pod renamed by its rollout
    where the scrape does not honour its labels, ends a series while the GPU reports on. Read as
    "the GPU stopped reporting (dcgm-exporter down, or the GPU fell off the bus)", every such
    series warned for the 6 hours it stays in the lookback: 57 warnings on the us-east replay,
    each notified. A GPU stops reporting when its signals do, not when its pods change."""
    gpu = {"Hostname": "node-2", "gpu": "0", "UUID": "GPU-c", "modelName": "H100"}
    left = Series("gpu_pods", {**gpu, "namespace": "ml", "pod": "ranker-0"}, TS[:100], np.ones(100),
                  entity_of(SIGNALS["gpu_pods"], {**gpu, "namespace": "ml", "pod": "ranker-0"}))
    renamed = Series("gpu_pods", {**gpu, "namespace": "gpu-operator", "pod": "dcgm-exporter-old", "exported_pod": "x"},
                     TS[:100], np.ones(100), entity_of(SIGNALS["gpu_pods"], {**gpu, "pod": "dcgm-exporter-old"}))
    live = series("gpu_utilization", gpu, np.full(240, 55.0))
    f = frame(set())
    findings = correlate([], Frame(NOW, (*f.series, live), INFOS, 60.0, vanished=(left, renamed)), CFG.policy.root_cause)
    assert findings == []
    # The GPU with no pod left at all: its other signals still report.
    findings = correlate([], Frame(NOW, (*f.series, live), INFOS, 60.0, vanished=(left,)), CFG.policy.root_cause)
    assert findings == []


def test_a_gpu_switched_into_mig_mode_reports_on_without_its_whole_gpu_utilisation() -> None:
    """gpu_utilization reads whole GPUs only (a MIG instance reports no utilisation, or 0): a GPU
    an operator switches into MIG mode ends its series there while its framebuffer, temperature
    and power report on. That is a GPU reporting, not one off the bus (which stops utilisation,
    memory, temperature and power together, reference §9), and it warned "stopped reporting" for
    the 6 hours the ended series stays in the lookback."""
    gpu = {"Hostname": "node-2", "gpu": "0", "UUID": "GPU-c", "modelName": "H100"}
    ended = Series("gpu_utilization", gpu, TS[:100], np.full(100, 55.0), entity_of(SIGNALS["gpu_utilization"], gpu))
    reporting = (series("gpu_memory_usage_ratio", {**gpu, "GPU_I_ID": "1"}, np.full(240, 0.4)),
                 series("gpu_temperature", gpu, np.full(240, 51.0)), series("gpu_power", gpu, np.full(240, 180.0)))
    f = frame(set())
    assert correlate([], Frame(NOW, (*f.series, *reporting), INFOS, 60.0, vanished=(ended,)), CFG.policy.root_cause) == []


def test_a_gpu_whose_measurements_stopped_under_a_held_xid_stopped_reporting() -> None:
    """Off the bus, the measurements end together; dcgm-exporter may still export the last XID (the
    gauge holds it until the exporter restarts). A held XID is not the GPU reporting."""
    gpu = {"Hostname": "node-2", "gpu": "0", "UUID": "GPU-c", "modelName": "H100"}
    ended = tuple(Series(n, gpu, TS[:100], np.full(100, v), entity_of(SIGNALS[n], gpu))
                  for n, v in (("gpu_utilization", 55.0), ("gpu_temperature", 51.0), ("gpu_power", 180.0)))
    held = series("gpu_xid", gpu, np.where(np.arange(240) >= 99, 79.0, 0.0))
    f = frame(set())
    (found,) = correlate([], Frame(NOW, (*f.series, held), INFOS, 60.0, vanished=ended), CFG.policy.root_cause)
    assert found.signal == "gpu_metrics_missing" and found.entity.name == "GPU-c"


def test_vanished_gpu_on_not_ready_node_is_not_a_gpu_problem() -> None:
    labels = {"Hostname": "node-2", "gpu": "0", "UUID": "GPU-c", "modelName": "H100"}
    gone = Series("gpu_utilization", labels, TS[:100], np.full(100, 55.0), entity_of(SIGNALS["gpu_utilization"], labels))
    f = frame(set(), vanished=(gone,))
    down = tuple(s if not (s.signal == "node_ready" and s.entity.name == "node-2")
                 else Series(s.signal, s.labels, s.timestamps, np.zeros(240), s.entity) for s in f.series)
    findings = correlate([], Frame(NOW, down, INFOS, 60.0, vanished=(gone,)), CFG.policy.root_cause)
    assert findings == []


def test_a_gpu_on_a_node_that_is_not_ready_is_unseen_not_healed() -> None:
    """A rebooting node takes its dcgm-exporter pod down, and its GPUs' series end with it. The
    node's own finding tells of that; the GPU's conditions are gone for want of data, not healed:
    told "cleared" (and an action's outcome judged) while the node was NotReady, they were news of
    nothing. Unseen until the node is Ready again (then, measured or missing, it speaks for itself)."""
    labels = {"Hostname": "node-2", "gpu": "0", "UUID": "GPU-c", "modelName": "H100"}
    gone = Series("gpu_utilization", labels, TS[:100], np.full(100, 55.0), entity_of(SIGNALS["gpu_utilization"], labels))
    f = frame(set(), vanished=(gone,))
    down = tuple(s if not (s.signal == "node_ready" and s.entity.name == "node-2")
                 else Series(s.signal, s.labels, s.timestamps, np.zeros(240), s.entity) for s in f.series)
    unseen = unseen_entities([], frame=Frame(NOW, down, INFOS, 60.0, vanished=(gone,)))
    assert list(unseen) == [gone.entity.key]
    assert "node node-2 is not Ready" in unseen[gone.entity.key]
    # Ready, the GPU that stopped reporting is a finding of its own (unseen through it); a vanished
    # series of a GPU that reports on under other labels is nothing.
    assert unseen_entities([], frame=f) == {}
    live = series("gpu_utilization", {**labels, "pod": "ranker-2"}, np.full(240, 55.0))
    assert unseen_entities([], frame=Frame(NOW, (*down, live), INFOS, 60.0, vanished=(gone,))) == {}


def test_latency_regression_follows_throttled_gpu_node() -> None:
    throttled = Finding("gpu_health", "gpu_temperature", Entity("gpu", "GPU-a", attributes=(("Hostname", "node-0"),)),
                        0.85, NOW, Evidence("thermal throttling"))
    latency = Finding("seasonal", "inference_latency_p99", Entity("model", "llama", "serving"), 0.93, NOW,
                      Evidence("p99 240 ms vs 60 ms usual"))
    s = [series("pod_info", {"namespace": "serving", "pod": f"llama-{i}", "node": f"node-{i}"}, np.ones(240)) for i in range(2)]
    s += [series("inference_kv_cache_usage", {"namespace": "serving", "pod": f"llama-{i}", "model_name": "llama"},
                 np.full(240, 0.4)) for i in range(2)]
    findings = correlate([throttled, latency], Frame(NOW, tuple(s), INFOS, 60.0), CFG.policy.root_cause)
    lat = next(f for f in findings if f.signal == "inference_latency_p99")
    assert lat.cause == Entity("node", "node-0") and "thermal throttling" in lat.evidence.summary


def test_crash_loop_on_a_node_whose_gpu_failed_is_a_symptom_of_the_node() -> None:
    gpu79 = Finding("gpu_health", "gpu_xid", Entity("gpu", "GPU-b", attributes=(("Hostname", "node-1"),)), 1.0, NOW,
                    Evidence("XID 79: GPU fell off the bus"), confirmed=True)

    def crash(i: int) -> Finding:
        return Finding("conditions", "pod_crashlooping", Entity("pod", f"ranker-{i}", "ml"), 0.95, NOW,
                       Evidence("in CrashLoopBackOff"), confirmed=True)

    out = correlate([gpu79, crash(1), crash(2)], frame(set()), CFG.policy.root_cause)
    on_sick = next(f for f in out if f.entity.name == "ranker-1")
    elsewhere = next(f for f in out if f.entity.name == "ranker-2")
    assert on_sick.cause == Entity("node", "node-1") and "the node is the cause" in on_sick.evidence.summary
    assert elsewhere.cause is None
    # A risk (XID 94, contained, not confirmed) does not make the pod's own failure a symptom.
    risk = correlate([GPU_XID94, crash(1)], frame(set()), CFG.policy.root_cause)
    assert next(f for f in risk if f.signal == "pod_crashlooping").cause is None
