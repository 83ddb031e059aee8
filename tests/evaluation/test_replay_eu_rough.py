"""Issue 16's targets on a second cluster: ``eu-rough`` (UTC+1, evening peak, telemetry as it is
during incidents: missed scrapes, counters that reset in place, a GPU whose every series vanishes
off the bus; a kube-system pod crash-looping; a fine-tuning Job running ten hours near its limit).

The defaults were first checked on the ``default`` profile only; these tests hold them to the same
targets here. One replay (36 h of history, incidents from hour 24, replayed from hour 6 at one cycle
per two minutes) serves every assertion. Tests marked ``xfail(strict=True)`` are misses whose fix
is in policy or the serving/quality defaults, reported with their evidence; they turn into failures
the day the fix lands, so the mark comes off with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from aiops.testing.cluster_history import HistorySpec, generate
from aiops.testing.cluster_profiles import EU_ROUGH
from tests.evaluation.replay_runs import Replayed, replay

# A replay of 33 h (a day before the incidents) takes minutes, more on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    # The incidents fall at the bench's local hours, after a full day (as in the bench): the headroom
    # forecast reads the same hours of the day before.
    hist = generate(HistorySpec(start=HistorySpec().start - timedelta(hours=24), hours=36, filler_pods=5,
                                incident_offset_h=24, profile=EU_ROUGH))
    return replay(hist, tmp_path_factory.mktemp("eu-rough"), from_h=6)


def test_replay_is_clean(run: Replayed) -> None:
    assert run.figures["degraded_cycles"] == 0


def test_leak_is_warned_an_hour_ahead_through_missed_cadvisor_scrapes(run: Replayed) -> None:
    leak = run.incident("memory leak")
    assert leak["warning_lead_min"] >= 58, leak
    assert leak["first_action"].startswith("restart_pod") and leak["action_lead_min"] >= 0, leak


def test_disk_fill_is_warned_an_hour_ahead_through_a_kube_state_metrics_restart(run: Replayed) -> None:
    disk = run.incident("disk fill")
    assert disk["warning_lead_min"] >= 58 and disk["first_action"].startswith("advise"), disk


def test_inode_exhaustion_is_warned_an_hour_ahead_with_space_to_spare(run: Replayed) -> None:
    """nodefs.inodesFree < 5% is a kubelet eviction threshold like nodefs.available < 10%."""
    inodes = run.incident("inode exhaustion")
    assert inodes["warning_lead_min"] >= 58 and inodes["first_action"].startswith("advise on node/gpu-node-3"), inodes
    assert inodes["standing_after_resolved"] == [], inodes


def test_gpu_whose_series_all_vanish_is_evacuated_once_and_the_decision_stops(run: Replayed) -> None:
    xid = run.incident("XID 79")
    assert xid["first_action"].startswith("evacuate_node on node/gpu-node-2"), xid
    assert -4 <= xid["action_lead_min"] <= 0
    inc = next(i for i in run.hist.incidents if i["name"].startswith("XID 79"))
    for d in run.decisions("evacuate_node", "node/gpu-node-2"):
        assert datetime.fromisoformat(d["last_at"]) <= inc["resolved_at"] + timedelta(hours=1), d
    assert xid["standing_after_resolved"] == []


def test_surge_is_warned_half_an_hour_ahead_and_scaled(run: Replayed) -> None:
    surge = run.incident("traffic surge")
    assert surge["first_action"].startswith("scale_ahead on model/inference/llama-3-8b"), surge
    assert surge["warning_lead_min"] >= 30 and surge["action_lead_min"] >= 0, surge


def test_nothing_stands_after_its_cause_resolved(run: Replayed) -> None:
    assert run.figures["standing_after_resolved"] == 0
    assert run.figures["decisions_that_never_stop"] == []


def test_the_long_job_and_the_batch_pods_are_never_disrupted(run: Replayed) -> None:
    for glob in ("pod/training/*", "pod/batch/*", "pod/research/*"):
        assert not run.decisions("restart_pod", glob), glob


def test_a_gpu_that_starts_working_is_not_paged(run: Replayed) -> None:
    # The fine-tuning Job lands on two idle GPUs: their temperature climbs from ~38 °C to ~72 °C,
    # far below the slowdown point. That is the GPU doing its job, not an incident.
    assert run.pages_on("gpu/*") == []


def test_no_action_in_a_protected_namespace(run: Replayed) -> None:
    assert not run.decisions("restart_pod", "pod/kube-system/*")
    assert run.figures["actions_outside_incidents"] == []


def test_job_pods_are_not_paged(run: Replayed) -> None:
    assert run.pages_on("pod/training/*") == [] and run.pages_on("pod/batch/*") == []


@pytest.mark.xfail(strict=True, reason="the drift reaches its alert 68 min after onset: the forecast warns 46 min ahead (60 needs a longer ramp)")
def test_accuracy_drift_is_warned_an_hour_ahead(run: Replayed) -> None:
    assert run.incident("accuracy drift")["warning_lead_min"] >= 58


def test_a_crashloop_in_kube_system_is_told_but_not_paged(run: Replayed) -> None:
    # kube-proxy crash-loops for 45 min: told (a warning with advice), never paged, never acted on.
    assert run.pages_on("pod/kube-system/*") == []
    told = [f for f in run.report["findings"] if f["signal"] == "pod_crashlooping" and f["entity"].startswith("pod/kube-system/")]
    assert told and all(f["severity"] == "warning" for f in told), told


def test_impossible_exporter_values_are_gaps_never_findings_and_the_report_counts_them(run: Replayed) -> None:
    """gpu-node-0's dcgm-exporter writes DCGM's blanks and NVIDIA/DCGM#199's utilisations (the
    fixture's _exporter_garbage). None of them is a finding or an action; the report says what the
    collector dropped, by signal and reason, so the operator can look at the exporter."""
    dropped = {(r["signal"], r["reason"]): r["samples"] for r in run.figures["samples_rejected"]}
    # Each sample once, though every cycle's overlap reads the newest ones again.
    assert dropped[("gpu_utilization", "sentinel")] == 3 and dropped[("gpu_utilization", "out_of_range")] == 1
    assert dropped[("gpu_power", "sentinel")] == 18
    assert dropped[("gpu_row_remap_failure", "sentinel")] > 0 and dropped[("gpu_uncorrectable_remapped_rows", "sentinel")] > 0
    gpus = {f"gpu/{s.labels['UUID']}" for s in run.hist.gauges if s.labels.get("Hostname") == "gpu-node-0"}
    assert len(gpus) == 4
    on_node = [f for f in run.report["findings"] if f["entity"] in gpus
               and f["signal"] in ("gpu_utilization", "gpu_power", "gpu_memory_usage_ratio", "gpu_row_remap_failure",
                                   "gpu_uncorrectable_remapped_rows")]
    assert on_node == []
    assert [d for d in run.report["decisions"] if d["entity"] == "node/gpu-node-0"] == []


def test_a_gpu_off_the_bus_is_not_told_cleared_while_nothing_measures_it(run: Replayed) -> None:
    """Every series of the XID 79 GPU vanishes here, its XID gauge too: its "failure observed" then
    disappeared for want of data and was told as cleared 16 minutes after it paged (seed 131), the
    GPU dead. It is told cleared once the GPU reports again after the reboot, not before."""
    missing = [f for f in run.report["findings"] if f["signal"] == "gpu_metrics_missing"]
    assert missing
    gpu, back = missing[0]["entity"], max(f["last_at"] for f in missing)
    cleared = [e for e in run.report["events"] if e["kind"] == "notification" and e["what"] == "resolved"
               and e["entity"] == gpu and "gpu_xid" in e["detail"]]
    assert cleared and all(e["at"] > back for e in cleared), (back, cleared)
