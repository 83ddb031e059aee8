"""The chart's optional PrometheusRule and dashboard ConfigMap carry alert-rules/ and dashboards/ unchanged."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.deploy.manifests import CHART, REPO, by_kind, one

FILES = CHART / "files"


def test_chart_files_link_to_the_sources() -> None:
    for name, source in (
        ("clusterrole.yaml", "deploy/rbac/clusterrole.yaml"),
        ("role.yaml", "deploy/rbac/role.yaml"),
        ("alert-rules", "alert-rules"),
        ("dashboards", "dashboards"),
    ):
        link = FILES / name
        assert link.is_symlink() and link.resolve() == (REPO / source).resolve(), f"{link} must link to {source}"


def test_prometheus_rules_are_the_rule_files(production_docs: list[dict[str, Any]]) -> None:
    rules = by_kind(production_docs, "PrometheusRule")
    assert {r["metadata"]["name"] for r in rules} == {"aiops-self", "aiops-workloads"}
    for rule in rules:
        source = REPO / "alert-rules" / (rule["metadata"]["name"].removeprefix("aiops-") + ".rules.yml")
        assert rule["spec"] == yaml.safe_load(source.read_text())
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboards_configmap_holds_the_dashboards(production_docs: list[dict[str, Any]]) -> None:
    (configmap,) = [d for d in by_kind(production_docs, "ConfigMap") if d["metadata"]["name"] == "aiops-dashboards"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    sources = {p.name: json.loads(p.read_text()) for p in (REPO / "dashboards").glob("*.json")}
    assert {name: json.loads(text) for name, text in configmap["data"].items()} == sources
    # A ConfigMap holds at most 1 MiB.
    assert len(json.dumps(configmap["data"])) < 1_000_000


def test_extras_are_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    assert by_kind(default_docs, "PrometheusRule") == []
    assert [d for d in by_kind(default_docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboards")] == []
    assert one(default_docs, "Deployment")


def test_readme_documents_real_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = re.findall(r"^\| `([\w.]+)`(?:, `([\w.]+)`)? \|", (CHART / "README.md").read_text(), flags=re.MULTILINE)
    documented = [k for pair in keys for k in pair if k]
    assert len(documented) >= 12
    for dotted in documented:
        node: Any = values
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"README documents {dotted}, which values.yaml lacks"
            node = node[part]
