"""Notification channels fail while the daemon cycles: DingTalk throttles and then answers 503,
the mail server is down and then comes up. Cycles keep acting, the other channel delivers, the
outbox retries, and in the end each channel has told each finding exactly once."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops.config import parse_config
from aiops.engine.pipeline import Pipeline
from aiops.model import ActionStatus, CycleReport
from aiops.notify import ratelimit
from aiops.testing.dingtalk import DingTalkReceiver
from aiops.demo.prometheus import PrometheusServer
from aiops.testing.smtp import SmtpServer
from tests.prometheus_history import write_history
from tests.collect.test_collector import ONLY_MEMORY

pytestmark = pytest.mark.reliability

TOKEN = "outage-robot-token"


class SkippingClock:
    """time.monotonic, plus whatever the test skips ahead."""

    def __init__(self) -> None:
        self.offset = 0.0

    def skip(self, seconds: float) -> None:
        self.offset += seconds

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[tuple[PrometheusServer, datetime]]:
    end = write_history(tmp_path / "h.om", datetime.now(UTC).replace(second=0, microsecond=0))
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "h.om") as server:
        yield server, end


def test_channels_fail_independently_and_the_outbox_delivers_everything_once(
    prom: tuple[PrometheusServer, datetime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, end = prom
    monkeypatch.setattr(ratelimit, "_BUCKETS", {})
    clock = SkippingClock()
    monkeypatch.setattr(ratelimit, "TokenBucket", functools.partial(ratelimit.TokenBucket, clock=clock))
    monkeypatch.setenv("OUTAGE_DT_TOKEN", TOKEN)
    smtp = SmtpServer()  # its port is reserved, but nothing listens yet: the mail server is down
    with DingTalkReceiver(access_token=TOKEN) as robot:
        cfg = parse_config({
            "prometheus": {"url": server.url, "lookback": "3h", "timeout": "5s"},
            "safety": {"mode": "auto", "dry_run": True},
            "notify": {
                "channels": {
                    "robot": {"plugin": "dingtalk", "params": {"url": robot.url, "access_token": {"env": "OUTAGE_DT_TOKEN"},
                                                            "connect_timeout": "1s", "read_timeout": "2s"}},
                    "mail": {"plugin": "email", "params": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                                                          "from": "aiops@example.com", "to": ["oncall@example.com"],
                                                          "timeout": "2s"}},
                },
                "outbox": {"backoff_initial": "10s", "backoff_max": "1m"},
            },
            "state": {"path": str(tmp_path / "state.sqlite")},
            **ONLY_MEMORY,
        })
        pipeline = Pipeline.from_config(cfg)
        reports: list[CycleReport] = []

        def cycle(minutes: float) -> CycleReport:
            # Cycle times inside the history, so that minutes later the leaky pod is still seen.
            reports.append(pipeline.run_cycle(end + timedelta(minutes=minutes - 15)))
            return reports[-1]

        def pending(channel: str) -> int:
            return pipeline.notifier.outbox.pending(channel)

        try:
            robot.fail_next(130101, "send too fast")  # DingTalk throttles this robot for 10 minutes
            cycle(0)
            assert robot.messages == [] and pending("robot") >= 1 and pending("mail") >= 1
            cycle(1)
            assert len(robot.requests) == 1, "a throttled robot is left alone, not hammered"
            smtp.start()  # the mail server is back: mail delivers while DingTalk is still held
            cycle(2)
            assert len(smtp.messages) == 1 and pending("mail") == 0
            assert robot.messages == [] and pending("robot") >= 1
            robot.http_error_next(503)  # when the hold ends DingTalk is briefly down too
            clock.skip(11 * 60)  # the hold is on the wall clock (DingTalk's), not the cycle's
            for minute in (11, 11.5, 12, 12.5):
                cycle(minute)
            assert pending("robot") == 0 and pending("mail") == 0
        finally:
            pipeline.close()
            smtp.stop()
        messages = robot.messages
        mails = smtp.messages

    # The daemon kept working through every outage: each cycle completed, found the leaky pod and
    # decided on it (advice: this daemon has no cluster access).
    assert len(reports) == 7
    for report in reports:
        assert not report.degraded and report.findings, report.errors
        assert [r.status for r in report.results] == [ActionStatus.SUGGESTED]
    # Nothing lost, nothing twice: the leaky pod's finding reached each channel exactly once.
    assert sum("leaky-0" in m["markdown"]["text"] for m in messages) == 1, [m["markdown"]["title"] for m in messages]
    assert sum("leaky-0" in str(m["Subject"]) + str(m.get_body()) for m in mails) == 1
    assert len({m["Message-ID"] for m in mails}) == len(mails)
    assert [r.errcode for r in robot.requests][:2] == [130101, -503]
