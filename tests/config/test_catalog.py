"""The default catalog's queries, run by a real Prometheus on series labelled as exporters label them."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from aiops.collect.collector import entity_of
from aiops.collect.shard_query import shard_queries
from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.demo.prometheus import PrometheusServer

pytestmark = pytest.mark.timeout(60)

AT = 1_780_000_000
NODE_SIGNALS = [n for n, s in DEFAULT_SIGNALS.items() if s.entity == "node" and "node_" in s.query
                and "kube_node" not in s.query]

# Three node-exporters as clusters scrape them. gpu-node-1: kube-prometheus-stack's defaults, the
# instance is the pod's address (hostNetwork: the node's IP). gpu-node-2: scraped by a static or
# relabelled target "<node>:9100" with the uname collector off. gpu-node-3: relabelled so that the
# instance is the node's name. Only node_uname_info's nodename (or the host part of an instance that
# relabelling made the node's name) is the Kubernetes node's name.
_EXPORTERS = {
    "gpu-node-1": ('10.0.3.7:9100', True),
    "gpu-node-2": ("gpu-node-2:9100", False),
    "gpu-node-3": ("gpu-node-3", True),
}


def _history(path: Path) -> None:
    lines: list[str] = []

    def family(name: str, kind: str, rows: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            text = ",".join(f'{k}="{v}"' for k, v in labels.items())
            for t in range(AT - 1800, AT + 1, 60):
                v = value + (t - AT + 1800) * 1.0 if kind == "counter" else value
                lines.append(f"{name}{{{text}}} {v} {t}")

    exporters = [(node, {"instance": inst, "job": "node-exporter"}, uname) for node, (inst, uname) in _EXPORTERS.items()]
    family("node_uname_info", "gauge", [({**lab, "nodename": node, "sysname": "Linux"}, 1.0)
                                        for node, lab, uname in exporters if uname])
    family("node_memory_MemTotal_bytes", "gauge", [(lab, 64e9) for _, lab, _ in exporters])
    family("node_memory_MemAvailable_bytes", "gauge", [(lab, 16e9) for _, lab, _ in exporters])
    root = {"mountpoint": "/", "fstype": "ext4", "device": "/dev/sda1"}
    family("node_filesystem_size_bytes", "gauge", [({**lab, **root}, 100e9) for _, lab, _ in exporters])
    family("node_filesystem_avail_bytes", "gauge", [({**lab, **root}, 40e9) for _, lab, _ in exporters])
    family("node_filesystem_files", "gauge", [({**lab, **root}, 1e6) for _, lab, _ in exporters])
    family("node_filesystem_files_free", "gauge", [({**lab, **root}, 9e5) for _, lab, _ in exporters])
    family("node_cpu_seconds_total", "counter", [({**lab, "cpu": "0", "mode": "idle"}, 1e5) for _, lab, _ in exporters])
    # dcgm-exporter: a whole H100 shared by two pods (a series per pod attached, the same values),
    # and an H100 in MIG mode, whose framebuffer is reported per GPU instance under one UUID, each
    # with the pod attached to that instance, and whose DCGM_FI_DEV_GPU_UTIL is 0 whatever it
    # runs (NVIDIA/dcgm-exporter#216; absent in other versions, #105, #430: not supported for MIG).
    dcgm = {"job": "dcgm-exporter", "instance": "10.0.3.7:9400", "Hostname": "gpu-node-1",
            "modelName": "NVIDIA H100 80GB HBM3", "DCGM_FI_DRIVER_VERSION": "550.54.15"}
    whole = [{**dcgm, "gpu": "0", "UUID": "GPU-whole", "pod": p, "namespace": "ml"} for p in ("llm-a", "llm-b")]
    mig = [{**dcgm, "gpu": "1", "UUID": "GPU-mig", "GPU_I_PROFILE": "3g.40gb", "GPU_I_ID": i, "pod": p, "namespace": "ml"}
           for i, p in (("1", "mig-a"), ("2", "mig-b"))]
    # Two GPUs whose exporter has no value for one field: DCGM's int64 blank (0x7ffffffffffffff0).
    blank = [{**dcgm, "gpu": str(i), "UUID": f"GPU-blank-{name}"} for i, name in ((2, "used"), (3, "free"))]
    family("DCGM_FI_DEV_FB_USED", "gauge", [(lab, 60000.0) for lab in whole] + [(mig[0], 40200.0), (mig[1], 1000.0)]
           + [(blank[0], float(0x7FFFFFFFFFFFFFF0)), (blank[1], 1000.0)])
    family("DCGM_FI_DEV_FB_FREE", "gauge", [(lab, 20000.0) for lab in whole] + [(mig[0], 248.0), (mig[1], 39448.0)]
           + [(blank[0], 79000.0), (blank[1], float(0x7FFFFFFFFFFFFFF0))])
    family("DCGM_FI_DEV_GPU_UTIL", "gauge", [(lab, 80.0) for lab in whole] + [(lab, 0.0) for lab in mig])
    path.write_text("\n".join(lines) + "\n# EOF\n")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("catalog")
    _history(root / "h.om")
    with PrometheusServer(root / "data", openmetrics=root / "h.om") as prom:
        yield prom.url


def test_there_are_node_exporter_signals() -> None:
    assert set(NODE_SIGNALS) >= {"node_memory_usage_ratio", "node_cpu_utilization", "node_filesystem_usage_ratio",
                                 "node_filesystem_inodes_usage_ratio"}


@pytest.mark.parametrize("name", NODE_SIGNALS)
def test_node_exporter_series_are_named_by_the_kubernetes_node_not_the_scrape_address(prometheus: str,
                                                                                       name: str) -> None:
    signal = DEFAULT_SIGNALS[name]
    resp = requests.get(f"{prometheus}/api/v1/query", params={"query": signal.query, "time": AT}, timeout=10)
    resp.raise_for_status()
    result = resp.json()["data"]["result"]
    # One series per node (and mountpoint), whatever else the exporters' series carry.
    assert sorted(entity_of(signal, r["metric"]).name for r in result) == sorted(_EXPORTERS)
    assert all(0.0 <= float(r["value"][1]) <= 1.0 for r in result)


def test_node_exporter_signals_are_fetched_whole_by_every_replica() -> None:
    # The node's name is computed by the query (a join and a relabelling), so no selector can be
    # filtered by it; a handful of series per node, and the frame filter keeps each replica's own.
    assert not set(NODE_SIGNALS) & set(shard_queries({n: DEFAULT_SIGNALS[n] for n in NODE_SIGNALS}))


SOFT_5PCT = {"eviction_soft": {"memory.available": "5%"}, "eviction_soft_grace_period": {"memory.available": "1m"}}


@pytest.mark.parametrize(("kubelet", "allowed"), [
    ({"eviction_hard": {"memory.available": "750Mi"}}, 64e9 - 750 * 2**20),
    ({"eviction_hard": {"memory.available": "5%"}}, 64e9 * 0.95),
    # A soft share and a hard amount: whichever reserves more on this 64 GB node (5 %: 3.2 GB, more
    # than 100Mi and less than 4Gi).
    (SOFT_5PCT, 64e9 * 0.95),
    ({**SOFT_5PCT, "eviction_hard": {"memory.available": "4Gi"}}, 64e9 - 4 * 2**30),
])
def test_node_memory_is_measured_against_the_configured_eviction_reserve(prometheus: str, kubelet: dict[str, dict[str, str]],
                                                                          allowed: float) -> None:
    from aiops.config import parse_config

    signal = parse_config({"kubelet": kubelet}).resolved_signals()["node_memory_usage_ratio"]
    resp = requests.get(f"{prometheus}/api/v1/query", params={"query": signal.query, "time": AT}, timeout=10)
    values = [float(r["value"][1]) for r in resp.json()["data"]["result"]]
    assert values == [pytest.approx((64e9 - 16e9) / allowed)] * 3


def test_a_mig_gpu_s_framebuffer_is_its_fullest_instance_s(prometheus: str) -> None:
    """In MIG mode dcgm-exporter reports FB_USED and FB_FREE per GPU instance under one UUID. The
    ratio of the largest used to the largest free mixed two instances: a 3g.40gb slice at 99.4 %
    (about to run out of memory) read 0.505 and no forecast could fire. Each instance is its own
    framebuffer, so the GPU's ratio is its fullest instance's; a whole GPU reads as before."""
    signal = DEFAULT_SIGNALS["gpu_memory_usage_ratio"]
    resp = requests.get(f"{prometheus}/api/v1/query", params={"query": signal.query, "time": AT}, timeout=10)
    resp.raise_for_status()
    got = {entity_of(signal, r["metric"]).name: float(r["value"][1]) for r in resp.json()["data"]["result"]}
    assert got == {"GPU-whole": pytest.approx(0.75), "GPU-mig": pytest.approx(40200 / 40448)}



def test_the_pods_on_a_mig_gpu_are_read_from_a_field_mig_mode_reports(prometheus: str) -> None:
    """gpu_pods (which pod is on each GPU: the pod an XID 94 hit is restarted) was read off
    DCGM_FI_DEV_GPU_UTIL, which dcgm-exporter does not report for a GPU in MIG mode: every pod on
    a MIG GPU was lost, and an XID 94 there named no pod. The framebuffer is reported in both
    modes, per GPU instance in MIG mode, with the pod attached to each."""
    signal = DEFAULT_SIGNALS["gpu_pods"]
    resp = requests.get(f"{prometheus}/api/v1/query", params={"query": signal.query, "time": AT}, timeout=10)
    resp.raise_for_status()
    got = {(entity_of(signal, r["metric"]).name, r["metric"]["pod"]) for r in resp.json()["data"]["result"]}
    assert got == {("GPU-whole", "llm-a"), ("GPU-whole", "llm-b"), ("GPU-mig", "mig-a"), ("GPU-mig", "mig-b")}


def test_a_mig_gpu_has_no_utilisation_rather_than_zero(prometheus: str) -> None:
    """The 0 some dcgm-exporter versions write for a MIG instance's utilisation means "not
    measured": read as the GPU's utilisation, a busy MIG GPU read idle. It has no point instead,
    as in the versions that leave the field out."""
    signal = DEFAULT_SIGNALS["gpu_utilization"]
    resp = requests.get(f"{prometheus}/api/v1/query", params={"query": signal.query, "time": AT}, timeout=10)
    resp.raise_for_status()
    got = {entity_of(signal, r["metric"]).name: float(r["value"][1]) for r in resp.json()["data"]["result"]}
    assert got == {"GPU-whole": 80.0}


def test_a_framebuffer_field_dcgm_has_no_value_for_is_no_ratio(prometheus: str) -> None:
    """The ratio hides a DCGM blank from the collector's screen (aiops/collect/plausible.py): a
    blank FB_USED read 2^63 / (2^63 + free) = 1.0, "CUDA out of memory", a critical page for a
    healthy GPU; a blank FB_FREE read 0. The query leaves such a GPU without a point instead."""
    signal = DEFAULT_SIGNALS["gpu_memory_usage_ratio"]
    resp = requests.get(f"{prometheus}/api/v1/query", params={"query": signal.query, "time": AT}, timeout=10)
    resp.raise_for_status()
    got = {entity_of(signal, r["metric"]).name: float(r["value"][1]) for r in resp.json()["data"]["result"]}
    assert not {"GPU-blank-used", "GPU-blank-free"} & set(got), got
