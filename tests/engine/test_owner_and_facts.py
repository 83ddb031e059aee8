"""Policy reads who owns a pod and whether a node is cordoned from the frame (kube-state-metrics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from aiops.collect.collector import entity_of
from aiops.collect.prometheus import PrometheusClient
from aiops.config import parse_config
from aiops.config.policy import PolicyConfig, PolicyRule
from aiops.config.prometheus import PrometheusConfig
from aiops.demo.prometheus import PrometheusServer
from aiops.engine.decide import Policy
from aiops.engine.facts import ClusterFacts
from aiops.model import Decision, Entity, Evidence, Finding, Frame, Mode, Series, Severity

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp() - 60 * np.arange(10)[::-1]


def _pod_info(ns: str, pod: str, node: str, kind: str) -> Series:
    ent = Entity("pod", pod, ns, (("node", node), ("created_by_kind", kind)))
    return Series("pod_info", {"namespace": ns, "pod": pod, "node": node, "created_by_kind": kind}, T, np.ones(10), ent)


def _unschedulable(node: str, values: list[float]) -> Series:
    return Series("node_unschedulable", {"node": node}, T, np.asarray(values, float), Entity("node", node))


def _frame(*series: Series) -> Frame:
    return Frame(now=NOW, series=series, signals={}, step_seconds=60)


def _oom_prediction(ns: str, pod: str) -> Finding:
    return Finding("exhaustion", "pod_memory_usage_ratio", Entity("pod", pod, ns), 0.97, NOW,
                   Evidence("memory at 96 % of its limit"), predicted_failure_at=NOW.replace(minute=20))


@pytest.mark.parametrize(("kind", "action"), [("ReplicaSet", "restart_pod"), ("StatefulSet", "restart_pod"),
                                              ("Job", "advise"), ("<none>", "advise")])
def test_pods_a_controller_would_not_replace_are_advised(kind: str, action: str) -> None:
    facts = ClusterFacts.from_frame(_frame(_pod_info("batch", "p-1", "n1", kind)))
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_oom_prediction("batch", "p-1")], now=NOW, facts=facts)
    (d,) = decisions
    assert d.action == action
    if action == "advise":
        assert "restart_pod" in d.reason and "owned by" in d.reason


def test_unknown_owner_keeps_the_rule_and_the_guard_is_configurable() -> None:
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_oom_prediction("x", "p")], now=NOW, facts=ClusterFacts())
    assert decisions[0].action == "restart_pod"
    facts = ClusterFacts.from_frame(_frame(_pod_info("x", "p", "n1", "Job")))
    _, decisions = Policy(PolicyConfig(never_disrupt_owners=[]), Mode.AUTO).decide(
        [_oom_prediction("x", "p")], now=NOW, facts=facts)
    assert decisions[0].action == "restart_pod"


def test_facts_cordoned_and_drained() -> None:
    frame = _frame(
        _unschedulable("n1", [0] * 5 + [1] * 5), _unschedulable("n2", [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
        _pod_info("kube-system", "exporter", "n1", "DaemonSet"), _pod_info("shop", "api", "n2", "ReplicaSet"),
    )
    facts = ClusterFacts.from_frame(frame)
    assert facts.cordoned == {"n1"} and facts.drained("n1") and not facts.drained("n2")
    assert facts.cordoned_at["n2"].timestamp() == T[2]


def _xid_finding(since_index: int) -> Finding:
    since = datetime.fromtimestamp(T[since_index], UTC).isoformat()
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"),))
    return Finding("gpu_health", "gpu_xid", gpu, 1.0, NOW, Evidence("XID 79", facts={"xid": 79, "since": since}),
                   confirmed=True)


@pytest.mark.parametrize(
    ("cordon", "pods", "evacuate"),
    [
        ([0] * 10, 1, True),  # nothing done yet
        ([0] * 6 + [1] * 4, 1, True),  # cordoned, pods still to move
        ([0] * 6 + [1] * 4, 0, False),  # cordoned and drained
        ([0] * 4 + [1] * 3 + [0] * 3, 1, False),  # cordoned after the XID, repaired, back in service
        ([1] * 3 + [0] * 7, 1, True),  # an old cordon, before this XID
    ],
)
def test_evacuation_stops_once_its_node_is_handled(cordon: list[float], pods: int, evacuate: bool) -> None:
    series = [_unschedulable("n1", cordon)] + [_pod_info("shop", f"p{i}", "n1", "ReplicaSet") for i in range(pods)]
    facts = ClusterFacts.from_frame(_frame(*series, _pod_info("kube-system", "dcgm", "n1", "DaemonSet")))
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_xid_finding(4)], now=NOW, facts=facts)
    assert [d.action for d in decisions] == (["evacuate_node"] if evacuate else [])


def _gpu_risk(*, confirmed: bool) -> Finding:
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"),))
    return Finding("gpu_health", "gpu_uncorrectable_remapped_rows", gpu, 0.9, NOW,
                   Evidence("uncorrectable rows remapped"), severity=Severity.CRITICAL, confirmed=confirmed)


@pytest.mark.parametrize(
    ("kind", "confirmed", "evacuate"),
    [
        ("Job", False, False),  # left by the predicted evacuation, for a human: drained as far as it goes
        ("Job", True, True),  # a confirmed failure moves it (it is lost on the node anyway)
        ("<none>", False, False),  # a bare pod is never evicted: nothing would recreate it
        ("<none>", True, False),
        ("ReplicaSet", False, True),  # still to move
    ],
)
def test_pods_an_evacuation_leaves_for_a_human_do_not_keep_its_node_undrained(
    kind: str, confirmed: bool, evacuate: bool
) -> None:
    frame = _frame(_unschedulable("n1", [0] * 6 + [1] * 4), _pod_info("batch", "p-1", "n1", kind),
                   _pod_info("kube-system", "dcgm", "n1", "DaemonSet"))
    facts = ClusterFacts.from_frame(frame)
    assert facts.drained("n1", predicted=not confirmed) is not evacuate
    rule = PolicyRule(name="sick-gpu", detector="gpu_health", entity_kind="gpu", min_severity=Severity.INFO,
                      action="evacuate_node", target="node")
    _, decisions = Policy(PolicyConfig(rules=[rule]), Mode.AUTO).decide([_gpu_risk(confirmed=confirmed)], now=NOW,
                                                                       facts=facts)
    (d,) = decisions
    if evacuate:
        assert d.action == "evacuate_node"
        return
    # Nothing left for the evacuation; the notification still says what stays, and why.
    assert d.action == "advise" and d.target == Entity("node", "n1")
    told = f"{d.reason} {d.params['why']} {d.params['suggestion']}"
    assert "batch/p-1" in told and "left for a human" in told
    assert ("no controller" in told) if kind == "<none>" else ("Job" in told and "would not replace it" in told)


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_pod_in_a_protected_namespace_is_left_for_a_human_not_evacuated_every_cycle(confirmed: bool) -> None:
    # The rails never touch a protected namespace (kube-system, monitoring, ...): an evacuation of a
    # node holding only such a pod besides its DaemonSets was decided again every cycle with nothing
    # it may do ("nothing to do"). It is drained as far as aiops goes: advice naming what stays.
    frame = _frame(_unschedulable("n1", [0] * 6 + [1] * 4),
                   _pod_info("monitoring", "prometheus-0", "n1", "StatefulSet"),
                   _pod_info("kube-system", "dcgm", "n1", "DaemonSet"))
    facts = ClusterFacts.from_frame(frame)
    rule = PolicyRule(name="sick-gpu", detector="gpu_health", entity_kind="gpu", min_severity=Severity.INFO,
                      action="evacuate_node", target="node")
    policy = Policy(PolicyConfig(rules=[rule]), Mode.AUTO, protected_namespaces=["kube-system", "monitoring"])
    _, decisions = policy.decide([_gpu_risk(confirmed=confirmed)], now=NOW, facts=facts)
    (d,) = decisions
    assert d.action == "advise" and d.target == Entity("node", "n1")
    told = f"{d.reason} {d.params['why']} {d.params['suggestion']}"
    assert "monitoring/prometheus-0" in told and "protected namespace" in told
    # Without the protection the same pod is the evacuation's to move.
    _, decisions = Policy(PolicyConfig(rules=[rule]), Mode.AUTO).decide([_gpu_risk(confirmed=confirmed)], now=NOW,
                                                                        facts=facts)
    assert [d.action for d in decisions] == ["evacuate_node"]


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_static_pod_does_not_keep_its_node_undrained(confirmed: bool) -> None:
    # A static pod (kube-proxy on RKE2 nodes, a node's own agents) is a mirror pod owned by its
    # Node: kubectl drain and evacuate_node skip it, so it must not keep the node "to be drained"
    # for ever (the evacuation decided again every cycle, with nothing it may do).
    frame = _frame(_unschedulable("n1", [0] * 6 + [1] * 4), _pod_info("kube-system", "kube-proxy-n1", "n1", "Node"),
                   _pod_info("kube-system", "dcgm", "n1", "DaemonSet"))
    facts = ClusterFacts.from_frame(frame)
    assert facts.drained("n1", predicted=not confirmed)
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_xid_finding(4)], now=NOW, facts=facts)
    assert [d.action for d in decisions] == []


def _xid(code: int, pod: str = "ml/llama-0") -> Finding:
    from detectors.gpu_health import GpuHealth

    t = NOW.timestamp() - 60 * np.arange(30)[::-1]
    values = np.zeros(30)
    values[-3:] = code
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"), ("gpu", "0")))
    ns, name = pod.split("/")
    labels = {"UUID": "GPU-1", "Hostname": "n1", "gpu": "0", "namespace": ns, "pod": name}
    frame = Frame(NOW, (Series("gpu_xid", labels, t, values, gpu),), {}, 60.0)
    (finding,) = GpuHealth().detect(frame)
    return finding


@pytest.mark.parametrize(
    ("code", "action", "target"),
    [(94, "restart_pod", "pod/ml/llama-0"), (79, "evacuate_node", "node/n1"), (95, "evacuate_node", "node/n1"),
     (48, "evacuate_node", "node/n1"), (64, "evacuate_node", "node/n1"),
     # The driver's own "GPU reset / node reboot required" (recent drivers raise it right after a
     # hardware XID, so the last-XID gauge may read 154 instead), and GSP firmware failures.
     (154, "evacuate_node", "node/n1"), (119, "evacuate_node", "node/n1"), (120, "evacuate_node", "node/n1")],
)
def test_per_xid_remediation_lives_in_policy_and_agrees_with_the_advice(code: int, action: str, target: str) -> None:
    policy = Policy(PolicyConfig(), Mode.AUTO)
    finding = _xid(code)
    for _cycle in range(3):  # the node is never cordoned on a later cycle for a contained error
        graded, decisions = policy.decide([finding], now=NOW, facts=ClusterFacts())
        assert [(d.action, d.target.key) for d in decisions] == [(action, target)]
    assert PolicyConfig().xid_remediation[code] == action
    if code == 94:
        assert "node stays schedulable" in finding.evidence.summary


@pytest.mark.parametrize("labels", [{"namespace": "ml", "pod": "llama-0"},
                                    {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p",
                                     "exported_namespace": "ml", "exported_pod": "llama-0"}])
def test_xid_94_restarts_the_pod_the_default_catalog_maps_to_its_gpu(labels: dict[str, str]) -> None:
    """The default catalog's gpu_xid is per GPU (no pod labels); the pod comes from gpu_pods, with
    the exporter's labels honoured or renamed to exported_*. Policy restarts that pod."""
    from detectors.gpu_health import GpuHealth

    t = NOW.timestamp() - 60 * np.arange(30)[::-1]
    values = np.zeros(30)
    values[-3:] = 94
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"), ("gpu", "0")))
    base = {"UUID": "GPU-1", "Hostname": "n1", "gpu": "0"}
    frame = Frame(NOW, (Series("gpu_xid", base, t, values, gpu),
                        Series("gpu_pods", {**base, **labels}, t, np.ones(30), gpu)), {}, 60.0)
    (finding,) = GpuHealth().detect(frame)
    decisions = Policy(PolicyConfig(), Mode.AUTO).decide([finding], now=NOW, facts=ClusterFacts())[1]
    assert [(d.action, d.target.key) for d in decisions] == [("restart_pod", "pod/ml/llama-0")]


@pytest.mark.parametrize("code", [8, 13, 31, 43, 45])
def test_application_xids_are_told_not_acted_on(code: int) -> None:
    """XIDs an application raises (an illegal memory access, an engine exception, the driver
    cleaning up after a killed process) say nothing about the GPU: no decision, no page, and the
    evidence says what they mean instead of "not in the built-in table"."""
    finding = _xid(code)
    graded, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([finding], now=NOW, facts=ClusterFacts())
    assert decisions == []
    assert graded[0].severity is not Severity.CRITICAL and not finding.confirmed
    assert "not in the built-in table" not in finding.evidence.summary
    assert "application" in finding.evidence.summary


T60 = NOW.timestamp() - 60 * np.arange(60)[::-1]


def _restarts(pod: str, restart_minutes_ago: float | None) -> Series:
    """pod_restarts as the catalog asks it: increase(restarts_total[15m]) per pod, one restart."""
    values = np.zeros(60)
    if restart_minutes_ago is not None:
        at = NOW.timestamp() - 60 * restart_minutes_ago
        values[(T60 >= at) & (T60 < at + 15 * 60)] = 1.0
    return Series("pod_restarts", {"namespace": "ml", "pod": pod}, T60, values, Entity("pod", pod, "ml"))


@pytest.mark.parametrize(
    ("restart_minutes_ago", "pod_still_there", "restart"),
    [
        (None, True, True),  # nothing done yet
        (20, True, False),  # the pod restarted after the XID (30 min ago): done
        (40, True, True),  # a restart before the XID does not answer it
        (None, False, False),  # the pod is gone (replaced, deleted): nothing left to restart
    ],
)
def test_a_pod_restart_for_an_xid_stops_once_the_pod_restarted(
    restart_minutes_ago: float | None, pod_still_there: bool, restart: bool
) -> None:
    """XID 94 stays on the gauge (sticky) and its finding stays new for the whole lookback; the
    restart it asks for must stop once the pod restarted after it, or is gone."""
    since = datetime.fromtimestamp(T60[30], UTC).isoformat()
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"), ("gpu", "0")))
    finding = Finding("gpu_health", "gpu_xid", gpu, 0.7, NOW,
                      Evidence("XID 94", facts={"xid": 94, "since": since, "pod": "ml/llama-0"}))
    pods = [_pod_info("ml", "other-0", "n1", "ReplicaSet")]
    llama = _pod_info("ml", "llama-0", "n1", "ReplicaSet")
    if not pod_still_there:  # deleted 5 minutes ago: its kube_pod_info stopped, the others' went on
        llama = Series(llama.signal, llama.labels, llama.timestamps, np.where(T >= T[-5], np.nan, 1.0), llama.entity)
    pods.append(llama)
    facts = ClusterFacts.from_frame(_frame(*pods, _restarts("llama-0", restart_minutes_ago)))
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([finding], now=NOW, facts=facts)
    assert [(d.action, d.target.key) for d in decisions] == ([("restart_pod", "pod/ml/llama-0")] if restart else [])


def test_a_pod_kube_state_metrics_never_listed_is_not_gone() -> None:
    """kube-state-metrics sharded or relabelled (``exported_namespace``): a pod without
    kube_pod_info is unknown, and its restart stands."""
    since = datetime.fromtimestamp(T60[30], UTC).isoformat()
    gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "n1"), ("gpu", "0")))
    finding = Finding("gpu_health", "gpu_xid", gpu, 0.7, NOW,
                      Evidence("XID 94", facts={"xid": 94, "since": since, "pod": "ml/llama-0"}))
    facts = ClusterFacts.from_frame(_frame(_pod_info("ml", "other-0", "n1", "ReplicaSet")))
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([finding], now=NOW, facts=facts)
    assert [(d.action, d.target.key) for d in decisions] == [("restart_pod", "pod/ml/llama-0")]


def test_a_crash_loop_keeps_its_restart_although_the_pod_restarts() -> None:
    """A crash loop's restarts are its symptom: they do not answer it (only an XID's do)."""
    since = datetime.fromtimestamp(T60[30], UTC).isoformat()
    finding = Finding("conditions", "pod_crashlooping", Entity("pod", "llama-0", "ml"), 0.95, NOW,
                      Evidence("in CrashLoopBackOff", facts={"since": since, "held_seconds": 1800.0}), confirmed=True)
    facts = ClusterFacts.from_frame(_frame(_pod_info("ml", "llama-0", "n1", "ReplicaSet"), _restarts("llama-0", 10)))
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([finding], now=NOW, facts=facts)
    assert [(d.action, d.target.key) for d in decisions] == [("restart_pod", "pod/ml/llama-0")]


def test_xid_remediation_is_configurable() -> None:
    config = PolicyConfig(xid_remediation={94: "evacuate_node", 79: "advise"})
    policy = Policy(config, Mode.AUTO)
    assert policy.decide([_xid(79)], now=NOW)[1][0].action == "advise"


def _oom_confirmed(ns: str, pod: str) -> Finding:
    return Finding("conditions", "pod_oom_killed", Entity("pod", pod, ns), 1.0, NOW,
                   Evidence("OOMKilled"), confirmed=True)


@pytest.mark.parametrize(("kind", "severity"), [("ReplicaSet", Severity.CRITICAL), ("Job", Severity.WARNING),
                                                ("<none>", Severity.WARNING), (None, Severity.CRITICAL)])
def test_a_prediction_on_a_pod_policy_never_disrupts_is_not_a_page(kind: str | None, severity: Severity) -> None:
    # A page means a person must act now. Nothing is to be done now about a Job's pod or a bare pod
    # that may run out of memory: policy never restarts it, the job ends or its owner decides.
    facts = ClusterFacts.from_frame(_frame(_pod_info("batch", "p-1", "n1", kind))) if kind else ClusterFacts()
    graded, decisions = Policy(PolicyConfig(), Mode.AUTO).decide(
        [_oom_prediction("batch", "p-1")], now=NOW, facts=facts)
    (f,) = graded
    assert f.severity is severity
    # The owner is still told what would have been done, with the finding as it was told.
    (d,) = decisions
    assert d.finding.severity is severity and d.severity is severity


def test_a_confirmed_failure_of_a_job_pod_still_pages() -> None:
    facts = ClusterFacts.from_frame(_frame(_pod_info("batch", "p-1", "n1", "Job")))
    graded, _ = Policy(PolicyConfig(), Mode.AUTO).decide([_oom_confirmed("batch", "p-1")], now=NOW, facts=facts)
    assert graded[0].severity is Severity.CRITICAL


def _not_ready(node: str) -> Finding:
    return Finding("conditions", "node_ready", Entity("node", node), 1.0, NOW, Evidence("NotReady"), confirmed=True)


@pytest.mark.parametrize(("cordon", "severity"), [([0] * 10, Severity.CRITICAL), ([0] * 4 + [1] * 6, Severity.WARNING),
                                                  ([1] * 4 + [0] * 6, Severity.CRITICAL)])
def test_a_node_a_person_took_out_of_service_is_not_a_page(cordon: list[float], severity: Severity) -> None:
    # Cordoned, then NotReady: a planned reboot or a repair under way. Someone is already on it.
    facts = ClusterFacts.from_frame(_frame(_unschedulable("n1", cordon)))
    graded, _ = Policy(PolicyConfig(), Mode.AUTO).decide([_not_ready("n1")], now=NOW, facts=facts)
    assert graded[0].severity is severity


def test_no_action_is_decided_in_a_protected_namespace() -> None:
    crashloop = Finding("conditions", "pod_crashlooping", Entity("pod", "kube-proxy-1", "kube-system"), 1.0, NOW,
                        Evidence("CrashLoopBackOff"), confirmed=True)
    policy = Policy(PolicyConfig(), Mode.AUTO, protected_namespaces=["kube-system"])
    (d,) = policy.decide([crashloop], now=NOW, facts=ClusterFacts())[1]
    assert d.action == "advise" and "protected namespace" in d.reason


def _crashloop(ns: str) -> Finding:
    return Finding("conditions", "pod_crashlooping", Entity("pod", "kube-proxy-1", ns), 1.0, NOW,
                   Evidence("CrashLoopBackOff"), confirmed=True)


@pytest.mark.parametrize(("namespace", "severity"), [("kube-system", Severity.WARNING), ("shop", Severity.CRITICAL)])
def test_a_failure_in_a_protected_namespace_is_told_not_paged(namespace: str, severity: Severity) -> None:
    # kube-system restarts things routinely, aiops never acts there, and the platform's own
    # alerting watches its components: told as a warning, with the advice, never a page.
    policy = Policy(PolicyConfig(), Mode.AUTO, protected_namespaces=["kube-system"])
    graded, decisions = policy.decide([_crashloop(namespace)], now=NOW, facts=ClusterFacts())
    assert graded[0].severity is severity
    (d,) = decisions
    assert d.finding.severity is severity
    assert (d.action == "advise") is (namespace == "kube-system")


def test_paging_in_protected_namespaces_is_configurable() -> None:
    policy = Policy(PolicyConfig(page_protected_namespaces=True), Mode.AUTO, protected_namespaces=["kube-system"])
    graded, decisions = policy.decide([_crashloop("kube-system")], now=NOW, facts=ClusterFacts())
    assert graded[0].severity is Severity.CRITICAL
    assert decisions[0].action == "advise"  # paged or not, nothing is done there


def _openmetrics(path: Path, end_s: int) -> None:
    """Two pool nodes as kube-state-metrics v2 exports them over 20 min: ``leaving`` was tainted
    ToBeDeletedByClusterAutoscaler 10 min ago (the autoscaler does not set spec.unschedulable),
    ``joined`` carries only the GPU operator's nvidia.com/gpu taint."""
    times = range(end_s - 1200, end_s + 1, 60)
    lines = ["# TYPE kube_node_spec_unschedulable gauge"]
    lines += [f'kube_node_spec_unschedulable{{node="{n}"}} 0 {t}' for n in ("leaving", "joined") for t in times]
    lines.append("# TYPE kube_node_spec_taint gauge")
    for node, key, since in (("leaving", "nvidia.com/gpu", 0), ("joined", "nvidia.com/gpu", 0),
                             ("leaving", "ToBeDeletedByClusterAutoscaler", end_s - 600)):
        lines += [f'kube_node_spec_taint{{node="{node}",key="{key}",value="",effect="NoSchedule"}} 1 {t}'
                  for t in times if t >= since]
    path.write_text("\n".join([*lines, "# EOF", ""]))


def test_a_node_the_cluster_autoscaler_removes_counts_as_cordoned(tmp_path: Path) -> None:
    # The cluster-autoscaler drains a node it scales down by tainting it ToBeDeletedByClusterAutoscaler,
    # not by cordoning it; its instance then goes (NotReady, Unknown) and the Node is deleted. That
    # node is being taken out of service: no evacuation once its pods are gone, and its NotReady is
    # the removal itself, recorded but told to nobody (each scale-down was a warning and a "cleared":
    # 16 of ap-autoscale's 105 notifications in two days). A node a person cordoned is still told,
    # as a warning. The catalog's node_unschedulable reads the taint as a cordon, and says which it
    # is; the GPU operator's taint is neither.
    end_s = int(NOW.timestamp()) // 60 * 60
    _openmetrics(tmp_path / "nodes.om", end_s)
    signal = parse_config({}).resolved_signals()["node_unschedulable"]
    end = datetime.fromtimestamp(end_s, UTC)
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "nodes.om") as prom:
        raw = PrometheusClient(PrometheusConfig(url=prom.url)).query_range(  # type: ignore[arg-type]
            signal.query, end - timedelta(minutes=20), end, timedelta(minutes=1))
    series = [Series("node_unschedulable", r.labels, r.timestamps, r.values, entity_of(signal, r.labels)) for r in raw]
    facts = ClusterFacts.from_frame(_frame(*series, _pod_info("kube-system", "dcgm", "leaving", "DaemonSet"),
                                           _pod_info("kube-system", "dcgm", "joined", "DaemonSet")))
    assert facts.cordoned == {"leaving"} and facts.drained("leaving") and facts.removing == {"leaving"}
    graded, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_not_ready("leaving"), _not_ready("joined")],
                                                                 now=NOW, facts=facts)
    assert {f.entity.name: f.severity for f in graded} == {"leaving": Severity.INFO, "joined": Severity.CRITICAL}
    assert [(d.action, d.target.name) for d in decisions] == [("evacuate_node", "joined")]


def test_a_node_on_its_way_out_is_judged_on_its_last_state_and_pods_still_reported() -> None:
    # The autoscaler evicted the pod (its kube_pod_info stopped 3 min ago while the others go on),
    # then deleted the Node (its kube_node_* series stopped 2 min ago). The collector keeps both for
    # its staleness window; the node's last state is still "out of service" and the pod is gone.
    gone = np.array([1.0] * 7 + [np.nan] * 3)
    frame = _frame(_unschedulable("leaving", [0] * 5 + [1] * 3 + [np.nan] * 2),
                   Series("pod_info", {"namespace": "ml", "pod": "gemma-1", "node": "leaving", "created_by_kind": "ReplicaSet"},
                          T, gone, Entity("pod", "gemma-1", "ml", (("node", "leaving"), ("created_by_kind", "ReplicaSet")))),
                   _pod_info("ml", "gemma-0", "n0", "ReplicaSet"))
    facts = ClusterFacts.from_frame(frame)
    assert facts.cordoned == {"leaving"} and facts.drained("leaving")
    assert facts.owner_kind(Entity("pod", "gemma-1", "ml")) == "ReplicaSet"  # owners are kept
    graded, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_not_ready("leaving")], now=NOW, facts=facts)
    assert graded[0].severity is Severity.WARNING and decisions == []


def test_a_kube_state_metrics_gap_does_not_empty_the_nodes() -> None:
    # Every kube_pod_info stopped at once (kube-state-metrics restarting): the pods are where they were.
    gap = np.array([1.0] * 8 + [np.nan] * 2)
    pod = Series("pod_info", {"namespace": "ml", "pod": "p", "node": "n1", "created_by_kind": "ReplicaSet"},
                 T, gap, Entity("pod", "p", "ml", (("node", "n1"), ("created_by_kind", "ReplicaSet"))))
    facts = ClusterFacts.from_frame(_frame(_unschedulable("n1", [0] * 5 + [1] * 3 + [np.nan] * 2), pod))
    assert facts.cordoned == {"n1"} and not facts.drained("n1")


# -- a scale-up already in flight ----------------------------------------------------------------
def _pod_info_of(ns: str, pod: str, node: str, rs: str) -> Series:
    labels = {"namespace": ns, "pod": pod, "node": node, "created_by_kind": "ReplicaSet", "created_by_name": rs}
    ent = Entity("pod", pod, ns, (("node", node), ("created_by_kind", "ReplicaSet"), ("created_by_name", rs)))
    return Series("pod_info", labels, T, np.ones(10), ent)


def _serving(ns: str, pod: str, model: str) -> Series:
    ent = Entity("pod", pod, ns, (("model_name", model),))
    return Series("inference_kv_cache_usage", {"namespace": ns, "pod": pod, "model_name": model}, T, np.full(10, 0.6), ent)


def _starting(ns: str, pod: str, rs: str, values: list[float], t: np.ndarray = T) -> Series:
    ent = Entity("pod", pod, ns, (("created_by_name", rs),))
    return Series("pod_starting", {"namespace": ns, "pod": pod, "created_by_name": rs}, t, np.asarray(values, float), ent)


def _ttft_breach(model: str) -> Finding:
    return Finding("conditions", "serving_ttft_p99", Entity("model", model, "inference"), 1.0, NOW,
                   Evidence("serving_ttft_p99 at 2.3 seconds above its objective of 2 seconds"), confirmed=True,
                   severity=Severity.CRITICAL)


def _graded_and_decided(*series: Series, vanished: tuple[Series, ...] = ()) -> tuple[list[Finding], list[Decision]]:
    frame = Frame(now=NOW, series=series, signals={}, step_seconds=60, vanished=vanished)
    return Policy(PolicyConfig(), Mode.AUTO).decide([_ttft_breach("gemma")], now=NOW, facts=ClusterFacts.from_frame(frame))


def _decide_on(*series: Series, vanished: tuple[Series, ...] = ()) -> list[tuple[str, str]]:
    return [(d.action, d.reason) for d in _graded_and_decided(*series, vanished=vanished)[1]]


SERVING = (_pod_info_of("inference", "gemma-a", "n1", "gemma-rs"), _serving("inference", "gemma-a", "gemma"))


def test_a_model_whose_new_replica_is_on_its_way_is_not_scaled_ahead_again() -> None:
    # The cluster-autoscaler is bringing a node for a new gemma pod (Pending 6 min): scaling ahead
    # would queue another pod behind it. Without it, the same breach scales ahead.
    [(action, _)] = _decide_on(*SERVING)
    assert action == "scale_ahead"
    pending = _starting("inference", "gemma-b", "gemma-rs", [np.nan] * 4 + [1.0] * 6)
    [(action, reason)] = _decide_on(*SERVING, pending)
    assert action == "advise"
    assert "already in flight" in reason and "gemma-b" in reason and "11:55 UTC" in reason
    # Ready 3 min ago: its capacity is not in a 5-minute latency rate yet (the series has vanished).
    ready = _starting("inference", "gemma-b", "gemma-rs", [1.0] * 7 + [np.nan] * 3)
    assert [a for a, _ in _decide_on(*SERVING, vanished=(ready,))] == ["advise"]


def test_a_stuck_pod_or_another_workloads_pod_does_not_hold_a_scale_up_back() -> None:
    long_t = NOW.timestamp() - 60 * np.arange(30)[::-1]
    stuck = _starting("inference", "gemma-b", "gemma-rs", [1.0] * 30, t=long_t)  # Pending for 29 min
    other = _starting("inference", "llama-b", "llama-rs", [1.0] * 10)
    elsewhere = _starting("staging", "gemma-b", "gemma-rs", [1.0] * 10)
    assert [a for a, _ in _decide_on(*SERVING, stuck, other, elsewhere)] == ["scale_ahead"]
    settled = _starting("inference", "gemma-c", "gemma-rs", [1.0] * 2 + [np.nan] * 8)  # Ready 8 min ago
    assert [a for a, _ in _decide_on(*SERVING, vanished=(settled,))] == ["scale_ahead"]


def test_the_catalog_reads_pending_and_unready_pods_with_their_creator(tmp_path: Path) -> None:
    # kube-state-metrics v2: every phase is a series (1 for the current one); kube_pod_status_ready
    # exists once the Ready condition does. "new" was Pending, then Running and loading (not Ready);
    # "old" is Running and Ready; "job" is Running and Ready too.
    end_s = int(NOW.timestamp()) // 60 * 60
    times = list(range(end_s - 600, end_s + 1, 60))
    pod_rs = {"new": "gemma-rs", "old": "gemma-rs", "job": "batch-1"}
    lines = ["# TYPE kube_pod_info gauge"]
    lines += [f'kube_pod_info{{namespace="inference",pod="{p}",node="n1",created_by_kind="ReplicaSet",'
              f'created_by_name="{rs}",uid="{p}"}} 1 {t}' for p, rs in pod_rs.items() for t in times]
    lines.append("# TYPE kube_pod_status_phase gauge")
    for pod in pod_rs:
        for t in times:
            pending = pod == "new" and t < end_s - 300
            for phase in ("Pending", "Running"):
                lines.append(f'kube_pod_status_phase{{namespace="inference",pod="{pod}",phase="{phase}",uid="{pod}"}} '
                             f'{int(pending == (phase == "Pending"))} {t}')
    lines.append("# TYPE kube_pod_status_ready gauge")
    for pod in pod_rs:
        for t in times:
            if pod == "new" and t < end_s - 300:
                continue  # no Ready condition while unscheduled
            ready = pod != "new"
            for condition in ("true", "false"):
                lines.append(f'kube_pod_status_ready{{namespace="inference",pod="{pod}",condition="{condition}",'
                             f'uid="{pod}"}} {int(ready == (condition == "true"))} {t}')
    (tmp_path / "pods.om").write_text("\n".join([*lines, "# EOF", ""]))
    signal = parse_config({}).resolved_signals()["pod_starting"]
    end = datetime.fromtimestamp(end_s, UTC)
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "pods.om") as prom:
        raw = PrometheusClient(PrometheusConfig(url=prom.url)).query_range(  # type: ignore[arg-type]
            signal.query, end - timedelta(minutes=10), end, timedelta(minutes=1))
    assert [(r.labels["pod"], r.labels["created_by_name"], int(np.isfinite(r.values).sum())) for r in raw] == [
        ("new", "gemma-rs", 11)]


def test_a_breach_whose_scale_up_is_in_flight_is_told_not_paged() -> None:
    # Nobody has to act while the capacity is on its way; the same breach pages without it, and
    # again once the pod is stuck.
    pending = _starting("inference", "gemma-b", "gemma-rs", [np.nan] * 4 + [1.0] * 6)
    [told], _ = _graded_and_decided(*SERVING, pending)
    assert told.severity is Severity.WARNING
    [paged], _ = _graded_and_decided(*SERVING)
    assert paged.severity is Severity.CRITICAL
    long_t = NOW.timestamp() - 60 * np.arange(30)[::-1]
    [stuck], _ = _graded_and_decided(*SERVING, _starting("inference", "gemma-b", "gemma-rs", [1.0] * 30, t=long_t))
    assert stuck.severity is Severity.CRITICAL


# -- finished pods (Succeeded or Failed) -----------------------------------------------------------
def _finished(ns: str, pod: str, phase: str, values: list[float] | None = None) -> Series:
    """pod_finished as the catalog asks it: the pod's phase is Succeeded or Failed (1), by phase."""
    ent = Entity("pod", pod, ns, (("phase", phase),))
    return Series("pod_finished", {"namespace": ns, "pod": pod, "phase": phase}, T,
                  np.ones(10) if values is None else np.asarray(values, float), ent)


def test_finished_pods_do_not_keep_a_failed_node_undrained() -> None:
    # XID 79 on n1, cordoned since: what stays listed there is a CronJob's completed pods (kept until
    # their Job's TTL, or for ever) and a Failed one. They hold nothing and need no moving (kubectl
    # drain's eviction of them is a no-op): the node is drained, no evacuation is decided again.
    frame = _frame(_unschedulable("n1", [0] * 6 + [1] * 4),
                   _pod_info("batch", "report-1", "n1", "Job"), _finished("batch", "report-1", "Succeeded"),
                   _pod_info("batch", "report-2", "n1", "Job"), _finished("batch", "report-2", "Succeeded"),
                   _pod_info("batch", "report-3", "n1", "Job"), _finished("batch", "report-3", "Failed"),
                   _pod_info("kube-system", "dcgm", "n1", "DaemonSet"))
    facts = ClusterFacts.from_frame(frame)
    assert facts.drained("n1") and facts.drained("n1", predicted=True)
    assert facts.left_on("n1", predicted=True) == []  # nothing named for a human either
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_xid_finding(4)], now=NOW, facts=facts)
    assert [d.action for d in decisions] == []
    # Owners are kept: what restarts and pages read about a finished pod still holds.
    assert facts.owner_kind(Entity("pod", "report-3", "batch")) == "Job"


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_finished_job_pod_is_not_left_for_a_human(confirmed: bool) -> None:
    # On a predicted failure a running Job pod stays on the node, named for a human; a completed one
    # is not worth a word, and the node is drained as far as it goes.
    frame = _frame(_unschedulable("n1", [0] * 6 + [1] * 4), _pod_info("batch", "p-1", "n1", "Job"),
                   _finished("batch", "p-1", "Succeeded"), _pod_info("kube-system", "dcgm", "n1", "DaemonSet"))
    facts = ClusterFacts.from_frame(frame)
    assert facts.drained("n1", predicted=not confirmed)
    rule = PolicyRule(name="sick-gpu", detector="gpu_health", entity_kind="gpu", min_severity=Severity.INFO,
                      action="evacuate_node", target="node")
    _, decisions = Policy(PolicyConfig(rules=[rule]), Mode.AUTO).decide([_gpu_risk(confirmed=confirmed)], now=NOW,
                                                                       facts=facts)
    assert decisions == []


@pytest.mark.parametrize(
    "phase",
    [
        None,  # no phase series: an older kube-state-metrics, or a relabelled one
        [1.0] * 6 + [np.nan] * 4,  # Failed until 4 min ago; the pod of that name now is another one
        [np.nan] * 10,  # no point in the window
    ],
)
def test_a_pod_whose_phase_is_unknown_still_counts_as_running(phase: list[float] | None) -> None:
    # Only a phase seen now says a pod finished: anything else keeps it to be moved (the safe side).
    series = [_unschedulable("n1", [0] * 6 + [1] * 4), _pod_info("shop", "web-0", "n1", "StatefulSet")]
    if phase is not None:
        series.append(_finished("shop", "web-0", "Failed", phase))
    facts = ClusterFacts.from_frame(_frame(*series))
    assert not facts.drained("n1")
    _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([_xid_finding(4)], now=NOW, facts=facts)
    assert [d.action for d in decisions] == ["evacuate_node"]


def test_a_vanished_finished_series_does_not_count() -> None:
    # A finished series the collector only remembers (vanished) says nothing about the pod now.
    gone = _finished("shop", "web-0", "Failed", [1.0] * 6 + [np.nan] * 4)
    frame = Frame(now=NOW, series=(_unschedulable("n1", [0] * 6 + [1] * 4), _pod_info("shop", "web-0", "n1", "StatefulSet")),
                  signals={}, step_seconds=60, vanished=(gone,))
    assert not ClusterFacts.from_frame(frame).drained("n1")


def test_a_failed_job_pod_is_still_never_restarted() -> None:
    # Finished pods stay in pod_info: its owner kind still keeps a Job's pod from being restarted.
    facts = ClusterFacts.from_frame(_frame(_pod_info("batch", "p-1", "n1", "Job"), _finished("batch", "p-1", "Failed")))
    crashloop = Finding("conditions", "pod_crashlooping", Entity("pod", "p-1", "batch"), 0.95, NOW,
                        Evidence("in CrashLoopBackOff"), confirmed=True)
    for finding in (crashloop, _oom_prediction("batch", "p-1")):
        _, decisions = Policy(PolicyConfig(), Mode.AUTO).decide([finding], now=NOW, facts=facts)
        (d,) = decisions
        assert d.action == "advise" and "owned by a Job" in d.reason


def test_the_catalog_reads_finished_pods_with_their_phase(tmp_path: Path) -> None:
    # kube-state-metrics v2: one series per phase, 1 for the current one. "done" Succeeded 5 min ago,
    # "crashed" is Failed, "web" Running; a pod of an old uid (deleted) leaves no trace now.
    end_s = int(NOW.timestamp()) // 60 * 60
    times = list(range(end_s - 600, end_s + 1, 60))
    phases = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

    def phase_of(pod: str, t: int) -> str:
        return {"done": "Running" if t < end_s - 300 else "Succeeded", "crashed": "Failed", "web": "Running"}[pod]

    lines = ["# TYPE kube_pod_status_phase gauge"]
    for pod in ("done", "crashed", "web"):
        for t in times:
            lines += [f'kube_pod_status_phase{{namespace="batch",pod="{pod}",phase="{p}",uid="{pod}-1"}} '
                      f'{int(p == phase_of(pod, t))} {t}' for p in phases]
    (tmp_path / "pods.om").write_text("\n".join([*lines, "# EOF", ""]))
    signal = parse_config({}).resolved_signals()["pod_finished"]
    assert signal.sparse  # none at all is the healthy case, not missing data
    end = datetime.fromtimestamp(end_s, UTC)
    with PrometheusServer(tmp_path / "prom", openmetrics=tmp_path / "pods.om") as prom:
        raw = PrometheusClient(PrometheusConfig(url=prom.url)).query_range(  # type: ignore[arg-type]
            signal.query, end - timedelta(minutes=10), end, timedelta(minutes=1))
    got = sorted((r.labels["pod"], r.labels["phase"], int(np.isfinite(r.values).sum())) for r in raw)
    assert got == [("crashed", "Failed", 11), ("done", "Succeeded", 6)]
    ent = entity_of(signal, raw[0].labels)
    assert ent.kind == "pod" and ent.namespace == "batch"
