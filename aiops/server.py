"""The daemon's one small HTTP server: /metrics, /healthz, /readyz and the Alertmanager webhook.

It is reachable by anything in the cluster network, so it is built to stay up under hostile
clients (a liveness probe that times out restarts the daemon):

- aiohttp's asyncio server: an idle or slow connection costs a few kilobytes and no thread, so a
  thousand of them do not delay /healthz, which is answered on the event loop itself;
- every connection must deliver its request headers within ``read_timeout`` of connecting (or of
  its previous answer), and a body within ``read_timeout`` more; then it is closed;
- at most ``max_connections`` are open at once; above that a new one is closed at once;
- the webhook is authenticated from the headers, and its size checked, *before* any body byte is
  read; a refused request is answered and its connection closed unread;
- the blocking work (the webhook's SQLite write, rendering /metrics, the readiness check) runs on
  small fixed thread pools, so a slow disk cannot starve the probes;
- optional TLS (``server.tls``): the handshake must finish within ``read_timeout`` too, and
  connections count against ``max_connections`` from the TCP connect (one over the limit is closed
  when its handshake ends, not at once: asyncio hands nothing over before);
- optionally the webhook on a port of its own (``server.webhook_port``), so that a NetworkPolicy
  can admit Alertmanager to the webhook and Prometheus to /metrics, and neither to the other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiops import metrics

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/alertmanager"
Answer = tuple[int, dict[str, Any]]


class WebhookHandler(Protocol):
    """The webhook's logic, without HTTP: ``authorize`` sees only the headers (``None`` = go on)."""

    def authorize(self, headers: Mapping[str, str]) -> Answer | None: ...

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> Answer: ...


class _ClientErrors(logging.Filter):
    """aiohttp logs each malformed request with a traceback; under a flood that would drown the log.
    A client's bad request is the client's problem: kept at debug, not error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            log.debug("bad request from a client: %s", exc)
            return False
        return True


_protocol_log = logging.getLogger("aiops.server.protocol")
_protocol_log.addFilter(_ClientErrors())


class _Refuse(asyncio.Protocol):
    """What a connection over ``max_connections`` gets: closed before anything is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        metrics.HTTP_CONNECTIONS_REFUSED.inc()
        transport.close()


def _json(status: int, payload: dict[str, Any], *, close: bool = False) -> web.Response:
    response = web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json")
    if close:
        response.force_close()
    return response


class DaemonServer:
    """Serves health, metrics and the webhook from an event loop in a background thread.

    ``ready`` returns (is_ready, reason); ``alive`` returns whether the scheduler still runs. The
    socket is bound in the constructor, so ``port`` is known (and a busy port fails) before start.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], tuple[bool, str]],
        alive: Callable[[], bool] = lambda: True,
        webhook: WebhookHandler | None = None,
        max_body_bytes: int = 1_048_576,
        read_timeout: float = 10.0,
        max_connections: int = 4096,
        tls: ssl.SSLContext | None = None,
        webhook_port: int | None = None,
    ) -> None:
        self.ready = ready
        self.alive = alive
        self.webhook = webhook
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.tls = tls
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # listen() backlog of 128: bursts of scrapes and webhook calls are not dropped (SYN retries).
        self._sock = socket.create_server((host, port), family=family, backlog=128)
        self._webhook_sock = (
            socket.create_server((host, webhook_port), family=family, backlog=128) if webhook_port is not None else None
        )
        # Blocking work runs here, apart from the probes: one pool for the webhook, one for reads.
        self._webhook_pool = ThreadPoolExecutor(2, thread_name_prefix="http-webhook")
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="http-read")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def webhook_port(self) -> int:
        """Where the webhook listens: its own port when one is configured, else the main one."""
        sock = self._webhook_sock or self._sock
        return int(sock.getsockname()[1])

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> DaemonServer:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        else:
            self._sock.close()
            if self._webhook_sock is not None:
                self._webhook_sock.close()
        self._webhook_pool.shutdown(wait=False, cancel_futures=True)
        self._read_pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _setup(self) -> None:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post(WEBHOOK_PATH, self._webhook)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # keepalive_timeout is armed when a connection opens and after each answer, and closes a
        # connection whose next request has not fully arrived by then: the header read timeout.
        # lingering_time=0: an unread (refused) body is not drained, the connection just closes.
        # read_bufsize: what aiohttp buffers of a body before the handler reads it (16 KiB, not 64):
        # bounds what a thousand unauthenticated bodies cost while their headers are refused.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=_protocol_log,
                               keepalive_timeout=self.read_timeout, lingering_time=0,
                               read_bufsize=16_384)
        await runner.setup()
        factory = runner.server
        assert factory is not None
        limit = self.max_connections

        def protocol() -> asyncio.BaseProtocol:
            if max(len(factory.connections), self._open_transports()) >= limit:
                return _Refuse()
            return factory()

        self._runner = runner
        # With TLS, aiohttp only hears of a connection once its handshake is done: the handshake
        # gets the header deadline (not asyncio's 60 s), and the limit counts the server's open
        # transports, handshakes under way included. An over-limit TLS connection is refused when
        # its handshake ends (done or timed out): asyncio gives no hook before it.
        handshake = self.read_timeout if self.tls is not None else None
        self._servers = [await self._loop.create_server(protocol, sock=sock, ssl=self.tls, ssl_handshake_timeout=handshake)
                         for sock in (self._sock, self._webhook_sock) if sock is not None]

    def _open_transports(self) -> int:
        """TCP connections the listeners hold now, TLS handshakes under way included. asyncio's
        Server counts them (``_active_count``, attached at accept) but does not publish the count."""
        return sum(int(getattr(server, "_active_count", 0)) for server in self._servers)

    def _on_webhook_port(self, request: web.Request) -> bool:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return self._webhook_sock is not None and isinstance(sockname, tuple) and sockname[1] == self.webhook_port

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers -----------------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        if self._on_webhook_port(request):
            return await self._not_found(request)
        ok = self.alive()  # cheap and non-blocking: answered on the loop, never queued behind work
        return _json(200 if ok else 503, {"status": "ok" if ok else "scheduler stopped"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._on_webhook_port(request):
            return await self._not_found(request)
        ok, reason = await self._loop.run_in_executor(self._read_pool, self.ready)
        return _json(200 if ok else 503, {"ready": ok, "reason": reason})

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._on_webhook_port(request):
            return await self._not_found(request)
        body = await self._loop.run_in_executor(self._read_pool, generate_latest, metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _not_found(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return _json(404, {"error": f"no such path {request.path}; try /metrics, /healthz, /readyz"})
        return _json(404, {"error": f"no such path {request.path}"}, close=True)

    async def _webhook(self, request: web.Request) -> web.Response:
        if self.webhook is None or (self._webhook_sock is not None and not self._on_webhook_port(request)):
            return _json(404, {"error": f"no such path {request.path}"}, close=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        refusal = self.webhook.authorize(headers)
        if refusal is not None:
            return _json(*refusal, close=True)  # the body is never read
        declared = request.headers.get("Content-Length")
        if declared is not None and not declared.isdigit():
            return _json(400, {"error": "invalid Content-Length"}, close=True)
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return _json(413, {"error": f"body larger than {self.max_body_bytes} bytes"}, close=True)
        try:
            body = await asyncio.wait_for(request.read(), self.read_timeout)
        except TimeoutError:
            return _json(408, {"error": f"the body did not arrive within {self.read_timeout:g}s"}, close=True)
        except web.HTTPRequestEntityTooLarge:
            return _json(413, {"error": f"body larger than {self.max_body_bytes} bytes"}, close=True)
        try:
            status, payload = await self._loop.run_in_executor(self._webhook_pool, self.webhook, body, headers)
        except Exception:  # a bug in handling must not kill the server
            log.exception("webhook handler failed")
            status, payload = 500, {"error": "internal error; see the daemon log"}
        return _json(status, payload)
