"""deploy/Dockerfile: multi-stage, slim, non-root, `aiops run` entrypoint, healthcheck on /healthz.

No Docker daemon is available to build it here, so the instructions are checked against the
chart and the project they must agree with.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib

import pytest

from tests.deploy.manifests import CHART, REPO

DOCKERFILE = REPO / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for op, arg in _instructions():
        if op == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op, arg))
    return stages


def test_multi_stage_on_a_slim_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    args = dict(arg.split("=", 1) for op, arg in _instructions() if op == "ARG" and "=" in arg)
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base


def test_final_image_has_no_build_tools_and_no_source() -> None:
    final = _stages()[-1]
    runs = " ".join(arg for op, arg in final if op == "RUN")
    assert not re.search(r"apt-get install|build-essential|gcc|\bpip wheel\b|setuptools", runs)
    assert "--no-index" in runs, "the final stage installs only the wheels built earlier"
    assert not [arg for op, arg in final if op == "COPY" and "--from" not in arg]


def test_runs_as_a_numeric_non_root_user() -> None:
    final = _stages()[-1]
    (user,) = [arg for op, arg in final if op == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    chart_uid = re.search(r"runAsUser: (\d+)", (CHART / "templates" / "deployment.yaml").read_text())
    assert chart_uid and chart_uid.group(1) == uid


def test_entrypoint_is_aiops_run_with_the_chart_s_config_path() -> None:
    final = dict(_stages()[-1])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(final["ENTRYPOINT"]) == ["aiops"] and "aiops" in scripts
    assert json.loads(final["CMD"]) == ["run", "--config", "/etc/aiops/config.yaml"]
    assert '"/etc/aiops/config.yaml"' in (CHART / "templates" / "deployment.yaml").read_text()


def test_healthcheck_asks_healthz_on_the_served_port() -> None:
    final = dict(_stages()[-1])
    assert final["EXPOSE"] == "8080"
    check = final["HEALTHCHECK"]
    assert "CMD" in check and "http://127.0.0.1:8080/healthz" in check


@pytest.mark.parametrize("source", ["pyproject.toml", "README.md", "aiops", "detectors", "remediations"])
def test_copied_sources_exist_and_are_not_ignored(source: str) -> None:
    copied = {
        src.removeprefix("./").rstrip("/")
        for op, arg in _instructions()
        if op == "COPY" and "--from" not in arg
        for src in shlex.split(arg)[:-1]
    }
    assert source in copied
    assert (REPO / source).exists()
    ignore = (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :].count(f"!{source}" + ("/" if (REPO / source).is_dir() else "")) == 1


def _healthcheck_command(port: int) -> list[str]:
    check = dict(_stages()[-1])["HEALTHCHECK"]
    command = json.loads(check.split("CMD", 1)[1].strip())
    return [arg.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for arg in command]


@pytest.mark.timeout(60)
def test_healthcheck_command_passes_on_a_live_daemon_and_fails_otherwise() -> None:
    from aiops.server import DaemonServer
    from aiops.demo.prometheus import free_port

    def healthcheck(port: int) -> int:
        return subprocess.run(_healthcheck_command(port), capture_output=True, timeout=20, check=False).returncode

    state = {"alive": True}
    port = free_port()
    server = DaemonServer("127.0.0.1", port, ready=lambda: (False, "starting"), alive=lambda: state["alive"]).start()
    try:
        assert healthcheck(port) == 0
        state["alive"] = False  # the scheduler stopped: /healthz answers 503
        assert healthcheck(port) != 0
    finally:
        server.stop()
    assert healthcheck(port) != 0
