"""The writer admits an action (spends its budget and cooldown, emits its Event) only once it can
carry every write out: a plan the Kubernetes writer cannot apply fails before anything is spent."""

from __future__ import annotations

from pathlib import Path

from aiops.model import ActionStatus, Entity, Mutation, Plan, Resource, Verb
from aiops.testing.kubeapi import KubeApiServer
from tests.engine.kubecluster import NOW, decision, make_actor, make_config, seed_workload, writes


def test_an_unsupported_write_fails_before_any_budget_cooldown_or_event_is_spent(
    server: KubeApiServer, tmp_path: Path
) -> None:
    seed_workload(server, "web", ["gpu-1", "gpu-2"])
    actor, _ = make_actor(make_config(server, tmp_path))
    web0 = Entity("pod", "web-0", "default")
    # A verb and a resource the writer knows, in a pair it has no route for: nodes are never deleted.
    plan = Plan("restart_pod", web0, (Mutation(Verb.DELETE, Resource.NODES, "gpu-1"),), "delete node gpu-1")
    before = actor.writer.remaining_budget(NOW)

    result = actor.writer.execute(decision("restart_pod", web0), plan, None, NOW)

    assert result.status is ActionStatus.FAILED
    assert "delete nodes gpu-1" in result.detail and "cannot apply" in result.detail
    assert actor.writer.remaining_budget(NOW) == before
    assert writes(server) == []  # no write, and no Event claiming an action
    # The cooldown did not start either: a plan that can be applied goes through at once.
    [ok] = actor.act([decision("restart_pod", web0)], findings=[], degraded=False, now=NOW)
    assert ok.status is ActionStatus.APPLIED, ok.detail
