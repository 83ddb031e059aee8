"""How the daemon finds its cluster and its own namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.config import ConfigError, parse_config
from aiops.config.kube import KubernetesConfig
from aiops.kube.client import KubeConfigError, build_api_client


def test_in_cluster_is_detected_like_client_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert KubernetesConfig().use_in_cluster is False
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert KubernetesConfig().use_in_cluster is True
    assert KubernetesConfig(kubeconfig=tmp_path / "kc").use_in_cluster is False  # an explicit kubeconfig wins
    assert KubernetesConfig(in_cluster=False).use_in_cluster is False


def test_own_namespace_defaults_to_the_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert KubernetesConfig(namespace="ops").own_namespace == "ops"
    monkeypatch.setenv("POD_NAMESPACE", "monitoring")
    assert KubernetesConfig().own_namespace == "monitoring"


def test_unreadable_credentials_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="kubernetes.kubeconfig"):
        build_api_client(KubernetesConfig(enabled=True, in_cluster=False, kubeconfig=tmp_path / "missing"))


def test_leader_timings_are_validated() -> None:
    with pytest.raises(ConfigError, match="retry_period < renew_deadline < lease_duration"):
        parse_config({"kubernetes": {"leader_election": {"lease_duration": "5s", "renew_deadline": "10s"}}})


def test_the_connection_pool_holds_every_shard_worker_on_a_one_cpu_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # urllib3 keeps 5 connections per CPU by default: on a 1-CPU pod fewer than the shard Lease
    # workers, so each round threw connections away and opened them again (a TLS handshake each).
    from aiops.engine.shards import _LEASE_WORKERS
    from aiops.testing.kubeapi import KubeApiServer

    monkeypatch.setattr("multiprocessing.cpu_count", lambda: 1)
    with KubeApiServer([]) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kc")
        api = build_api_client(KubernetesConfig(enabled=True, in_cluster=False, kubeconfig=kubeconfig))
    assert api.configuration.connection_pool_maxsize > _LEASE_WORKERS
