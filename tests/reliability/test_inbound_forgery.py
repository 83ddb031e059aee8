"""A forged alert posted to Alertmanager's unauthenticated API reaches the daemon's webhook (with the
right token, since Alertmanager adds it) and must not act; the same alert that Prometheus really
fires does. Real Prometheus evaluating a real alerting rule, real Alertmanager, the daemon's server."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from aiops.config import parse_config
from aiops.daemon import Daemon, webhook_for
from aiops.engine.pipeline import Pipeline
from aiops.server import WEBHOOK_PATH
from aiops.demo.prometheus import PrometheusServer
from tests.collect.test_collector import ONLY_MEMORY
from tests.notify.conftest import WEBHOOK_TOKEN, AuthAlertmanager

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

RULES = {"groups": [{"name": "k8s", "rules": [{
    "alert": "KubePodCrashLooping", "expr": "vector(1)",
    "labels": {"namespace": "ml", "pod": "real-0", "severity": "critical"},
    "annotations": {"summary": "Pod ml/real-0 is crash looping."},
}]}]}


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("condition not met within the timeout")


def test_forged_alert_through_alertmanager_is_refused_and_the_real_one_acts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    monkeypatch.setenv("AIOPS_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    with PrometheusServer(tmp_path / "prom", rule_files=[rules], evaluation_interval="1s") as prom:
        wait_for(lambda: requests.get(f"{prom.url}/api/v1/query", params={"query": "ALERTS"}, timeout=5)
                 .json()["data"]["result"])
        cfg = parse_config({
            "prometheus": {"url": prom.url, "lookback": "1h", "retries": 0},
            "safety": {"mode": "suggest"},
            "server": {"host": "127.0.0.1", "port": 0, "webhook_token": {"env": "AIOPS_WEBHOOK_TOKEN"}},
            "notify": {"channels": {}},
            "state": {"path": str(tmp_path / "state.sqlite")},
            "policy": {"rules": [{"name": "crashloop-from-am", "detector": "alertmanager",
                                  "signal": "KubePodCrashLooping", "min_severity": "warning",
                                  "require_confirmed": True, "action": "restart_pod"}]},
            **ONLY_MEMORY,
        })
        pipeline = Pipeline.from_config(cfg)
        daemon = Daemon(cfg, pipeline, webhook=webhook_for(cfg, pipeline))
        daemon.server.start()
        base = f"http://127.0.0.1:{daemon.server.port}"
        try:
            with AuthAlertmanager(tmp_path / "am", webhook_url=base + WEBHOOK_PATH) as am:
                # What an attacker on the network can do: no credentials at all.
                forged = {"labels": {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "victim-0",
                                     "severity": "critical"}, "annotations": {"summary": "forged"}}
                # What Prometheus sends for the rule it evaluates (Prometheus is not wired to this Alertmanager).
                real = {"labels": {**RULES["groups"][0]["rules"][0]["labels"], "alertname": "KubePodCrashLooping"},
                        "annotations": {"summary": "Pod ml/real-0 is crash looping."}}
                requests.post(f"{am.url}/api/v2/alerts", json=[forged, real], timeout=5).raise_for_status()
                wait_for(lambda: len(pipeline.store.query("SELECT 1 FROM notify_inbox")) == 2)
            report = pipeline.run_cycle(datetime.now(UTC))
            metrics_text = requests.get(base + "/metrics", timeout=5).text
        finally:
            daemon.server.stop()
            pipeline.close()

    decisions = [(d.action, d.target.key) for d in report.decisions if d.rule == "crashloop-from-am"]
    assert decisions == [("restart_pod", "pod/ml/real-0")]
    [event] = pipeline.audit.events(kind="inbound_refused")
    assert event["entity"] == "pod/ml/victim-0" and event["status"] == "not_firing_in_prometheus"
    assert 'aiops_inbound_alerts_refused_total{reason="not_firing_in_prometheus"}' in metrics_text
