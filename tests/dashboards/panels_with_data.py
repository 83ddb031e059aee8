"""How many dashboard panels show data against a Prometheus: the figure for `aiops demo --serve`.

A panel shows data when any of its queries returns a series: instant panels (stat, table, bar
gauge) at this moment, graphs over the last 15 minutes, as Grafana would draw them.

    python -m tests.dashboards.panels_with_data http://127.0.0.1:PORT
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import requests

from tests.dashboards.grafana import DASHBOARD_FILES, Query, all_panels, load

ALL_VARIABLES = {
    variable["name"]: ".*"
    for path in DASHBOARD_FILES
    for variable in load(path)["templating"]["list"]
    if variable["type"] == "query"
}


@dataclass(frozen=True)
class Coverage:
    panels: int
    with_data: int
    empty: tuple[str, ...]


def _answers(url: str, query: Query, now: float) -> bool:
    expr = query.substituted(ALL_VARIABLES)
    if query.instant:
        params = {"query": expr, "time": now}
        endpoint = "query"
    else:
        params = {"query": expr, "start": now - 900, "end": now, "step": 60}
        endpoint = "query_range"
    body = requests.get(f"{url}/api/v1/{endpoint}", params=params, timeout=30).json()
    return body.get("status") == "success" and bool(body["data"]["result"])


def coverage(url: str) -> Coverage:
    now = time.time()
    panels = with_data = 0
    empty = []
    for path in DASHBOARD_FILES:
        for panel in all_panels(load(path)):
            if panel["type"] == "row":
                continue
            panels += 1
            targets = [Query(path.name, panel["title"], t["expr"], bool(t.get("instant"))) for t in panel["targets"]]
            if any(_answers(url, q, now) for q in targets):
                with_data += 1
            else:
                empty.append(f"{path.stem}: {panel['title']}")
    return Coverage(panels, with_data, tuple(empty))


if __name__ == "__main__":
    result = coverage(sys.argv[1])
    print(f"{result.with_data} of {result.panels} panels show data")
    for title in result.empty:
        print(f"  empty: {title}")
