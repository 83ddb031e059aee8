from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator

from aiops.config.base import Duration, Secret, StrictModel


class ServerTLS(StrictModel):
    """Serve HTTPS: a certificate and its key (PEM files, e.g. a mounted kubernetes.io/tls Secret)."""

    cert_file: Path
    key_file: Path


class ServerConfig(StrictModel):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    # Serve the Alertmanager webhook on its own port (and only there), so that a NetworkPolicy can
    # admit Alertmanager to it and Prometheus to /metrics separately. None: the main port.
    webhook_port: int | None = Field(default=None, ge=0, le=65535)
    # Bearer token the Alertmanager webhook must present; the endpoint is off without one.
    webhook_token: Secret | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # A connection must send its request headers within this of connecting (or of its previous
    # answer), and its body within this again; then it is closed (slowloris, idle sockets).
    read_timeout: Duration = timedelta(seconds=10)
    # Connections open at once; above this a new one is closed at once (each costs a descriptor).
    max_connections: int = Field(default=4096, ge=16)
    tls: ServerTLS | None = None
    # Alerts kept in the webhook inbox; past this the oldest are dropped (aiops_inbound_alerts_dropped).
    max_inbox_alerts: int = Field(default=10_000, ge=10)

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if self.webhook_port is not None and self.webhook_port == self.port and self.port != 0:
            raise ValueError("webhook_port must differ from port (or be left unset)")
        if not 0.5 <= self.read_timeout.total_seconds() <= 300:
            raise ValueError("read_timeout must be between 0.5s and 5m")
        return self
