"""The daemon's one small HTTP server: /metrics, /healthz, /readyz and the Alertmanager webhook."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiops import metrics

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/alertmanager"

# (body, headers) -> (status, JSON response)
WebhookHandler = Callable[[bytes, dict[str, str]], tuple[int, dict[str, Any]]]


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops SYNs under bursts (Alertmanager, scrapes): 1 s retransmits.
    request_queue_size = 128


class DaemonServer:
    """Serves health and metrics in a background thread.

    ``ready`` returns (is_ready, reason); ``alive`` returns whether the scheduler still runs.
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
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # access logs at debug only
                log.debug("http %s", fmt % args)

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                self._send(status, json.dumps(payload).encode())

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = server.alive()
                    self._json(200 if ok else 503, {"status": "ok" if ok else "scheduler stopped"})
                elif path == "/readyz":
                    ok, reason = server.ready()
                    self._json(200 if ok else 503, {"ready": ok, "reason": reason})
                else:
                    self._json(404, {"error": f"no such path {path}; try /metrics, /healthz, /readyz"})

            def do_POST(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                if path != WEBHOOK_PATH or server.webhook is None:
                    self._json(404, {"error": f"no such path {path}"})
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    self._json(400, {"error": "invalid Content-Length"})
                    return
                if length > server.max_body_bytes:
                    # Refuse before reading so an oversized body cannot exhaust memory.
                    self.close_connection = True
                    self._json(413, {"error": f"body larger than {server.max_body_bytes} bytes"})
                    return
                body = self.rfile.read(length) if length > 0 else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    status, payload = server.webhook(body, headers)
                except Exception:  # a bug in handling must not kill the server thread
                    log.exception("webhook handler failed")
                    status, payload = 500, {"error": "internal error; see the daemon log"}
                self._json(status, payload)

        self.ready = ready
        self.alive = alive
        self.webhook = webhook
        self.max_body_bytes = max_body_bytes
        self._httpd = _Server((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> DaemonServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
