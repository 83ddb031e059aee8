"""Every PromQL expression in the dashboards runs without error on the real Prometheus.

Prometheus is the Debian binary, loaded with the recording rules from alert-rules/ and the demo
cluster's synthetic history (aiops.demo.synth: a leaking pod, a sick GPU, a slow and a drifting
model...), and it scrapes a real `aiops run` daemon cycling over that history. So expressions are
parsed *and* evaluated against series with the real label sets (many-to-many matching errors only
show up with data), and the daemon's own dashboard reads the metrics the daemon really exports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from aiops.demo.prometheus import PrometheusServer, free_port
from aiops.demo.synth import demo_scenario, write_openmetrics
from tests.dashboards.grafana import (
    DASHBOARD_DIR,
    Query,
    all_queries,
    load,
    metric_names,
)

# Starts daemons or real servers (tens of seconds each): `-m "not slow"` leaves it out of the inner loop.
pytestmark = pytest.mark.slow

RULE_FILES = sorted((DASHBOARD_DIR.parent / "alert-rules").glob("*.rules.yml"))
QUERIES = all_queries()
ALL = {
    variable["name"]: ".*"
    for path in sorted(DASHBOARD_DIR.glob("*.json"))
    for variable in load(path)["templating"]["list"]
    if variable["type"] == "query"
}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    work = tmp_path_factory.mktemp("dashboards")
    history = work / "history.om"
    write_openmetrics(demo_scenario(), history)
    daemon_port = free_port()
    scrape: dict[str, object] = {
        "job_name": "aiops",
        "scrape_interval": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
    }
    with PrometheusServer(
        work / "prometheus", openmetrics=history, rule_files=RULE_FILES, scrape_configs=[scrape]
    ) as server:
        daemon = _start_daemon(server, daemon_port, work)
        try:
            _wait_for(lambda: _cycles_scraped(server) >= 2, "two daemon cycles scraped", daemon)
            _wait_for(lambda: _rules_evaluated(server), "one round of recording rules", daemon)
            yield server
        finally:
            daemon.terminate()
            daemon.wait(timeout=15)


def _start_daemon(prometheus: PrometheusServer, port: int, work: Path) -> subprocess.Popen[str]:
    config = {
        "prometheus": {"url": prometheus.url, "lookback": "2h", "timeout": "10s"},
        "schedule": {"interval": "2s"},
        "safety": {"mode": "auto", "dry_run": True},
        "server": {"host": "127.0.0.1", "port": port},
        "state": {"path": str(work / "state.sqlite")},
        "notify": {"channels": {"console": {"plugin": "console"}}},
    }
    path = work / "aiops.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [sys.executable, "-m", "aiops", "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for(done: Callable[[], bool], what: str, daemon: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            stderr = daemon.stderr.read() if daemon.stderr else ""
            raise AssertionError(f"aiops run exited with {daemon.returncode}: {stderr[-3000:]}")
        if done():
            return
        time.sleep(0.5)
    raise AssertionError(f"waited {timeout:.0f}s for {what}")


def _cycles_scraped(prometheus: PrometheusServer) -> float:
    result = _get(prometheus, "query", {"query": "sum(aiops_cycles_total)"})["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _rules_evaluated(prometheus: PrometheusServer) -> bool:
    """Recording rules run on Prometheus's own clock, not over backfilled history."""
    groups = _get(prometheus, "rules", {"query": ""})["groups"]
    return bool(groups) and all(g["lastEvaluation"] > "0001-01-01T00:00:00Z" for g in groups)


def _get(prometheus: PrometheusServer, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    response = requests.get(f"{prometheus.url}/api/v1/{endpoint}", params=params, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (
        f"{endpoint} failed ({response.status_code}): {body.get('errorType')}: {body.get('error')}\n{params['query']}"
    )
    return body["data"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.dashboard}:{q.where}")
def test_expression_evaluates(prometheus: PrometheusServer, query: Query) -> None:
    expr = query.substituted(ALL)
    now = time.time()
    _get(prometheus, "query", {"query": expr, "time": now})
    if not query.instant:
        _get(prometheus, "query_range", {"query": expr, "start": now - 3600, "end": now, "step": 60})


def test_rules_load_in_prometheus(prometheus: PrometheusServer) -> None:
    groups = _get(prometheus, "rules", {"query": ""})["groups"]
    loaded = {Path(g["file"]).name for g in groups}
    assert loaded == {p.name for p in RULE_FILES}
    assert all(rule["health"] != "err" for g in groups for rule in g["rules"])


def _filters(expr: str) -> bool:
    """Comparisons (``> 0``, ``< 30``) select anomalies, so an empty answer is the healthy one.

    ``==`` inside parentheses is a join condition (``and on (instance) (aiops_leader == 1)``),
    not an anomaly: such a panel must show data, so it is checked, not skipped. Only a ``==`` at
    the top level of the expression filters.
    """
    bare = re.sub(r"\{[^}]*\}", "", expr)
    if re.search(r"[<>]", bare):
        return True
    depth = 0
    for i, ch in enumerate(bare):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and bare.startswith("==", i):
            return True
    return False


def test_join_conditions_are_not_taken_for_filters() -> None:
    assert not _filters('max(max by (job, instance) (x{a="b"}) and on (job, instance) (aiops_leader{c="d"} == 1))')
    assert _filters("count(up) == 0") and _filters("x > 0") and not _filters("sum(x)")


def test_panels_show_data_for_what_the_cluster_and_daemon_export(prometheus: PrometheusServer) -> None:
    """Label names agree: each panel whose series exist returns data, not an empty graph."""
    present = set(_get(prometheus, "label/__name__/values", {"query": ""}))
    checked: dict[str, int] = {}
    empty = []
    for query in QUERIES:
        names = metric_names(query.expr)
        # The synthetic GPUs are not MIG-partitioned, so MIG panels are rightly empty.
        if not names or not names <= present or _filters(query.expr) or "MIG" in query.where:
            continue
        checked[query.dashboard] = checked.get(query.dashboard, 0) + 1
        if not _get(prometheus, "query", {"query": query.substituted(ALL), "time": time.time()})["result"]:
            empty.append(f"{query.dashboard}: {query.where}: {query.expr}")
    assert empty == []
    # Most panels were checked, including the daemon's own: its cycles, stages and findings.
    assert checked.keys() == {p.name for p in DASHBOARD_DIR.glob("*.json")}
    assert sum(checked.values()) >= 50, checked
    assert {"aiops_cycle_duration_seconds_bucket", "aiops_findings_total", "aiops_active_findings"} <= present
