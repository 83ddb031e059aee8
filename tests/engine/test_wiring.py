"""The stages wired together as the daemon runs them: Alertmanager in -> policy -> act, and the
advisor's weekly digest -> notify."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aiops.advisor.job import DigestJob
from aiops.config import parse_config
from aiops.daemon import webhook_for
from aiops.engine.pipeline import Pipeline
from aiops.metrics import REGISTRY
from aiops.model import NotificationKind
from aiops.demo.prometheus import PrometheusServer
from tests.collect.test_collector import ONLY_MEMORY


def test_alertmanager_webhook_alert_that_prometheus_does_not_fire_is_refused_and_audited(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_WEBHOOK_TOKEN", "hook-secret-123")
    cfg = parse_config({
        "prometheus": {"url": prometheus.url, "lookback": "1h"},
        "safety": {"mode": "suggest"},
        "server": {"webhook_token": {"env": "AIOPS_WEBHOOK_TOKEN"}},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
        "policy": {"rules": [{"name": "crashloop-from-am", "detector": "alertmanager", "signal": "KubePodCrashLooping",
                              "min_severity": "warning", "require_confirmed": True, "action": "restart_pod"}]},
        **ONLY_MEMORY,
    })
    pipeline = Pipeline.from_config(cfg)
    handler = webhook_for(cfg, pipeline)
    assert handler is not None
    payload = {
        "version": "4", "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "aiops", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "steady-0", "severity": "warning"},
            "annotations": {"summary": "Pod ml/steady-0 is crash looping"},
            "startsAt": (history_end - timedelta(minutes=10)).isoformat(), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": "abc123",
        }],
    }
    body = json.dumps(payload).encode()
    status, _ = handler(body, {"authorization": "Bearer wrong"})
    assert status in (401, 403)
    status, _ = handler(body, {"authorization": "Bearer hook-secret-123", "content-type": "application/json"})
    assert status == 200
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    # Prometheus (this one evaluates no alerting rule) has no firing ALERTS series for it: refused.
    assert [f for f in report.findings if f.detector == "alertmanager"] == []
    assert not [d for d in report.decisions if d.rule == "crashloop-from-am"]
    [event] = pipeline.audit.events(kind="inbound_refused")
    assert event["ref"] == "abc123" and event["status"] == "not_firing_in_prometheus"
    assert "KubePodCrashLooping" in event["summary"]
    assert REGISTRY.get_sample_value("aiops_inbound_alerts_refused_total", {"reason": "not_firing_in_prometheus"}) >= 1
    # The accepted path, with Prometheus evaluating the rule, runs through a real Alertmanager in
    # tests/reliability/test_inbound_forgery.py.


def test_weekly_digest_goes_out_once_through_its_route(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    cfg = parse_config({
        "prometheus": {"url": prometheus.url, "lookback": "1h"},
        "notify": {
            "channels": {"console": {"plugin": "console"}},
            "routes": [{"name": "capacity", "channels": ["console"], "min_severity": "info", "match": {"source": "advisor"}}],
        },
        "state": {"path": str(tmp_path / "state.sqlite")},
        **ONLY_MEMORY,
    })
    pipeline = Pipeline.from_config(cfg)
    # The digest is its own job beside the cycle (the daemon schedules it), on the cycle's channels.
    job = DigestJob(cfg, pipeline.store, pipeline.notifier, is_leader=lambda: pipeline.actor.is_leader)
    try:
        monday_10 = datetime(2026, 11, 23, 10, 0, tzinfo=history_end.tzinfo)
        cycle = pipeline.run_cycle(monday_10)
        first = job.run(monday_10)
        second = job.run(monday_10 + timedelta(minutes=15))
    finally:
        pipeline.close()
    assert not [n for n in cycle.notifications if n.kind is NotificationKind.DIGEST]
    assert len(first) >= 1 and all(n.kind is NotificationKind.DIGEST for n in first)
    assert second == []
    assert "capacity" in out.getvalue().lower() or "gpu" in out.getvalue().lower()
