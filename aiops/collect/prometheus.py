"""A Prometheus HTTP API client for range queries, on top of prometheus-api-client.

What it adds to ``PrometheusConnect``: a timeout always set (the library's default hangs forever),
chunking so no request asks for more than ``max_points_per_query`` points per series (Prometheus
refuses more than 11,000), step-aligned start times, auth/TLS from config, retries for GET only on
temporary statuses, and errors sorted into temporary (retry next cycle) and permanent (fix the
query or the config). Results are numpy arrays per series, never one dict per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from aiops.config import resolve_secret
from aiops.config.prometheus import PrometheusConfig
from aiops.errors import AiopsError


class PrometheusError(AiopsError):
    """A query failed. ``temporary`` errors (timeouts, 5xx, connection refused) are retried next cycle;
    permanent ones (400 bad_data, 422 execution errors, 401/403) need the query or config fixed."""

    def __init__(self, message: str, *, temporary: bool, query: str = "") -> None:
        super().__init__(message, temporary=temporary)
        self.query = query


@dataclass(frozen=True)
class RawSeries:
    labels: dict[str, str]
    timestamps: np.ndarray  # float64 epoch seconds, ascending, unique
    values: np.ndarray  # float64; Prometheus's NaN/Inf strings become nan/inf

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


def _to_arrays(values: list[list[Any]]) -> tuple[np.ndarray, np.ndarray]:
    if not values:
        return np.empty(0), np.empty(0)
    ts = np.fromiter((v[0] for v in values), dtype=np.float64, count=len(values))
    # float() understands Prometheus's "NaN", "+Inf", "-Inf".
    vs = np.fromiter((float(v[1]) for v in values), dtype=np.float64, count=len(values))
    return ts, vs


class PrometheusClient:
    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.url = str(config.url).rstrip("/")
        session = requests.Session()
        retry = Retry(
            total=config.retries,
            backoff_factor=0.5,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=max(10, config.max_concurrency * 2))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        headers: dict[str, str] = {}
        token = resolve_secret(config.bearer_token, "prometheus.bearer_token")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        if config.basic_auth is not None:
            password = resolve_secret(config.basic_auth.password, "prometheus.basic_auth.password")
            assert password is not None
            session.auth = (config.basic_auth.username, password.get_secret_value())
        tls = config.tls
        if tls.insecure_skip_verify:
            session.verify = False
        elif tls.ca_file is not None:
            session.verify = str(tls.ca_file)
        if tls.cert_file is not None:
            session.cert = (str(tls.cert_file), str(tls.key_file)) if tls.key_file else str(tls.cert_file)
        self._timeout = config.timeout.total_seconds()
        self._api = PrometheusConnect(
            url=self.url,
            headers=headers or None,
            disable_ssl=tls.insecure_skip_verify,
            session=session,
            retry=retry,  # else it mounts its own adapter that also retries 500s three times
            timeout=self._timeout,
        )
        self._session = session

    # -- queries ------------------------------------------------------------------------------
    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        """Evaluate ``query`` at every step-aligned instant in [start, end], chunked under the point limit."""
        step_s = step.total_seconds()
        t0 = math.ceil(start.timestamp() / step_s) * step_s
        t1 = math.floor(end.timestamp() / step_s) * step_s
        if t1 < t0:
            return []
        per_chunk = self.config.max_points_per_query * step_s
        chunks: list[tuple[float, float]] = []
        lo = t0
        while lo <= t1:
            hi = min(t1, lo + per_chunk - step_s)
            chunks.append((lo, hi))
            lo = hi + step_s
        parts: dict[tuple[tuple[str, str], ...], list[tuple[np.ndarray, np.ndarray]]] = {}
        labels_of: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for lo, hi in chunks:
            for item in self._range_chunk(query, lo, hi, step_s):
                metric = {str(k): str(v) for k, v in item.get("metric", {}).items()}
                key = tuple(sorted(metric.items()))
                labels_of[key] = metric
                parts.setdefault(key, []).append(_to_arrays(item.get("values", [])))
        out: list[RawSeries] = []
        for key, arrays in parts.items():
            ts = np.concatenate([a[0] for a in arrays]) if len(arrays) > 1 else arrays[0][0]
            vs = np.concatenate([a[1] for a in arrays]) if len(arrays) > 1 else arrays[0][1]
            out.append(RawSeries(labels_of[key], ts, vs))
        return out

    def _range_chunk(self, query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._get("/api/v1/query_range", params, query)

    def query(self, query: str, at: datetime | None = None) -> list[RawSeries]:
        """Instant query; each series has one point."""
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        out = []
        for item in self._get("/api/v1/query", params, query):
            metric = {str(k): str(v) for k, v in item.get("metric", {}).items()}
            value = item.get("value")
            ts, vs = _to_arrays([value] if value else [])
            out.append(RawSeries(metric, ts, vs))
        return out

    def _get(self, path: str, params: dict[str, str], query: str) -> list[dict[str, Any]]:
        # A bare session call keeps full control of timeouts and error classes; PrometheusConnect is
        # used for what it does well (connection checks) and shares the same session and auth.
        try:
            resp = self._session.get(
                f"{self.url}{path}", params=params, headers=self._api.headers, timeout=self._timeout
            )
        except requests.Timeout:
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer within {self._timeout:g}s", temporary=True, query=query
            ) from None
        except requests.ConnectionError as exc:
            raise PrometheusError(
                f"cannot connect to Prometheus at {self.url}: {_root_cause(exc)}", temporary=True, query=query
            ) from None
        if resp.status_code != 200:
            detail = _error_detail(resp)
            temporary = resp.status_code >= 500 or resp.status_code == 429
            hint = "" if temporary else " (fix the query or the credentials in the config)"
            raise PrometheusError(
                f"Prometheus answered HTTP {resp.status_code} for {query!r}: {detail}{hint}",
                temporary=temporary,
                query=query,
            )
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(
                f"Prometheus at {self.url} answered with a body that is not JSON", temporary=True, query=query
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus query failed: {body.get('errorType')}: {body.get('error')}", temporary=False, query=query
            )
        data = body.get("data", {})
        result = data.get("result", [])
        if data.get("resultType") not in ("matrix", "vector"):
            raise PrometheusError(
                f"query {query!r} returned a {data.get('resultType')}, expected an instant vector expression",
                temporary=False,
                query=query,
            )
        return result

    def ready(self) -> bool:
        """True when Prometheus answers its readiness endpoint."""
        try:
            return bool(self._api.check_prometheus_connection())
        except (requests.RequestException, PrometheusApiClientException):
            return False

    def close(self) -> None:
        self._session.close()


def _error_detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return f"{body.get('errorType', '')}: {body.get('error', '')}".strip(": ")
    except ValueError:
        return resp.text[:200].strip() or resp.reason


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc) or type(exc).__name__
