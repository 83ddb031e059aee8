"""``aiops notify --test``: per-channel result or the exact error, right after installing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiops.cli import main
from aiops.testing.dingtalk import DingTalkReceiver
from aiops.testing.smtp import SmtpServer

SECRET = "SECcli0123456789"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DingTalkReceiver, SmtpServer]]:
    monkeypatch.setenv("CLI_DT_TOKEN", "cli-token")
    monkeypatch.setenv("CLI_DT_SECRET", SECRET)
    with DingTalkReceiver(access_token="cli-token", secret=SECRET, keywords=["aiops"]) as robot, SmtpServer() as smtp:
        yield robot, smtp


def write_config(tmp_path: Path, robot: DingTalkReceiver, smtp: SmtpServer, **extra: Any) -> Path:
    cfg = {"notify": {
        "channels": {
            "team-dingtalk": {"plugin": "dingtalk", "params": {
                "access_token": {"env": "CLI_DT_TOKEN"}, "secret": {"env": "CLI_DT_SECRET"}, "url": robot.url, "keyword": "aiops"}},
            "oncall-mail": {"plugin": "email", "params": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                                                           "from": "aiops@example.com", "to": ["oncall@example.com"]}},
        },
        "routes": [{"name": "mail-only", "channels": ["oncall-mail"]},
                   {"name": "everyone", "channels": ["team-dingtalk", "oncall-mail"]}],
        **extra,
    }}
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_every_channel_reports_ok(tmp_path: Path, servers: tuple[DingTalkReceiver, SmtpServer], capsys: pytest.CaptureFixture[str]) -> None:
    robot, smtp = servers
    assert main(["notify", "--test", "--config", str(write_config(tmp_path, robot, smtp))]) == 0
    out = capsys.readouterr().out
    assert "team-dingtalk  ok" in out and "oncall-mail    ok" in out
    [msg] = robot.messages
    assert "[TEST]" in msg["markdown"]["title"] and "No action is needed" in msg["markdown"]["text"]
    assert smtp.messages[0]["Subject"].startswith("[aiops] [TEST]")


def test_a_failing_channel_shows_the_exact_error(tmp_path: Path, servers: tuple[DingTalkReceiver, SmtpServer],
                                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    robot, smtp = servers
    monkeypatch.setenv("CLI_DT_SECRET", "SECwrong")
    assert main(["notify", "--test", "-c", str(write_config(tmp_path, robot, smtp))]) == 1
    captured = capsys.readouterr()
    assert "team-dingtalk  FAILED  DingTalk refused the message (310000: sign not match" in captured.out
    assert "oncall-mail    ok" in captured.out
    assert "1 of 2 channel(s) failed: team-dingtalk" in captured.err


def test_route_selects_its_channels(tmp_path: Path, servers: tuple[DingTalkReceiver, SmtpServer], capsys: pytest.CaptureFixture[str]) -> None:
    robot, smtp = servers
    assert main(["notify", "--test", "--route", "mail-only", "-c", str(write_config(tmp_path, robot, smtp))]) == 0
    assert robot.requests == [] and len(smtp.messages) == 1
    assert "(route mail-only)" in smtp.messages[0]["Subject"]


def test_unknown_route_and_missing_secret_are_explained(tmp_path: Path, servers: tuple[DingTalkReceiver, SmtpServer],
                                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    robot, smtp = servers
    path = write_config(tmp_path, robot, smtp)
    assert main(["notify", "--test", "--route", "nope", "-c", str(path)]) == 2
    assert "no notify route named 'nope' (routes: mail-only, everyone)" in capsys.readouterr().err
    monkeypatch.delenv("CLI_DT_TOKEN")
    assert main(["notify", "--test", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "notify.channels.team-dingtalk" in err and "CLI_DT_TOKEN is not set" in err and "Traceback" not in err


def test_outbox_lists_waiting_and_failed_notifications(tmp_path: Path, servers: tuple[DingTalkReceiver, SmtpServer],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from aiops.config import load_config
    from aiops.notify.stage import NotifyStage
    from aiops.state import Store

    from .conftest import NOW, finding

    robot, smtp = servers
    path = write_config(tmp_path, robot, smtp)
    data = yaml.safe_load(path.read_text())
    data["state"] = {"path": str(tmp_path / "state.sqlite")}
    data["notify"]["routes"] = []  # everything to every channel
    path.write_text(yaml.safe_dump(data))
    assert main(["notify", "--outbox", "-c", str(path)]) == 2
    assert "no state file" in capsys.readouterr().err

    robot.http_error_next(503)
    cfg = load_config(path)
    stage = NotifyStage.from_config(cfg, Store(cfg.state.path))
    stage.notify([finding()], [], cycle_id="c1", now=NOW, degraded=False)
    stage.close()
    stage.store.close()
    capsys.readouterr()
    assert main(["notify", "--outbox", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pending   team-dingtalk      1" in out and "exhaustion:pod_memory_usage_ratio:pod/ml/llama-0" in out
    assert "DingTalk answered HTTP 503" in out
