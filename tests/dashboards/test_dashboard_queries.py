"""Every PromQL expression in the dashboards runs without error on the real Prometheus.

Prometheus is the Debian binary, loaded with the recording rules from alert-rules/ and a few hours
of synthetic cluster history (aiops.testing.synth), so expressions are parsed *and* evaluated
against series with the real label sets (many-to-many matching errors only show up with data).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from aiops.testing.prometheus import PrometheusServer
from aiops.testing.synth import Scenario, write_openmetrics
from tests.dashboards.grafana import DASHBOARD_DIR, Query, all_queries, load, metric_names

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
    write_openmetrics(Scenario(duration=timedelta(hours=2)), history)
    with PrometheusServer(work / "prometheus", openmetrics=history, rule_files=RULE_FILES) as server:
        _wait_for_rule_evaluation(server)
        yield server


def _wait_for_rule_evaluation(prometheus: PrometheusServer, timeout: float = 60.0) -> None:
    """Recording rules run on Prometheus's own clock, not over backfilled history: wait for one round."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = _get(prometheus, "rules", {"query": ""})["groups"]
        if groups and all(g["lastEvaluation"] > "0001-01-01T00:00:00Z" for g in groups):
            return
        time.sleep(0.5)
    raise AssertionError(f"recording rules were not evaluated within {timeout:.0f}s")


def _get(prometheus: PrometheusServer, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    response = requests.get(f"{prometheus.url}/api/v1/{endpoint}", params=params, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (
        f"{endpoint} failed ({response.status_code}): {body.get('errorType')}: {body.get('error')}\n{params['query']}"
    )
    return body["data"]


@pytest.mark.timeout(120)
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
    """Comparisons (``> 0``, ``< 30``) select anomalies, so an empty answer is the healthy one."""
    return re.search(r"[<>]|==", re.sub(r"\{[^}]*\}", "", expr)) is not None


def test_panels_fed_by_the_synthetic_cluster_show_data(prometheus: PrometheusServer) -> None:
    """Label names agree: each panel whose series the cluster exports returns data, not an empty graph."""
    present = set(_get(prometheus, "label/__name__/values", {"query": ""}))
    checked, empty = 0, []
    for query in QUERIES:
        names = metric_names(query.expr)
        # The synthetic GPUs are not MIG-partitioned, so MIG panels are rightly empty.
        if not names or not names <= present or _filters(query.expr) or "MIG" in query.where:
            continue
        checked += 1
        if not _get(prometheus, "query", {"query": query.substituted(ALL), "time": time.time()})["result"]:
            empty.append(f"{query.dashboard}: {query.where}")
    assert checked >= 30, f"only {checked} panels could be checked; has the synthetic data changed?"
    assert empty == []
