"""A test API server seeded with a small GPU cluster, and an Actor wired to it through a
kubeconfig holding the service-account token (whose rights come from deploy/rbac/clusterrole.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aiops.config import AiopsConfig, parse_config
from aiops.engine.act import Actor
from aiops.model import Basis, Decision, Entity, Evidence, Finding, Mode, Resolve, Severity
from aiops.state import Store
from aiops.testing.kubeapi import SA_TOKEN, KubeApiServer
from aiops.testing.kubeapi_objects import make_deployment, make_node, make_pdb, make_pod

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_ROLE = ROOT / "deploy" / "rbac" / "clusterrole.yaml"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def seed_workload(
    server: KubeApiServer,
    app: str,
    nodes: list[str],
    *,
    namespace: str = "default",
    min_available: int | None = None,
    labels: dict[str, str] | None = None,
) -> list[str]:
    """A Deployment whose pods are owned by the ReplicaSet the server's controller made."""
    server.seed(make_deployment(app, namespace=namespace, replicas=len(nodes), labels=labels))
    rs = next(
        r["metadata"]["name"]
        for r in server.list("ReplicaSet", namespace, group="apps")
        if r["metadata"]["name"].startswith(app + "-")
    )
    names = []
    for i, node in enumerate(nodes):
        name = f"{app}-{i}"
        server.seed(
            make_pod(
                name, namespace=namespace, node=node, labels={"app": app, **(labels or {})}, owner=("ReplicaSet", rs)
            )
        )
        names.append(name)
    if min_available is not None:
        server.seed(make_pdb(app, namespace=namespace, min_available=min_available))
    return names


def connections_opened(api: Any) -> int:
    """Connections a ``kubernetes`` ApiClient has opened so far (urllib3 counts them per host pool)."""
    pools = api.rest_client.pool_manager.pools
    return sum(pools[key].num_connections for key in pools.keys())


@pytest.fixture
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer([make_node(f"gpu-{i}", gpus=8) for i in range(1, 5)], cluster_role=CLUSTER_ROLE) as srv:
        yield srv


def make_config(
    server: KubeApiServer, tmp_path: Path, *, leader: bool = False, request_timeout: str = "2s", **safety: Any
) -> AiopsConfig:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", token=SA_TOKEN)
    data: dict[str, Any] = {
        "safety": {"mode": "auto", "dry_run": False, "api_backoff_max": "50ms", **safety},
        "kubernetes": {
            "enabled": True,
            "kubeconfig": str(kubeconfig),
            "request_timeout": request_timeout,
            "leader_election": {
                "enabled": leader,
                "lease_duration": "3s",
                "renew_deadline": "2s",
                "retry_period": "500ms",
            },
        },
        "state": {"path": str(tmp_path / "state.sqlite")},
    }
    return parse_config(data)


def make_actor(config: AiopsConfig, **kwargs: Any) -> tuple[Actor, Store]:
    store = Store(config.state.path)
    return Actor.from_config(config, store, **kwargs), store


def finding(
    signal: str, entity: Entity, *, score: float = 0.95, detector: str = "exhaustion", recent: tuple[float, ...] = ()
) -> Finding:
    return Finding(
        detector,
        signal,
        entity,
        score,
        NOW,
        Evidence(f"{signal} on {entity.key} is bad", recent=recent),
        severity=Severity.CRITICAL,
        confirmed=True,
    )


def decision(
    action: str,
    target: Entity,
    f: Finding | None = None,
    *,
    resolve_target: str | None = None,
    basis: str = "confirmed",
    restore: bool = False,
    **params: Any,
) -> Decision:
    f = f or finding("pod_crashlooping", target)
    return Decision(
        action, target, Mode.AUTO, f"test: {f.signal}", f, rule="test", params=params, basis=Basis(basis),
        restore=restore, resolve=Resolve(resolve_target) if resolve_target else None,
    )


def writes(server: KubeApiServer) -> list[tuple[str, str, str, str]]:
    """(method, resource, subresource, name) of every write the server received."""
    return [(r.method, r.resource, r.subresource, r.name) for r in server.requests_matching(writes_only=True)]


def logged(server: KubeApiServer, count: int, timeout: float = 2.0, **match: Any) -> list[Any]:
    """Requests matching ``match`` once ``count`` of them are logged: the server logs a request
    just after answering it, so the client can be a step ahead of the log."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = server.requests_matching(**match)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)
