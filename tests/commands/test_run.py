"""``aiops run``: a config it cannot act on as written is refused at start, naming the key."""

from __future__ import annotations

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
