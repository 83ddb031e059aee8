"""What an engineer reads on a phone, and that it survives the outbox unchanged."""

from __future__ import annotations

import math
from datetime import timedelta

from aiops.model import ActionStatus, Severity
from aiops.notify import formatting as fmt
from aiops.state.codec import notification_from_json, notification_to_json
from aiops.notify.build import build_notifications
from aiops.notify.routing import link_fields, render_links

from .conftest import NOW, finding, pod, result


def test_duration_and_numbers_are_compact() -> None:
    assert fmt.duration(timedelta(minutes=42)) == "42m"
    assert fmt.duration(timedelta(hours=1, minutes=5)) == "1h05m"
    assert fmt.duration(timedelta(days=2, hours=3)) == "2d3h"
    assert fmt.number(0.91234) == "0.912"
    assert fmt.number(123456789.0) == "1.23e+08"


def test_finding_notification_says_what_was_seen_done_and_where_to_look() -> None:
    [n] = build_notifications([finding()], [result()], cycle_id="cyc-1", min_severity=Severity.WARNING)
    links = render_links({"grafana": "https://g.example/d/pods?var-ns={namespace}&var-pod={pod}&from={from_ms}&to={to_ms}"},
                         link_fields(n, n.findings[0]))
    n = n.__class__(**{**n.__dict__, "labels": {**n.labels, **links}})
    d = fmt.digest([n])
    md = fmt.to_markdown(d)
    assert d.title.startswith("[CRITICAL] pod/ml/llama-0")
    assert "failure predicted in 42m" in d.title
    assert "score 0.95" in md
    assert "0.71 → 0.91" in md and "1 missing" in md
    assert "2026-11-25 09:42 UTC, in 42m (between 33m and 54m)" in md
    assert "restart_pod on pod/ml/llama-0: dry-run: would have applied" in md
    assert "`kubectl -n ml delete pod llama-0`" in md
    assert "cycle cyc-1" in md and "decision dec-1" in md and f"finding {n.findings[0].id}" in md
    start_ms = int((NOW - timedelta(hours=1)).timestamp() * 1000)
    assert f"[grafana](https://g.example/d/pods?var-ns=ml&var-pod=llama-0&from={start_ms}&to=" in md
    # Text and HTML carry the same facts.
    text, html = fmt.to_text(d), fmt.to_html(d)
    for fact in ("score 0.95", "in 42m", "decision dec-1", "kubectl -n ml delete pod llama-0"):
        assert fact in text and fact in html


def test_results_without_a_finding_are_told_on_their_own_and_observed_ones_are_not() -> None:
    node = pod("x").__class__("node", "gpu-node-9")
    ns = build_notifications(
        [], [result(node, ActionStatus.FAILED, "evacuate_node"), result(pod("y"), ActionStatus.OBSERVED)],
        cycle_id="c", min_severity=Severity.WARNING,
    )
    assert [(n.key, n.severity) for n in ns] == [("action:evacuate_node:node/gpu-node-9:failed", Severity.CRITICAL)]


def test_a_node_action_is_attached_to_the_pod_finding_on_that_node() -> None:
    node = pod().__class__("node", "gpu-node-1")
    [n] = build_notifications([finding()], [result(node, ActionStatus.BLOCKED, "evacuate_node")], cycle_id="c",
                              min_severity=Severity.WARNING)
    assert n.results and n.labels["action"] == "evacuate_node"


def test_findings_below_the_notify_floor_are_not_told() -> None:
    ns = build_notifications([finding(severity=Severity.INFO)], [], cycle_id="c", min_severity=Severity.WARNING)
    assert ns == []


def test_digest_puts_the_worst_first_and_counts_the_rest() -> None:
    ns = build_notifications(
        [finding(pod(f"p{i}"), severity=Severity.WARNING, score=0.8) for i in range(5)] + [finding(pod("hot"))],
        [], cycle_id="c", min_severity=Severity.WARNING,
    )
    d = fmt.digest(ns, max_items=3)
    assert d.title.startswith("[CRITICAL] 6 firing: pod/ml/hot")
    assert d.items[0].heading.startswith("🔴 [CRITICAL] pod/ml/hot")
    assert d.omitted == 3 and "+3 more" in fmt.to_markdown(d)


def test_markdown_stays_under_the_size_limit() -> None:
    ns = build_notifications([finding(pod(f"pod-{i:03d}")) for i in range(200)], [], cycle_id="c",
                             min_severity=Severity.WARNING)
    md = fmt.to_markdown(fmt.digest(ns), max_bytes=5000)
    assert len(md.encode()) <= 5000 and "not shown (message size limit)" in md
    assert md.count("#### ") >= 5  # whole items, as many as fit


def test_codec_round_trip_keeps_everything_a_message_shows() -> None:
    [n] = build_notifications([finding()], [result()], cycle_id="c", min_severity=Severity.WARNING)
    back = notification_from_json(notification_to_json(n))
    assert back.key == n.key and back.severity == n.severity and back.labels == n.labels
    f, g = n.findings[0], back.findings[0]
    assert (g.id, g.entity, g.entity.attributes, g.predicted_failure_at, g.failure_interval) == (
        f.id, f.entity, f.entity.attributes, f.predicted_failure_at, f.failure_interval)
    assert math.isnan(g.evidence.recent[2]) and g.evidence.recent[-1] == 0.91
    assert back.results[0].plan is not None and back.results[0].plan.command == n.results[0].plan.command  # type: ignore[union-attr]
    assert fmt.to_markdown(fmt.digest([back])) == fmt.to_markdown(fmt.digest([n]))


def test_links_need_every_placeholder() -> None:
    templates = {"grafana": "https://g/d?var-pod={pod}", "runbook": "https://rb/{signal}", "cycle": "https://a/{cycle_id}"}
    [n] = build_notifications([], [result(pod().__class__("node", "n1"), ActionStatus.FAILED, "evacuate_node")],
                              cycle_id="c9", min_severity=Severity.WARNING)
    links = render_links(templates, link_fields(n, None))
    assert links == {"__link_cycle__": "https://a/c9"}
