"""Human-facing rails fail closed: a kill-switch value the daemon does not understand, or a
kill-switch ConfigMap deleted while in use, counts as engaged (and says so loudly); an opt-out
written as False, "0", "no" or with a typo opts out, as label or annotation, on the pod or its
workload."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from aiops.model import ActionStatus, Entity
from aiops.testing.kubeapi import KubeApiServer
from aiops.testing.kubeapi_objects import make_configmap, make_pod
from tests.engine.kubecluster import NOW, decision, make_actor, make_config, seed_workload, writes


def pod(name: str, ns: str = "default") -> Entity:
    return Entity("pod", name, ns)


@pytest.mark.parametrize("value", ["ture", "enabled", "TRUE ", "", "stop"])
def test_kill_switch_value_it_does_not_understand_counts_as_engaged(
    server: KubeApiServer, tmp_path: Path, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed_workload(server, "web", ["gpu-1"])
    server.seed(make_configmap("aiops-control", {"kill_switch": value}, namespace="aiops"))
    actor, _ = make_actor(make_config(server, tmp_path))
    with caplog.at_level(logging.WARNING, logger="aiops.engine.rails.kill_switch"):
        [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert (result.status, result.rail) == (ActionStatus.BLOCKED, "kill_switch")
    assert writes(server) == []
    if value.strip().lower() != "true":
        assert "neither" in result.detail
        assert any("ENGAGED" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value", ["false", "False", "FALSE", "0", "no", "off"])
def test_kill_switch_released_by_false_values(server: KubeApiServer, tmp_path: Path, value: str) -> None:
    seed_workload(server, "web", ["gpu-1"])
    server.seed(make_configmap("aiops-control", {"kill_switch": value}, namespace="aiops"))
    actor, _ = make_actor(make_config(server, tmp_path))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.status is ActionStatus.APPLIED, result.detail


def test_kill_switch_configmap_deleted_while_in_use_counts_as_engaged_even_after_a_restart(
    server: KubeApiServer, tmp_path: Path
) -> None:
    names = seed_workload(server, "web", ["gpu-1", "gpu-2", "gpu-3"])
    server.seed(make_configmap("aiops-control", {"kill_switch": "false"}, namespace="aiops"))
    cfg = make_config(server, tmp_path, max_pods_per_workload=10, cooldown="0s")
    actor, store = make_actor(cfg)
    [first] = actor.act([decision("restart_pod", pod(names[0]))], findings=[], degraded=False, now=NOW)
    assert first.status is ActionStatus.APPLIED
    server.delete("ConfigMap", "aiops-control", "aiops")
    [second] = actor.act([decision("restart_pod", pod(names[1]))], findings=[], degraded=False,
                         now=NOW + timedelta(minutes=1))
    assert second.rail == "kill_switch" and "was there and is gone" in second.detail
    store.close()
    restarted, _ = make_actor(cfg)  # the same state file: the daemon remembers the switch was in use
    [third] = restarted.act([decision("restart_pod", pod(names[2]))], findings=[], degraded=False,
                            now=NOW + timedelta(minutes=2))
    assert third.rail == "kill_switch"


def test_kill_switch_file_with_any_content_but_false_is_engaged(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1"])
    switch = tmp_path / "stop"
    switch.write_text("please stop\n")
    actor, _ = make_actor(make_config(server, tmp_path, kill_switch={"file": str(switch)}))
    [result] = actor.act([decision("restart_pod", pod("web-0"))], findings=[], degraded=False, now=NOW)
    assert result.rail == "kill_switch"


@pytest.mark.parametrize("value", ["false", "False", "FALSE", "0", "no", "Off", "flase"])
@pytest.mark.parametrize("where", ["pod-label", "pod-annotation", "workload-label"])
def test_opt_out_accepts_any_spelling_and_typos_opt_out(
    server: KubeApiServer, tmp_path: Path, value: str, where: str
) -> None:
    target = "db-0"
    if where == "workload-label":
        seed_workload(server, "db", ["gpu-1"], labels={"aiops.io/remediate": value})
    else:
        seed_workload(server, "db", ["gpu-1"])
        rs = next(r["metadata"]["name"] for r in server.list("ReplicaSet", "default", group="apps"))
        key = "labels" if where == "pod-label" else "annotations"
        server.seed(make_pod("db-x", node="gpu-1", owner=("ReplicaSet", rs), **{key: {"aiops.io/remediate": value}}))
        target = "db-x"
    actor, _ = make_actor(make_config(server, tmp_path))
    [result] = actor.act([decision("restart_pod", pod(target))], findings=[], degraded=False, now=NOW)
    assert (result.status, result.rail) == (ActionStatus.BLOCKED, "opt_out"), result.detail
    assert value in result.detail
    assert writes(server) == []
