"""`aiops demo` as a newcomer runs it: bundled data, real Prometheus, one dry-run cycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Starts daemons or real servers (tens of seconds each): `-m "not slow"` leaves it out of the inner loop.
pytestmark = pytest.mark.slow


def test_demo_reports_findings_with_lead_time_and_changes_nothing() -> None:
    run = subprocess.run([sys.executable, "-m", "aiops", "demo", "--json"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["degraded"] is False and report["dry_run"] is True
    assert report["series_count"] > 20
    predicted = [f for f in report["findings"] if f["lead_time_seconds"] and f["severity"] == "critical"]
    assert any(f["signal"] == "pod_memory_usage_ratio" for f in predicted)
    # Every fault seeded in aiops/data/demo/scenario.yaml is reported at warning or above.
    seen = {f["signal"] for f in report["findings"] if f["severity"] in ("warning", "critical")}
    assert {"pod_memory_usage_ratio", "node_filesystem_usage_ratio", "gpu_xid", "serving_ttft_p99",
            "pod_crashlooping", "model_accuracy"} <= seen, seen
    # One qwen2-7b replica loses accuracy on node-1, whose GPU fell off the bus: the node is blamed.
    root = [f for f in report["findings"] if f["detector"] == "root_cause"]
    assert [f["entity"]["key"] for f in root] == ["node/node-1"]
    drift = next(f for f in report["findings"] if f["signal"] == "model_accuracy")
    assert drift["cause"]["name"] == "node-1"
    assert not any(d["action"] == "rollback_model" for d in report["decisions"])
    assert all(r["status"] in {"dry_run", "suggested", "observed", "blocked", "deferred"} for r in report["results"])
    assert report["results"], "the demo must show what it would do"
    # node-0 GPU 0 is healthy under its exporter's impossible values (exporter_garbage): told
    # nothing, done nothing (its node is evacuated for GPU 1's double-bit ECC errors, not for it).
    from aiops.demo.synth import Topology, demo_scenario

    healthy = Topology.build(demo_scenario()).gpus[0].uuid
    assert [f["signal"] for f in report["findings"] if healthy in json.dumps(f)] == []
    assert [d["action"] for d in report["decisions"] if healthy in json.dumps(d)] == []


def test_demo_text_report_is_readable() -> None:
    run = subprocess.run([sys.executable, "-m", "aiops", "demo"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "What looks wrong" in run.stdout and "predicted failure in" in run.stdout
    assert "What aiops did or would do" in run.stdout and "nothing was changed" in run.stdout


def test_demo_without_prometheus_says_what_to_install(tmp_path: Path) -> None:
    # A PATH without the Debian binaries, as on a machine where the package is missing.
    bare, tmp = tmp_path / "bin", tmp_path / "tmp"
    bare.mkdir(), tmp.mkdir()
    env = {**os.environ, "PATH": str(bare), "TMPDIR": str(tmp)}
    run = subprocess.run([sys.executable, "-m", "aiops", "demo"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2
    assert "apt-get install" in run.stderr and "prometheus" in run.stderr
    assert "Traceback" not in run.stderr
    # The history it wrote before finding no Prometheus (34 MB) does not stay behind in the temp dir.
    assert list(tmp.iterdir()) == []
