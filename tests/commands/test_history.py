"""`aiops history` as people and scripts read it, right after `aiops demo`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the demo in a subprocess to get a real database: `-m "not slow"` leaves it out of the inner loop.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WIDTH = 120


def _aiops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Run in a fresh directory, as a newcomer would, with this checkout's code.
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(WIDTH)}
    return subprocess.run([sys.executable, "-m", "aiops", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def after_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("newcomer")
    demo = _aiops(cwd, "demo")
    assert demo.returncode == 0, demo.stderr
    return cwd, demo


def test_history_finds_the_demo_database(after_demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    cwd, demo = after_demo
    assert ".aiops/demo/state.sqlite" in demo.stdout and "aiops history" in demo.stdout
    hist = _aiops(cwd, "history")
    assert hist.returncode == 0, hist.stderr
    assert "Recent cycles:" in hist.stdout and "Events (newest first):" in hist.stdout
    assert "last `aiops demo`" in hist.stderr


@pytest.fixture(scope="module")
def kept_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A demo run with --workdir: its state database stays there (as it always did)."""
    cwd = tmp_path_factory.mktemp("workdir-demo")
    demo = _aiops(cwd, "demo", "--workdir", str(cwd / "w"))
    assert demo.returncode == 0, demo.stderr
    return cwd, cwd / "w" / "state.sqlite"


def test_history_lines_are_bounded_and_single(kept_state: tuple[Path, Path]) -> None:
    cwd, state = kept_state
    hist = _aiops(cwd, "history", "--state", str(state), "--limit", "200")
    lines = hist.stdout.splitlines()
    events = lines[lines.index("Events (newest first):") + 1:]
    assert len(events) > 20
    # Each event is exactly one line (no embedded newline continues it) within the terminal width.
    assert all(line.startswith("  20") for line in events), [ln for ln in events if not ln.startswith("  20")][:3]
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)


def test_history_json_nests_objects(kept_state: tuple[Path, Path]) -> None:
    cwd, state = kept_state
    hist = _aiops(cwd, "history", "--state", str(state), "--json", "--limit", "200")
    data = json.loads(hist.stdout)
    assert all(isinstance(e["detail"], dict) for e in data["events"])
    cycle = data["cycles"][0]
    assert isinstance(cycle["stage_seconds"], dict) and isinstance(cycle["errors"], list)
    actions = [e for e in data["events"] if e["kind"] == "action"]
    assert actions and all(isinstance(a["detail"].get("plan"), dict | None) for a in actions)
