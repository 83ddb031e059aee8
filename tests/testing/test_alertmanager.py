"""The real Alertmanager launcher of the test kit delivers to a webhook."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests

from aiops.testing.alertmanager import AlertmanagerServer

pytestmark = pytest.mark.timeout(60)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_alertmanager_forwards_a_posted_alert_to_the_webhook() -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, args=(0.01,), daemon=True).start()
    _Hook.received.clear()
    try:
        with AlertmanagerServer(webhook_url=f"http://127.0.0.1:{hook.server_port}/hook") as am:
            resp = requests.post(
                f"{am.url}/api/v2/alerts", json=[{"labels": {"alertname": "AiopsTest", "pod": "p"}}], timeout=5
            )
            assert resp.status_code == 200
            deadline = time.monotonic() + 20
            while not _Hook.received and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _Hook.received, "alertmanager did not call the webhook"
            alert = _Hook.received[0]["alerts"][0]
            assert alert["labels"] == {"alertname": "AiopsTest", "pod": "p"} and alert["status"] == "firing"
    finally:
        hook.shutdown()
