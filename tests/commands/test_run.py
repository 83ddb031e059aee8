"""``aiops run``: a config it cannot act on as written is refused at start, naming the key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from aiops.cli import main


def _never_started(*args: object, **kwargs: object) -> None:
    raise AssertionError("the daemon was started")


def test_the_daemon_refuses_to_start_with_a_misspelt_action_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aiops.commands.run.Pipeline.from_config", _never_started)
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump({"safety": {"action_modes": {"evacuate-node": "suggest"}},
                                    "state": {"path": str(tmp_path / "state.sqlite")}}))
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "safety.action_modes.evacuate-node" in err and "did you mean 'evacuate_node'?" in err


def _config(tmp_path: Path, **sections: object) -> str:
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump({"prometheus": {"url": "http://127.0.0.1:9", "retries": 0}, **sections}))
    return str(path)


@pytest.mark.parametrize("command", ["run", "once"])
def test_a_state_folder_that_cannot_be_created_is_named_not_blamed_on_the_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setattr("aiops.commands.run.Daemon.run_forever", _never_started)
    (tmp_path / "state").write_text("")  # a file where the state folder should be
    state = tmp_path / "state" / "sub" / "state.sqlite"
    assert main([command, "--config", _config(tmp_path, state={"path": str(state)})]) == 2
    err = capsys.readouterr().err
    assert f"state database {state}" in err and "Not a directory" in err and "cannot listen" not in err


def test_a_busy_port_is_still_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aiops.commands.run.Daemon.run_forever", _never_started)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        config = _config(tmp_path, state={"path": str(tmp_path / "state.sqlite")},
                         server={"host": "127.0.0.1", "port": port}, kubernetes={"enabled": False})
        assert main(["run", "--config", config]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
