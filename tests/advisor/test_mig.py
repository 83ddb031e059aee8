"""The advisor on a GPU in MIG mode, against a real Prometheus.

dcgm-exporter reports no DCGM_FI_DEV_GPU_UTIL for MIG instances: absent in most versions, 0 in
others (NVIDIA/dcgm-exporter#105, #216, #430). A utilisation of 0 is not "idle" there: it is
"not measured", and a workload on a MIG slice must never be told to release its GPU for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiops.advisor import Advice, AdvisorError, advise
from aiops.config import parse_config
from aiops.demo.prometheus import PrometheusServer
from aiops.model import Entity
from tests.advisor.dcgm_history import END, write_gauges

pytestmark = pytest.mark.timeout(60)

A100 = "NVIDIA A100-SXM4-80GB"
CHAT = Entity("deployment", "chat", "serving")
ON_SLICES = (Entity("deployment", "embedder", "serving"), Entity("deployment", "ranker", "serving"))


def _history(path: Path, *, whole_gpu: bool = True) -> None:
    base = {"Hostname": "gpu-node-1", "modelName": A100, "namespace": "serving"}
    whole = {**base, "gpu": "0", "UUID": "GPU-whole", "pod": "chat-5b8d7c9f6d-xk2zq"}
    slices = [{**base, "gpu": "1", "UUID": "GPU-mig", "GPU_I_PROFILE": "3g.40gb", "GPU_I_ID": i, "pod": pod}
              for i, pod in (("1", "embedder-6c8d9b7f5d-q2w4z"), ("2", "ranker-7d9c8b6f4e-a1b2c"))]
    fields = {  # (whole GPU, each MIG instance): utilisation %, framebuffer used and free in MiB
        "DCGM_FI_DEV_GPU_UTIL": (50.0, 0.0),
        "DCGM_FI_DEV_FB_USED": (40000.0, 30000.0),
        "DCGM_FI_DEV_FB_FREE": (41000.0, 10000.0),
    }
    write_gauges(path, [(name, labels, value) for name, (on_whole, on_slice) in fields.items()
                        for labels, value in [(whole, on_whole)] * whole_gpu + [(s, on_slice) for s in slices]])


@pytest.fixture(scope="module")
def advice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Advice]:
    root = tmp_path_factory.mktemp("advisor-mig")
    _history(root / "h.om")
    with PrometheusServer(root / "data", openmetrics=root / "h.om") as prom:
        config = parse_config({"prometheus": {"url": prom.url}, "advisor": {"window": "1d"}})
        yield advise(config, datetime.fromtimestamp(END, UTC))


def test_a_workload_on_a_mig_slice_is_not_told_to_release_its_gpu(advice: Advice) -> None:
    for target in ON_SLICES:
        assert advice.for_target(target) == [], target
    assert {w.entity for w in advice.workloads} == {CHAT}  # the whole GPU is still read


def test_the_report_says_which_gpus_it_could_not_judge(advice: Advice) -> None:
    [gap] = [g for g in advice.caveats if "MIG" in g]
    assert "GPU-mig" in gap and "DCGM_FI_DEV_GPU_UTIL" in gap


def test_a_cluster_of_mig_gpus_only_is_told_why_there_is_no_advice(tmp_path: Path) -> None:
    _history(tmp_path / "h.om", whole_gpu=False)
    with PrometheusServer(tmp_path / "data", openmetrics=tmp_path / "h.om") as prom:
        config = parse_config({"prometheus": {"url": prom.url}, "advisor": {"window": "1d"}})
        with pytest.raises(AdvisorError, match=r"every GPU seen \(GPU-mig\) is in MIG mode") as info:
            advise(config, datetime.fromtimestamp(END, UTC))
    assert not info.value.temporary and "detectors still watch" in info.value.hint
