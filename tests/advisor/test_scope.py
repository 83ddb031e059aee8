"""The advisor on a store that holds several clusters (Thanos, Mimir), against a real Prometheus.

``prometheus.scope`` holds the daemon's signal queries and its inbound alert checks to this
cluster's series; the advisor's queries were not held to it, and advised this cluster on
another's workloads (a notebook idle in staging, "release its GPU", in production's report).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiops.advisor import advise
from aiops.config import parse_config
from aiops.demo.prometheus import PrometheusServer
from aiops.model import Entity
from tests.advisor.dcgm_history import END, write_gauges

pytestmark = pytest.mark.timeout(60)



def _history(path: Path) -> None:
    gpus = [  # (cluster, UUID, pod, utilisation %)
        ("prod-eu", "GPU-prod", "chat-5b8d7c9f6d-xk2zq", 60.0),
        ("staging", "GPU-staging", "notebook-6c8d9b7f5d-q2w4z", 0.0),
    ]
    rows = []
    for cluster, uuid, pod, util in gpus:
        labels = {"cluster": cluster, "Hostname": "gpu-node-1", "gpu": "0", "UUID": uuid,
                  "modelName": "NVIDIA A100-SXM4-80GB", "namespace": "ml", "pod": pod}
        rows += [("DCGM_FI_DEV_GPU_UTIL", labels, util), ("DCGM_FI_DEV_FB_USED", labels, 20000.0),
                 ("DCGM_FI_DEV_FB_FREE", labels, 61000.0)]
    write_gauges(path, rows)


def test_the_advice_is_about_this_cluster_only(tmp_path: Path) -> None:
    _history(tmp_path / "h.om")
    with PrometheusServer(tmp_path / "data", openmetrics=tmp_path / "h.om") as prom:
        config = parse_config({"prometheus": {"url": prom.url, "scope": {"cluster": "prod-eu"}},
                               "advisor": {"window": "1d"}})
        advice = advise(config, datetime.fromtimestamp(END, UTC))
    assert {w.entity for w in advice.workloads} == {Entity("deployment", "chat", "ml")}
    assert advice.for_target(Entity("deployment", "notebook", "ml")) == []
