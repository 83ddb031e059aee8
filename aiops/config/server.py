from __future__ import annotations

from pydantic import Field

from aiops.config.base import Secret, StrictModel


class ServerConfig(StrictModel):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    # Bearer token the Alertmanager webhook must present; the endpoint is off without one.
    webhook_token: Secret | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
