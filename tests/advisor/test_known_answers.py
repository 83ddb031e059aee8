"""The advisor against a real Prometheus holding generated history with known answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from aiops.advisor import Advice, Kind, advise, digest, write_reports
from aiops.advisor.demo import Written, scenario_end, write_scenario
from aiops.cli import main
from aiops.config import AiopsConfig, parse_config
from aiops.model import Entity, Severity
from aiops.demo.prometheus import PrometheusServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

NOTEBOOK = Entity("deployment", "notebook", "research")
EMBEDDER = Entity("deployment", "embedder", "serving")
RANKER = Entity("deployment", "ranker", "serving")
CHAT = Entity("deployment", "chat", "serving")
CHAT_HPA = Entity("hpa", "chat", "serving")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return write_scenario(tmp_path_factory.mktemp("advisor") / "history.om", scenario_end())


@pytest.fixture(scope="module")
def prometheus(written: Written) -> Iterator[PrometheusServer]:
    with PrometheusServer(openmetrics=written.path) as prom:
        yield prom


def _config(url: str, **advisor: object) -> AiopsConfig:
    return parse_config({"prometheus": {"url": url, "timeout": "10s"}, "advisor": {"window": "4d", **advisor}})


@pytest.fixture(scope="module")
def advice(prometheus: PrometheusServer, written: Written) -> Advice:
    return advise(_config(prometheus.url), written.end)


def kinds_for(advice: Advice, target: Entity) -> set[Kind]:
    return {r.kind for r in advice.for_target(target)}


def test_idle_gpu_is_found_and_released(advice: Advice) -> None:
    [rec] = [r for r in advice.of_kind(Kind.IDLE_GPU) if r.target == NOTEBOOK]
    assert "release" in rec.title
    assert rec.facts["idle_share"] > 0.99
    # Dormant: releasing frees all of its ~96 GPU-hours over 4 days.
    assert 90 < rec.saving.gpu_hours <= 97
    assert "replicas: 0" in rec.change
    assert rec.command == "kubectl -n research scale deployment/notebook --replicas=0"


def test_small_model_fits_a_mig_slice(advice: Advice) -> None:
    [rec] = [r for r in advice.of_kind(Kind.MIG) if r.target == EMBEDDER]
    assert rec.facts["profile"] == "2g.20gb"  # 12 GiB x 1.2 > 10 GiB rules out 1g.10gb
    assert rec.facts["per_gpu"] == 3
    assert "nvidia.com/mig-2g.20gb: 1" in rec.change
    assert rec.saving.gpu_hours == pytest.approx(rec.facts["gpu_hours"] * 2 / 3, rel=0.01)
    [packing] = advice.packings
    assert set(packing.workloads) == {NOTEBOOK, EMBEDDER}
    assert (packing.gpus_now, packing.gpus_packed) == (2, 1)
    assert packing.utilization_packed == pytest.approx(2 * packing.utilization_now, rel=0.05)


def test_hpa_target_comes_from_the_latency_knee(advice: Advice) -> None:
    [curve] = advice.curves
    assert curve.hpa == CHAT_HPA and curve.model == "chat-model"
    # The generated p99 crosses 100 ms at 82 % utilisation.
    assert curve.knee_utilization is not None and 78 <= curve.knee_utilization <= 85
    [rec] = advice.of_kind(Kind.HPA_TARGET)
    assert rec.target == CHAT_HPA
    assert rec.facts["current_target"] == 90
    assert rec.facts["recommended_target"] == pytest.approx(curve.knee_utilization - 10, abs=1)
    assert rec.saving.breach_minutes > 0
    assert "averageValue: '" in rec.change and "DCGM_FI_DEV_GPU_UTIL" in rec.change
    [summary] = advice.hpas
    assert (summary.min_replicas, summary.max_replicas, summary.target_value) == (2, 10, 90)
    assert summary.recommended_target == rec.facts["recommended_target"]


def test_daily_peak_gets_prescale_advice(advice: Advice) -> None:
    [rec] = advice.of_kind(Kind.PRESCALE)
    # Breaches start in the 08:00 ramp and last to 11:00, on every one of the 4 days.
    assert rec.facts["peak_hours_utc"] == [8, 9, 10]
    assert rec.facts["period"] == "daily" and rec.facts["periods_seen"] >= 3
    assert "# at 07:45 UTC (cron: 45 7 * * *)" in rec.change and "# at 11:00 UTC (cron: 0 11 * * *)" in rec.change
    assert rec.title.endswith("daily peak 07:45-11:00 UTC")
    # 4 days x ~2 h of breach, give or take the 5-minute rate window at the edges.
    assert 4 * 100 <= rec.saving.breach_minutes <= 4 * 180


def test_slow_scale_down_is_costed(advice: Advice) -> None:
    [rec] = advice.of_kind(Kind.HPA_SCALE_DOWN)
    # 8 replicas held from 11:30 to 18:00 at 15 % when 2 would do: about 6 x 6 h x 4 days.
    assert 120 <= rec.saving.gpu_hours <= 170
    assert "stabilizationWindowSeconds: 300" in rec.change


def test_well_sized_workloads_get_no_recommendation(advice: Advice) -> None:
    assert advice.for_target(RANKER) == []
    assert advice.for_target(CHAT) == []  # busy at peak; only its HPA gets advice
    assert advice.tiering[RANKER.key].startswith("needs A100-80GB")


def test_usage_tables(advice: Advice) -> None:
    by = {u.entity: u for u in advice.workloads}
    assert by[RANKER].gpus == 2 and by[RANKER].idle_gpu_hours == 0
    assert by[NOTEBOOK].peak_fb_gib == pytest.approx(3.0, abs=0.1)
    assert by[NOTEBOOK].fb_total_gib == pytest.approx(80.0)
    assert by[RANKER].requested_gpu_hours == pytest.approx(by[RANKER].gpu_hours, rel=0.01)
    assert any(note.startswith("statefulset/training/trainer requested 96 GPU-hours") for note in advice.caveats)
    [free] = advice.unallocated
    assert free.entity.name == "GPU-b2" and free.idle_share == 1.0
    assert {u.entity.name for u in advice.nodes} == {"gpu-node-a", "gpu-node-b"}


def test_prices_turn_into_costs(prometheus: PrometheusServer, written: Written) -> None:
    classes = [
        {"name": "A100-80GB", "match": "*A100*80GB*", "memory_gib": 80, "relative_compute": 312, "price_per_hour": 4.0,
         "mig_profiles": [{"name": "2g.20gb", "compute_slices": 2, "memory_gib": 20, "max_instances": 3}]},
        {"name": "L4", "match": "*L4", "memory_gib": 24, "relative_compute": 121, "price_per_hour": 1.0},
    ]
    priced = advise(_config(prometheus.url, gpu_classes=classes), written.end)
    [idle] = [r for r in priced.of_kind(Kind.IDLE_GPU) if r.target == NOTEBOOK]
    assert idle.saving.cost == pytest.approx(4.0 * idle.saving.gpu_hours)
    [tier] = [r for r in priced.of_kind(Kind.SMALLER_GPU) if r.target == EMBEDDER]
    assert tier.facts["to_class"] == "L4"
    assert tier.saving.cost == pytest.approx(3.0 * tier.facts["gpu_hours"], rel=0.01)
    assert priced.total_saving.cost is not None and priced.total_saving.cost > 0


def test_reports_are_written(advice: Advice, tmp_path: Path) -> None:
    files = write_reports(advice, tmp_path)
    assert set(files.charts) == {"utilization", "idle_heatmap", "latency:hpa/serving/chat"}
    assert files.charts["latency:hpa/serving/chat"].name == "latency_serving_chat.png"
    for png in files.charts.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = files.markdown.read_text()
    assert "![Idle GPU-hours by weekday and hour](idle_heatmap.png)" in md
    assert "p99 crosses 100 ms above" in md
    html = files.html.read_text()
    assert html.count("<img ") == 3 and "<table>" in html
    data = json.loads(files.json.read_text())
    assert len(data["recommendations"]) == len(advice.recommendations)
    for rec in data["recommendations"]:
        assert rec["evidence"] and rec["change"] and rec["target"]["name"]
        # Every change a user would paste is valid YAML (shell lines are comments or plain).
        if rec["change_format"] == "yaml":
            yaml.safe_load(rec["change"])


def test_weekly_digest(prometheus: PrometheusServer, written: Written) -> None:
    [note] = digest(_config(prometheus.url), written.end)
    assert note.severity is Severity.INFO
    assert note.key.startswith("advisor:digest:") and note.labels == {"source": "advisor"}
    assert "GPU-hours" in note.summary and "notebook" in note.summary


def test_digest_goes_through_a_real_channel(
    prometheus: PrometheusServer, written: Written, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiops.notify.console import ConsoleNotifier
    from aiops.plugins import DeliveryStatus

    delivery = ConsoleNotifier().send(digest(_config(prometheus.url), written.end))
    assert delivery.status is DeliveryStatus.DELIVERED
    assert "Weekly GPU capacity advice" in capsys.readouterr().out


def test_digest_says_when_prometheus_is_down(written: Written) -> None:
    down = parse_config({"prometheus": {"url": "http://127.0.0.1:9", "timeout": "2s", "retries": 0}})
    [note] = digest(down, written.end)
    assert note.severity is Severity.WARNING
    assert "try again later" in note.summary


def test_cli(prometheus: PrometheusServer, written: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({"prometheus": {"url": prometheus.url}, "advisor": {"window": "4d"}}))
    end = (written.end + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["advise", "-c", str(cfg), "--end", end, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "[idle_gpu] deployment/research/notebook" in out and "[prescale] hpa/serving/chat" in out
    assert (tmp_path / "out" / "report.html").is_file()
    assert main(["advise", "--prometheus-url", prometheus.url, "--window", "4d", "--end", end, "--json", "--no-files"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in data["recommendations"]} >= {"idle_gpu", "mig", "hpa_target", "prescale", "hpa_scale_down"}


def test_cli_explains_an_outage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({"prometheus": {"url": "http://127.0.0.1:9", "timeout": "2s", "retries": 0}}))
    assert main(["advise", "-c", str(cfg), "--no-files"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect" in err and "Traceback" not in err
    assert main(["advise", "--prometheus-url", "not a url", "--no-files"]) == 2
    assert "is not a URL" in capsys.readouterr().err


def test_cli_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", "--demo", "--no-files"]) == 0
    out = capsys.readouterr().out
    assert "[mig] deployment/serving/embedder" in out and "[hpa_target] hpa/serving/chat" in out
