"""DingTalk against a local receiver that checks timestamp/sign, keywords and the rate limit as DingTalk does."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from aiops.model import Severity
from aiops.notify.dingtalk import DingTalkNotifier, sign
from aiops.notify.formatting import MENTION_MOBILES_LABEL, MENTION_USER_IDS_LABEL
from aiops.notify.ratelimit import TokenBucket
from aiops.notify.build import build_notifications
from aiops.plugins import DeliveryStatus
from aiops.testing.dingtalk import DingTalkReceiver

from .conftest import finding, pod

SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
TOKEN = "tok-0123456789abcdef"


@pytest.fixture
def robot(monkeypatch: pytest.MonkeyPatch) -> Iterator[DingTalkReceiver]:
    monkeypatch.setenv("DT_TOKEN", TOKEN)
    monkeypatch.setenv("DT_SECRET", SECRET)
    with DingTalkReceiver(access_token=TOKEN, secret=SECRET, keywords=["aiops"]) as r:
        yield r


def notifier(robot: DingTalkReceiver, **params: object) -> DingTalkNotifier:
    base = {"access_token": {"env": "DT_TOKEN"}, "secret": {"env": "DT_SECRET"}, "url": robot.url, "keyword": "aiops",
            "read_timeout": "1s", "connect_timeout": "1s"}
    n = DingTalkNotifier(**{**base, **params})
    n.bucket = TokenBucket(20)  # each test gets its own robot, so its own bucket
    return n


def notifications(count: int = 1, **labels: str):
    ns = build_notifications([finding(pod(f"llama-{i}")) for i in range(count)], [], cycle_id="c1",
                             min_severity=Severity.WARNING)
    return [n.__class__(**{**n.__dict__, "labels": {**n.labels, **labels}}) for n in ns]


def test_sign_agrees_with_the_dingtalkchatbot_library() -> None:
    # An independent implementation of the same documented algorithm (HMAC-SHA256, base64, quote_plus).
    from dingtalkchatbot.chatbot import DingtalkChatbot

    bot = DingtalkChatbot("http://robot.invalid/robot/send?access_token=t", secret="SECabc")
    bot.start_time = 1700000000.0
    bot.update_webhook()
    expected = bot.webhook.split("&sign=")[1]
    assert "timestamp=1700000000000&" in bot.webhook
    assert sign("SECabc", 1700000000000) == expected


def test_signed_markdown_digest_is_accepted(robot: DingTalkReceiver) -> None:
    d = notifier(robot).send(notifications(3))
    assert d.status is DeliveryStatus.DELIVERED, d.detail
    [msg] = robot.messages
    assert msg["msgtype"] == "markdown"
    assert msg["markdown"]["title"].startswith("aiops [CRITICAL] 3 firing")
    assert "llama-0" in msg["markdown"]["text"] and "llama-2" in msg["markdown"]["text"]
    ts = robot.requests[0].query["timestamp"]
    assert abs(int(ts) - time.time() * 1000) < 60_000  # signed now, not at construction time


def test_each_request_is_signed_with_a_fresh_timestamp(robot: DingTalkReceiver) -> None:
    n = notifier(robot)
    n.send(notifications())
    time.sleep(0.01)
    n.send(notifications())
    t1, t2 = (int(r.query["timestamp"]) for r in robot.requests)
    assert t2 > t1 and len(robot.messages) == 2


def test_mentions_appear_in_at_and_in_the_text(robot: DingTalkReceiver) -> None:
    ns = notifications(1, **{MENTION_MOBILES_LABEL: "13800000000,13900000000", MENTION_USER_IDS_LABEL: "u-42"})
    assert notifier(robot).send(ns).status is DeliveryStatus.DELIVERED
    msg = robot.messages[0]
    assert msg["at"]["atMobiles"] == ["13800000000", "13900000000"]
    assert msg["at"]["atUserIds"] == ["u-42"]
    assert "@13800000000" in msg["markdown"]["text"] and "@13900000000" in msg["markdown"]["text"]


def test_wrong_secret_is_refused_and_given_up(robot: DingTalkReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_SECRET", "SECwrong")
    d = notifier(robot).send(notifications())
    assert d.status is DeliveryStatus.GIVE_UP
    assert "310000" in d.detail and "sign not match" in d.detail
    assert robot.messages == []


def test_missing_keyword_is_refused(robot: DingTalkReceiver) -> None:
    d = notifier(robot, keyword="").send(notifications())
    assert d.status is DeliveryStatus.GIVE_UP and "keywords not in content" in d.detail


def test_unknown_token_is_permanent_and_the_token_never_shows(robot: DingTalkReceiver, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DT_TOKEN", "tok-revoked-999")
    caplog.set_level(logging.DEBUG)
    d = notifier(robot).send(notifications())
    assert d.status is DeliveryStatus.GIVE_UP and "300001" in d.detail
    assert "tok-revoked-999" not in d.detail and "tok-revoked-999" not in caplog.text


def test_throttled_robot_backs_off_ten_minutes(robot: DingTalkReceiver) -> None:
    robot.fail_next(130101, "send too fast, exceed 20 times per minute")
    n = notifier(robot)
    d = n.send(notifications())
    assert d.status is DeliveryStatus.RETRY and d.retry_after_seconds == 600
    assert n.wait_seconds() > 590  # nothing is sent to a throttled robot
    assert n.send(notifications()).status is DeliveryStatus.RETRY
    assert len(robot.requests) == 1


def test_rate_limit_is_enforced_before_dingtalk_has_to(robot: DingTalkReceiver) -> None:
    n = notifier(robot)
    results = [n.send(notifications()).status for _ in range(25)]
    assert results.count(DeliveryStatus.DELIVERED) == 20
    assert len(robot.requests) == 20  # the 21st never left the process
    assert all(r.errcode == 0 for r in robot.requests)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(robot: DingTalkReceiver, status: int) -> None:
    robot.http_error_next(status)
    d = notifier(robot).send(notifications())
    assert d.status is DeliveryStatus.RETRY and str(status) in d.detail


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_timeout_is_retried_and_bounded(robot: DingTalkReceiver) -> None:
    robot.delay_next(2.0)
    t0 = time.monotonic()
    d = notifier(robot).send(notifications())
    assert time.monotonic() - t0 < 1.9
    assert d.status is DeliveryStatus.RETRY and "timed out" in d.detail


def test_receiver_down_is_retried_without_leaking_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TOKEN", TOKEN)
    robot = DingTalkReceiver(access_token=TOKEN)
    url = robot.url
    robot.stop()  # bound, never served, now closed: connection refused
    n = DingTalkNotifier(access_token={"env": "DT_TOKEN"}, url=url, connect_timeout="1s")
    n.bucket = TokenBucket(20)
    d = n.send(notifications())
    assert d.status is DeliveryStatus.RETRY and "cannot reach DingTalk" in d.detail and TOKEN not in d.detail


def test_bad_params_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TOKEN", TOKEN)
    with pytest.raises(ValueError, match="exactly one of 'webhook' or 'access_token'"):
        DingTalkNotifier()
    with pytest.raises(ValueError, match="must not be written in the config in clear"):
        DingTalkNotifier(access_token="plain-text-token")
    with pytest.raises(ValueError, match="less than or equal to 20"):
        DingTalkNotifier(access_token={"env": "DT_TOKEN"}, rate_per_minute=30)
    monkeypatch.setenv("DT_SECRET", "not-a-sec-secret")
    with pytest.raises(ValueError, match="starts with 'SEC'"):
        DingTalkNotifier(access_token={"env": "DT_TOKEN"}, secret={"env": "DT_SECRET"})


def test_notifiers_of_the_same_robot_share_one_bucket(robot: DingTalkReceiver) -> None:
    params = {"access_token": {"env": "DT_TOKEN"}, "secret": {"env": "DT_SECRET"}, "url": robot.url, "keyword": "aiops"}
    daemon, cli = DingTalkNotifier(**params), DingTalkNotifier(**params)
    assert daemon.bucket is cli.bucket
    for _ in range(20):
        assert daemon.send(notifications()).status is DeliveryStatus.DELIVERED
    assert cli.wait_seconds() > 0 and cli.send(notifications()).status is DeliveryStatus.RETRY
    assert len(robot.requests) == 20


def test_whole_webhook_url_as_the_secret(robot: DingTalkReceiver, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DT_WEBHOOK", robot.webhook)
    caplog.set_level(logging.DEBUG)
    n = DingTalkNotifier(webhook={"env": "DT_WEBHOOK"}, secret={"env": "DT_SECRET"}, keyword="aiops")
    assert n.send(notifications()).status is DeliveryStatus.DELIVERED
    assert robot.requests[0].query["access_token"] == TOKEN and "sign" in robot.requests[0].query
    assert TOKEN not in caplog.text and "access_token=***" in caplog.text  # urllib3's debug line, masked
