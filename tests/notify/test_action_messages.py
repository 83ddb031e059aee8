"""The messages people read about actions, rendered from a real cycle: each sentence has one owner.

The status is said by the status words, the rail by the rail, the command by the command field,
the finding's evidence by the "Seen" line; an action's detail says only what the action is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from aiops.commands.once import run_once
from aiops.config import parse_config
from aiops.model import CycleReport, Decision, Mode
from aiops.notify import formatting as fmt
from aiops.report import render_text
from aiops.demo.synth import start_demo_prometheus
from remediations.advise import Advise

from .conftest import finding


@pytest.fixture(scope="module")
def suggested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CycleReport]:
    """The demo cluster in suggest mode: restarts, advice, and fallbacks from infeasible plans."""
    workdir = tmp_path_factory.mktemp("demo-messages")
    prom = start_demo_prometheus(workdir)
    try:
        cfg = parse_config({
            "prometheus": {"url": prom.url, "lookback": "8h"},
            "safety": {"mode": "suggest", "dry_run": True},
            "notify": {"channels": {}},
            "state": {"path": str(workdir / "state.sqlite")},
        }, "<test>")
        yield run_once(cfg)
    finally:
        prom.stop()


def test_each_action_line_says_each_thing_once(suggested: CycleReport) -> None:
    decided = {d.id: d for d in suggested.decisions}
    results = [r for r in suggested.results if r.plan is not None]
    assert {r.action for r in results} >= {"advise", "restart_pod", "evacuate_node"}
    assert any("no safe" in r.detail for r in results), "the fallback to advice must be covered"
    for r in results:
        line = fmt.action_line(r)
        assert ".." not in line and "\n" not in line, line
        assert line.count("run:") == 1 and line.count("suggested") == 1, line
        for command in r.plan.command.splitlines():
            assert line.count(command) == 1, (command, line)
        # The finding's evidence is the finding's to show ("Seen"), not the action's.
        assert decided[r.decision_id].finding.evidence.summary.rstrip(". ") not in line, line
        # No clause repeated: a fallback's reason, the step, the advice each appear once.
        clauses = [c.strip() for c in re.split(r"[;:—·]", line) if len(c.strip()) > 12]
        assert len(clauses) == len(set(clauses)), line


def test_the_terminal_report_gives_each_command_once(suggested: CycleReport) -> None:
    text = render_text(suggested)
    for r in suggested.results:
        assert r.plan is not None
        for command in r.plan.command.splitlines():
            assert text.count(command) == 1, command
    assert ".." not in text.replace("...", "")


def test_advice_does_not_restate_the_evidence_or_the_command() -> None:
    f = finding()
    d = Decision(action="advise", target=f.entity, mode=Mode.SUGGEST, reason="rule r", finding=f)
    plan = Advise().plan(d, None)
    assert plan.summary == f"check {f.entity.key} (pod_memory_usage_ratio, from exhaustion)"
    assert plan.command.splitlines()[0].startswith("kubectl describe pod")
    # A reason given in the rule's params is shown once, joined without a double full stop.
    with_why = Advise().plan(replace(d, params={"why": "the cache warms up slowly."}), None)
    assert with_why.summary.endswith(": the cache warms up slowly") and ".." not in with_why.summary
