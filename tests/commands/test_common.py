"""What every subcommand prints when it stops on an error: the error and what to do next."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.cli import main
from aiops.commands._common import EXIT_USAGE, fail
from aiops.config import ConfigError
from aiops.errors import PermanentError
from aiops.kube.errors import KubeApiError


def test_an_error_with_a_hint_is_printed_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail(PermanentError("the state file is locked", hint="stop the other aiops first")) == EXIT_USAGE
    assert capsys.readouterr().err == "error: the state file is locked\nhint: stop the other aiops first\n"


def test_a_hint_the_message_already_says_is_not_repeated(capsys: pytest.CaptureFixture[str]) -> None:
    err = KubeApiError("evict pod ml/a", 403, "Forbidden", "denied", temporary=False)  # its text ends with the hint
    fail(err)
    assert capsys.readouterr().err.count(err.hint) == 1


def test_an_invalid_config_says_how_to_check_it_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "aiops.yaml"
    path.write_text("schedule: {interval: 0s}\n")
    assert main(["once", "--config", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid config {path}") and "schedule.interval" in err
    assert f"hint: {ConfigError.hint}" in err
