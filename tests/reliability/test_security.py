"""Security: secrets never leak from a running daemon; the shipped container and RBAC are least privilege.

The secret scan runs ``aiops run`` as users do, with every secret the config can hold given through
``{env: NAME}`` references, DEBUG logging (the most talkative level) and failures on the way:
DingTalk answering 500, Prometheus killed for a while, webhook calls with wrong tokens. Then every
byte it produced — stdout, stderr, /metrics, HTTP answers, the SQLite files (audit rows, outbox,
inbox), and what reached DingTalk and the mail server — is searched for each secret value.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from aiops.server import WEBHOOK_PATH
from aiops.testing.dingtalk import DingTalkReceiver
from aiops.demo.prometheus import PrometheusServer, free_port
from aiops.testing.smtp import SmtpServer
from tests.prometheus_history import write_history
from tests.collect.test_collector import ONLY_MEMORY
from tests.reliability.daemon_process import wait_for

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]

# Distinct, unguessable-looking values so that a hit can only be a leak.
SECRETS = {
    "AIOPS_DT_TOKEN": "dt-token-5b9e2c41d7a84f0e",
    "AIOPS_DT_SECRET": "SECdt-sign-9a7c3e1f4b2d8e6a",
    "AIOPS_SMTP_PASSWORD": "smtp-pass-3f8e1a6c9d2b7e4f",
    "AIOPS_WEBHOOK_TOKEN": "hook-token-7c2e9f4a1b8d3e6c",
    "AIOPS_PROM_BEARER": "prom-bearer-1d6f8a3c5e9b2f7a",
}


def forms(secret: str) -> set[str]:
    """The ways a value could show up: raw, URL-quoted, base64 (e.g. SMTP AUTH PLAIN), JSON-escaped."""
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        json.dumps(secret)[1:-1],
    }


def leaks(blob: bytes) -> list[str]:
    return sorted(name for name, value in SECRETS.items() for f in forms(value) if f.encode() in blob)


@pytest.mark.slow
def test_no_secret_appears_anywhere_a_run_writes(tmp_path: Path) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    write_history(tmp_path / "h.om", end)
    port = free_port()
    state_dir = tmp_path / "state"
    with (
        PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "h.om") as prom,
        DingTalkReceiver(access_token=SECRETS["AIOPS_DT_TOKEN"], secret=SECRETS["AIOPS_DT_SECRET"]) as robot,
        SmtpServer(tls=True, username="aiops", password=SECRETS["AIOPS_SMTP_PASSWORD"]) as smtp,
    ):
        cfg: dict[str, Any] = {
            "prometheus": {"url": prom.url, "lookback": "3h", "timeout": "2s", "retries": 0,
                           "bearer_token": {"env": "AIOPS_PROM_BEARER"}},
            "schedule": {"interval": "2s"},
            "safety": {"mode": "auto", "dry_run": True},
            "server": {"host": "127.0.0.1", "port": port, "webhook_token": {"env": "AIOPS_WEBHOOK_TOKEN"}},
            "notify": {
                "channels": {
                    "robot": {"plugin": "dingtalk", "params": {
                        "url": robot.url, "access_token": {"env": "AIOPS_DT_TOKEN"},
                        "secret": {"env": "AIOPS_DT_SECRET"}, "connect_timeout": "1s", "read_timeout": "1s"}},
                    "mail": {"plugin": "email", "params": {
                        "host": "127.0.0.1", "port": smtp.port, "security": "starttls", "ca_file": str(smtp.ca_file),
                        "username": "aiops", "password": {"env": "AIOPS_SMTP_PASSWORD"},
                        "from": "aiops@example.com", "to": ["oncall@example.com"], "timeout": "2s"}},
                },
                "outbox": {"backoff_initial": "1s", "backoff_max": "2s"},
            },
            "state": {"path": str(state_dir / "state.sqlite")},
            "logging": {"level": "DEBUG", "format": "json"},
            **ONLY_MEMORY,
        }
        path = tmp_path / "aiops.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert not leaks(path.read_bytes()), "the config holds references only"
        robot.http_error_next(500, count=2)  # the first deliveries fail and are retried
        env = {**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "aiops", "run", "--config", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        base = f"http://127.0.0.1:{port}"
        answers: list[bytes] = []
        try:
            def get(p: str) -> requests.Response | None:
                try:
                    return requests.get(base + p, timeout=3)
                except requests.ConnectionError:
                    return None

            assert wait_for(lambda: (r := get("/readyz")) is not None and r.status_code == 200, 60), "never ready"
            assert wait_for(lambda: bool(robot.messages) and bool(smtp.received), 30), "nothing delivered"
            # Webhook calls: wrong tokens (logged as rejected), the secret itself in odd places, one valid.
            hook = base + WEBHOOK_PATH
            alert = {"version": "4", "status": "firing", "alerts": [
                {"status": "firing", "labels": {"alertname": "Probe", "namespace": "ml", "pod": "steady-0"},
                 "fingerprint": "probe1"}]}
            for headers, body in [
                ({"Authorization": "Bearer wrong"}, json.dumps(alert).encode()),
                ({"Authorization": f"Basic {SECRETS['AIOPS_WEBHOOK_TOKEN']}"}, json.dumps(alert).encode()),
                ({"Authorization": f"Bearer {SECRETS['AIOPS_WEBHOOK_TOKEN']}"}, b"{broken"),
                ({"Authorization": f"Bearer {SECRETS['AIOPS_WEBHOOK_TOKEN']}"}, json.dumps(alert).encode()),
            ]:
                r = requests.post(hook, data=body, headers=headers, timeout=5)
                answers.append(r.content)
            assert [json.loads(a).get("status") for a in answers][-1] == "ok"
            # Prometheus goes away for a while: collect errors, degraded cycles, then recovery.
            prom.kill()
            assert wait_for(lambda: (r := get("/readyz")) is not None and r.status_code == 503, 30)
            prom.restart()
            assert wait_for(lambda: (r := get("/readyz")) is not None and r.status_code == 200, 60)
            metrics = get("/metrics")
            assert metrics is not None and metrics.status_code == 200
            answers.append(metrics.content)
            assert b'aiops_cycles_total{result="degraded"}' in metrics.content
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        # The other commands that read the same config and state: their output is scanned too.
        cli = {}
        for args in (["check-config", str(path)], ["notify", "--config", str(path), "--test"],
                     ["notify", "--config", str(path), "--outbox"], ["once", "--config", str(path), "--json"]):
            run = subprocess.run([sys.executable, "-m", "aiops", *args], check=False, capture_output=True,
                                 timeout=120, env=env)
            assert run.returncode in (0, 1), (args, run.stderr[-2000:])
            cli[f"aiops {' '.join(args[:2])}"] = run.stdout + run.stderr
        # The secrets did their work: signed DingTalk requests, an authenticated SMTP session.
        assert robot.messages  # the receiver accepts only requests signed with the secret and its token
        assert any(m.authenticated_as == "aiops" for m in smtp.received)
        sent = [json.dumps(m).encode() for m in robot.messages] + [m.as_bytes() for m in smtp.messages]

    assert proc.returncode == 0, err[-3000:]
    assert b"Traceback" not in err or not leaks(err)
    assert b"rejected a request with a wrong bearer token" in err  # the failures were logged ...
    assert b"dingtalk" in err.lower()
    sources: dict[str, bytes] = {"stdout": out, "stderr": err}
    sources |= {f"http answer {i}": a for i, a in enumerate(answers)}
    sources |= {f"message {i}": m for i, m in enumerate(sent)}
    sources |= cli
    files = sorted(p for p in state_dir.rglob("*") if p.is_file())
    assert any(p.name == "state.sqlite" for p in files)
    sources |= {f"state file {p.name}": p.read_bytes() for p in files}
    audit = subprocess.run([sys.executable, "-m", "aiops", "history", "--state", str(state_dir / "state.sqlite")],
                           check=False, capture_output=True, timeout=60, env={**os.environ, **SECRETS})
    assert audit.returncode == 0, audit.stderr
    sources["aiops history"] = audit.stdout + audit.stderr
    found = {where: leaks(blob) for where, blob in sources.items() if leaks(blob)}
    assert found == {}, f"secret values leaked: {found}"  # ... and nothing of any secret went with them


# --- container and RBAC posture -------------------------------------------------------------------
def kustomize_docs() -> list[dict[str, Any]]:
    docs = []
    for f in sorted((ROOT / "deploy" / "kustomize" / "base").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict) and "kind" in d]
    return docs


def rbac_rule_sources() -> dict[str, list[dict[str, Any]]]:
    """Every RBAC rule list shipped: the plain ClusterRole, the chart's copy, the rendered base."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in (ROOT / "deploy" / "rbac" / "clusterrole.yaml", ROOT / "deploy" / "helm" / "aiops" / "files" / "clusterrole.yaml"):
        out[str(f.relative_to(ROOT))] = yaml.safe_load(f.read_text())["rules"]
    for d in kustomize_docs():
        if d["kind"] in ("ClusterRole", "Role"):
            out[f"kustomize base {d['kind']} {d['metadata']['name']}"] = d.get("rules") or []
    return out


def test_container_image_runs_as_a_numeric_non_root_user() -> None:
    lines = [ln.strip() for ln in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()]
    stages = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    users = [ln.split(None, 1)[1] for ln in lines[stages[-1]:] if ln.upper().startswith("USER ")]
    assert users, "the final stage must set USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: use a numeric non-root uid (runAsNonRoot needs it)"
    assert not group or (group.isdigit() and int(group) != 0)


def test_shipped_pods_are_non_root_unprivileged_and_read_only() -> None:
    workloads = [d for d in kustomize_docs() if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Pod")]
    assert workloads, "the kustomize base ships the daemon's Deployment"
    for w in workloads:
        pod = w["spec"]["template"]["spec"] if "template" in w.get("spec", {}) else w["spec"]
        name = f"{w['kind']}/{w['metadata']['name']}"
        psc = pod.get("securityContext") or {}
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            csc = c.get("securityContext") or {}
            assert csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{name}/{c['name']}: runAsNonRoot"
            assert csc.get("runAsUser", psc.get("runAsUser", 1)) != 0, f"{name}/{c['name']}: runAsUser 0"
            assert csc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: allowPrivilegeEscalation"
            assert not csc.get("privileged"), f"{name}/{c['name']}: privileged"
            assert csc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: readOnlyRootFilesystem"
            assert "ALL" in (csc.get("capabilities") or {}).get("drop", []), f"{name}/{c['name']}: drop ALL"
            assert not (csc.get("capabilities") or {}).get("add"), f"{name}/{c['name']}: adds capabilities"
        for v in pod.get("volumes", []):
            assert "hostPath" not in v, f"{name}: hostPath volume {v['name']}"


# Verbs and subresources that hand out more than the daemon's job needs.
DANGEROUS_VERBS = {"escalate", "bind", "impersonate", "deletecollection"}
DANGEROUS_RESOURCES = {"pods/exec", "pods/attach", "pods/portforward", "nodes/proxy", "services/proxy",
                       "serviceaccounts/token", "clusterroles", "clusterrolebindings", "roles", "rolebindings",
                       "customresourcedefinitions", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"}


@pytest.mark.parametrize("source", sorted(rbac_rule_sources()))
def test_rbac_is_least_privilege(source: str) -> None:
    rules = rbac_rule_sources()[source]
    assert rules, f"{source}: no rules"
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in (rule.get(key) or []), f"{source}: wildcard in {key} of {rule}"
        assert not rule.get("nonResourceURLs"), f"{source}: nonResourceURLs {rule}"
        assert not DANGEROUS_VERBS & set(rule["verbs"]), f"{source}: {rule}"
        assert not DANGEROUS_RESOURCES & set(rule["resources"]), f"{source}: {rule}"
        if "secrets" in rule["resources"]:
            # Only named secrets of its own (none today: secrets reach the pod as env/files).
            assert rule.get("resourceNames") and set(rule["verbs"]) <= {"get"}, f"{source}: reads secrets broadly {rule}"


def test_every_shipped_copy_of_the_role_grants_the_same_rights() -> None:
    def rights(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
        return {(g, r, v, n) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
                for v in rule["verbs"] for n in (rule.get("resourceNames") or ["(any)"])}

    sources = rbac_rule_sources()
    reference = rights(sources["deploy/rbac/clusterrole.yaml"])
    for name, rules in sources.items():
        if "ClusterRole" in name or name.endswith("clusterrole.yaml"):
            assert rights(rules) == reference, f"{name} differs from deploy/rbac/clusterrole.yaml"
