from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator

from aiops.config.base import Duration, StrictModel


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeaderElectionConfig(StrictModel):
    """Only the holder of a coordination.k8s.io/v1 Lease acts; the others keep detecting.

    ``renew_deadline`` < ``lease_duration``: a leader that could not renew within the deadline
    stops acting before any other replica may take the lease over. The Lease holds
    ``lease_duration`` in whole seconds, rounded up (2.9s is written as 3), so it stays above
    ``renew_deadline``.
    """

    enabled: bool = True
    lease_name: str = "aiops-leader"
    # Defaults to the daemon's namespace (``kubernetes.namespace``).
    namespace: str | None = None
    # Defaults to $POD_NAME, then the host name.
    identity: str | None = None
    lease_duration: Duration = timedelta(seconds=15)
    renew_deadline: Duration = timedelta(seconds=10)
    retry_period: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _check(self) -> LeaderElectionConfig:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")
        return self


class KubernetesConfig(StrictModel):
    """How to reach the cluster. Disabled: plans are made without cluster state and never applied."""

    enabled: bool = False
    # None: in-cluster when running in a pod (KUBERNETES_SERVICE_HOST set) and no kubeconfig is
    # given, as client-go does; otherwise the kubeconfig (default ~/.kube/config).
    in_cluster: bool | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    # The daemon's own namespace, where its Lease and its control ConfigMap live. None: the pod's
    # namespace ($POD_NAMESPACE, else the service account's), else "aiops".
    namespace: str | None = None
    request_timeout: Duration = timedelta(seconds=10)
    # Namespaces read into the cluster view; empty reads all (needs cluster-wide list rights).
    watch_namespaces: list[str] = Field(default_factory=list)
    leader_election: LeaderElectionConfig = LeaderElectionConfig()

    @model_validator(mode="after")
    def _check(self) -> KubernetesConfig:
        if self.in_cluster and self.kubeconfig is not None:
            raise ValueError("set either in_cluster or kubeconfig, not both")
        return self

    @property
    def use_in_cluster(self) -> bool:
        if self.in_cluster is not None:
            return self.in_cluster
        return self.kubeconfig is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))

    @property
    def own_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "aiops"
        except OSError:
            return "aiops"
