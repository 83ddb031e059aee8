"""The Helm chart, rendered by the real helm binary and checked object by object."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiops import plugins
from aiops.config import parse_config
from tests.deploy.manifests import (
    CHART,
    by_kind,
    fake_secret,
    helm_template,
    one,
    parse,
    rbac_rules,
    role_rules,
    secret_env_refs,
    shard_role_rules,
    validate,
)

PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"


@pytest.mark.parametrize("values", [[], [PRODUCTION_VALUES]], ids=["default", "production"])
def test_helm_lint_strict(helm: str, values: list) -> None:
    args = [helm, "lint", "--strict", str(CHART)] + [a for v in values for a in ("--values", str(v))]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_object_deserialises_into_the_client_models(rendered: list[dict[str, Any]]) -> None:
    kinds = set()
    for doc in rendered:
        kinds.add(doc["kind"])
        if doc["kind"] in {"ServiceMonitor", "PrometheusRule"}:
            continue  # Prometheus Operator CRDs: checked in their own tests
        validate(doc)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "aiops"
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "PodDisruptionBudget",
    } <= kinds


def test_deployment_runs_two_probed_non_root_replicas(rendered: list[dict[str, Any]]) -> None:
    deployment = validate(one(rendered, "Deployment"))
    assert deployment.spec.replicas == 2
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    ports = {p.name: p.container_port for p in container.ports}
    assert ports == {"http": 8080, "webhook": 8081}
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.readiness_probe.http_get.path == "/readyz"
    assert container.liveness_probe.http_get.port == container.readiness_probe.http_get.port == "http"
    assert container.resources.requests["memory"] and container.resources.limits["memory"]
    assert pod.security_context.run_as_non_root and pod.security_context.run_as_user != 0
    assert container.security_context.read_only_root_filesystem
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.args == ["run", "--config", "/etc/aiops/config.yaml"]
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    assert mounts["/etc/aiops"] == "config" and "/var/lib/aiops" in mounts and "/tmp" in mounts
    assert deployment.spec.template.metadata.annotations["checksum/config"]
    assert {e.name for e in container.env} >= {"POD_NAME", "POD_NAMESPACE"}


def test_selectors_match_the_pods(rendered: list[dict[str, Any]]) -> None:
    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(rendered, "Deployment")["spec"]["selector"]["matchLabels"],
        one(rendered, "Service")["spec"]["selector"],
        one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector and selector.items() <= pod_labels.items()
    pdb = validate(one(rendered, "PodDisruptionBudget"))
    assert pdb.spec.min_available == 1
    # Unready replicas (Prometheus down) must not block node drains.
    assert pdb.spec.unhealthy_pod_eviction_policy == "AlwaysAllow"


def test_service_exposes_metrics_and_webhook_port(rendered: list[dict[str, Any]]) -> None:
    ports = {p["name"]: (p["targetPort"], p["port"]) for p in one(rendered, "Service")["spec"]["ports"]}
    assert ports == {"http": ("http", 8080), "webhook": ("webhook", 8081)}


def test_network_policy_admits_prometheus_to_metrics_and_alertmanager_to_the_webhook_only(
    rendered: list[dict[str, Any]],
) -> None:
    policy = validate(one(rendered, "NetworkPolicy"))
    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy.spec.pod_selector.match_labels.items() <= pod_labels.items()
    assert policy.spec.policy_types == ["Ingress"]
    rules = {rule.ports[0].port: rule._from for rule in policy.spec.ingress}
    assert set(rules) == {"http", "webhook"}
    names = {port: {(peer.pod_selector.match_labels or {}).get("app.kubernetes.io/name") for peer in peers}
             for port, peers in rules.items()}
    assert names["http"] == {"prometheus", None} and names["webhook"] == {"alertmanager"}  # None: the helm test pod
    assert all(peers for peers in rules.values()), "an empty from admits everyone"


def test_network_policy_can_be_configured_or_turned_off(helm: str) -> None:
    docs = parse(helm_template(helm, sets=["networkPolicy.enabled=false"]))
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]
    docs = parse(helm_template(helm, sets=["networkPolicy.webhookFrom=null"]))
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == ["http"]  # no peers: webhook closed


def test_service_monitor_scrapes_the_service(
    default_docs: list[dict[str, Any]], production_docs: list[dict[str, Any]]
) -> None:
    assert by_kind(default_docs, "ServiceMonitor") == []
    monitor = one(production_docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one(production_docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_namespaced_rights_are_a_role_in_the_release_namespace(rendered: list[dict[str, Any]]) -> None:
    role, binding = one(rendered, "Role"), one(rendered, "RoleBinding")
    assert role["rules"] == role_rules() and role["metadata"]["namespace"] == "aiops"
    assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == role["metadata"]["name"]
    account = one(rendered, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "aiops"}]
    cluster_wide = {r for rule in one(rendered, "ClusterRole")["rules"] for r in rule["resources"]}
    assert not cluster_wide & {"configmaps", "leases"}, "namespaced things must not be granted cluster-wide"


def test_sharding_adds_the_shard_lease_rights_to_the_role_only(helm: str, rendered: list[dict[str, Any]]) -> None:
    # Every budget is split per shard: none may be smaller than the shard count (the config says so).
    sets = ["config.sharding.shards=3", "replicaCount=3",
            "config.safety.max_predicted_actions_per_hour=3", "config.safety.max_inbound_actions_per_hour=3"]
    result = subprocess.run([helm, "lint", "--strict", str(CHART), *(a for s in sets for a in ("--set", s))],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    docs = parse(helm_template(helm, sets=sets))
    assert one(docs, "Role")["rules"] == role_rules() + shard_role_rules()
    (shard_rule,) = shard_role_rules()
    assert "resourceNames" not in shard_rule and set(shard_rule["verbs"]) == {"get", "list", "update", "create"}
    assert one(docs, "ClusterRole")["rules"] == one(rendered, "ClusterRole")["rules"]  # nothing cluster-wide
    config = parse_config(_config(docs))  # sharding needs the leases: the chart's config has them
    assert config.sharding.shards == 3 and config.kubernetes.leader_election.enabled
    # Unsharded (the default and shards: 1): no list, no unnamed get/update.
    assert one(parse(helm_template(helm, sets=["config.sharding.shards=1"])), "Role")["rules"] == role_rules()
    assert one(rendered, "Role")["rules"] == role_rules()


def test_cluster_role_is_exactly_the_code_s_rbac(rendered: list[dict[str, Any]]) -> None:
    role = one(rendered, "ClusterRole")
    assert role["rules"] == rbac_rules()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    binding = one(rendered, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = one(rendered, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def _config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    name = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    (configmap,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == name]
    return yaml.safe_load(configmap["data"]["config.yaml"])


def test_config_validates_and_is_wired_to_the_manifests(rendered: list[dict[str, Any]]) -> None:
    raw = _config(rendered)
    config = parse_config(raw, "ConfigMap config.yaml")
    namespace = one(rendered, "Deployment")["metadata"]["namespace"]
    assert config.kubernetes.in_cluster and config.kubernetes.namespace == namespace
    assert config.server.port == 8080
    assert str(config.state.path).startswith("/var/lib/aiops/")
    switch = config.safety.kill_switch
    (control,) = [d for d in by_kind(rendered, "ConfigMap") if d["metadata"]["name"] == switch.configmap_name]
    assert control["metadata"]["namespace"] == switch.configmap_namespace == namespace
    assert control["data"][switch.configmap_key] == "false"


def test_default_install_observes_only(default_docs: list[dict[str, Any]]) -> None:
    config = parse_config(_config(default_docs))
    assert config.safety.mode == "observe" and config.safety.dry_run


def test_every_secret_the_config_reads_comes_from_the_secret(rendered: list[dict[str, Any]]) -> None:
    refs = secret_env_refs(_config(rendered))
    (container,) = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs <= from_secret.keys(), f"config reads {refs - from_secret.keys()} that nothing sets"
    assert all("value" not in e for e in container["env"] if e["name"] in refs), "secret values in clear"


def test_production_channels_start_with_the_secret_values(
    production_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _config(production_docs)
    config = parse_config(raw)
    assert {"dingtalk", "email"} <= config.notify.channels.keys()
    for name in secret_env_refs(raw):
        monkeypatch.setenv(name, fake_secret(name))
    assert config.server.webhook_token is not None and config.server.webhook_token.resolve()
    for name, channel in config.notify.channels.items():
        notifier = plugins.load(plugins.NOTIFIERS, channel.plugin)(**channel.params)
        assert notifier is not None, name
        notifier.close()


def test_release_namespace_and_name_flow_everywhere(helm: str) -> None:
    docs = parse(helm_template(helm, namespace="ml-platform", sets=["fullnameOverride=ops"]))
    config = parse_config(_config(docs))
    assert config.kubernetes.namespace == "ml-platform"
    # The ClusterRole grants these by name, whatever the release is called.
    assert config.safety.kill_switch.configmap_name == "aiops-control"
    assert config.kubernetes.leader_election.lease_name == "aiops-leader"
    for doc in docs:
        if doc["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert doc["metadata"]["namespace"] == "ml-platform", doc["kind"]
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["namespace"] == "ml-platform"


def test_user_config_cannot_unwire_the_chart(helm: str) -> None:
    docs = parse(
        helm_template(
            helm,
            sets=[
                "config.kubernetes.namespace=elsewhere",
                "config.server.port=9999",
                "config.kubernetes.leader_election.lease_name=mine",
                "config.kubernetes.leader_election.lease_duration=30s",
            ],
        )
    )
    config = parse_config(_config(docs))
    assert config.kubernetes.namespace == "aiops" and config.server.port == 8080
    election = config.kubernetes.leader_election
    assert election.lease_name == "aiops-leader" and election.lease_duration.total_seconds() == 30


def test_secret_refs_absent_without_an_existing_secret(default_docs: list[dict[str, Any]]) -> None:
    (container,) = one(default_docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("replicas=3", "additional properties 'replicas' not allowed"),
        ("config.safety.mode=automatic", "'observe', 'suggest', 'auto'"),
        ("config.prometheus.url=prometheus:9090", "/config/prometheus/url"),
        ("port=80000", "/port"),
    ],
)
def test_values_schema_rejects_mistakes_at_install(helm: str, value: str, complaint: str) -> None:
    result = subprocess.run(
        [helm, "template", "aiops", str(CHART), "--set", value], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert complaint in result.stderr


def _install_notes(helm: str, *values: Any) -> str:
    args = [helm, "install", "aiops", str(CHART), "--namespace", "aiops", "--dry-run=client"]
    for path in values:
        args += ["--values", str(path)]
    env = {**os.environ, "KUBECONFIG": os.devnull}  # offline: never talk to a cluster
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_install_notes_say_the_mode_and_what_is_missing(helm: str) -> None:
    notes = _install_notes(helm)
    assert "in observe mode with dry-run on" in notes
    assert "No Secret is referenced" in notes
    assert "patch configmap aiops-control" in notes
    production = _install_notes(helm, PRODUCTION_VALUES)
    assert "in suggest mode with dry-run on" in production
    assert "No Secret is referenced" not in production


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_rendered_config_passes_aiops_check_config(production_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    raw = _config(production_docs)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    secrets = {name: fake_secret(name) for name in secret_env_refs(raw)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPS_")}

    def check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aiops", "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**env, **extra},
        )

    ok = check(secrets)
    assert ok.returncode == 0, ok.stderr
    missing = check({k: v for k, v in secrets.items() if k != "AIOPS_WEBHOOK_TOKEN"})
    assert missing.returncode != 0
    assert "AIOPS_WEBHOOK_TOKEN" in missing.stderr and "Traceback" not in missing.stderr


def test_helm_test_pod_is_a_hook_outside_the_service(rendered: list[dict[str, Any]]) -> None:
    pod = validate(one(rendered, "Pod"))
    assert pod.metadata.annotations["helm.sh/hook"] == "test"
    selector = one(rendered, "Service")["spec"]["selector"]
    assert not selector.items() <= pod.metadata.labels.items(), "the Service would route traffic to the test pod"
    assert pod.spec.security_context.run_as_non_root


@pytest.mark.timeout(60)
def test_helm_test_script_checks_a_live_daemon(default_docs: list[dict[str, Any]]) -> None:
    from aiops.server import DaemonServer
    from aiops.demo.prometheus import free_port

    (container,) = one(default_docs, "Pod")["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    script = container["command"][2]
    service = one(default_docs, "Service")
    in_cluster = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:8080"
    assert in_cluster in script

    def run(base: str) -> int:
        return subprocess.run(
            [sys.executable, "-c", script.replace(in_cluster, base)], capture_output=True, timeout=30, check=False
        ).returncode

    port = free_port()
    server = DaemonServer("127.0.0.1", port, ready=lambda: (True, "ok")).start()
    try:
        assert run(f"http://127.0.0.1:{port}") == 0
    finally:
        server.stop()
    assert run(f"http://127.0.0.1:{port}") != 0  # nothing listening any more


def test_values_can_engage_the_kill_switch(helm: str) -> None:
    docs = parse(helm_template(helm, sets=["killSwitch.engaged=true"]))
    (control,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == "aiops-control"]
    assert control["data"]["kill_switch"] == "true"


def test_names_granted_by_the_cluster_role_are_the_names_the_daemon_uses(rendered: list[dict[str, Any]]) -> None:
    """RBAC limits the kill-switch ConfigMap and the Lease to resourceNames; the config must use them."""
    config = parse_config(_config(rendered))
    used = {
        "configmaps": config.safety.kill_switch.configmap_name,
        "leases": config.kubernetes.leader_election.lease_name,
    }
    granted = {
        resource: rule["resourceNames"]
        for rule in one(rendered, "ClusterRole")["rules"]
        if "resourceNames" in rule
        for resource in rule["resources"]
    }
    assert granted.keys() <= used.keys(), f"unexpected names granted: {granted}"
    for resource, names in granted.items():
        assert used[resource] in names, f"the daemon uses {resource} {used[resource]!r}, RBAC grants only {names}"
    control = [d for d in by_kind(rendered, "ConfigMap") if d["metadata"]["name"] == used["configmaps"]]
    assert len(control) == 1


def test_a_kill_switch_key_set_in_values_cannot_unwire_the_switch(helm: str) -> None:
    """The chart owns the switch's ConfigMap, name and namespace, but not its key: with
    config.safety.kill_switch.configmap_key set in values, the daemon read a key the chart's
    ConfigMap does not have, and the documented `kubectl patch ... kill_switch` stopped nothing."""
    docs = parse(helm_template(helm, sets=["config.safety.kill_switch.configmap_key=stop"]))
    switch = parse_config(_config(docs)).safety.kill_switch
    (control,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == switch.configmap_name]
    assert switch.configmap_key in control["data"] and switch.configmap_key == "kill_switch"
