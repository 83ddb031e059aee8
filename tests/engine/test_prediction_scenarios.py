"""Prediction-aware remediation end to end: generated history in the real Prometheus, the daemon's
cycles replayed minute by minute, actions through the guarded writer against the test API server.

- a slow GPU fault (uncorrectable row remaps rising) climbs notify -> prepare (cordon) and is then
  confirmed (XID 79): the node is evacuated;
- a predicted node-memory exhaustion that recovers on its own: the cordon is rolled back and the
  prediction is counted as a false positive (/metrics and `aiops history --stats`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiops.commands.history import detector_stats
from aiops.config import parse_config
from aiops.engine.pipeline import Pipeline
from aiops.model import ActionStatus, Basis, CycleReport
from aiops.testing.kubeapi import SA_TOKEN, KubeApiServer
from aiops.testing.kubeapi_objects import make_node
from aiops.demo.prometheus import PrometheusServer
from tests.engine.kubecluster import CLUSTER_ROLE, seed_workload

END = datetime.now(UTC).replace(second=0, microsecond=0)
STEP = 60
GPU_LABELS = 'Hostname="gpu-1",gpu="0",UUID="GPU-aaaa",modelName="NVIDIA H100 80GB HBM3"'


def _series(name: str, kind: str, labels: str, points: list[tuple[int, float]]) -> list[str]:
    return [f"# TYPE {name} {kind}", *(f"{name}{{{labels}}} {v!r} {t}" for t, v in points)]


def write_history(path: Path) -> None:
    end = int(END.timestamp())
    times = list(range(end - 4 * 3600, end + 1, STEP))

    def at(minutes_before_end: float) -> int:
        return end - int(minutes_before_end * 60)

    # GPU-aaaa on gpu-1: remapped rows rise from E-120m; XID 79 (fell off the bus) at E-30m.
    rows = [(t, float(max(0, (t - at(120)) // 600))) for t in times]
    xid = [(t, 79.0 if t >= at(30) else 0.0) for t in times]
    temp = [(t, 62.0 + 2 * math.sin(t / 900)) for t in times]
    # gpu-2's memory climbs towards its limit from E-200m (full in about an hour when first seen),
    # then a batch job ends at E-95m and it falls back.
    def mem(t: int) -> float:
        if at(200) <= t < at(95):
            return 0.50 + 0.35 * (t - at(200)) / (at(95) - at(200))
        return 0.50 + 0.01 * math.sin(t / 600)

    lines: list[str] = []
    lines += _series("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "gauge", GPU_LABELS, rows)
    lines += _series("DCGM_FI_DEV_XID_ERRORS", "gauge", GPU_LABELS, xid)
    lines += _series("DCGM_FI_DEV_GPU_TEMP", "gauge", GPU_LABELS, temp)
    total = 256 * 2**30
    lines += _series("node_memory_MemTotal_bytes", "gauge", 'instance="gpu-2"', [(t, float(total)) for t in times])
    lines += _series("node_memory_MemAvailable_bytes", "gauge", 'instance="gpu-2"',
                     [(t, total * (1 - mem(t))) for t in times])
    for node in ("gpu-1", "gpu-2", "gpu-3"):
        lines += _series("kube_node_status_condition", "gauge", f'node="{node}",condition="Ready",status="true"',
                         [(t, 1.0) for t in times])
    path.write_text("\n".join(lines) + "\n# EOF\n")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    root = tmp_path_factory.mktemp("prom-scenarios")
    write_history(root / "h.om")
    with PrometheusServer(root / "data", openmetrics=root / "h.om") as prom:
        yield prom


@pytest.fixture
def cluster() -> Iterator[KubeApiServer]:
    with KubeApiServer([make_node(n, gpus=8) for n in ("gpu-1", "gpu-2", "gpu-3")], cluster_role=CLUSTER_ROLE) as srv:
        seed_workload(srv, "llm", ["gpu-1", "gpu-3"], namespace="serving")
        seed_workload(srv, "batch", ["gpu-2", "gpu-3"], namespace="jobs")
        yield srv


def pipeline(prom: PrometheusServer, cluster: KubeApiServer, tmp_path: Path, rules: list[dict[str, Any]]) -> Pipeline:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", token=SA_TOKEN)
    keep = {"gpu_xid", "gpu_uncorrectable_remapped_rows", "gpu_temperature", "node_memory_usage_ratio", "node_ready"}
    cfg = parse_config({
        "prometheus": {"url": prom.url, "lookback": "2h", "retries": 0},
        "signals": {n: {"enabled": False} for n in parse_config({}).resolved_signals() if n not in keep},
        "detectors": [{"plugin": "gpu_health"}, {"plugin": "exhaustion"}],
        "policy": {"rules": rules},
        "safety": {"mode": "auto", "dry_run": False, "api_backoff_max": "50ms", "max_pods_per_workload": 10,
                   "max_cordoned_fraction": 1.0, "max_predicted_cordoned_fraction": 1.0, "cooldown": "1m"},
        "kubernetes": {"enabled": True, "kubeconfig": str(kubeconfig), "request_timeout": "5s",
                       "leader_election": {"enabled": False}},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
    })
    return Pipeline.from_config(cfg)


def act_on(report: CycleReport, target: str) -> list[tuple[str, str, str]]:
    return [(r.action, r.status.value, r.detail) for r in report.results if r.target.key == target]


def test_slow_gpu_fault_climbs_the_ladder_and_is_confirmed(
    prometheus: PrometheusServer, cluster: KubeApiServer, tmp_path: Path
) -> None:
    # Pending row remaps score 0.6 in gpu_health: this policy prepares (cordons) on such a risk.
    rules = [{"name": "sick-gpu-node", "detector": "gpu_health", "entity_kind": "gpu", "min_severity": "info",
              "action": "evacuate_node", "target": "node", "params": {"min_ready_replicas": 1},
              "ladder": {"prepare_params": {"cordon_only": True}, "prepare_score": 0.55}}]
    p = pipeline(prometheus, cluster, tmp_path, rules)
    try:
        first = p.run_cycle(END - timedelta(minutes=60))
        second = p.run_cycle(END - timedelta(minutes=59))
        third = p.run_cycle(END - timedelta(minutes=58))
        node = cluster.get("Node", "gpu-1")
        assert node["spec"].get("unschedulable") is True  # prepared: cordoned ...
        pods_on_node = {x["metadata"]["name"] for x in cluster.list("Pod") if x["spec"].get("nodeName") == "gpu-1"}
        assert "llm-0" in pods_on_node  # ... but nothing evicted on a prediction
        confirmed = p.run_cycle(END - timedelta(minutes=25))
    finally:
        p.close()
    steps = [d.reason.split(":")[0] for r in (first, second, third) for d in r.decisions if d.target.key == "node/gpu-1"]
    assert steps == ["step 1 of 3", "step 2 of 3", "step 2 of 3"]
    assert [a for a, s, _ in act_on(first, "node/gpu-1")] == ["advise"]
    assert act_on(second, "node/gpu-1")[0][:2] == ("evacuate_node", "applied")
    # People see where the prediction stands: the step is in what is reported and audited.
    assert act_on(second, "node/gpu-1")[0][2].startswith("step 2 of 3: preparing; evacuate_node if the failure")
    (d,) = [d for d in confirmed.decisions if d.target.key == "node/gpu-1"]
    assert d.reason.startswith("step 3 of 3") and d.basis is Basis.CONFIRMED and "cordon_only" not in d.params
    assert any(r.action == "evacuate_node" and r.status in (ActionStatus.APPLIED, ActionStatus.DEFERRED)
               for r in confirmed.results)
    evictions = cluster.requests_matching(method="POST", subresource="eviction")
    assert [e.name for e in evictions if e.status in (200, 201)] == ["llm-0"]


def test_prediction_that_recovers_is_rolled_back_and_counted(
    prometheus: PrometheusServer, cluster: KubeApiServer, tmp_path: Path
) -> None:
    rules = [{"name": "node-memory", "signal": "node_memory_usage_ratio", "entity_kind": "node",
              "min_severity": "warning", "action": "evacuate_node",
              "ladder": {"prepare_params": {"cordon_only": True}, "prepare_within": "3h", "prepare_score": 0.5}}]
    p = pipeline(prometheus, cluster, tmp_path, rules)
    reports = []
    try:
        # Memory heading for its limit: notify, then prepare (cordon).
        for minutes in (106, 105, 104):
            reports.append(p.run_cycle(END - timedelta(minutes=minutes)))
        assert cluster.get("Node", "gpu-2")["spec"].get("unschedulable") is True
        # The batch job ends at E-95m; the prediction's horizon passes without a failure.
        for minutes in range(90, 20, -10):
            reports.append(p.run_cycle(END - timedelta(minutes=minutes)))
        stats = {s["detector"]: s for s in detector_stats(p.store)}
    finally:
        p.close()
    assert not cluster.get("Node", "gpu-2")["spec"].get("unschedulable"), "the cordon was rolled back"
    undo = [r for rep in reports for r in rep.results if r.target.key == "node/gpu-2" and r.status is ActionStatus.APPLIED]
    assert "uncordon node gpu-2" in undo[-1].detail
    assert not cluster.requests_matching(method="POST", subresource="eviction")  # never evacuated
    assert stats["exhaustion"]["false_positives"] == 1 and stats["exhaustion"]["precision"] == 0.0
