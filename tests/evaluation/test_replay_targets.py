"""Issue 16's targets on the realistic fixture, one cycle a minute, after a day of history.

30 h of history (incidents from hour 18), replayed from hour 6 at one cycle per minute: about two
minutes on a free core. The full 48 h / 1,000-series figures come from bench/replay_cluster.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml

from aiops.cli import main
from aiops.testing.cluster_history import HistorySpec, generate, incidents_yaml
from aiops.demo.prometheus import PrometheusServer

pytestmark = pytest.mark.slow


def test_replay_targets(tmp_path) -> None:
    hist = generate(HistorySpec(hours=30, filler_pods=20, incident_offset_h=18))
    hist.write_openmetrics(tmp_path / "history.om")
    (tmp_path / "incidents.yaml").write_text(incidents_yaml(hist))
    with PrometheusServer(tmp_path / "prometheus", openmetrics=tmp_path / "history.om") as prom:
        (tmp_path / "aiops.yaml").write_text(yaml.safe_dump({"prometheus": {"url": prom.url}}))
        rc = main(["replay", "--config", str(tmp_path / "aiops.yaml"),
                   "--from", (hist.spec.start + timedelta(hours=6)).isoformat(), "--to", hist.end.isoformat(),
                   "--incidents", str(tmp_path / "incidents.yaml"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    f = json.loads((tmp_path / "out" / "report.json").read_text())["figures"]
    rows = {r["name"].split(" ")[0]: r for r in f["incidents"]}
    # Every incident gets its expected action no later than its static alert.
    for r in f["incidents"]:
        assert r["action_lead_min"] is not None and r["action_lead_min"] >= 0, r
    # Trends warned about an hour ahead (one cycle of slack), the surge at least 30 min ahead.
    assert rows["memory"]["warning_lead_min"] >= 58
    assert rows["disk"]["warning_lead_min"] >= 58
    assert rows["traffic"]["warning_lead_min"] >= 30
    assert rows["accuracy"]["warning_lead_min"] >= 58
    # At most one page a day per 1,000 healthy series.
    assert f["healthy_pages_per_day_per_1000_series"] <= 1.0, f["pages_outside_incidents"]
    # No action on decoys (batch job, rollout, bare pod, kube-system), nothing left standing.
    assert f["actions_outside_incidents"] == []
    assert f["standing_after_resolved"] == 0
    assert f["decisions_that_never_stop"] == []
