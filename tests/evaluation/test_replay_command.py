"""``aiops replay`` against a real Prometheus holding the demo cluster's history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from aiops.cli import main
from aiops.collect.collector import Collector
from aiops.collect.prometheus import PrometheusClient
from aiops.config import parse_config
from aiops.evaluation.cluster_replay import HistoryClient
from aiops.demo.synth import start_demo_prometheus

END = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_prom(tmp_path_factory: pytest.TempPathFactory):
    prom = start_demo_prometheus(tmp_path_factory.mktemp("replay-demo"), end=END)
    yield prom
    prom.stop()


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump({
        "prometheus": {"url": url, "lookback": "2h"},
        # A real channel and a kill-switch file: the replay must use neither.
        "notify": {"channels": {"ops": {"plugin": "console"}}},
        "safety": {"mode": "observe", "dry_run": False, "kill_switch": {"file": str(tmp_path / "stop")}},
        "state": {"path": str(tmp_path / "must-not-exist.sqlite")},
    }))
    return path


@pytest.mark.slow
def test_history_client_frames_equal_live_frames(demo_prom) -> None:
    """Each replayed cycle sees exactly what a live collector would have seen at that instant."""
    config = parse_config({"prometheus": {"url": demo_prom.url, "lookback": "1h"}})
    start = END - timedelta(hours=2)
    history = HistoryClient(PrometheusClient(config.prometheus), start - timedelta(hours=1), END, config.prometheus.step)
    replayed, live = Collector(config, client=history), Collector(config)  # type: ignore[arg-type]
    try:
        for now in (start, start + timedelta(minutes=1), start + timedelta(minutes=37), END):
            a, _ = replayed.collect(now)
            b, _ = live.collect(now)
            assert sorted(s.key for s in a) == sorted(s.key for s in b)
            by_key = {s.key: s for s in b}
            for s in a:
                np.testing.assert_array_equal(s.timestamps, by_key[s.key].timestamps)
                np.testing.assert_allclose(s.values, by_key[s.key].values, equal_nan=True)
            assert {s.key for s in a.vanished} == {s.key for s in b.vanished}
    finally:
        replayed.close()
        live.close()


@pytest.mark.slow
def test_a_replay_learns_the_days_before_its_start_as_the_daemon_does(demo_prom) -> None:
    """A replay starts as a new daemon: its detectors read the days before the first cycle from
    Prometheus (asked of Prometheus as it is, at their own step or at the cycles'), so a replay of
    last week judges it as the daemon that ran all along would have. At the cycles' step (the
    seasonal baseline's and serving headroom's days) they were cut from the replay's own range,
    which begins with the first frame: nothing, and a replay started at 03:00 warned at the
    morning ramp as a daemon that learnt nothing does."""
    config = parse_config({"prometheus": {"url": demo_prom.url, "lookback": "1h"}})
    start = END - timedelta(hours=2)
    history = HistoryClient(PrometheusClient(config.prometheus), start - timedelta(hours=1), END, config.prometheus.step)
    replayed, live = Collector(config, client=history), Collector(config)  # type: ignore[arg-type]
    try:
        signals = {"pod_memory_usage_ratio"}
        begin, until = start - timedelta(hours=8), start - timedelta(hours=1)
        for step in (timedelta(minutes=5), config.prometheus.step):
            # The live client answers in chunks of max_points_per_query a series: joined per series.
            a, b = ({key: (np.concatenate(ts), np.concatenate(vs)) for key, (ts, vs) in _joined(c, signals, begin, until, step)}
                    for c in (replayed, live))
            assert a and sorted(a) == sorted(b)
            for key, (ts, vs) in a.items():
                assert np.all(np.diff(ts) == step.total_seconds())
                np.testing.assert_array_equal(ts, b[key][0])
                np.testing.assert_allclose(vs, b[key][1], equal_nan=True)
    finally:
        replayed.close()
        live.close()


def _joined(collector: Collector, signals: set[str], begin: datetime, until: datetime, step: timedelta):
    parts: dict[object, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for chunk in collector.history(signals, begin, until, step):
        for s in chunk:
            ts, vs = parts.setdefault(s.key, ([], []))
            ts.append(s.timestamps)
            vs.append(s.values)
    return parts.items()


@pytest.mark.slow
def test_replay_writes_report_dry_run_and_throwaway_state(demo_prom, tmp_path: Path, capsys) -> None:
    cfg = _config(tmp_path, demo_prom.url)
    incidents = tmp_path / "incidents.yaml"
    incidents.write_text(yaml.safe_dump([{
        "name": "leaking api pod", "entity": "pod/shop/api-*", "failure_at": (END + timedelta(minutes=45)).isoformat(),
        "trend": True, "expected_action": "restart_pod",
    }]))
    out = tmp_path / "out"
    rc = main(["replay", "--config", str(cfg), "--from", (END - timedelta(hours=2)).isoformat(),
               "--to", END.isoformat(), "--every", "5m", "--incidents", str(incidents), "--out", str(out),
               "--no-progress", "--json"])
    assert rc == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["cycles"] == 25 and figures["mode"] == "auto" and figures["dry_run"] is True
    assert not (tmp_path / "must-not-exist.sqlite").exists()
    for name in ("report.html", "report.md", "report.json", "cycles.png", "notifications.jsonl"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "report.json").read_text())
    assert data["findings"] and data["decisions"]
    # Every decision in the report would have gone through the writer as a dry run, never applied.
    assert all("applied" not in d.get("statuses", {}) for d in data["decisions"])
    sent = [json.loads(line) for line in (out / "notifications.jsonl").read_text().splitlines()]
    assert sent and {s["channel"] for s in sent} == {"ops"}
    # Notification times are the simulated clock, within the replayed range.
    assert all(END - timedelta(hours=2) <= datetime.fromisoformat(s["at"]) <= END for s in sent)
    (row,) = figures["incidents"]
    assert row["first_warning_at"] is not None and row["warning_lead_min"] > 0
    assert "first warning" in (out / "report.md").read_text().lower()
    # The demo's node-0 GPU 0 writes dcgm-exporter's impossible values (aiops/data/demo/scenario.yaml):
    # the report says what the collector dropped, by signal and reason, and names the series.
    dropped = {(r["signal"], r["reason"]): r for r in figures["samples_rejected"]}
    assert {("gpu_power", "sentinel"), ("gpu_row_remap_failure", "sentinel")} <= set(dropped)
    assert all(r["samples"] > 0 and r["series"] for r in dropped.values())
    assert "impossible samples dropped" in (out / "report.md").read_text().lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday", "--to", "2026-12-03T00:00:00Z"], "not an ISO 8601 time"),
        (["--from", "2026-12-03T00:00:00Z", "--to", "2026-12-02T00:00:00Z"], "is before --from"),
        (["--from", "2026-12-02T00:00:00Z", "--to", "2026-12-03T00:00:00Z", "--every", "0s"], "positive duration"),
    ],
)
def test_bad_arguments_say_what_to_fix(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    rc = main(["replay", *args, "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_bad_incidents_file_names_the_field(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "incidents.yaml"
    bad.write_text(yaml.safe_dump([{"name": "x", "entity": "pod/a/b"}]))
    rc = main(["replay", "--from", "2026-12-02T00:00:00Z", "--to", "2026-12-02T01:00:00Z", "--incidents", str(bad),
               "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "0.failure_at" in err and "failure_at" in err
