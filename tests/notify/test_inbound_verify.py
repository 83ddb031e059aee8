"""Inbound alerts act only through rules written for them, and only when Prometheus fires them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from aiops.collect.prometheus import PrometheusClient, PrometheusError, RawSeries
from aiops.config.promql import promql_string
from aiops.config import parse_config
from aiops.config.policy import PolicyConfig, PolicyRule
from aiops.engine.decide import Policy
from aiops.demo.prometheus import PrometheusServer
from aiops.metrics import REGISTRY
from aiops.model import Basis, Entity, Evidence, Finding, Mode
from aiops.notify.inbound import AlertInbox
from aiops.notify.verify import NOT_FIRING, UNVERIFIABLE, AlertVerifier, alerts_query
from aiops.state import Store
from aiops.state.audit import AuditLog

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def inbound(signal: str, entity: Entity, confirmed: bool = True) -> Finding:
    return Finding("alertmanager", signal, entity, 1.0, NOW, Evidence("posted"), confirmed=confirmed)


@pytest.mark.parametrize(
    ("signal", "entity"),
    [("pod_crashlooping", Entity("pod", "victim-0", "ml")), ("node_ready", Entity("node", "gpu-node-1"))],
)
def test_default_rules_never_act_on_inbound_alerts(signal: str, entity: Entity) -> None:
    """An alert named like one of our signals used to match the restart/evacuate defaults."""
    policy = Policy(PolicyConfig(), Mode.AUTO)
    assert policy.decide([inbound(signal, entity)])[1] == []
    # The daemon's own detector finding of the same kind still matches.
    own = Finding("rules", signal, entity, 1.0, NOW, Evidence("seen"), confirmed=True)
    assert [d.rule for d in policy.decide([own])[1]] in (["pod-crashloop"], ["node-not-ready"])


def test_only_rules_naming_alertmanager_act_and_only_on_verified_alerts() -> None:
    wildcard = PolicyRule(name="any", detector="*", signal="KubePodCrashLooping", action="restart_pod")
    glob = PolicyRule(name="glob", detector="alert*", signal="KubePodCrashLooping", action="restart_pod")
    explicit = PolicyRule(name="am", detector="alertmanager", signal="KubePodCrashLooping", action="restart_pod")
    target = Entity("pod", "crashy-0", "ml")
    assert Policy(PolicyConfig(rules=[wildcard, glob]), Mode.AUTO).decide([inbound("KubePodCrashLooping", target)])[1] == []
    policy = Policy(PolicyConfig(rules=[explicit]), Mode.AUTO)
    assert policy.decide([inbound("KubePodCrashLooping", target, confirmed=False)])[1] == []
    [d] = policy.decide([inbound("KubePodCrashLooping", target)])[1]
    assert (d.rule, d.basis) == ("am", Basis.INBOUND)  # drawn from the inbound budget


def series(**labels: str) -> RawSeries:
    return RawSeries({"__name__": "ALERTS", "alertstate": "firing", **labels}, np.array([0.0]), np.array([1.0]))


class FakePrometheus:
    def __init__(self, firing: Sequence[RawSeries] = (), down: bool = False, uname: Sequence[RawSeries] = (),
                 uname_down: bool = False, up: Sequence[RawSeries] = ()) -> None:
        self.firing, self.down, self.queries = list(firing), down, []
        self.uname, self.uname_down, self.up = list(uname), uname_down, list(up)

    def __call__(self, query: str, at: datetime) -> list[RawSeries]:
        self.queries.append(query)
        if self.down or (self.uname_down and not query.startswith("ALERTS")):
            raise PrometheusError("cannot connect to Prometheus", temporary=True, query=query)
        if "node_uname_info" in query:
            return self.uname
        if query.startswith("up"):
            return self.up
        return [s for s in self.firing if f'alertname="{s.labels["alertname"]}"' in query]


def test_verifier_matches_prometheus_labels_as_a_subset_and_refuses_the_rest() -> None:
    prom = FakePrometheus([series(alertname="KubePodCrashLooping", namespace="ml", pod="real-0")])
    verdicts = AlertVerifier(prom).check([
        # Alertmanager adds external labels (cluster): still the same alert.
        {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "real-0", "cluster": "eu-1"},
        {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "victim-0"},
        {"alertname": "KubeNodeNotReady", "node": "gpu-node-1"},
        {"namespace": "ml"},
    ], NOW)
    assert [v.verified for v in verdicts] == [True, False, False, False]
    assert dict(verdicts[0].labels) == {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "real-0"}
    assert [v.reason for v in verdicts[1:]] == [NOT_FIRING] * 3
    assert "other label set" in verdicts[1].detail and "no firing ALERTS" in verdicts[2].detail
    assert len(prom.queries) == 2  # one query per alert name

    down = AlertVerifier(FakePrometheus(down=True)).check([{"alertname": "X"}], NOW)
    assert not down[0].verified and down[0].reason == UNVERIFIABLE and down[0].temporary
    assert alerts_query('a"b\\') == 'ALERTS{alertname="a\\"b\\\\",alertstate="firing"}'


def test_refused_alert_is_audited_and_counted_once_and_a_real_one_keeps_prometheus_labels(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    audit = AuditLog(store)
    prom = FakePrometheus([series(alertname="KubeQuotaAlmostFull", namespace="ml")])
    inbox = AlertInbox(store, verifier=AlertVerifier(prom), audit=audit)
    before = REGISTRY.get_sample_value("aiops_inbound_alerts_refused_total", {"reason": NOT_FIRING}) or 0
    inbox.add([
        {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "ml", "pod": "victim-0"},
         "fingerprint": "forged"},
        # A real namespace alert with a forged pod label added on the way: the target stays the namespace.
        {"status": "firing", "labels": {"alertname": "KubeQuotaAlmostFull", "namespace": "ml", "pod": "victim-1"},
         "fingerprint": "real"},
    ], now=NOW)
    for _ in range(3):  # three cycles: one audit row and one count for the forged alert
        [f] = inbox.findings(NOW)
    assert f.confirmed and f.entity == Entity("namespace", "ml", "", (("namespace", "ml"),))
    [event] = audit.events(kind="inbound_refused")
    assert (event["ref"], event["status"], event["entity"]) == ("forged", NOT_FIRING, "pod/ml/victim-0")
    after = REGISTRY.get_sample_value("aiops_inbound_alerts_refused_total", {"reason": NOT_FIRING})
    assert after == before + 1


# kube-prometheus-stack scrapes node-exporter through a ServiceMonitor: the target's namespace, pod,
# container, service and endpoint ride on each of its series, so on each node-mixin alert too.
EXPORTER = {"instance": "10.0.3.7:9100", "job": "node-exporter", "namespace": "monitoring",
            "pod": "kps-node-exporter-x7k2p", "container": "node-exporter", "service": "kps-node-exporter",
            "endpoint": "http-metrics"}
UNAME = RawSeries({"__name__": "node_uname_info", **EXPORTER, "nodename": "gpu-node-7", "sysname": "Linux"},
                  np.array([0.0]), np.array([1.0]))
# kube-state-metrics, scraped the same way: its node series carry its own pod, its pod series the subject's.
KSM = {"instance": "10.0.9.2:8080", "job": "kube-state-metrics", "namespace": "monitoring",
       "pod": "kps-kube-state-metrics-5f6d6c", "container": "kube-state-metrics", "service": "kps-kube-state-metrics",
       "endpoint": "http"}
UP = [RawSeries({"__name__": "up", **target}, np.array([0.0]), np.array([1.0])) for target in (EXPORTER, KSM)]


def test_an_alert_is_about_what_the_exporter_measures_not_the_exporters_pod(tmp_path: Path) -> None:
    disk = {"alertname": "NodeFilesystemSpaceFillingUp", "mountpoint": "/", "severity": "warning", **EXPORTER}
    # kube-state-metrics' pod alerts carry the pod they are about (honor_labels), its node alerts its own pod.
    crash = {"alertname": "KubePodCrashLooping", **KSM, "namespace": "ml", "pod": "server-0", "container": "server"}
    down = {"alertname": "KubeNodeNotReady", **KSM, "node": "gpu-node-2", "condition": "Ready", "status": "true"}
    prom = FakePrometheus([series(**disk), series(**crash), series(**down)], uname=[UNAME], up=UP)
    inbox = AlertInbox(Store(tmp_path / "s.sqlite"), verifier=AlertVerifier(prom))
    inbox.add([{"status": "firing", "labels": disk, "fingerprint": "disk"},
               {"status": "firing", "labels": crash, "fingerprint": "crash"},
               {"status": "firing", "labels": down, "fingerprint": "down"}], now=NOW)
    found = {f.signal: f for f in inbox.findings(NOW)}
    node = found["NodeFilesystemSpaceFillingUp"].entity
    assert (node.kind, node.name, node.namespace) == ("node", "gpu-node-7", "")
    assert node.attr("mountpoint") == "/" and not node.attr("pod")  # the exporter's pod is not the subject
    pod = found["KubePodCrashLooping"].entity
    assert (pod.kind, pod.name, pod.namespace) == ("pod", "server-0", "ml")
    node = found["KubeNodeNotReady"].entity
    assert (node.kind, node.name) == ("node", "gpu-node-2") and not node.attr("pod")


def test_a_node_exporter_alert_waits_while_its_node_cannot_be_looked_up() -> None:
    disk = {"alertname": "NodeFilesystemSpaceFillingUp", "mountpoint": "/", **EXPORTER}
    [v] = AlertVerifier(FakePrometheus([series(**disk)], uname_down=True)).check([disk], NOW)
    assert not v.verified and v.temporary and "scrape target" in v.detail
    # No target and no node_uname_info for it: the labels stay as Prometheus has them.
    [v] = AlertVerifier(FakePrometheus([series(**disk)])).check([disk], NOW)
    assert v.verified and dict(v.labels) == disk


def test_with_a_scope_the_checks_ask_for_this_clusters_series_only() -> None:
    # Behind Thanos or Mimir, ALERTS and node_uname_info of every cluster are visible; an alert of
    # this cluster carries its external labels (Prometheus adds them to what it sends).
    disk = {"alertname": "NodeFilesystemSpaceFillingUp", "mountpoint": "/", "cluster": "prod-eu", **EXPORTER}
    prom = FakePrometheus([series(**disk)], uname=[UNAME], up=UP)
    AlertVerifier(prom, scope={"cluster": "prod-eu"}).check([disk], NOW)
    assert prom.queries == ['ALERTS{alertname="NodeFilesystemSpaceFillingUp",alertstate="firing",cluster="prod-eu"}',
                            'up{instance=~"10\\\\.0\\\\.3\\\\.7:9100",cluster="prod-eu"}',
                            'node_uname_info{instance=~"10\\\\.0\\\\.3\\\\.7:9100",cluster="prod-eu"}']


def test_the_lookups_ask_for_the_alerts_instances_only() -> None:
    # A cluster has thousands of scrape targets: the lookups name the instances of the alerts that
    # ask (each once, in a fixed order), not every up and node_uname_info series.
    disk = {"alertname": "NodeFilesystemSpaceFillingUp", "mountpoint": "/", **EXPORTER}
    crash = {"alertname": "KubePodCrashLooping", **KSM, "namespace": "ml", "pod": "server-0"}
    again = {**crash, "pod": "server-1"}
    plain = {"alertname": "Watchdog"}  # no instance: asks nothing
    prom = FakePrometheus([series(**a) for a in (disk, crash, again, plain)], uname=[UNAME], up=UP)
    verdicts = AlertVerifier(prom).check([disk, crash, again, plain], NOW)
    assert all(v.verified for v in verdicts) and verdicts[0].labels["node"] == "gpu-node-7"
    pattern = '"10\\\\.0\\\\.3\\\\.7:9100|10\\\\.0\\\\.9\\\\.2:8080"'
    assert prom.queries[-2:] == [f"up{{instance=~{pattern}}}", f"node_uname_info{{instance=~{pattern}}}"]


def test_an_alert_on_series_scraped_without_honor_labels_is_about_the_exported_pod() -> None:
    # dcgm-exporter scraped by a plain ServiceMonitor: the GPU's workload pod arrives as
    # exported_pod/exported_namespace, the exporter's own as pod/namespace.
    dcgm = {"instance": "10.0.3.7:9400", "job": "dcgm-exporter", "namespace": "gpu-operator",
            "pod": "nvidia-dcgm-exporter-7xk2p", "container": "nvidia-dcgm-exporter", "service": "nvidia-dcgm-exporter",
            "endpoint": "gpu-metrics"}
    xid = {"alertname": "GpuXid94", "Hostname": "gpu-node-7", "UUID": "GPU-1", **dcgm,
           "exported_namespace": "nlp", "exported_pod": "bert-intent-0", "exported_container": "server"}
    up = [RawSeries({"__name__": "up", **dcgm}, np.array([0.0]), np.array([1.0]))]
    [v] = AlertVerifier(FakePrometheus([series(**xid)], up=up)).check([xid], NOW)
    assert v.verified
    assert (v.labels["namespace"], v.labels["pod"], v.labels["container"]) == ("nlp", "bert-intent-0", "server")
    assert not any(k.startswith("exported_") for k in v.labels) and "service" not in v.labels


def test_an_alert_that_names_its_node_asks_no_node_names() -> None:
    down = {"alertname": "KubeNodeNotReady", **KSM, "node": "gpu-node-2", "condition": "Ready", "status": "true"}
    prom = FakePrometheus([series(**down)], uname=[UNAME], up=UP)
    [v] = AlertVerifier(prom).check([down], NOW)
    assert v.verified and v.labels["node"] == "gpu-node-2"
    assert not any("node_uname_info" in q for q in prom.queries)


@pytest.mark.slow
def test_the_instance_lookups_match_exactly_in_a_real_prometheus(tmp_path: Path) -> None:
    # Instances are addresses: dots must not match any character, and one that is the start of
    # another (10.0.3.7 / 10.0.3.70) must not match it.
    at = int(NOW.timestamp())
    near = {**EXPORTER, "instance": "10.0.3.70:9100"}
    lines = ["# TYPE ALERTS gauge"]
    disk = {"alertname": "NodeFilesystemSpaceFillingUp", "mountpoint": "/", **EXPORTER}
    lines.append(f"ALERTS{{{labels_text({**disk, 'alertstate': 'firing'})}}} 1 {at}")
    lines.append("# TYPE up gauge")
    lines += [f"up{{{labels_text(t)}}} 1 {at}" for t in (EXPORTER, near, {**EXPORTER, "instance": "10x0x3x7:9100"})]
    lines.append("# TYPE node_uname_info gauge")
    lines += [f"node_uname_info{{{labels_text({**t, 'nodename': n})}}} 1 {at}"
              for t, n in ((EXPORTER, "gpu-node-7"), (near, "gpu-node-70"))]
    (tmp_path / "h.om").write_text("\n".join([*lines, "# EOF", ""]))
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "h.om") as prom:
        [v] = AlertVerifier(PrometheusClient(parse_config({"prometheus": {"url": prom.url}}).prometheus).query).check([disk], NOW)
    assert v.verified and v.labels["node"] == "gpu-node-7" and "pod" not in v.labels


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={promql_string(v)}" for k, v in sorted(labels.items()))
