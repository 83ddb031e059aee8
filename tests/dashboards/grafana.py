"""Dashboards as Grafana loads them, and the PromQL they send, pulled out for the checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))

# What Grafana puts in place of its built-in variables; values that a real dashboard could send.
BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
# A template variable: ``$name`` or ``${name[:format]}``. ``$1`` is label_replace's capture group,
# which Grafana leaves alone (no variable has that name).
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?::\w+)?\}|([A-Za-z_]\w*))")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$", re.DOTALL)


@dataclass(frozen=True)
class Query:
    dashboard: str
    where: str  # panel title or variable name
    expr: str
    instant: bool = False

    def substituted(self, variables: dict[str, str]) -> str:
        """The expression as Grafana sends it, with "All" (``.*``) selected for every variable."""

        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name in BUILTINS:
                return BUILTINS[name]
            return variables[name]

        return VARIABLE.sub(value, self.expr)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query


def queries(path: Path) -> list[Query]:
    model = load(path)
    found = []
    for panel in all_panels(model):
        for t in panel.get("targets", []):
            found.append(Query(path.name, panel["title"], t["expr"], bool(t.get("instant"))))
    for annotation in model["annotations"]["list"]:
        if "expr" in annotation:
            found.append(Query(path.name, f"annotation {annotation['name']}", annotation["expr"]))
    for variable in model["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.match(variable_query(variable))
        assert match, f"{path.name}: variable {variable['name']} is not label_values(selector, label)"
        # label_values(selector, label) asks Prometheus for the selector's series.
        found.append(Query(path.name, f"variable {variable['name']}", match.group(1), instant=True))
    return found


def all_queries() -> list[Query]:
    return [q for path in DASHBOARD_FILES for q in queries(path)]


# PromQL keywords and functions the dashboards use, so they are not taken for metric names.
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "topk",
    "by",
    "on",
    "and",
    "or",
    "unless",
    "without",
    "rate",
    "increase",
    "histogram_quantile",
    "predict_linear",
    "vector",
    "time",
    "group_left",
    "offset",
    "bool",
    "le",
}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (raw series and recording rules)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_strings)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_ranges)
    without_groupings = re.sub(r"\b(by|on|without|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    names = set(re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?=\s*[{\[)]|\s*$|\s+[-+*/<>=a-z])", without_groupings))
    return {n for n in names if n not in PROMQL_WORDS and not n.startswith("$")}


def selectors(expr: str) -> list[tuple[str, str]]:
    """Each series selector of an expression as (metric name, its ``{...}`` matchers or "")."""

    def blank(match: re.Match[str]) -> str:
        return " " * len(match.group(0))

    # Same-length masks keep offsets: strings (their content), ranges, and grouping label lists.
    masked = re.sub(r'"[^"]*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', expr)
    masked = re.sub(r"\[[^\]]*\]", blank, masked)
    masked = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", blank, masked)
    found = []
    for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", masked):
        name = m.group(1)
        if m.group(3) or name in PROMQL_WORDS:
            continue  # a function call or a keyword
        braces = expr[m.start(2) : m.end(2)] if m.group(2) else ""
        found.append((name, braces))
    return found
