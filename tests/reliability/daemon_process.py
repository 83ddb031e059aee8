"""`aiops run` as a child process wired to the test API server, a real Prometheus and a DingTalk
receiver, for the process-level reliability tests (SIGKILL, restarts, two replicas)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from aiops.server import WEBHOOK_PATH
from aiops.testing.kubeapi import SA_TOKEN, KubeApiServer
from aiops.testing.kubeapi_faults import RequestRecord
from aiops.demo.prometheus import free_port
from tests.collect.test_collector import ONLY_MEMORY

WEBHOOK_TOKEN = "reliability-process-token"
# Only the Alertmanager alert acts; the history's leaky pod is told, never touched.
NODE_RULE = {"name": "node-alert", "detector": "alertmanager", "signal": "NodeFailing", "entity_kind": "node",
             "min_severity": "critical", "require_confirmed": True, "action": "evacuate_node"}


def node_failing_rules(path: Path, node: str = "gpu-1") -> Path:
    """An alerting rule Prometheus evaluates, firing NodeFailing for ``node``: what post_alert sends
    is then a real alert, which the daemon verifies against Prometheus's ALERTS series."""
    rule = {"alert": "NodeFailing", "expr": "vector(1)", "labels": {"node": node, "severity": "critical"}}
    path.write_text(json.dumps({"groups": [{"name": "nodes", "rules": [rule]}]}))
    return path


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def daemon_config(
    workdir: Path, kube: KubeApiServer, prometheus_url: str, *, channels: dict[str, Any], leader: bool = False,
    identity: str = "replica", **safety: Any,
) -> dict[str, Any]:
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig", token=SA_TOKEN)
    return {
        "prometheus": {"url": prometheus_url, "lookback": "3h", "timeout": "5s"},
        "schedule": {"interval": "1s", "misfire_grace": "1s"},
        "policy": {"rules": [NODE_RULE]},
        "safety": {"mode": "auto", "dry_run": False, "api_backoff_max": "100ms", **safety},
        "kubernetes": {
            "enabled": True, "kubeconfig": str(kubeconfig), "request_timeout": "3s", "namespace": "aiops",
            "leader_election": {"enabled": leader, "identity": identity, "lease_duration": "4s",
                                "renew_deadline": "3s", "retry_period": "500ms"},
        },
        "notify": {"channels": channels, "outbox": {"backoff_initial": "1s", "backoff_max": "2s"}},
        "server": {"host": "127.0.0.1", "port": free_port(), "webhook_token": {"env": "RELIABILITY_HOOK_TOKEN"}},
        "state": {"path": str(workdir / "state.sqlite")},
        "logging": {"level": "INFO", "format": "json"},
        **ONLY_MEMORY,
    }


@dataclass
class DaemonProcess:
    """One `aiops run`; its output goes to files so that a killed child cannot block on a full pipe."""

    config: dict[str, Any]
    workdir: Path
    name: str = "daemon"
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.config['server']['port']}"

    def start(self) -> DaemonProcess:
        path = self.workdir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(self.config))
        self.runs += 1
        log = self.workdir / f"{self.name}-{self.runs}.log"
        self.logs.append(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "RELIABILITY_HOOK_TOKEN": WEBHOOK_TOKEN}
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "aiops", "run", "--config", str(path)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        if not wait_for(self.listening, 60, 0.2):
            raise AssertionError(f"{self.name} never served HTTP:\n{self.output()[-3000:]}")
        return self

    def listening(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.output()[-3000:]}")
        try:
            return requests.get(self.base + "/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def post_alert(self, node: str, alertname: str = "NodeFailing") -> None:
        body = {"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": alertname, "node": node, "severity": "critical"},
             "annotations": {"summary": f"{node} is failing"}, "fingerprint": f"{alertname}-{node}"}]}
        r = requests.post(self.base + WEBHOOK_PATH, data=json.dumps(body),
                          headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, timeout=10)
        assert r.status_code == 200, r.text

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: the clean shutdown path."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def applied_writes(kube: KubeApiServer, *resources: str) -> list[tuple[str, str, str, str]]:
    """(method, resource, subresource, name) of each write the server carried out (2xx, not dry-run)."""
    out = []
    for r in kube.requests_matching(writes_only=True):
        if 200 <= r.status < 300 and not r.dry_run and (not resources or r.resource in resources):
            out.append((r.method, r.resource, r.subresource, r.name))
    return out


def evictions(kube: KubeApiServer, name: str) -> list[RequestRecord]:
    return kube.requests_matching(method="POST", resource="pods", subresource="eviction", name=name)
