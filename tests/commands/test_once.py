"""`aiops once` as people and scripts run it: JSON only on stdout, one line per cause when degraded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aiops.demo.prometheus import PrometheusServer, free_port
from tests.collect.test_collector import ONLY_MEMORY


def _once(cfg: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "aiops", "once", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_once_json_prints_only_json_with_the_default_console_channel(
    live_prometheus: PrometheusServer, tmp_path: Path
) -> None:
    # No notify section: the default console channel prints its digest during the cycle.
    cfg = {"prometheus": {"url": live_prometheus.url, "lookback": "3h"}, "state": {"path": str(tmp_path / "s.sqlite")},
           **ONLY_MEMORY}
    run = _once(cfg, tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # the whole of stdout is one JSON document
    assert any(f["entity"]["name"] == "leaky-0" for f in report["findings"])
    # People still get the console digest, on stderr.
    assert "leaky-0" in run.stderr


@pytest.mark.slow
def test_degraded_once_says_why_once_and_gives_no_all_clear(tmp_path: Path) -> None:
    cfg = {"prometheus": {"url": f"http://127.0.0.1:{free_port()}", "retries": 0, "timeout": "2s"},
           "state": {"path": str(tmp_path / "s.sqlite")}, "notify": {"channels": {}}}
    run = _once(cfg, tmp_path)
    assert run.returncode == 1, run.stderr
    assert run.stdout.count("cannot connect") == 1, run.stdout
    assert run.stdout.count("DEGRADED") == 1
    assert "Nothing looks wrong" not in run.stdout and "no all-clear" in run.stdout
