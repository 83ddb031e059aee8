"""The leader's notification ledger in the cluster: Events a follower reads back."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops.kube.notified import ClusterNotifyLedger
from aiops.testing.kubeapi import SA_TOKEN, KubeApiServer
from tests.engine.kubecluster import CLUSTER_ROLE, connections_opened

NOW = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def test_published_deliveries_are_read_back_over_one_connection() -> None:
    # The Event writes are raw responses (_preload_content=False): left unread, each kept its
    # connection out of the client's pool, and every publish opened a new TCP and TLS connection.
    with KubeApiServer([], cluster_role=CLUSTER_ROLE) as server:
        api = server.api_client(SA_TOKEN)
        ledger = ClusterNotifyLedger(api, "aiops", lease_name="aiops-leader", reporter="aiops-0", timeout=(5.0, 10.0))
        for i in range(4):
            ledger.publish([("dingtalk", f"key-{i}", "critical")], NOW)
        assert ledger.delivered() == {("dingtalk", f"key-{i}", "critical") for i in range(4)}
        assert connections_opened(api) == 1
