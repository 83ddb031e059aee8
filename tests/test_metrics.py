"""/metrics as Prometheus sees it: default collectors, build info, zeroed counters, live readiness."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aiops import __version__, metrics
from aiops.config import parse_config
from aiops.engine.pipeline import Pipeline


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.REGISTRY).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_default_process_and_platform_collectors_and_build_info() -> None:
    names = {name for name, _ in _samples()}
    assert {"process_resident_memory_bytes", "process_open_fds", "python_info"} <= names
    assert any(name.startswith("python_gc_") for name in names)
    build = {labels: v for (name, labels), v in _samples().items() if name == "aiops_build_info"}
    assert len(build) == 1
    (labels, value), = build.items()
    assert dict(labels)["version"] == __version__ and value == 1.0


def test_labelled_counters_start_at_zero_for_known_labels(tmp_path: Path) -> None:
    config = parse_config({"state": {"path": str(tmp_path / "s.sqlite")}, "notify": {"channels": {}}}, "<test>")
    Pipeline.from_config(config).close()
    samples = _samples()
    # The first refusal by any rail must be visible to increase(): its series exists before it counts.
    for rail in ("kill_switch", "budget", "circuit_breaker"):
        key = ("aiops_actions_blocked_total", (("action", "restart_pod"), ("rail", rail)))
        assert key in samples, f"no zero sample for {key}"
    assert ("aiops_cycles_total", (("result", "degraded"),)) in samples
    assert ("aiops_stage_errors_total", (("stage", "collect"),)) in samples
    assert ("aiops_findings_total", (("detector", "exhaustion"), ("severity", "critical"))) in samples


def test_ready_is_computed_at_scrape_time() -> None:
    state = {"ready": (True, "ok")}
    metrics.READY.watch(lambda: state["ready"])
    try:
        assert _samples()[("aiops_ready", ())] == 1.0
        state["ready"] = (False, "Prometheus did not answer the last cycle")
        # Nobody called /readyz: the scrape itself asks.
        assert _samples()[("aiops_ready", ())] == 0.0

        def broken() -> tuple[bool, str]:
            raise RuntimeError("boom")

        metrics.READY.watch(broken)
        assert _samples()[("aiops_ready", ())] == 0.0
    finally:
        metrics.READY.watch(None)
    assert _samples()[("aiops_ready", ())] == 0.0
