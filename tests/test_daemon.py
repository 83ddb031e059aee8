"""The daemon as users run it: `aiops run` in a subprocess, its endpoints, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from aiops.server import DaemonServer
from aiops.demo.prometheus import PrometheusServer, free_port
from tests.collect.test_collector import ONLY_MEMORY
from tests.reliability.daemon_process import wait_for


def test_server_endpoints() -> None:
    state = {"ready": (False, "no successful cycle yet")}
    server = DaemonServer("127.0.0.1", 0, ready=lambda: state["ready"]).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        r = requests.get(f"{base}/readyz", timeout=5)
        assert r.status_code == 503 and r.json()["reason"] == "no successful cycle yet"
        state["ready"] = (True, "ok")
        assert requests.get(f"{base}/readyz", timeout=5).json() == {"ready": True, "reason": "ok"}
        text = requests.get(f"{base}/metrics", timeout=5).text
        assert "aiops_cycle_duration_seconds" in text
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
        # No webhook token configured: the webhook endpoint does not exist.
        assert requests.post(f"{base}/api/v1/alertmanager", data=b"{}", timeout=5).status_code == 404
    finally:
        server.stop()


@pytest.mark.slow
def test_run_serves_metrics_becomes_ready_and_stops_on_sigterm(live_prometheus: PrometheusServer, tmp_path: Path) -> None:
    port = free_port()
    cfg = {
        "prometheus": {"url": live_prometheus.url, "lookback": "1h", "timeout": "5s"},
        "schedule": {"interval": "2s"},
        "server": {"host": "127.0.0.1", "port": port},
        "state": {"path": str(tmp_path / "state.sqlite")},
        "notify": {"channels": {}},
        **ONLY_MEMORY,
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiops", "run", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return requests.get(f"{base}/readyz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        if not wait_for(ready, 60):
            proc.kill()
            raise AssertionError(f"daemon never became ready: {proc.communicate()[1][-3000:]}")
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert 'aiops_cycles_total{result="ok"}' in metrics
        assert "aiops_prometheus_up 1.0" in metrics
        # Cycles keep coming on the schedule.
        def ok_cycles() -> float:
            text = requests.get(f"{base}/metrics", timeout=5).text
            line = next(ln for ln in text.splitlines() if ln.startswith('aiops_cycles_total{result="ok"}'))
            return float(line.split()[-1])

        if not wait_for(lambda: ok_cycles() >= 2, 30):
            proc.kill()
            raise AssertionError(f"cycles stopped coming: {proc.communicate()[1][-3000:]}")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert '"msg": "aiops stopped"' in err  # structured JSON logs, clean shutdown
    assert "Traceback" not in err
    # Once, before the first cycle: the 5 h Prometheus holds before the first frame's hour.
    assert err.count("detector ensemble.exhaustion learnt pod_memory_usage_ratio from") == 1, err[-3000:]


@pytest.mark.slow
def test_once_json_and_history(live_prometheus: PrometheusServer, tmp_path: Path) -> None:
    cfg = {
        "prometheus": {"url": live_prometheus.url, "lookback": "3h"},
        "safety": {"mode": "suggest"},
        "state": {"path": str(tmp_path / "state.sqlite")},
        "notify": {"channels": {}},
        **ONLY_MEMORY,
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-m", "aiops", "once", "--config", str(path), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    import json

    report = json.loads(run.stdout)
    leaky = [f for f in report["findings"] if f["entity"]["name"] == "leaky-0"]
    assert leaky and 0 < leaky[0]["lead_time_seconds"] < 3600
    assert any(r["status"] == "suggested" for r in report["results"])
    text = subprocess.run([sys.executable, "-m", "aiops", "once", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert "predicted failure in" in text.stdout and "pod/ml/leaky-0" in text.stdout
    hist = subprocess.run([sys.executable, "-m", "aiops", "history", "--config", str(path), "--entity", "leaky-0"],
                          capture_output=True, text=True, timeout=60)
    assert hist.returncode == 0 and "pod/ml/leaky-0" in hist.stdout and "decision" in hist.stdout
    none = subprocess.run([sys.executable, "-m", "aiops", "history", "--state", str(tmp_path / "nope.sqlite")],
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and "no state database" in none.stderr
