"""Each dashboard is a Classic Grafana JSON model that imports into Grafana 10/11 without edits."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.metrics import REGISTRY
from tests.dashboards.grafana import (
    BUILTINS,
    DASHBOARD_DIR,
    DASHBOARD_FILES,
    LABEL_VALUES,
    VARIABLE,
    all_panels,
    all_queries,
    load,
    metric_names,
    selectors,
    variable_query,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RULES_DIR = DASHBOARD_DIR.parent / "alert-rules"


def test_the_four_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARD_FILES} == {
        "aiops-cluster-health.json",
        "aiops-gpu-fleet.json",
        "aiops-inference-quality.json",
        "aiops-self.json",
    }


def test_json_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARD_DIR / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate  # dataclasses look their module up while the class is built
    spec.loader.exec_module(generate)
    for name, build in generate.DASHBOARDS.items():
        committed = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert committed == generate.render(build), f"{name} is stale: run `python dashboards/generate.py`"


def test_uids_are_unique_and_valid() -> None:
    uids = [load(p)["uid"] for p in DASHBOARD_FILES]
    assert len(set(uids)) == len(uids)
    # Grafana refuses uids longer than 40 characters or with other characters.
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids)


def test_top_level_model(dashboard: tuple[Path, dict[str, Any]]) -> None:
    _, model = dashboard
    assert model["title"].startswith("aiops / ")
    assert isinstance(model["schemaVersion"], int) and 36 <= model["schemaVersion"] <= 41
    assert model["time"]["from"].startswith("now-")
    assert model["__inputs"][0] == {
        "name": "DS_PROMETHEUS",
        "label": "Prometheus",
        "description": model["__inputs"][0]["description"],
        "type": "datasource",
        "pluginId": "prometheus",
        "pluginName": "Prometheus",
    }
    required_panels = {r["id"] for r in model["__requires"] if r["type"] == "panel"}
    used_panels = {p["type"] for p in all_panels(model) if p["type"] != "row"}
    assert required_panels == used_panels


def test_panel_ids_unique_and_grid_valid(dashboard: tuple[Path, dict[str, Any]]) -> None:
    _, model = dashboard
    panels = list(all_panels(model))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, panel["title"]
        assert g["x"] + g["w"] <= 24, f"{panel['title']} runs off the 24-column grid"
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def test_every_panel_uses_the_datasource_variable(dashboard: tuple[Path, dict[str, Any]]) -> None:
    _, model = dashboard
    for panel in all_panels(model):
        if panel["type"] == "row":
            assert not panel.get("targets")
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for t in panel["targets"]:
            assert t["datasource"] == DATASOURCE, panel["title"]
            assert t["expr"].strip(), f"{panel['title']} has an empty expr"
        assert panel["fieldConfig"]["defaults"]["unit"], f"{panel['title']} has no unit"
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None and all(a["value"] < b["value"] for a, b in itertools.pairwise(steps[1:]))


def test_query_annotations_use_the_datasource_variable(dashboard: tuple[Path, dict[str, Any]]) -> None:
    _, model = dashboard
    queried = [a for a in model["annotations"]["list"] if "expr" in a]
    assert queried, "every dashboard marks aiops's actions"
    for annotation in queried:
        assert annotation["datasource"] == DATASOURCE and annotation["expr"].strip()


def test_template_variables_defined_before_use(dashboard: tuple[Path, dict[str, Any]]) -> None:
    _, model = dashboard
    variables = model["templating"]["list"]
    first = variables[0]
    assert (first["type"], first["name"], first["query"]) == ("datasource", "datasource", "prometheus")
    defined = {"datasource"}
    for variable in variables[1:]:
        assert variable["datasource"] == DATASOURCE
        used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(variable_query(variable))}
        assert used <= defined, f"variable {variable['name']} uses {used - defined} before it is defined"
        assert variable["includeAll"] and variable["allValue"] == ".*"
        defined.add(variable["name"])
    for panel in all_panels(model):
        for t in panel.get("targets", []):
            used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(t["expr"])}
            assert used <= defined | set(BUILTINS), f"{panel['title']} uses undefined {used - defined - set(BUILTINS)}"


def test_recording_rules_used_by_dashboards_exist() -> None:
    recorded = {
        rule["record"]
        for path in RULES_DIR.glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    used = {
        name for q in all_queries() for name in metric_names(q.expr) if ":" in name and not name.startswith("vllm:")
    }
    assert used, "the dashboards should read the recording rules"
    assert used <= recorded, f"recording rules missing from alert-rules/: {sorted(used - recorded)}"


def test_aiops_metric_names_match_the_daemon() -> None:
    exported = {sample_name for metric in REGISTRY.collect() for sample_name in _sample_names(metric)}
    used = {name for q in all_queries() for name in metric_names(q.expr) if name.startswith("aiops_")}
    assert len(used) >= 15
    assert used <= exported, f"dashboards query metrics aiops does not export: {sorted(used - exported)}"


def _sample_names(metric: Any) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""], "info": ["_info"]}
    return {metric.name + s for s in suffixes.get(metric.type, [""])}


def test_every_selector_is_scoped_to_the_chosen_cluster(dashboard: tuple[Path, dict[str, Any]]) -> None:
    """One dashboard for many clusters (kubernetes-mixin style): every series read is filtered by
    ``$cluster``, and the daemon's own by ``$job``, so a multi-cluster Prometheus mixes nothing."""
    path, model = dashboard
    names = {v["name"] for v in model["templating"]["list"]}
    assert "cluster" in names
    # (expression, whether aiops metrics in it must carry $job)
    exprs = [(t["expr"], True) for p in all_panels(model) for t in p.get("targets", [])]
    exprs += [(a["expr"], True) for a in model["annotations"]["list"] if "expr" in a]
    for v in model["templating"]["list"]:
        if v["type"] == "query" and v["name"] != "cluster":
            match = LABEL_VALUES.match(variable_query(v))
            assert match, v["name"]
            exprs.append((match.group(1), v["name"] != "job"))  # the $job list itself spans the jobs
    unscoped = []
    for expr, with_job in exprs:
        for name, braces in selectors(expr):
            job = with_job and name.startswith(("aiops_", "stage:aiops_")) and "job" in names
            needed = ['cluster=~"$cluster"'] + (['job=~"$job"'] if job else [])
            if not all(matcher in braces for matcher in needed):
                unscoped.append(f"{name}{braces} in {expr}")
    assert unscoped == [], f"{path.name}: " + "\n".join(unscoped)


def test_selectors_are_found_in_expressions() -> None:
    assert selectors('sum by (node) (rate(x_total{a="b"}[5m])) / on (node) y and z{c=~"$d"} > 0 or vector(0)') == [
        ("x_total", '{a="b"}'), ("y", ""), ("z", '{c=~"$d"}')]
    # String arguments are not selectors, and label_replace's "$1" is no template variable.
    expr = 'label_replace(x{a="b"}, "nodename", "$1", "instance", "(.+?)")'
    assert selectors(expr) == [("x", '{a="b"}')] and not list(VARIABLE.finditer(expr))


def test_latency_objectives_are_ttft_and_itl_with_the_catalogs_defaults() -> None:
    """LLM latency objectives are time to first token and inter-token latency: breaches are
    counted on those, against the daemon's own defaults; end-to-end latency is shown as context
    (it grows with the answer's length) and never compared with an objective."""
    queries = [q for q in all_queries() if q.dashboard == "aiops-inference-quality.json"]
    def objective(recorded: str) -> set[float]:
        """Thresholds of the breach counts (``count(RECORDED{...} > X)``) on one recorded p99."""
        pattern = re.compile(rf"count\({recorded}:p99_rate5m\{{[^}}]*\}} > ([0-9.]+)\)")
        return {float(m.group(1)) for q in queries for m in pattern.finditer(q.expr)}

    assert objective("namespace_model_name:vllm_time_to_first_token_seconds") == {
        DEFAULT_SIGNALS["serving_ttft_p99"].objective
    }
    assert objective("namespace_model_name:vllm_inter_token_latency_seconds") == {
        DEFAULT_SIGNALS["serving_itl_p99"].objective
    }
    assert [q.expr for q in queries if "e2e_request_latency" in q.expr and ">" in q.expr] == []
