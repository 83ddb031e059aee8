"""Run a real Alertmanager (Debian ``prometheus-alertmanager``) on a loopback port.

Gossip is disabled (``--cluster.listen-address=``) so the process binds nothing but its HTTP
port. When ``webhook_url`` is given, every alert is routed to that webhook receiver at once
(no group wait), which is how the tests capture what Alertmanager forwards.

    with AlertmanagerServer(webhook_url="http://127.0.0.1:8080/hook") as am:
        requests.post(f"{am.url}/api/v2/alerts", json=[{"labels": {"alertname": "x"}}])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from aiops.demo.prometheus import ManagedServer, find_binary

__all__ = ["AlertmanagerServer"]


class AlertmanagerServer(ManagedServer):
    binary = "prometheus-alertmanager"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        webhook_url: str | None = None,
        port: int | None = None,
        resolve_timeout: str = "5m",
        group_wait: str = "0s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, port=port, extra_args=extra_args, startup_timeout=startup_timeout)
        self.webhook_url = webhook_url
        self.resolve_timeout = resolve_timeout
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval

    @property
    def config_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "alertmanager.yml"

    def config(self) -> dict[str, Any]:
        receiver: dict[str, Any] = {"name": "default"}
        if self.webhook_url:
            receiver["webhook_configs"] = [{"url": self.webhook_url, "send_resolved": True}]
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": "default",
                "group_by": ["..."],  # one notification per alert: tests see each alert alone
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [receiver],
        }

    def _prepare(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def _command(self) -> list[str]:
        assert self.data_dir is not None
        return [
            find_binary("prometheus-alertmanager"),
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
            *self.extra_args,
        ]
