"""README.md's two commands: the set-up line works as root without sudo and as a sudo user, and
.ci/run runs exactly the README's test command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _readme_commands() -> tuple[str, str]:
    block = re.search(r"```bash\n(.*?)```", README, re.DOTALL)
    assert block, "README has no bash block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    setup, test = lines
    return setup, test


def _stub(bin_dir: Path, name: str, body: str = "") -> None:
    path = bin_dir / name
    path.write_text(f'#!/bin/bash\necho "{name} $* uid=${{FAKE_UID:-0}}" >> "$LOG"\n{body}\n')
    path.chmod(0o755)


def _run_setup(tmp_path: Path, *, with_sudo: bool) -> list[str]:
    """The README's set-up line in bash, with every program it calls replaced by a recording stub."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mkdir", "touch"):
        os.symlink(shutil.which(tool), bin_dir / tool)  # type: ignore[arg-type]
    _stub(bin_dir, "apt-get")
    _stub(bin_dir, "pip")
    _stub(bin_dir, "aiops")
    # `python3 -m venv .venv` leaves an activate script behind, as the real one does.
    _stub(bin_dir, "python3", 'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && touch "$3/bin/activate"; fi')
    if with_sudo:
        _stub(bin_dir, "sudo", 'FAKE_UID=0 exec "$@"')
    log = tmp_path / "calls.log"
    setup, _ = _readme_commands()
    env = {"PATH": str(bin_dir), "LOG": str(log), "FAKE_UID": "1000" if with_sudo else "0", "HOME": str(tmp_path)}
    run = subprocess.run([shutil.which("bash"), "-c", setup], cwd=tmp_path, env=env, capture_output=True, text=True,  # type: ignore[list-item]
                         timeout=30)
    assert run.returncode == 0, run.stderr
    return log.read_text().splitlines()


def test_setup_works_as_root_without_sudo(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, with_sudo=False)
    assert [c.split()[0] for c in calls] == ["apt-get", "apt-get", "python3", "pip", "aiops"], calls
    assert calls[1].startswith("apt-get install -y prometheus prometheus-alertmanager")


def test_setup_works_as_a_sudo_user(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, with_sudo=True)
    # apt-get runs through sudo (as root); the rest as the user, inside the virtual environment.
    assert calls[0].startswith("sudo apt-get update") and calls[2].startswith("sudo apt-get install")
    assert [c for c in calls if c.startswith("apt-get")] == [c for c in calls if c.startswith("apt-get") and "uid=0" in c]
    assert any(c.startswith("pip install -e .[test] uid=1000") for c in calls), calls


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = _readme_commands()
    ci = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci[-1] == test
    # The chart tests need helm: the test command gets it, so there is no separate step to forget.
    assert "tests.deploy.helm_binary" in test and "pytest" in test


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_commands_are_one_line_each(command: str) -> None:
    assert "\\" not in command and "sudo apt-get" not in command.replace("$(command -v sudo) apt-get", "")
