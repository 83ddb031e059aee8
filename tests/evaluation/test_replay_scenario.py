"""The realistic cluster fixture, backfilled into a real Prometheus and run through ``aiops replay``.

One replay (12 h of history, 9 h replayed at one cycle per 2 minutes, ~1 min on a shared core)
serves every assertion; each default the replay exposed has its own test.
"""

from __future__ import annotations

import json
from datetime import timedelta
from fnmatch import fnmatchcase

import pytest
import yaml

from aiops.cli import main
from aiops.testing.cluster_history import HistorySpec, generate, incidents_yaml
from tests.evaluation.replay_runs import logging_kept
from aiops.demo.prometheus import PrometheusServer

# Starts daemons or real servers (tens of seconds each): `-m "not slow"` leaves it out of the inner loop.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("replay-scenario")
    hist = generate(HistorySpec(hours=12, filler_pods=20))
    hist.write_openmetrics(work / "history.om")
    (work / "incidents.yaml").write_text(incidents_yaml(hist))
    with PrometheusServer(work / "prometheus", openmetrics=work / "history.om") as prom, logging_kept():
        (work / "aiops.yaml").write_text(yaml.safe_dump({"prometheus": {"url": prom.url, "lookback": "3h"}}))
        rc = main(["replay", "--config", str(work / "aiops.yaml"),
                   "--from", (hist.spec.start + timedelta(hours=3)).isoformat(), "--to", hist.end.isoformat(),
                   "--every", "2m", "--incidents", str(work / "incidents.yaml"), "--out", str(work / "out"),
                   "--no-progress"])
    assert rc == 0
    data = json.loads((work / "out" / "report.json").read_text())
    return hist, data


def _incident(data, name: str) -> dict:
    return next(r for r in data["figures"]["incidents"] if r["name"].startswith(name))


def _decisions(data, action: str, entity_glob: str) -> list[dict]:
    return [d for d in data["decisions"] if d["action"] == action and fnmatchcase(d["entity"], entity_glob)]


def test_replay_is_clean_and_sees_every_incident(replay) -> None:
    hist, data = replay
    f = data["figures"]
    assert f["degraded_cycles"] == 0
    assert f["median_series"] > 100
    for row in f["incidents"]:
        assert row["first_warning_at"] is not None, row["name"]


def test_b_batch_and_bare_pods_are_advised_not_restarted(replay) -> None:
    hist, data = replay
    assert not _decisions(data, "restart_pod", "pod/batch/*")
    assert not _decisions(data, "restart_pod", "pod/research/notebook-alice")
    # Advice instead: the notebook's memory is worth telling its owner about.
    assert _decisions(data, "advise", "pod/research/notebook-alice")
    # ...as a warning, not a page: nobody has to act now on a pod that policy never disrupts
    # (the job ends first, the notebook's owner decides).
    decoys = ("pod/batch/", "pod/research/")
    pages = [e for e in data["events"]
             if e["kind"] == "notification" and e["severity"] == "critical" and e["entity"].startswith(decoys)]
    assert pages == []
    assert [d for d in data["decisions"] if d["entity"].startswith(decoys) and d["severity"] == "critical"] == []


def test_a_llm_latency_objective_is_ttft_and_itl_not_end_to_end(replay) -> None:
    hist, data = replay
    # End-to-end latency is seconds by nature: no standing scale-up from the first cycle on.
    assert not [d for d in data["decisions"] if d["action"] == "scale_ahead" and d["cycles"] > 60]
    # The surge breaches the TTFT objective: scale-up while it lasts, on the surging model only.
    surge = _incident(data, "traffic surge")
    assert surge["first_action"].startswith("scale_ahead on model/inference/llama-3-8b")
    assert not _decisions(data, "scale_ahead", "model/inference/qwen2-7b")


def test_c_sticky_xid_evacuates_once_and_stops_when_handled(replay) -> None:
    hist, data = replay
    xid = _incident(data, "XID 79")
    # Acted on the new XID within minutes of the event...
    assert xid["first_action"].startswith("evacuate_node on node/gpu-node-2")
    assert -6 <= xid["action_lead_min"] <= 0
    # ...and not on the level that stays after the node was cordoned, drained, repaired and uncordoned.
    inc = next(i for i in hist.incidents if i["name"].startswith("XID 79"))
    evacuations = _decisions(data, "evacuate_node", "node/gpu-node-2")
    assert evacuations and all(
        d["last_at"] <= (inc["failure_at"] + timedelta(minutes=30)).isoformat() for d in evacuations
    ), evacuations
    assert xid["standing_after_resolved"] == []
    assert data["figures"]["standing_after_resolved"] == 0


def test_c_a_completed_job_pod_does_not_keep_the_failed_node_to_be_evacuated(replay) -> None:
    hist, data = replay
    # gpu-node-2 still lists an evaluation Job's pod that Succeeded hours before the XID (its Job has
    # no TTL). It needs no moving: once people drained the node, the evacuation stops, instead of
    # being decided again every cycle until the node is uncordoned.
    (done,) = [s for s in hist.gauges if s.name == "kube_pod_status_phase" and s.labels["phase"] == "Succeeded"
               and s.labels["namespace"] == "ml-eval"]
    assert done.values[-1] == 1  # still listed, finished, at the end of the replay
    inc = next(i for i in hist.incidents if i["name"].startswith("XID 79"))
    drained = inc["failure_at"] + timedelta(minutes=hist.spec.profile.timing.xid_response_min[1])
    evacuations = _decisions(data, "evacuate_node", "node/gpu-node-2")
    # (Prometheus answers a backfilled series, which has no staleness marker, for 5 min after its
    # last sample: the evicted llama pod is seen there until then.)
    assert evacuations and all(d["last_at"] <= (drained + timedelta(minutes=6)).isoformat() for d in evacuations), (
        evacuations)
    assert not [d for d in data["decisions"] if d["entity"].startswith("pod/ml-eval/")]


def test_d_symptoms_on_a_dead_gpu_are_not_remediated(replay) -> None:
    hist, data = replay
    # The replica on the GPU that fell off the bus crash-loops; its node is being evacuated, and a
    # restart cannot heal a pod whose GPU is gone.
    assert not _decisions(data, "restart_pod", "pod/inference/vllm-llama-3-8b-*")
    crash = [f for f in data["findings"] if f["signal"] == "pod_crashlooping"]
    assert crash  # people are still told


def test_f_drift_is_forecast_an_hour_ahead_and_the_rollback_waits_for_the_confirmed_drop(replay) -> None:
    hist, data = replay
    drift = _incident(data, "accuracy drift")
    # The trend forecast warns an hour before the static alert (one cycle of slack)...
    assert drift["warning_lead_min"] >= 58, drift
    # ...and the rollback suggestion follows it once the drop is confirmed (significant against the
    # reference while the trend holds), not on the forecast alone, well before the static alert.
    assert drift["first_action"].startswith("rollback_model on model/inference/qwen2-7b")
    assert 30 <= drift["action_lead_min"] < drift["warning_lead_min"], drift
    (rollback,) = _decisions(data, "rollback_model", "model/inference/qwen2-7b")
    assert rollback["mode"] == "suggest"  # a suggestion by default, never automatic
