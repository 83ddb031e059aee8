"""Build the official client from config: in-cluster service account or a kubeconfig file."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from aiops.config.kube import KubernetesConfig
from aiops.errors import PermanentError


# Connections the client keeps per API server: the shard Lease workers and the cycle's calls at once.
MIN_POOL_CONNECTIONS = 16


class KubeConfigError(PermanentError):
    """The cluster credentials cannot be loaded; the message says what to fix."""


def build_api_client(config: KubernetesConfig) -> k8s.ApiClient:
    """A new ApiClient. Retries belong to the caller (tenacity), so urllib3's own are off."""
    configuration = k8s.Configuration()
    try:
        if config.use_in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=str(config.kubeconfig) if config.kubeconfig else None,
                context=config.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = (
            "the in-cluster service account"
            if config.use_in_cluster
            else f"kubeconfig {config.kubeconfig or '~/.kube/config'}"
        )
        raise KubeConfigError(
            f"cannot load Kubernetes credentials from {where}: {exc}. Set kubernetes.in_cluster: true when "
            "running in a pod, or kubernetes.kubeconfig (and context) to a readable kubeconfig."
        ) from None
    configuration.retries = 0
    # urllib3 keeps 5 connections per CPU: on a 1-CPU pod fewer than the shard Lease workers (8)
    # and the cycle's own calls, and a connection that does not fit is closed after each request.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, MIN_POOL_CONNECTIONS)
    return k8s.ApiClient(configuration)


def request_timeout(config: KubernetesConfig) -> tuple[float, float]:
    """(connect, read) seconds for every call: the client's default waits forever."""
    total = config.request_timeout.total_seconds()
    return (min(5.0, total), total)
