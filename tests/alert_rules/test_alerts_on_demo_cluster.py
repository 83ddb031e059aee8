"""The alert rules, loaded into the real Prometheus over the demo cluster's history, alert on the
faults injected there (aiops.demo.synth) and stay quiet about the healthy entities.

The rule groups are copied with a 1 s evaluation interval, so the rules run on a faster clock
without any other change; alerts are checked in their *pending* state, since their ``for``
durations would outlast the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from aiops.demo.prometheus import PrometheusServer
from aiops.demo.synth import (
    AccuracyDrift,
    GpuXid,
    LatencyRegression,
    Scenario,
    Topology,
    demo_scenario,
    write_openmetrics,
)

# Starts a real Prometheus with the demo history: `-m "not slow"` leaves it out of the inner loop.
pytestmark = pytest.mark.slow

RULE_FILES = sorted((Path(__file__).resolve().parents[2] / "alert-rules").glob("*.rules.yml"))
Alert = tuple[str, frozenset[tuple[str, str]]]


def _fast_copy(source: Path, dest: Path) -> Path:
    doc = yaml.safe_load(source.read_text())
    for group in doc["groups"]:
        group["interval"] = "1s"
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """The demo cluster, plus a drift that hits every replica of the first model.

    The demo's own drift hits one replica (it sits on the node with the dead GPU): a node problem,
    which the per-model alert must not report. The added drift is a model problem, which it must.
    """
    demo = demo_scenario()
    return demo.model_copy(update={"faults": [*demo.faults, AccuracyDrift(model=0, drop=0.07)]})


@pytest.fixture(scope="module")
def pending(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    work = tmp_path_factory.mktemp("alerts")
    write_openmetrics(scenario, work / "history.om")
    rules = [_fast_copy(path, work / path.name) for path in RULE_FILES]
    expected = {name for name, _ in _expected(scenario)}
    with PrometheusServer(work / "prometheus", openmetrics=work / "history.om", rule_files=rules) as prometheus:
        deadline = time.monotonic() + 60
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            response = requests.get(f"{prometheus.url}/api/v1/alerts", timeout=10)
            alerts = response.json()["data"]["alerts"]
            # Recording rules feed the alerts; wait until every expected alert has shown up once.
            if expected <= {a["labels"]["alertname"] for a in alerts}:
                break
            time.sleep(0.5)
        yield alerts


def _has(alerts: list[dict[str, Any]], name: str, **labels: str) -> bool:
    return any(a["labels"]["alertname"] == name and labels.items() <= a["labels"].items() for a in alerts)


def _expected(scenario: Scenario) -> list[tuple[str, dict[str, str]]]:
    """The alert each injected fault must raise, with the labels that name its entity.

    The accuracy alert is per model (the mean over its replicas): a drift limited to some replicas
    is not a model problem and raises nothing here.
    """
    topo = Topology.build(scenario)
    found: list[tuple[str, dict[str, str]]] = []
    for fault in scenario.faults:
        # The demo's regression shows in time to first token (and end-to-end latency with it, which
        # raises nothing); the TTFT objective is 2 s.
        if isinstance(fault, LatencyRegression) and fault.p99_seconds > 2:
            found.append(("InferenceTimeToFirstTokenP99High", {"model_name": topo.model(fault.model).name}))
        elif isinstance(fault, AccuracyDrift) and fault.replicas is None and fault.drop >= 0.05:
            found.append(("ModelAccuracyDrop", {"model": topo.model(fault.model).name}))
        elif isinstance(fault, GpuXid):
            found.append(("GpuUtilizationLow", {"UUID": topo.gpu(fault.gpu).uuid}))  # a dead GPU computes nothing
    return found


def test_demo_has_the_faults_this_test_relies_on(scenario: Scenario) -> None:
    assert {name for name, _ in _expected(scenario)} == {
        "InferenceTimeToFirstTokenP99High",
        "ModelAccuracyDrop",
        "GpuUtilizationLow",
    }


def test_every_injected_fault_raises_its_alert(scenario: Scenario, pending: list[dict[str, Any]]) -> None:
    missing = [(name, labels) for name, labels in _expected(scenario) if not _has(pending, name, **labels)]
    assert missing == [], f"pending: {[a['labels'] for a in pending]}"


def test_healthy_entities_stay_quiet(scenario: Scenario, pending: list[dict[str, Any]]) -> None:
    topo = Topology.build(scenario)
    expected = _expected(scenario)
    slow = {labels["model_name"] for name, labels in expected if name == "InferenceTimeToFirstTokenP99High"}
    drifting = {labels["model"] for name, labels in expected if name == "ModelAccuracyDrop"}
    for model in topo.models:
        if model.name not in slow:
            assert not _has(pending, "InferenceTimeToFirstTokenP99High", model_name=model.name)
        if model.name not in drifting:
            assert not _has(pending, "ModelAccuracyDrop", model=model.name)
    assert not [a for a in pending if a["labels"]["alertname"] == "NodeMemoryExhaustionPredicted"]
    # Streaming stays within its 100 ms objective through the regression (the queue takes the brunt);
    # the slow model's long end-to-end latency raises nothing.
    assert not [a for a in pending if a["labels"]["alertname"] == "InferenceInterTokenLatencyP99High"]
    # Every demo model keeps serving first tokens, the slow one included: nothing is stalled.
    assert not [a for a in pending if a["labels"]["alertname"] == "InferenceRequestsStalled"]


def test_self_alerts_see_no_daemon(pending: list[dict[str, Any]]) -> None:
    """Nothing scrapes an aiops replica here, which is exactly what AiopsNoLeader is for."""
    assert _has(pending, "AiopsNoLeader")
