"""A small cluster history in a real Prometheus for the per-shard fetch tests.

40 nodes with two pods each (one pod name repeated in two namespaces), a GPU per node (one GPU
without its ``Hostname``, whose shard falls back to its UUID), node readiness: enough series that
three shards each get a part, and the label shapes the shard rewrite has to handle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiops.collect.collector import Collector
from aiops.config import AiopsConfig, parse_config
from aiops.demo.prometheus import PrometheusServer
from tests.prometheus_history import session_anchor

NODES = 40
STEP = 60
HOURS = 2
SIGNALS = ("pod_memory_usage_ratio", "pod_info", "node_ready", "gpu_utilization")


def write_history(path: Path, end_s: int) -> None:
    times = range(end_s - HOURS * 3600, end_s + 1, STEP)
    lines: list[str] = []

    def gauge(name: str, series: list[tuple[str, float]]) -> None:
        lines.append(f"# TYPE {name} gauge")
        for labels, base in series:
            for t in times:
                lines.append(f"{name}{{{labels}}} {base + math.sin(t / 600 + base):.6f} {t}")

    nodes = [f"gpu-node-{i}.cluster.local" for i in range(NODES)]
    pods = [(("ml" if j else "serving"), f"llm-{i}-{j}", n) for i, n in enumerate(nodes) for j in range(2)]
    pods.append(("batch", "llm-0-0", nodes[7]))  # a pod name that two namespaces share
    gauge("container_memory_working_set_bytes",
          [(f'namespace="{ns}",pod="{p}",container="server"', 2e9 + k) for k, (ns, p, _) in enumerate(pods)])
    gauge("kube_pod_container_resource_limits",
          [(f'namespace="{ns}",pod="{p}",container="server",resource="memory"', 4e9) for ns, p, _ in pods])
    gauge("kube_pod_info", [(f'namespace="{ns}",pod="{p}",node="{n}",created_by_kind="ReplicaSet"', 1) for ns, p, n in pods])
    gauge("kube_node_status_condition", [(f'node="{n}",condition="Ready",status="true"', 1) for n in nodes])
    gauge("DCGM_FI_DEV_GPU_UTIL",
          [(f'Hostname="{n}",gpu="0",UUID="GPU-{i}",modelName="H100"', 50 + i) for i, n in enumerate(nodes)]
          + [('gpu="0",UUID="GPU-orphan",modelName="H100"', 10)])
    path.write_text("\n".join(lines) + "\n# EOF\n")


@pytest.fixture(scope="session")
def shard_history_end(request: pytest.FixtureRequest) -> datetime:
    return session_anchor(request)


@pytest.fixture(scope="session")
def shard_prometheus(tmp_path_factory: pytest.TempPathFactory, shard_history_end: datetime) -> Iterator[PrometheusServer]:
    root = tmp_path_factory.mktemp("prom-shards")
    om = root / "history.om"
    write_history(om, int(shard_history_end.timestamp()))
    with PrometheusServer(root / "data", openmetrics=om) as prom:
        yield prom


def collector_config(url: str, lookback: timedelta = timedelta(hours=1)) -> AiopsConfig:
    signals = {n: {"enabled": False} for n in parse_config({}).resolved_signals() if n not in SIGNALS}
    return parse_config({
        "prometheus": {"url": url, "lookback": f"{int(lookback.total_seconds())}s", "timeout": "10s", "retries": 0},
        "signals": signals,
    })


def recorded_queries(collector: Collector) -> list[str]:
    """The list every range query the collector's client is asked gets appended to."""
    sent: list[str] = []
    chunks = collector.client.range_chunks  # type: ignore[attr-defined]

    def counted(query: str, *args: Any) -> Any:
        sent.append(query)
        return chunks(query, *args)

    collector.client.range_chunks = counted  # type: ignore[attr-defined]
    return sent
