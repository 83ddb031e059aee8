"""A daemon restarted at night on ``ap-autoscale`` (UTC+9, traffic in business hours).

The seasonal baseline's state is in memory: a restarted daemon began from its 6-hour frame, the
recent median standing in for the profile and its scales and records knowing only that night.
Restarted at 03:00 local, it warned at the morning ramp on every model's request rate and
latency and on every node's CPU (16 warnings on a 120 h history restarted at hour 78,
bench/replay_cluster.py ``--hours 120 --start-hours 78``). It now learns the days Prometheus holds
before its first frame. One short replay: 60 h of history, the daemon started at hour 54
(03:00 local) and replayed to 09:00 local at one cycle per two minutes.
"""

from __future__ import annotations

import pytest

from aiops.testing.cluster_history import HistorySpec, generate
from aiops.testing.cluster_profiles import AP_AUTOSCALE
from tests.evaluation.replay_runs import Replayed, replay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MORNING = ("node_cpu_utilization", "inference_request_rate", "inference_latency_p99")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    hist = generate(HistorySpec(hours=60, filler_pods=5, profile=AP_AUTOSCALE))
    return replay(hist, tmp_path_factory.mktemp("restart"), from_h=54.0)


def test_a_daemon_restarted_at_night_knows_the_morning_ramp(run: Replayed) -> None:
    seasonal = [f for f in run.report["findings"]
                if f["detector"] == "seasonal" and f["signal"] in MORNING and f["severity"] in ("warning", "critical")]
    assert seasonal == []
    # It ran through the ramp (about 06:30-08:00 local) to 09:00, every cycle whole.
    assert run.figures["cycles"] == 181 and run.figures["degraded_cycles"] == 0


def test_incidents_over_before_the_replay_began_are_not_judged(run: Replayed) -> None:
    """This history's incidents all came on its first day: a replay that starts later could not
    have warned of them in time, and was counted as having missed them."""
    rows = run.figures["incidents"]
    assert rows and all(not r["judged"] and r["met"] is None for r in rows)
    assert run.figures["incidents_judged"] == 0 and run.figures["incidents_met"] == 0
