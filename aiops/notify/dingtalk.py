"""DingTalk custom robot channel: one signed markdown digest per batch, within the robot's rate limit.

``dingtalkchatbot`` builds the payload (markdown, @mentions appended to the text, link rewriting)
but does not send it: the library signs once per hour, has no timeout, sleeps in the calling thread
and returns errors as dicts (see docs/reference.md §1). Here every request is signed with a fresh
timestamp, sent through a ``requests.Session`` with (connect, read) timeouts, and its ``errcode``
is checked; the access token never appears in a log line or a delivery detail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
import urllib.parse
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

import requests
from dingtalkchatbot.chatbot import DingtalkChatbot
from pydantic import Field, SecretStr, model_validator

from aiops.config.base import Duration, Secret, StrictModel
from aiops.model import Notification
from aiops.notify.formatting import digest, to_markdown
from aiops.notify.params import parse_params
from aiops.notify.ratelimit import TokenBucket, shared_bucket
from aiops.plugins import Delivery, DeliveryStatus, Notifier

log = logging.getLogger(__name__)

DEFAULT_URL = "https://oapi.dingtalk.com/robot/send"
THROTTLED = 130101
# Configuration problems: keyword missing, bad sign/timestamp, IP not allowed, token gone.
PERMANENT = {310000: "check the robot's keyword, sign secret, server clock and IP allow-list",
             300001: "the access token does not exist: re-create the robot and update the secret",
             300005: "the access token does not exist (external group): re-create the robot",
             400013: "the group was dissolved or the robot removed"}
# Org-level quota exhausted: nothing will pass for a while.
QUOTA = 90030


class DingTalkParams(StrictModel):
    # Either the whole webhook URL (it contains the access token, hence a secret) ...
    webhook: Secret | None = None
    # ... or the access token and the API URL.
    access_token: Secret | None = None
    url: str = DEFAULT_URL
    # The "加签" secret (SEC...). Without it the robot must use keywords or an IP allow-list.
    secret: Secret | None = None
    # Keyword mode: the keyword is put in every message so DingTalk accepts it.
    keyword: str = ""
    connect_timeout: Duration = timedelta(seconds=5)
    read_timeout: Duration = timedelta(seconds=10)
    # DingTalk allows 20 messages per minute per robot; a lower value leaves room for other senders.
    rate_per_minute: int = Field(default=20, ge=1, le=20)
    throttle_backoff: Duration = timedelta(minutes=10)
    # Notifications shown in full per message; the rest are counted.
    max_items: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _one_address(self) -> DingTalkParams:
        if (self.webhook is None) == (self.access_token is None):
            raise ValueError("dingtalk needs exactly one of 'webhook' or 'access_token' (each a {env: ...} or {file: ...} secret)")
        if self.throttle_backoff < timedelta(minutes=10):
            raise ValueError("throttle_backoff must be at least 10m: DingTalk throttles a robot for 10 minutes")
        return self


class RedactAccessTokens(logging.Filter):
    """urllib3 logs request URLs at DEBUG, and a DingTalk URL carries the access token: mask it."""

    _TOKEN = re.compile(r"(access_token=|sign=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message or "sign=" in message:
            record.msg, record.args = self._TOKEN.sub(r"\1***", message), ()
        return True


def _install_redaction() -> None:
    for name in ("urllib3.connectionpool", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactAccessTokens) for f in logger.filters):
            logger.addFilter(RedactAccessTokens())


class _PayloadBuilder(DingtalkChatbot):
    """The library's message builders with its transport cut off: ``post`` returns the payload."""

    def __init__(self) -> None:
        super().__init__(webhook="", secret=None)

    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        return data


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64(HMAC-SHA256(key=secret, msg=f"{ts}\\n{secret}")), URL-encoded."""
    digest_ = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest_))


def build_payload(batch: Sequence[Notification], *, keyword: str = "", max_items: int = 10) -> dict[str, Any]:
    """The markdown payload for a batch: title (the phone's preview), body, @mentions."""
    d = digest(batch, max_items=max_items)
    title = d.title
    text = f"### {d.title}\n\n{to_markdown(d)}"
    if keyword and keyword not in title:
        title = f"{keyword} {title}"
    if keyword and keyword not in text:
        text = f"{keyword}\n\n{text}"
    payload: dict[str, Any] = _PayloadBuilder().send_markdown(
        title=title,
        text=text,
        is_at_all=d.mention_all,
        at_mobiles=list(d.mention_mobiles),
        at_dingtalk_ids=list(d.mention_user_ids),
        is_auto_at=True,  # DingTalk only notifies a mobile that also appears in the text
    )
    return payload


class DingTalkNotifier(Notifier):
    name: ClassVar[str] = "dingtalk"
    # The robot API has no idempotency key: a batch interrupted by a crash is not resent.
    redeliver_after_crash: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = parse_params(DingTalkParams, params)
        p = self.params
        if p.webhook is not None:
            self._endpoint: SecretStr = p.webhook.resolve()
        else:
            assert p.access_token is not None
            token = p.access_token.resolve().get_secret_value()
            self._endpoint = SecretStr(f"{p.url}?{urllib.parse.urlencode({'access_token': token})}")
        self._secret = p.secret.resolve() if p.secret is not None else None
        if self._secret is not None and not self._secret.get_secret_value().startswith("SEC"):
            raise ValueError("dingtalk 'secret' must be the robot's signing secret, which starts with 'SEC'")
        self._timeout = (p.connect_timeout.total_seconds(), p.read_timeout.total_seconds())
        self._session = requests.Session()
        _install_redaction()
        self.bucket: TokenBucket = shared_bucket(self._endpoint.get_secret_value(), p.rate_per_minute)

    def wait_seconds(self) -> float:
        return self.bucket.wait_seconds()

    def _url(self) -> str:
        url = self._endpoint.get_secret_value()
        if self._secret is not None:
            ts = int(time.time() * 1000)  # fresh per request: DingTalk rejects a timestamp > 1 h off
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timestamp={ts}&sign={sign(self._secret.get_secret_value(), ts)}"
        return url

    def _redact(self, text: str) -> str:
        secret = self._endpoint.get_secret_value()
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(secret).query).get("access_token", [""])[0]
        for value in (secret, token):
            if value:
                text = text.replace(value, "***")
        return text

    def send(self, batch: Sequence[Notification]) -> Delivery:
        if not batch:
            return Delivery(DeliveryStatus.DELIVERED, "nothing to send")
        try:
            payload = build_payload(batch, keyword=self.params.keyword, max_items=self.params.max_items)
        except (ValueError, TypeError) as exc:  # retrying would build the same broken message
            return Delivery(DeliveryStatus.GIVE_UP, f"cannot build the DingTalk message: {exc}")
        if not self.bucket.try_take():
            wait = self.bucket.wait_seconds()
            return Delivery(DeliveryStatus.RETRY, f"rate limit: {self.params.rate_per_minute}/min reached", wait)
        return self.post(payload)

    def post(self, payload: dict[str, Any]) -> Delivery:
        try:
            resp = self._session.post(self._url(), json=payload, timeout=self._timeout)
        except requests.Timeout:
            return Delivery(DeliveryStatus.RETRY, f"DingTalk timed out (connect {self._timeout[0]:g}s, read {self._timeout[1]:g}s)")
        except requests.ConnectionError as exc:
            # The exception text contains the URL and so the token: report the type only.
            return Delivery(DeliveryStatus.RETRY, f"cannot reach DingTalk: {type(exc).__name__}")
        except requests.RequestException as exc:
            return Delivery(DeliveryStatus.RETRY, f"DingTalk request failed: {type(exc).__name__}")
        if resp.status_code == 429 or resp.status_code >= 500:
            return Delivery(DeliveryStatus.RETRY, f"DingTalk answered HTTP {resp.status_code}")
        try:
            body = resp.json()
            code = int(body.get("errcode", -1))
            message = self._redact(str(body.get("errmsg", "")))
        except (ValueError, AttributeError, TypeError):
            return Delivery(DeliveryStatus.RETRY, f"DingTalk answered HTTP {resp.status_code} without a JSON errcode")
        if code == 0:
            return Delivery(DeliveryStatus.DELIVERED, "ok")
        if code == THROTTLED:
            hold = self.params.throttle_backoff.total_seconds()
            self.bucket.hold(hold)
            log.warning("DingTalk throttled the robot (errcode 130101); holding messages for %.0fs", hold)
            return Delivery(DeliveryStatus.RETRY, f"throttled by DingTalk (130101: {message}); paused {hold:.0f}s", hold)
        if code in PERMANENT:
            return Delivery(DeliveryStatus.GIVE_UP, f"DingTalk refused the message ({code}: {message}); {PERMANENT[code]}")
        if code == QUOTA:
            return Delivery(DeliveryStatus.RETRY, f"DingTalk organisation quota exhausted ({code}: {message})", 3600.0)
        if 400 <= resp.status_code < 500:
            return Delivery(DeliveryStatus.GIVE_UP, f"DingTalk answered HTTP {resp.status_code} ({code}: {message})")
        return Delivery(DeliveryStatus.RETRY, f"DingTalk error {code}: {message}")

    def close(self) -> None:
        self._session.close()
