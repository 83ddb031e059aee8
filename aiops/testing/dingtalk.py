"""A local DingTalk custom-robot endpoint that checks requests the way DingTalk does.

It verifies the access token, the 加签 ``timestamp``/``sign`` query parameters (HMAC-SHA256 of
``f"{timestamp}\\n{secret}"``, base64, within one hour of its clock), keywords and the message
fields; enforces 20 messages per minute with a 10-minute throttle (errcode 130101); and answers
with DingTalk's JSON errcodes, always with HTTP 200 as DingTalk does. Tests can script failures:
an errcode, an HTTP status, or a delay, for the next N requests.

    with DingTalkReceiver(secret="SEC...", keywords=["aiops"]) as robot:
        ... DingTalkNotifier(access_token=..., url=robot.url, secret=...) ...
        assert robot.messages[0]["markdown"]["title"]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

ONE_HOUR_MS = 3600 * 1000


@dataclass
class Scripted:
    """A scripted answer for the next ``count`` requests."""

    count: int
    errcode: int | None = None
    errmsg: str = ""
    http_status: int | None = None
    delay: float = 0.0


@dataclass
class Received:
    path: str
    query: dict[str, str]
    payload: Any
    errcode: int
    errmsg: str
    at: float = field(default_factory=time.time)


class DingTalkReceiver:
    def __init__(
        self,
        *,
        access_token: str = "test-access-token",
        secret: str | None = None,
        keywords: Sequence[str] = (),
        rate_per_minute: int = 20,
        throttle_seconds: float = 600.0,
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_token = access_token
        self.secret = secret
        self.keywords = list(keywords)
        self.rate_per_minute = rate_per_minute
        self.throttle_seconds = throttle_seconds
        self.clock = clock
        self.requests: list[Received] = []
        # Requests whose body has arrived, counted before a scripted delay (``requests`` after it):
        # a test can know the receiver holds one.
        self.arrived = 0
        self._script: deque[Scripted] = deque()
        self._accepted_times: deque[float] = deque()
        self._throttled_until = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a scripted delay must not hold up stop()
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The robot API URL without the token (``DingTalkNotifier(url=..., access_token=...)``)."""
        return f"http://127.0.0.1:{self.port}/robot/send"

    @property
    def webhook(self) -> str:
        return f"{self.url}?access_token={self.access_token}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), name="dingtalk-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting and inspection --------------------------------------------------------
    def fail_next(self, errcode: int, errmsg: str = "", count: int = 1) -> None:
        self._script.append(Scripted(count, errcode=errcode, errmsg=errmsg or f"scripted error {errcode}"))

    def http_error_next(self, status: int, count: int = 1) -> None:
        self._script.append(Scripted(count, http_status=status))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        self._script.append(Scripted(count, delay=seconds))

    @property
    def messages(self) -> list[Any]:
        """Payloads DingTalk would have shown in the group (errcode 0)."""
        with self._lock:
            return [r.payload for r in self.requests if r.errcode == 0]

    # --- DingTalk's checks ---------------------------------------------------------------
    def expected_sign(self, timestamp: str) -> str:
        assert self.secret is not None
        mac = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        return base64.b64encode(mac).decode()

    def check(self, query: dict[str, str], payload: Any) -> tuple[int, str]:
        if query.get("access_token") != self.access_token:
            return 300001, "token is not exist"
        if self.secret is not None:
            ts, sig = query.get("timestamp", ""), query.get("sign", "")
            if not ts.isdigit() or abs(int(self.clock() * 1000) - int(ts)) > ONE_HOUR_MS:
                return 310000, "invalid timestamp"
            if not hmac.compare_digest(sig, self.expected_sign(ts)):
                return 310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"
        if not isinstance(payload, dict):
            return 43004, "无效的HTTP HEADER Content-Type"
        kind = payload.get("msgtype")
        body = payload.get(kind) if isinstance(kind, str) else None
        if kind not in {"text", "markdown", "link", "actionCard", "feedCard"} or not isinstance(body, dict):
            return 40035, "缺少参数 json"
        if kind == "markdown" and not (body.get("title") and body.get("text")):
            return 40035, "缺少参数 markdown.title/markdown.text"
        if kind == "text" and not body.get("content"):
            return 40035, "缺少参数 text.content"
        if self.keywords:
            content = json.dumps(body, ensure_ascii=False)
            if not any(k in content for k in self.keywords):
                return 310000, "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"
        now = self.clock()
        if now < self._throttled_until:
            return 130101, "send too fast, exceed 20 times per minute"
        while self._accepted_times and now - self._accepted_times[0] >= 60:
            self._accepted_times.popleft()
        if len(self._accepted_times) >= self.rate_per_minute:
            self._throttled_until = now + self.throttle_seconds
            return 130101, "send too fast, exceed 20 times per minute"
        self._accepted_times.append(now)
        return 0, "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any] | str) -> None:
                raw = (json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up (its read timeout): nothing to answer to

            def do_POST(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                try:
                    payload: Any = json.loads(raw)
                except ValueError:
                    payload = None
                with receiver._lock:
                    receiver.arrived += 1
                    scripted = None
                    if receiver._script:
                        scripted = receiver._script[0]
                        scripted.count -= 1
                        if scripted.count <= 0:
                            receiver._script.popleft()
                if scripted is not None and scripted.delay:
                    time.sleep(scripted.delay)
                with receiver._lock:
                    if split.path != "/robot/send":
                        code, msg = 404, "not found"
                    elif scripted is not None and scripted.http_status is not None:
                        code, msg = -scripted.http_status, "scripted HTTP error"
                    elif scripted is not None and scripted.errcode is not None:
                        code, msg = scripted.errcode, scripted.errmsg
                    else:
                        code, msg = receiver.check(query, payload)
                    receiver.requests.append(Received(split.path, query, payload, code, msg))
                if code == 404:
                    self._answer(404, "not found")
                elif code < 0:
                    self._answer(-code, "<html>upstream error</html>")
                else:
                    self._answer(200, {"errcode": code, "errmsg": msg})

        return Handler
