"""A silence set in the real Alertmanager (Debian binary) stops the remediation of its target."""

from __future__ import annotations

from pathlib import Path

from aiops.model import ActionStatus, Entity
from aiops.notify.alertmanager import AlertmanagerClient
from aiops.testing.alertmanager import AlertmanagerServer
from aiops.testing.kubeapi import KubeApiServer
from tests.engine.kubecluster import (
    NOW,
    decision,
    make_actor,
    make_config,
    seed_workload,
    writes,
)


def test_silence_on_the_node_blocks_the_evacuation_until_it_is_removed(server: KubeApiServer, tmp_path: Path) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    with AlertmanagerServer(tmp_path / "am") as am:
        client = AlertmanagerClient(am.url, silence_cache_seconds=0)
        silence = client.create_silence({"node": "gpu-1"}, comment="hardware maintenance, hands off")
        actor, _ = make_actor(make_config(server, tmp_path), is_silenced=client.is_silenced)
        gpu = Entity("gpu", "GPU-1", attributes=(("Hostname", "gpu-1"),))
        d = decision("evacuate_node", gpu, resolve_target="node")
        [blocked] = actor.act([d], findings=[], degraded=False, now=NOW)
        assert (blocked.status, blocked.rail) == (ActionStatus.BLOCKED, "silenced")
        assert writes(server) == []
        client.delete_silence(silence)
        [applied] = actor.act([d], findings=[], degraded=False, now=NOW)
        assert applied.status is ActionStatus.APPLIED, applied.detail
        assert server.get("Node", "gpu-1")["spec"]["unschedulable"] is True
