"""alert-rules/: promtool accepts every file, its unit tests pass, and they cover every alert."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiops.demo.prometheus import find_binary

RULES_DIR = Path(__file__).resolve().parents[2] / "alert-rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _rules(kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(rule for rule in group["rules"] if kind in rule)
    return found


def test_rule_and_test_files_exist() -> None:
    assert len(RULE_FILES) >= 2
    assert len(TEST_FILES) >= 2


@pytest.mark.timeout(60)
def test_promtool_check_rules_passes() -> None:
    # --lint-fatal: duplicate rules (same name and labels) are errors, not a warning nobody reads.
    result = _promtool("check", "rules", "--lint-fatal", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_promtool_unit_tests_pass() -> None:
    # promtool resolves rule_files relative to the test file, so run from its folder.
    result = subprocess.run(
        [find_binary("promtool"), "test", "rules", *(p.name for p in TEST_FILES)],
        cwd=RULES_DIR / "tests",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES), result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    tested_rule_files: set[Path] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        tested_rule_files.update((path.parent / f).resolve() for f in doc["rule_files"])
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules("alert")}
    assert alerts, "no alerts found"
    assert tested_rule_files == {p.resolve() for p in RULE_FILES}
    assert alerts - firing == set(), "alerts without a firing unit test"
    assert alerts - quiet == set(), "alerts without a not-firing unit test"
    assert (firing | quiet) - alerts == set(), "unit tests for alerts that do not exist"


def test_recording_rules_have_unit_tests() -> None:
    """Each recorded series is checked by value, directly or through an alert built on it."""
    tested_exprs = ""
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested_exprs += " ".join(c["expr"] for c in case.get("promql_expr_test", []))
    alert_exprs = " ".join(rule["expr"] for rule in _rules("alert"))
    untested = [r["record"] for r in _rules("record") if r["record"] not in tested_exprs + alert_exprs]
    # Inputs of a tested recording rule are covered through it.
    recorded_exprs = " ".join(r["expr"] for r in _rules("record") if r["record"] in tested_exprs + alert_exprs)
    assert [name for name in untested if name not in recorded_exprs] == []


@pytest.mark.parametrize("rule", _rules("alert"), ids=lambda r: r["alert"])
def test_alert_has_severity_and_actionable_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]
    assert "for" in rule, "every alert needs a 'for' so one odd scrape does not page"


RUNBOOKS = RULES_DIR.parent / "docs" / "runbooks"
RUNBOOK_PREFIX = "https://github.com/aiops/aiops/blob/main/docs/runbooks/"


@pytest.mark.parametrize("rule", _rules("alert"), ids=lambda r: r["alert"])
def test_alert_links_its_runbook(rule: dict[str, Any]) -> None:
    """kubernetes-mixin style: runbook_url on every alert, one page per alert in docs/runbooks/."""
    url = rule["annotations"].get("runbook_url", "")
    assert url == f"{RUNBOOK_PREFIX}{rule['alert'].lower()}.md", url
    page = RUNBOOKS / url.rsplit("/", 1)[1]
    assert page.exists(), f"no runbook {page}"
    text = page.read_text()
    assert text.startswith(f"# {rule['alert']}\n")
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
        assert section in text, f"{page.name} lacks {section}"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in _rules("alert")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_seed_thresholds_are_the_ones_users_asked_for() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _rules("alert")}
    # LLM latency objectives are TTFT and ITL (the catalog's defaults); end-to-end latency grows
    # with the answer's length and is never alerted on.
    assert exprs["InferenceTimeToFirstTokenP99High"].endswith("time_to_first_token_seconds:p99_rate5m > 2")
    assert exprs["InferenceInterTokenLatencyP99High"].endswith("inter_token_latency_seconds:p99_rate5m > 0.1")
    assert not [name for name, expr in exprs.items() if "e2e_request_latency" in expr]
    assert exprs["GpuUtilizationHigh"].endswith("> 80")
    assert exprs["GpuUtilizationLow"].endswith("< 20")
    assert exprs["ModelAccuracyDrop"].endswith(">= 0.05")
    # node-exporter's mixin has NodeFilesystemSpaceFillingUp: no second alert for one full disk.
    assert "NodeFilesystemFillingUp" not in exprs
    assert "predict_linear" in exprs["NodeMemoryExhaustionPredicted"]
