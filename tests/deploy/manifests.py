"""Read rendered manifests and check them the way the API server would, offline.

Built-in kinds are validated by the ``kubernetes`` client's models (pydantic v2, unknown fields
forbidden), so a misspelt or misplaced field fails here instead of at ``kubectl apply``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "aiops"
RBAC_FILE = REPO / "deploy" / "rbac" / "clusterrole.yaml"

MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("v1", "Namespace"): client.V1Namespace,
    ("v1", "Pod"): client.V1Pod,
    ("v1", "ServiceAccount"): client.V1ServiceAccount,
    ("v1", "ConfigMap"): client.V1ConfigMap,
    ("v1", "Service"): client.V1Service,
    ("apps/v1", "Deployment"): client.V1Deployment,
    ("policy/v1", "PodDisruptionBudget"): client.V1PodDisruptionBudget,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): client.V1ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): client.V1ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): client.V1Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): client.V1RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): client.V1NetworkPolicy,
}


def parse(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def validate(doc: dict[str, Any]) -> Any:
    """The client model of a built-in object; raises pydantic's ValidationError naming the field."""
    model = MODELS.get((doc["apiVersion"], doc["kind"]))
    assert model is not None, f"no client model for {doc['apiVersion']} {doc['kind']}; add it to MODELS"
    return model.model_validate(doc)


def by_kind(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def helm_template(
    helm: str, *values: Path, sets: Sequence[str] = (), namespace: str = "aiops", extra: Sequence[str] = ()
) -> str:
    args = [helm, "template", "aiops", str(CHART), "--namespace", namespace, *extra]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def role_rules() -> list[dict[str, Any]]:
    """The namespaced part (kill-switch ConfigMap, leader Lease), granted in the daemon's namespace only."""
    return yaml.safe_load(RBAC_FILE.with_name("role.yaml").read_text())["rules"]


def shard_role_rules() -> list[dict[str, Any]]:
    """Added to the namespaced part when sharding.shards > 1: the shard and member Leases."""
    return yaml.safe_load(RBAC_FILE.with_name("role-shards.yaml").read_text())["rules"]


def rbac_rules() -> list[dict[str, Any]]:
    """The rules engineer D's tests prove the code needs, no more."""
    return yaml.safe_load(RBAC_FILE.read_text())["rules"]


def secret_env_refs(config: Any) -> set[str]:
    """Environment variables the config reads secrets from ({env: NAME} references)."""
    if isinstance(config, dict):
        if set(config) == {"env"} and isinstance(config["env"], str):
            return {config["env"]}
        return set().union(*(secret_env_refs(v) for v in config.values())) if config else set()
    if isinstance(config, list):
        return set().union(*(secret_env_refs(v) for v in config)) if config else set()
    return set()


# Plausible stand-ins for the Secret's values, in the shapes the channels check (a DingTalk signing
# secret starts with SEC, its webhook is a URL).
FAKE_SECRETS = {
    "AIOPS_DINGTALK_WEBHOOK": "https://oapi.dingtalk.com/robot/send?access_token=test-token",
    "AIOPS_DINGTALK_SECRET": "SECtest0123456789abcdef",
}


def fake_secret(name: str) -> str:
    return FAKE_SECRETS.get(name, f"test-{name.lower()}")
