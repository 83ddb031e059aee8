from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, HttpUrl, field_validator, model_validator

from aiops.config.base import Duration, Secret, StrictModel


class BasicAuth(StrictModel):
    username: str
    password: Secret


class TLS(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


class PrometheusConfig(StrictModel):
    url: HttpUrl = HttpUrl("http://127.0.0.1:9090")
    timeout: Duration = timedelta(seconds=30)
    # Resolution of range queries; a finer step than the scrape interval only repeats points.
    step: Duration = timedelta(seconds=60)
    # How much history each series keeps in memory; detectors see this window.
    lookback: Duration = timedelta(hours=6)
    bearer_token: Secret | None = None
    basic_auth: BasicAuth | None = None
    tls: TLS = TLS()
    max_concurrency: int = Field(default=4, ge=1, le=64)
    # Points per request per series (Prometheus refuses more than 11,000). Small chunks keep the
    # decoded JSON of a cold fetch small: at 10k series x 24 h, 240 halved both the cold cycle
    # time and the peak RSS against one 1,440-point request (bench/README.md).
    max_points_per_query: int = Field(default=240, ge=10, le=11_000)
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: HttpUrl) -> HttpUrl:
        # A password in the URL would be printed wherever the URL is (logs, errors, the state file).
        if url.username or url.password:
            raise ValueError(
                "credentials in the URL are not accepted (they would be printed with it); remove "
                "'user:password@' and use basic_auth: {username: NAME, password: {env: VAR}} (or bearer_token)"
            )
        return url

    @model_validator(mode="after")
    def _check(self) -> PrometheusConfig:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("use either bearer_token or basic_auth, not both")
        if self.step.total_seconds() < 1:
            raise ValueError("step must be at least 1s")
        if self.lookback < self.step * 10:
            raise ValueError("lookback must cover at least 10 steps")
        return self
