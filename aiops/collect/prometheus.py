"""A Prometheus HTTP API client for range queries, on a urllib3 connection pool.

Not prometheus-api-client: its query methods parse every answer into Python objects (or pandas),
which is what set the daemon's peak memory, and its retry adapter retried 500s on its own. What
this client does instead: a timeout always set, chunking so no request asks for more than ``max_points_per_query`` points per series (Prometheus
refuses more than 11,000), step-aligned start times, auth/TLS from config, retries for GET only on
temporary statuses, and errors sorted into temporary (retry next cycle) and permanent (fix the
query or the config). Answers are decoded straight into numpy (aiops/collect/decode.py), never one
Python object per sample.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import quote_plus

import certifi
import numpy as np
import requests
from urllib3 import BaseHTTPResponse, PoolManager, ProxyManager
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as TimeoutError_
from urllib3.util import Timeout, make_headers
from urllib3.util.retry import Retry

from aiops.collect.decode import AnswerError, Block, LabelMemo, RawSeries, decode_answer
from aiops.config import resolve_secret
from aiops.config.prometheus import PrometheusConfig
from aiops.errors import AiopsError

# Past this many bytes of parameters a request goes as a POST form body (servers and proxies cap
# URLs at 4-8 KiB; Prometheus reads form bodies up to 10 MB).
MAX_URL_QUERY_BYTES = 4096
# A parameter at least this long has its encoding remembered (see _quote).
_QUOTE_MEMO_CHARS = 1024
# A compressed answer is inflated this much at a time (see _read_body).
_PIECE_BYTES = 256 * 1024


class PrometheusError(AiopsError):
    """A query failed. ``temporary`` errors (timeouts, 5xx, connection refused) are retried next cycle;
    permanent ones (400 bad_data, 422 execution errors, 401/403) need the query or config fixed."""

    def __init__(self, message: str, *, temporary: bool, query: str = "") -> None:
        super().__init__(message, temporary=temporary)
        self.query = query


class PrometheusClient:
    # It asks a PromQL server: several signals' queries may go in one (aiops/collect/combine.py).
    evaluates_promql: ClassVar[bool] = True

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.url = str(config.url).rstrip("/")
        self._timeout = config.timeout.total_seconds()
        # Per range query, its last answer's labels (a steady cycle's answer repeats them), and
        # the form encoding of each long query text (a sharded replica's matchers, a combined
        # query: tens of KiB encoded byte by byte each cycle were a sharded collect's top cost).
        self._memos: dict[str, LabelMemo] = {}
        self._quoted: dict[str, str] = {}
        # (Prometheus's clock, ours as monotonic time) at its newest answer: see server_time.
        self._server_clock: tuple[float, float] | None = None
        retry = Retry(
            total=config.retries,
            backoff_factor=0.5,
            status_forcelist=(429, 502, 503, 504),
            # POST carries queries too long for a URL (a shard's matcher); both only read.
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        # What requests sends, so a proxy or an auth gateway in front of Prometheus sees the same.
        headers = dict(requests.utils.default_headers())
        headers.update(config.headers)  # a tenant (X-Scope-OrgID); credentials are refused there
        token = resolve_secret(config.bearer_token, "prometheus.bearer_token")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        user: tuple[str, str] | None = None
        if config.basic_auth is not None:
            password = resolve_secret(config.basic_auth.password, "prometheus.basic_auth.password")
            assert password is not None
            user = (config.basic_auth.username, password.get_secret_value())
        elif token is None:
            user = requests.utils.get_netrc_auth(self.url)
        if user is not None:
            headers.update(make_headers(basic_auth=f"{user[0]}:{user[1]}"))
        self._pool = _pool_for(
            self.url,
            config,
            headers=headers,
            retries=retry,
            timeout=Timeout(connect=self._timeout, read=self._timeout),
            maxsize=max(10, config.max_concurrency * 2),
        )

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
            yield self._get("/api/v1/query_range", params, query, self._memos.setdefault(query, LabelMemo()))
            lo = hi + step_s

    def retain_memos(self, queries: Iterable[str]) -> None:
        """Forget the label memos of every query but ``queries`` (the collector's, after each cycle)."""
        keep = set(queries)
        for memos in (self._memos, self._quoted):
            for query in list(memos):  # a snapshot: another thread may be adding one
                if query not in keep:
                    memos.pop(query, None)

    def label_values(self, label: str, selectors: Sequence[str], start: datetime, end: datetime) -> list[str]:
        """The values ``label`` takes on the series of ``selectors`` in [start, end]: Prometheus
        answers from its index, reading no samples (a superset: whole blocks are consulted)."""
        params: list[tuple[str, str]] = [("match[]", s) for s in selectors]
        params += [("start", f"{start.timestamp():.3f}"), ("end", f"{end.timestamp():.3f}")]
        what = f"values of {label} for {', '.join(selectors)}"
        try:
            body = json.loads(self._fetch(f"/api/v1/label/{label}/values", params, what))
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

    def _get(self, path: str, params: dict[str, str], query: str, memo: LabelMemo | None = None) -> Block:
        raw = self._fetch(path, params, query)
        try:
            body, block = decode_answer(raw, memo)
        except AnswerError:
            raise PrometheusError(
                f"Prometheus at {self.url} answered with a body that is not JSON", temporary=True, query=query
            ) from None
        del raw  # one chunk's worth at a time
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

    def _fetch(self, path: str, params: dict[str, str] | list[tuple[str, str]], query: str) -> bytes:
        """One request's answer body (status 200); long requests (a shard's matcher) go as a form
        body, which Prometheus's query endpoints accept, instead of a URL that proxies and servers
        cap at a few KiB."""
        items = list(params.items()) if isinstance(params, dict) else params
        try:
            form = "&".join(f"{quote_plus(k)}={self._quote(v)}" for k, v in items)
            if len(form) > MAX_URL_QUERY_BYTES and "/label/" not in path:
                resp = self._pool.request(
                    "POST", f"{self.url}{path}", body=form.encode(), preload_content=False,
                    headers={**self._pool.headers, "Content-Type": "application/x-www-form-urlencoded"},
                )
            else:
                resp = self._pool.request("GET", f"{self.url}{path}?{form}", preload_content=False)
            try:
                body = _read_body(resp)
            finally:
                resp.release_conn()
        except MaxRetryError as exc:
            if isinstance(exc.reason, TimeoutError_) and not isinstance(exc.reason, NewConnectionError):
                raise PrometheusError(
                    f"Prometheus at {self.url} did not answer within {self._timeout:g}s", temporary=True, query=query
                ) from None
            raise PrometheusError(
                f"cannot connect to Prometheus at {self.url}: {_root_cause(exc)}", temporary=True, query=query
            ) from None
        except HTTPError as exc:  # a broken answer (truncated, bad compression): the next cycle asks again
            raise PrometheusError(
                f"cannot read Prometheus's answer at {self.url}: {_root_cause(exc)}", temporary=True, query=query
            ) from None
        if resp.status == 200:
            self._note_clock(resp.headers.get("Date"))
        if resp.status != 200:
            detail = _error_detail(resp, body)
            temporary = resp.status >= 500 or resp.status == 429
            hint = "" if temporary else " (fix the query or the credentials in the config)"
            shown = query if len(query) <= 300 else query[:300] + f"... ({len(query)} characters)"
            raise PrometheusError(
                f"Prometheus answered HTTP {resp.status} for {shown!r}: {detail}{hint}",
                temporary=temporary,
                query=query,
            )
        return body

    def _quote(self, value: str) -> str:
        """``value`` form-encoded (as ``urlencode`` does); a long one is encoded once while asked."""
        if len(value) < _QUOTE_MEMO_CHARS:
            return quote_plus(value)
        quoted = self._quoted.get(value)
        if quoted is None:
            quoted = self._quoted[value] = quote_plus(value)
        return quoted

    def _note_clock(self, date: str | None) -> None:
        """Keep Prometheus's clock as its answer's Date header gave it (whole seconds: the middle
        of that second), with the instant on ours it arrived."""
        if not date:
            return
        try:
            server = parsedate_to_datetime(date).timestamp() + 0.5
        except (TypeError, ValueError, IndexError):
            return  # a proxy's odd header: the clock is simply not known from this answer
        self._server_clock = (server, time.monotonic())

    def server_time(self) -> float | None:
        """Prometheus's clock now (epoch seconds), from its newest answer; None before any."""
        clock = self._server_clock
        return None if clock is None else clock[0] + (time.monotonic() - clock[1])

    def close(self) -> None:
        self._pool.clear()


def _pool_for(url: str, config: PrometheusConfig, **kw: Any) -> PoolManager:
    """Connections to ``url``, kept alive and shared by the fetch threads, set up once.

    On urllib3 directly rather than a requests session: a session spends about 0.5 ms of CPU per
    request preparing it (hooks, cookie jars, settings merged afresh, the URL parsed and re-quoted
    twice), half of a steady cycle's HTTP cost at 10k series (bench/README.md, issue 17), and this
    client only ever sends the same few kinds of request to one URL. What the environment says
    about ``url`` (HTTP(S)_PROXY and NO_PROXY, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE) is read here,
    once, with requests' own rules: a process's environment does not change under it.
    """
    tls = config.tls
    verify: bool | str = True
    if tls.insecure_skip_verify:
        verify = False
    elif tls.ca_file is not None:
        verify = str(tls.ca_file)
    else:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    if url.startswith("https:"):
        if verify is False:
            kw["cert_reqs"] = "CERT_NONE"
        else:
            ca = certifi.where() if verify is True else verify  # requests' own bundle
            kw["cert_reqs"] = "CERT_REQUIRED"
            kw["ca_cert_dir" if os.path.isdir(ca) else "ca_certs"] = ca
        if tls.cert_file is not None:
            kw["cert_file"] = str(tls.cert_file)
            if tls.key_file is not None:
                kw["key_file"] = str(tls.key_file)
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    if not proxy:
        return PoolManager(**kw)
    if proxy.lower().startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise AiopsError(
                f"the proxy for {url} is {proxy}: a SOCKS proxy needs PySocks installed "
                "(pip install PySocks), or set NO_PROXY to reach Prometheus directly",
                temporary=False,
            ) from None
        return SOCKSProxyManager(proxy, **kw)
    proxy_user, proxy_password = requests.utils.get_auth_from_url(proxy)
    proxy_headers = make_headers(proxy_basic_auth=f"{proxy_user}:{proxy_password}") if proxy_user else None
    return ProxyManager(requests.utils.prepend_scheme_if_needed(proxy, "http"), proxy_headers=proxy_headers, **kw)


def _read_body(resp: BaseHTTPResponse) -> bytes:
    """The whole answer, inflated if it came compressed (Prometheus gzips its answers).

    urllib3's own ``resp.data`` inflates a compressed answer in one go: the compressed body, zlib's
    output, a bytearray copy of that and a bytes copy of the bytearray, about 2.6 times the answer
    at once, in each fetch thread (requests had read it in 10 KiB pieces and joined them, twice the
    answer). Here the pieces go into one growing buffer whose bytes are handed over without a copy:
    about once the answer. A plain answer with a known length is read in one piece, as before.
    """
    if not resp.headers.get("Content-Encoding"):
        return resp.read()
    buf = io.BytesIO()
    for piece in resp.stream(_PIECE_BYTES, decode_content=True):  # None would leave chunked answers compressed
        buf.write(piece)
    return buf.getvalue()


def _error_detail(resp: BaseHTTPResponse, data: bytes) -> str:
    try:
        body = json.loads(data)
        return f"{body.get('errorType', '')}: {body.get('error', '')}".strip(": ")
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace").strip() or (resp.reason or "")


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc) or type(exc).__name__
