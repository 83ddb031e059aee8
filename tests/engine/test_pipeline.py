"""End to end: a full cycle against the real Prometheus, and what degrades a cycle."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from aiops.collect.collector import Collector
from aiops.collect.decode import RawSeries
from aiops.config import AiopsConfig, parse_config
from aiops.engine.correlate import unseen_entities
from aiops.engine.pipeline import Pipeline
from aiops.model import ActionStatus, Finding, Frame, Mode, Severity
from aiops.plugins import Detector
from aiops.state import StateFullError, Store
from aiops.state.audit import AuditLog
from aiops.demo.prometheus import PrometheusServer, free_port
from tests.prometheus_history import LEAK_CROSSES_AFTER
from tests.collect.test_collector import ONLY_MEMORY


def config(url: str, tmp_path: Path, **extra: object) -> AiopsConfig:
    data = {
        "prometheus": {"url": url, "lookback": "3h", "timeout": "5s", "retries": 0},
        "safety": {"mode": "auto", "dry_run": True},
        "notify": {"channels": {}},
        "state": {"path": str(tmp_path / "state.sqlite")},
        **ONLY_MEMORY,
        **extra,
    }
    return parse_config(data)


def test_cycle_predicts_memory_exhaustion_before_the_limit(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    pipeline = Pipeline.from_config(config(prometheus.url, tmp_path))
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    assert not report.degraded, report.errors
    assert set(report.stage_seconds) == {"collect", "detect", "decide", "act", "notify", "record"}
    leaky = [f for f in report.findings if f.entity.name == "leaky-0" and f.signal == "pod_memory_usage_ratio"]
    assert len(leaky) == 1
    f = leaky[0]
    assert f.severity is Severity.CRITICAL and f.predicted_failure_at is not None
    true_crossing = history_end + LEAK_CROSSES_AFTER
    # Reported with a lead time, before the limit is reached, near the true crossing.
    assert timedelta(0) < f.lead_time < timedelta(hours=1)
    assert abs(f.predicted_failure_at - true_crossing) < timedelta(minutes=10)
    assert not any(f.entity.name == "steady-0" and (f.severity or Severity.INFO).rank > 0 for f in report.findings)
    decision = next(d for d in report.decisions if d.target.name == "leaky-0")
    assert decision.action == "restart_pod" and decision.mode is Mode.AUTO
    result = next(r for r in report.results if r.decision_id == decision.id)
    # No cluster configured: the plan is reported (dry-run or suggestion), nothing is written.
    assert result.status in {ActionStatus.DRY_RUN, ActionStatus.SUGGESTED}
    assert result.plan is not None and any(m.name == "leaky-0" for m in result.plan.mutations)
    audit = AuditLog(Store(tmp_path / "state.sqlite"))
    kinds = {e["kind"] for e in audit.events(cycle_id=report.cycle_id)}
    assert {"finding", "decision", "action"} <= kinds


class Exploding(Detector):
    name = "exploding"

    def detect(self, frame: Frame) -> list[Finding]:
        raise RuntimeError("bug in a detector")


def test_failing_stage_degrades_and_never_acts(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    pipeline = Pipeline.from_config(config(prometheus.url, tmp_path))
    pipeline.detectors.append(("exploding", Exploding()))
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    assert report.degraded and any("bug in a detector" in e.message for e in report.errors)
    # The other detectors still reported, but nothing was acted on from a partial picture.
    assert any(f.entity.name == "leaky-0" for f in report.findings)
    assert report.results and all(r.status is ActionStatus.SKIPPED for r in report.results)
    ok, reason = pipeline.ready()
    assert not ok and "no successful cycle" in reason


def test_unreachable_prometheus_degrades_without_actions(tmp_path: Path) -> None:
    pipeline = Pipeline.from_config(config(f"http://127.0.0.1:{free_port()}", tmp_path))
    try:
        report = pipeline.run_cycle()
    finally:
        pipeline.close()
    assert report.degraded and report.findings == [] and report.results == []
    assert all(e.stage == "collect" and "cannot connect" in e.message for e in report.errors)
    assert pipeline.ready() == (False, "no successful cycle yet")


def test_cycles_never_overlap(prometheus: PrometheusServer, tmp_path: Path) -> None:
    pipeline = Pipeline.from_config(config(prometheus.url, tmp_path))
    try:
        with pipeline._lock, pytest.raises(RuntimeError, match="never overlap"):
            pipeline.run_cycle()
    finally:
        pipeline.close()


def test_broken_ensemble_member_degrades_but_keeps_the_healthy_members_findings(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    from aiops.model import Entity, Evidence
    from aiops.plugins import Detection

    class PartlyBroken(Detector):
        name = "partly_broken"

        def detect(self, frame: Frame) -> list[Finding]:
            return self.run(frame).findings

        def run(self, frame: Frame) -> Detection:
            kept = Finding("seasonal", "pod_restarts", Entity("pod", "steady-0", "ml"), 0.95, frame.now, Evidence("x"))
            return Detection([kept], ("member 'multivariate': RuntimeError: boom",))

    pipeline = Pipeline.from_config(config(prometheus.url, tmp_path))
    pipeline.detectors = [("partly_broken", PartlyBroken())]
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    assert report.degraded and "multivariate" in report.errors[0].message
    assert [f.entity.name for f in report.findings] == ["steady-0"]  # told to people ...
    assert all(r.status is ActionStatus.SKIPPED for r in report.results)  # ... never acted on


class _RecordedSource:
    """A source with range queries only, as ``aiops replay``'s recorded history."""

    def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RawSeries]:
        return []

    def close(self) -> None:
        pass


def test_a_source_without_instant_queries_builds_a_pipeline_without_the_webhook_inbox(tmp_path: Path) -> None:
    """The inbox checks an alert against what Prometheus fires now; a recorded history cannot say."""
    cfg = config(f"http://127.0.0.1:{free_port()}", tmp_path)
    pipeline = Pipeline.from_config(cfg, collector=Collector(cfg, client=_RecordedSource()))
    try:
        assert pipeline.extra_findings == []
    finally:
        pipeline.close()


def test_the_multivariate_reference_is_saved_each_cycle_and_given_back_after_a_restart(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    # The pods' memory and restarts are one pool; its reference is fitted on the first cycle's
    # lookback, saved in the record stage, and a new pipeline on the same state file starts from it.
    cfg = config(prometheus.url, tmp_path, detectors=[{"plugin": "multivariate"}])
    pipeline = Pipeline.from_config(cfg)
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    assert not report.degraded, report.errors
    [(_, first)] = pipeline.detectors
    saved = pipeline.detector_state.load("multivariate")
    assert saved and set(saved) == {f"{k}|{','.join(f)}" for k, f in first._pools_state}  # type: ignore[attr-defined]

    restarted = Pipeline.from_config(cfg)
    try:
        [(_, second)] = restarted.detectors
        for pool, state in first._pools_state.items():  # type: ignore[attr-defined]
            again = second._pools_state[pool]  # type: ignore[attr-defined]
            assert again.saved.fitted_at == state.saved.fitted_at
            np.testing.assert_array_equal(again.model.components, state.model.components)
    finally:
        restarted.close()


def test_a_reference_the_state_file_could_not_take_is_written_at_the_next_cycle(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    cfg = config(prometheus.url, tmp_path, detectors=[{"plugin": "multivariate"}])
    pipeline = Pipeline.from_config(cfg)
    book = pipeline.detector_state
    real_save = book.save

    def full(*args: object, **kwargs: object) -> None:
        raise StateFullError("disk full")

    try:
        book.save = full  # type: ignore[method-assign]
        failed = pipeline.run_cycle(history_end)
        assert any(e.stage == "record" for e in failed.errors)
        assert book.load("multivariate") == {}
        book.save = real_save  # type: ignore[method-assign]
        pipeline.run_cycle(history_end + timedelta(minutes=1))
    finally:
        pipeline.close()
    assert book.load("multivariate")  # the fit of the first cycle, kept pending, is written now


def _headroom_on_pod_memory(url: str, tmp_path: Path) -> AiopsConfig:
    """The ensemble with its headroom member on the pods' memory, the series this history holds."""
    members = {"headroom": {"signals": ["pod_memory_usage_ratio"]}}
    return config(url, tmp_path, detectors=[{"plugin": "ensemble", "params": {"members": members}}])


def test_the_ensembles_headroom_bins_are_saved_as_its_member_and_given_back_after_a_restart(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    # The ensemble's headroom member (pointed at the pods' memory, the series this history holds)
    # keeps its bins under `ensemble.headroom`; a new pipeline on the same state file holds them.
    cfg = _headroom_on_pod_memory(prometheus.url, tmp_path)
    pipeline = Pipeline.from_config(cfg)
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    assert not report.degraded, report.errors
    [(_, ensemble)] = pipeline.detectors
    held = {key: (first, bins) for key, first, bins in ensemble.members["headroom"]._daily.held()}  # type: ignore[attr-defined]
    assert held and len(pipeline.detector_state.load("ensemble.headroom")) == len(held)

    restarted = Pipeline.from_config(cfg)
    try:
        [(_, again)] = restarted.detectors
        back = {key: (first, bins) for key, first, bins in again.members["headroom"]._daily.held()}  # type: ignore[attr-defined]
        assert back.keys() == held.keys()
        for key, (first, bins) in held.items():
            assert back[key][0] == first
            np.testing.assert_array_equal(back[key][1], bins)
    finally:
        restarted.close()


def test_detector_state_of_series_long_gone_is_pruned_and_live_state_is_kept(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    # A rollout renames every pod: the bins of the old names are never saved again. Past
    # state.detector_state_retention they go; the live series' bodies, saved this cycle, stay.
    cfg = _headroom_on_pod_memory(prometheus.url, tmp_path)
    pipeline = Pipeline.from_config(cfg)
    try:
        pipeline.run_cycle(history_end)
        live = set(pipeline.detector_state.load("ensemble.headroom"))
        gone, recent = 'pod_memory_usage_ratio{pod="web-old-1"}', 'pod_memory_usage_ratio{pod="web-old-2"}'
        pipeline.detector_state.save("ensemble.headroom", {gone: b"old"}, (history_end - timedelta(days=16)).timestamp())
        pipeline.detector_state.save("ensemble.headroom", {recent: b"old"}, (history_end - timedelta(days=14)).timestamp())
    finally:
        pipeline.close()
    restarted = Pipeline.from_config(cfg)  # names the two bodies it cannot read, learns them again
    try:
        restarted.run_cycle(history_end + timedelta(minutes=1))
        assert live and set(restarted.detector_state.load("ensemble.headroom")) == live | {recent}
    finally:
        restarted.close()


class SkipsLeaky(Detector):
    """Raises on the leaky pod's series alone, contained by detectors._isolation as every detector does."""

    name = "skips_leaky"

    def detect(self, frame: Frame) -> list[Finding]:
        from detectors._isolation import isolated

        def score(series: object) -> None:
            raise FloatingPointError("a value no check anticipated")

        for s in frame.series:
            if s.entity.name == "leaky-0":
                isolated(self.name, s, score, s)
        return []


def test_entities_a_detector_skipped_are_handed_to_the_act_stage_as_unseen(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    # What is unseen this cycle is composed once, by the pipeline (correlate.unseen_entities):
    # the act stage takes it as it is and derives nothing from the findings itself.
    pipeline = Pipeline.from_config(config(prometheus.url, tmp_path))
    pipeline.detectors.append(("skips_leaky", SkipsLeaky()))
    seen: list[dict[str, str]] = []
    act = pipeline.actor.act

    def recording_act(*args: object, **kwargs: object) -> object:
        seen.append(dict(kwargs["unseen"]))  # type: ignore[call-overload]
        return act(*args, **kwargs)  # type: ignore[arg-type]

    pipeline.actor.act = recording_act  # type: ignore[method-assign]
    try:
        report = pipeline.run_cycle(history_end)
    finally:
        pipeline.close()
    assert not report.degraded, report.errors  # one series skipped is not a failed detector
    [unseen] = seen
    assert list(unseen) == ["pod/ml/leaky-0"]
    assert "skips_leaky" in unseen["pod/ml/leaky-0"]
    assert unseen == unseen_entities(report.findings, report.unjudged)


def test_a_new_daemon_learns_the_days_before_its_first_frame_from_prometheus(
    prometheus: PrometheusServer, history_end: datetime, tmp_path: Path
) -> None:
    """The exhaustion forecaster compares today's climb with the previous days' at the same hour.
    A new daemon (a new installation, a new pod) kept none, although Prometheus held them: it now
    reads the days before its first frame (which begins ``lookback`` = 3 h before now) at
    5-minute steps, and the first cycle folds its own frame in after them."""
    from detectors._daily import BIN_SECONDS

    pipeline = Pipeline.from_config(config(prometheus.url, tmp_path))
    try:
        [member] = [part for name, part in pipeline._parts() if name == "ensemble.exhaustion"]
        assert list(member._daily.held()) == []
        pipeline.learn_history(history_end)
        held = {dict(key[1])["pod"]: (first, dense) for key, first, dense in member._daily.held()}
        assert set(held) == {"leaky-0", "steady-0"}
        first, dense = held["leaky-0"]
        frame_starts = (history_end - timedelta(hours=3)).timestamp()
        # The 3 h Prometheus holds before the frame (it holds 6 h), a bin each 5 minutes.
        assert first * BIN_SECONDS == pytest.approx(frame_starts - 3 * 3600, abs=BIN_SECONDS)
        assert (first + dense.shape[0]) * BIN_SECONDS <= frame_starts + BIN_SECONDS
        assert np.isfinite(dense).sum() >= 35
        report = pipeline.run_cycle(history_end)
        assert not report.degraded, report.errors
        first_after, dense_after = {dict(k[1])["pod"]: (f, d) for k, f, d in member._daily.held()}["leaky-0"]
        assert first_after == first and dense_after.shape[0] > dense.shape[0]  # the frame's bins after them
    finally:
        pipeline.close()


def test_a_daemon_that_cannot_read_the_days_before_it_learns_them_from_its_cycles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Prometheus unreachable at start: the days are not learnt, which is said once, and nothing
    else changes (no exception, no cycle degraded by it)."""
    pipeline = Pipeline.from_config(config(f"http://127.0.0.1:{free_port()}", tmp_path))
    try:
        with caplog.at_level("WARNING", logger="aiops.engine.pipeline"):
            pipeline.learn_history()
    finally:
        pipeline.close()
    warnings = [r.getMessage() for r in caplog.records if "did not learn the days before its first cycle" in r.getMessage()]
    # Once for each detector that learns (not once a chunk or a signal).
    assert sorted(w.split()[1] for w in warnings) == [
        "ensemble.exhaustion", "ensemble.quality_drift", "ensemble.seasonal"], warnings
    assert all("learns them from the cycles it runs" in w for w in warnings)
