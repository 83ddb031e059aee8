"""A Prometheus HTTP API client for range queries, on a plain ``requests`` session.

Not prometheus-api-client: its query methods parse every answer into Python objects (or pandas),
which is what set the daemon's peak memory, and its retry adapter retried 500s on its own. What
this client does instead: a timeout always set, chunking so no request asks for more than ``max_points_per_query`` points per series (Prometheus
refuses more than 11,000), step-aligned start times, auth/TLS from config, retries for GET only on
temporary statuses, and errors sorted into temporary (retry next cycle) and permanent (fix the
query or the config). Answers are decoded straight into numpy (aiops/collect/decode.py), never one
Python object per sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from aiops.collect.decode import AnswerError, Block, RawSeries, decode_answer
from aiops.config import resolve_secret
from aiops.config.prometheus import PrometheusConfig
from aiops.errors import AiopsError

# Past this many bytes of parameters a request goes as a POST form body (servers and proxies cap
# URLs at 4-8 KiB; Prometheus reads form bodies up to 10 MB).
MAX_URL_QUERY_BYTES = 4096


class PrometheusError(AiopsError):
    """A query failed. ``temporary`` errors (timeouts, 5xx, connection refused) are retried next cycle;
    permanent ones (400 bad_data, 422 execution errors, 401/403) need the query or config fixed."""

    def __init__(self, message: str, *, temporary: bool, query: str = "") -> None:
        super().__init__(message, temporary=temporary)
        self.query = query


class PrometheusClient:
    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.url = str(config.url).rstrip("/")
        session = requests.Session()
        retry = Retry(
            total=config.retries,
            backoff_factor=0.5,
            status_forcelist=(429, 502, 503, 504),
            # POST carries queries too long for a URL (a shard's matcher); both only read.
            allowed_methods=frozenset({"GET", "POST"}),
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
        _settle_environment(session, self.url)
        self._timeout = config.timeout.total_seconds()
        self._headers = headers
        self._session = session

    # -- queries ------------------------------------------------------------------------------
    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        """Evaluate ``query`` at every step-aligned instant in [start, end], chunked under the point limit."""
        parts: dict[tuple[tuple[str, str], ...], list[RawSeries]] = {}
        for block in self.range_chunks(query, start, end, step):
            for s in block.split():
                parts.setdefault(tuple(sorted(s.labels.items())), []).append(s)
        out: list[RawSeries] = []
        for arrays in parts.values():
            ts = np.concatenate([a.timestamps for a in arrays]) if len(arrays) > 1 else arrays[0].timestamps
            vs = np.concatenate([a.values for a in arrays]) if len(arrays) > 1 else arrays[0].values
            out.append(RawSeries(arrays[0].labels, ts, vs))
        return out

    def range_chunks(self, query: str, start: datetime, end: datetime, step: timedelta) -> Iterator[Block]:
        """The answer to a range query, one decoded chunk at a time, oldest first.

        Each chunk asks for at most ``max_points_per_query`` points per series. A caller that
        consumes each block before asking for the next holds one chunk's JSON at a time, not the
        whole range's (that tree, ~150 bytes a point, set the daemon's peak memory).
        """
        step_s = step.total_seconds()
        t0 = math.ceil(start.timestamp() / step_s) * step_s
        t1 = math.floor(end.timestamp() / step_s) * step_s
        per_chunk = self.config.max_points_per_query * step_s
        lo = t0
        while lo <= t1:
            hi = min(t1, lo + per_chunk - step_s)
            params = {"query": query, "start": f"{lo:.3f}", "end": f"{hi:.3f}", "step": f"{step_s:g}"}
            yield self._get("/api/v1/query_range", params, query)
            lo = hi + step_s

    def label_values(self, label: str, selectors: Sequence[str], start: datetime, end: datetime) -> list[str]:
        """The values ``label`` takes on the series of ``selectors`` in [start, end]: Prometheus
        answers from its index, reading no samples (a superset: whole blocks are consulted)."""
        params: list[tuple[str, str]] = [("match[]", s) for s in selectors]
        params += [("start", f"{start.timestamp():.3f}"), ("end", f"{end.timestamp():.3f}")]
        what = f"values of {label} for {', '.join(selectors)}"
        resp = self._send(f"/api/v1/label/{label}/values", params, what)
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(
                f"Prometheus at {self.url} answered with a body that is not JSON", temporary=True, query=what
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        if body.get("status") != "success" or not isinstance(data, list):
            raise PrometheusError(
                f"label values failed: {body.get('errorType')}: {body.get('error')}", temporary=False, query=what
            )
        return [str(v) for v in data]

    def query(self, query: str, at: datetime | None = None) -> list[RawSeries]:
        """Instant query; each series has one point."""
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        return self._get("/api/v1/query", params, query).split()

    def _get(self, path: str, params: dict[str, str], query: str) -> Block:
        resp = self._send(path, params, query)
        try:
            body, block = decode_answer(resp.content)
        except AnswerError:
            raise PrometheusError(
                f"Prometheus at {self.url} answered with a body that is not JSON", temporary=True, query=query
            ) from None
        del resp  # the body's bytes: one chunk's worth at a time
        if body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus query failed: {body.get('errorType')}: {body.get('error')}", temporary=False, query=query
            )
        data = body.get("data") or {}
        if data.get("resultType") not in ("matrix", "vector") or block is None:
            raise PrometheusError(
                f"query {query!r} returned a {data.get('resultType')}, expected an instant vector expression",
                temporary=False,
                query=query,
            )
        return block

    def _send(self, path: str, params: dict[str, str] | list[tuple[str, str]], query: str) -> requests.Response:
        """One request; long ones (a shard's matcher) go as a form body, which Prometheus's query
        endpoints accept, instead of a URL that proxies and servers cap at a few KiB."""
        items = list(params.items()) if isinstance(params, dict) else params
        try:
            if sum(len(k) + len(v) for k, v in items) > MAX_URL_QUERY_BYTES and "/label/" not in path:
                resp = self._session.post(f"{self.url}{path}", data=items, headers=self._headers, timeout=self._timeout)
            else:
                resp = self._session.get(f"{self.url}{path}", params=items, headers=self._headers, timeout=self._timeout)
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
            shown = query if len(query) <= 300 else query[:300] + f"... ({len(query)} characters)"
            raise PrometheusError(
                f"Prometheus answered HTTP {resp.status_code} for {shown!r}: {detail}{hint}",
                temporary=temporary,
                query=query,
            )
        return resp

    def ready(self) -> bool:
        """True when Prometheus answers its readiness endpoint (``/-/ready``) with 200."""
        try:
            resp = self._session.get(f"{self.url}/-/ready", headers=self._headers, timeout=self._timeout)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def close(self) -> None:
        self._session.close()


def _settle_environment(session: requests.Session, url: str) -> None:
    """Apply what the environment says about ``url`` once, not on every request.

    A session that trusts the environment re-reads the proxy variables (HTTP(S)_PROXY, NO_PROXY),
    the CA bundle variables and ~/.netrc on each request: about a fifth of a steady cycle's fetch
    CPU at 10k series. The client only ever talks to ``url``, and a process's environment does not
    change under it, so the answer is the same every time: settle it here and stop asking.
    """
    settings = session.merge_environment_settings(url, {}, None, session.verify, session.cert)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False


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
