"""deploy/alertmanager/aiops-receiver.yml is a valid Alertmanager config aimed at the daemon's webhook."""

from __future__ import annotations

import subprocess
from typing import Any
from urllib.parse import urlsplit

import yaml

from aiops.server import WEBHOOK_PATH
from aiops.demo.prometheus import find_binary
from tests.deploy.manifests import REPO, one

RECEIVER = REPO / "deploy" / "alertmanager" / "aiops-receiver.yml"


def test_amtool_accepts_it() -> None:
    result = subprocess.run(
        [find_binary("amtool"), "check-config", str(RECEIVER)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_posts_to_the_webhook_of_the_default_install(default_docs: list[dict[str, Any]]) -> None:
    config = yaml.safe_load(RECEIVER.read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == "aiops"]
    (webhook,) = receiver["webhook_configs"]
    url = urlsplit(webhook["url"])
    service = one(default_docs, "Service")
    assert url.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert url.port == {p["name"]: p["port"] for p in service["spec"]["ports"]}["webhook"]
    assert url.path == WEBHOOK_PATH
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"].endswith("/webhook-token")
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "aiops"]
    assert route["continue"] is True, "aiops must not swallow alerts meant for people"
