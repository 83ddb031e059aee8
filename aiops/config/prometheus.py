from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import Field, HttpUrl, field_validator, model_validator

from aiops.config.base import Duration, Secret, StrictModel
from aiops.config.promql import LABEL_NAME


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
    # Label matchers every query is held to, e.g. {cluster: prod-eu} when Prometheus is a backend
    # for several clusters (Thanos, Mimir, VictoriaMetrics, a federating Prometheus): added to every
    # series selector of every signal query and of the inbound alert checks. Without it the
    # catalog's aggregations (max by (namespace, pod)) would mix same-named pods of all clusters,
    # and act here on another cluster's. Empty (default) for a Prometheus of this cluster only.
    scope: dict[str, str] = Field(default_factory=dict)
    # Extra HTTP headers on every request, e.g. {X-Scope-OrgID: gpu-prod} for a Mimir or Cortex tenant.
    headers: dict[str, str] = Field(default_factory=dict)
    # How late samples may land after their timestamp. Each cycle reads the newest this much again
    # (at least two steps), so an evaluation made before its samples arrived is replaced. A local
    # Prometheus needs no more; behind remote write (Thanos receive, Mimir, VictoriaMetrics) set the
    # ingestion delay you see, e.g. 5m. Each cycle then reads that much more per series.
    late_samples: Duration = timedelta(0)

    @field_validator("scope")
    @classmethod
    def _label_names(cls, scope: dict[str, str]) -> dict[str, str]:
        bad = [k for k in scope if not re.match(LABEL_NAME, k) or k.startswith("__")]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))} is not a label name to scope queries by "
                "(letters, digits and _, not starting with a digit or __), e.g. scope: {cluster: prod-eu}"
            )
        return scope

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        if any(k.lower() == "authorization" for k in headers):
            raise ValueError("set credentials with bearer_token or basic_auth (kept out of logs), not as a header")
        return headers

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
        if self.late_samples > self.lookback / 2:
            raise ValueError(
                f"late_samples ({self.late_samples}) must be at most half the lookback ({self.lookback}): "
                "each cycle would read most of the window again; raise lookback or lower late_samples"
            )
        return self
