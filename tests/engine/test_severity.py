"""Severity is policy: a score and a lead grade a finding, and some signals never page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from aiops.config.policy import PolicyConfig, SeverityThresholds
from aiops.engine.decide import Policy
from aiops.model import Entity, Evidence, Finding, Mode, Severity

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POD = Entity("pod", "vllm-gemma-2-9b-0", "inference")


def _forecast(signal: str, score: float, lead: timedelta, *, confirmed: bool = False) -> Finding:
    return Finding("exhaustion", signal, POD, score, NOW, Evidence(f"{signal} climbing"),
                   predicted_failure_at=NOW + lead, confirmed=confirmed)


def test_a_full_kv_cache_is_told_as_a_warning_not_paged() -> None:
    # vLLM preempts and recomputes requests when its KV cache is full: slower, not down. What pages
    # is the objective that slows (TTFT, inter-token latency), when it is threatened.
    graded = Policy(PolicyConfig(), Mode.AUTO).grade
    assert graded(_forecast("inference_kv_cache_usage", 0.9999, timedelta(minutes=84))).severity is Severity.WARNING
    assert graded(_forecast("inference_kv_cache_usage", 0.95, timedelta(minutes=5))).severity is Severity.WARNING
    assert graded(_forecast("inference_kv_cache_usage", 1.0, timedelta(0), confirmed=True)).severity is Severity.WARNING
    # A lower score stays what it was; the memory limit (an OOMKill) still pages.
    assert graded(_forecast("inference_kv_cache_usage", 0.3, timedelta(hours=3))).severity is Severity.INFO
    assert graded(_forecast("pod_memory_usage_ratio", 0.9999, timedelta(minutes=84))).severity is Severity.CRITICAL


def test_which_signals_page_at_most_a_warning_is_the_users_setting() -> None:
    policy = PolicyConfig(severity=SeverityThresholds(warning_at_most=["pod_memory_*"]))
    graded = Policy(policy, Mode.AUTO).grade
    assert graded(_forecast("pod_memory_usage_ratio", 0.99, timedelta(minutes=10))).severity is Severity.WARNING
    assert graded(_forecast("inference_kv_cache_usage", 0.99, timedelta(minutes=10))).severity is Severity.CRITICAL


def test_a_pattern_that_is_not_a_signal_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="warning_at_most"):
        SeverityThresholds(warning_at_most=[""])
