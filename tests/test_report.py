"""The cycle report people read (``aiops run --once``)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops.model import CycleReport, Entity, Evidence, Finding, Severity
from aiops.report import render_text

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_a_finding_whose_recent_values_are_not_all_finite_is_rendered_with_its_gaps() -> None:
    """A detector plugin may hand over an infinite value among its recent ones (a ratio over a
    zero limit); the report's own sparkline raised on it ("cannot convert float NaN to integer")
    and the cycle's summary was lost. Gaps show as spaces, as in the notifications."""
    f = Finding("exhaustion", "pod_memory_usage_ratio", Entity("pod", "web-0", "ml"), 0.9, NOW,
                Evidence("working set near its limit", recent=(0.7, float("inf"), float("nan"), 0.9)),
                severity=Severity.WARNING)
    text = render_text(CycleReport("c1", NOW, NOW, findings=[f]))
    [line] = [line for line in text.splitlines() if "recent:" in line]
    assert line.split("recent: ")[1] == "▁  █"
