"""A small, hand-written history in a real Prometheus: known answers for the foundation tests.

Two ways to serve it. ``prometheus`` is shared by the session and ends at ``history_end``, fixed when
the session starts: tests that pass that time to the collector or the pipeline get the same answers
however long the suite has run. ``live_prometheus`` ends when the test starts, for tests whose daemon
reads the wall clock. ``pytest --history-age=1800`` ages the shared history as a 30-minute run would,
to show which tests rely on it being fresh.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops.demo.prometheus import PrometheusServer

GiB = 1024**3
STEP = 60
HOURS = 6
# The leaky pod's working set reaches its 4 GiB limit this long after the end of the data.
LEAK_CROSSES_AFTER = timedelta(minutes=40)


def _lines(name: str, kind: str, series: list[tuple[str, list[tuple[int, float | None]]]]) -> list[str]:
    out = [f"# TYPE {name} {kind}"]
    for labels, points in series:
        for ts, v in points:
            if v is None:
                continue  # a gap
            value = "NaN" if isinstance(v, float) and math.isnan(v) else repr(float(v))
            out.append(f"{name}{{{labels}}} {value} {ts}")
    return out


def write_history(path: Path, end: datetime) -> datetime:
    end_s = int(end.timestamp()) // STEP * STEP
    start_s = end_s - HOURS * 3600
    times = list(range(start_s, end_s + 1, STEP))
    limit = 4 * GiB
    # Linear leak: from 2 GiB at the start to the limit LEAK_CROSSES_AFTER past the end.
    cross_s = end_s + LEAK_CROSSES_AFTER.total_seconds()
    slope = (limit - 2 * GiB) / (cross_s - start_s)
    leaky = [(t, 2 * GiB + slope * (t - start_s) + 5e6 * math.sin(t / 300)) for t in times]
    steady = [(t, 1 * GiB + 2e7 * math.sin(t / 900)) for t in times]
    acc = [(t, (float("nan") if (t // STEP) % 37 == 0 else 0.93 + 0.005 * math.sin(t / 3600)))
           for t in times if not (start_s + 7200 <= t < start_s + 9000)]  # NaNs and a 30-min gap
    restarts, count = [], 0
    for i, t in enumerate(times):
        count = 0 if i == len(times) // 2 else count + (1 if i % 90 == 0 else 0)  # one counter reset
        restarts.append((t, count))
    lines: list[str] = []
    lines += _lines("container_memory_working_set_bytes", "gauge", [
        ('namespace="ml",pod="leaky-0",container="server"', leaky),
        ('namespace="ml",pod="steady-0",container="server"', steady),
    ])
    lines += _lines("kube_pod_container_resource_limits", "gauge", [
        ('namespace="ml",pod="leaky-0",container="server",resource="memory"', [(t, limit) for t in times]),
        ('namespace="ml",pod="steady-0",container="server",resource="memory"', [(t, limit) for t in times]),
    ])
    lines += _lines("model_accuracy", "gauge", [('namespace="ml",model="ranker"', acc)])
    lines += _lines("kube_pod_container_status_restarts", "counter", [
        ('namespace="ml",pod="steady-0",container="server"', restarts)])
    # OpenMetrics counters carry a _total suffix on samples.
    lines = [ln.replace("kube_pod_container_status_restarts{", "kube_pod_container_status_restarts_total{") for ln in lines]
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return datetime.fromtimestamp(end_s, UTC)


def add_history_age_option(parser: pytest.Parser) -> None:
    parser.addoption(
        "--history-age", type=float, default=0.0, metavar="SECONDS",
        help="anchor the session's shared Prometheus history this many seconds in the past, as a long "
             "suite run leaves it; a test that passes only without it reads the wall clock and belongs on "
             "live_prometheus",
    )


def session_anchor(request: pytest.FixtureRequest) -> datetime:
    """Where a session-wide history ends: now, or ``--history-age`` seconds ago."""
    age = timedelta(seconds=request.config.getoption("--history-age"))
    return (datetime.now(UTC) - age).replace(second=0, microsecond=0)


@pytest.fixture(scope="session")
def history_end(request: pytest.FixtureRequest) -> datetime:
    return session_anchor(request)


@contextmanager
def serving_history(root: Path, end: datetime) -> Iterator[PrometheusServer]:
    om = root / "history.om"
    write_history(om, end)
    with PrometheusServer(root / "data", openmetrics=om) as prom:
        yield prom


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, history_end: datetime) -> Iterator[PrometheusServer]:
    """The history for tests that pass ``history_end`` as the cycle's time: one server for the session."""
    with serving_history(tmp_path_factory.mktemp("prom-foundation"), history_end) as prom:
        yield prom


@pytest.fixture
def live_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The same history ending now, for tests that run the daemon on the wall clock (``aiops run``,
    ``aiops once``). The session's history ends when the session began: past the collector's
    freshness window the daemon rightly calls itself blind, so a long suite failed these tests.
    Starting a server costs about half a second."""
    with serving_history(tmp_path_factory.mktemp("prom-live"), datetime.now(UTC)) as prom:
        yield prom
