"""Issue 16's decoy targets on ``ap-autoscale`` (UTC+9, a GPU node pool under the cluster-autoscaler).

The autoscaler removes a pool node by tainting it ``ToBeDeletedByClusterAutoscaler`` (no cordon),
evicting its pod, terminating the instance (exporters gone, the Node Ready for the kubelet's grace,
then Unknown) and deleting the Node. That is routine: no evacuation, no page. One short replay
(21 h of history, replayed from hour 13 at one cycle per two minutes: 01:00-09:00 UTC, four pool
nodes removed) serves every assertion; the full 48 h figures come from bench/replay_cluster.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from aiops.testing.cluster_history import HistorySpec, generate
from aiops.testing.cluster_profiles import AP_AUTOSCALE
from tests.evaluation.replay_runs import Replayed, replay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FROM_H = 13.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    hist = generate(HistorySpec(hours=21, filler_pods=5, profile=AP_AUTOSCALE))
    return replay(hist, tmp_path_factory.mktemp("ap-autoscale"), from_h=FROM_H)


def _removed_in_replay(run: Replayed) -> set[str]:
    """Pool nodes tainted ToBeDeletedByClusterAutoscaler and deleted within the replayed hours."""
    t = (run.hist.t - run.hist.t[0]) / 3600
    return {s.labels["node"] for s in run.hist.gauges
            if s.name == "kube_node_spec_taint" and s.labels["key"] == "ToBeDeletedByClusterAutoscaler"
            and np.isfinite(s.values[t >= FROM_H]).any()}


def test_the_replay_covers_nodes_the_autoscaler_removed(run: Replayed) -> None:
    removed = _removed_in_replay(run)
    assert len(removed) >= 2, removed
    # They did go Unknown on the way out (found so, and recorded as info: below the report's
    # findings, which are warning and up): what is asserted below is not vacuous.
    t = (run.hist.t - run.hist.t[0]) / 3600
    unknown = {s.labels["node"] for s in run.hist.gauges
               if s.name == "kube_node_status_condition" and s.labels["condition"] == "Ready"
               and s.labels["status"] == "unknown" and np.nansum(s.values[t >= FROM_H]) > 0}
    assert removed <= unknown


def test_nodes_the_autoscaler_removes_are_not_evacuated(run: Replayed) -> None:
    assert run.decisions("evacuate_node", "node/gpu-pool-*") == []
    assert [d for d in run.figures["actions_outside_incidents"] if d["entity"].startswith("node/gpu-pool-")] == []


def test_nodes_the_autoscaler_removes_are_not_paged(run: Replayed) -> None:
    assert run.pages_on("node/gpu-pool-*") == []
    assert run.pages_on("gpu/*") == []


def test_nodes_the_autoscaler_removes_are_told_to_nobody(run: Replayed) -> None:
    # Their NotReady is the removal: each was a warning and a "cleared" to the on-call.
    told = [e for e in run.report["events"] if e["kind"] == "notification" and e["entity"].startswith("node/gpu-pool-")]
    assert told == []


def test_nothing_stands_after_a_removed_node_is_gone(run: Replayed) -> None:
    assert run.figures["decisions_that_never_stop"] == []


def test_a_model_whose_replica_is_on_its_way_is_advised_not_scaled_ahead(run: Replayed) -> None:
    # gemma-2-9b's TTFT breaches while its new replica waits for a pool node and loads: the scale-up
    # is already in flight (the pod is Pending, then not Ready), so another one is advice, not action.
    held = [d for d in run.decisions("advise", "model/inference/gemma-2-9b") if "already in flight" in d["summary"]]
    assert held, "the replay must hold a scale-up back for the assertion to mean anything"
    assert run.decisions("scale_ahead", "model/inference/gemma-2-9b") == []
    # Nor is its breach a page: the capacity is on its way, nobody has to act now.
    assert run.pages_on("model/inference/gemma-2-9b") == []


def test_a_sticky_xid_in_its_own_err_code_series_is_not_acted_on_again(run: Replayed) -> None:
    # This cluster's dcgm-exporter labels the code (err_code, err_msg: 3.3.6 and later), so the XID 79
    # of hour 4 is a series of its own. The node was drained, repaired and uncordoned hours before
    # the replayed window; the code still stands (sticky), and is not new evidence.
    xid = [s for s in run.hist.gauges if s.name == "DCGM_FI_DEV_XID_ERRORS" and s.labels.get("err_code") == "79"]
    t = (run.hist.t - run.hist.t[0]) / 3600
    assert xid and np.all(xid[0].values[t >= FROM_H] == 79)
    assert run.decisions("evacuate_node", "node/gpu-node-2") == []
    assert run.pages_on("node/gpu-node-2") == [] and run.pages_on("gpu/*") == []
