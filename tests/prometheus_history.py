"""A small, hand-written history in a real Prometheus: known answers for the foundation tests."""

from __future__ import annotations

import math
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def history_end() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, history_end: datetime) -> Iterator[PrometheusServer]:
    root = tmp_path_factory.mktemp("prom-foundation")
    om = root / "history.om"
    write_history(om, history_end)
    with PrometheusServer(root / "data", openmetrics=om) as prom:
        yield prom
