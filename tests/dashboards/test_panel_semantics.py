"""Panels read exporter metrics with their real semantics: a panel's expression, as Grafana sends it
with every variable on "All", is evaluated by promtool on series shaped like the exporter's."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiops.demo.prometheus import find_binary
from tests.dashboards.grafana import DASHBOARD_DIR, Query, all_panels, load

ALL = {name: ".*" for name in ("cluster", "node", "model", "namespace", "quality_model", "job", "instance")}


def _panel_expr(dashboard: str, panel_type: str, metric: str) -> str:
    """The one expression of the one ``panel_type`` panel of ``dashboard`` that reads ``metric``."""
    model = load(DASHBOARD_DIR / dashboard)
    found = [
        t["expr"]
        for panel in all_panels(model)
        if panel["type"] == panel_type
        for t in panel.get("targets", [])
        if metric in t["expr"]
    ]
    assert len(found) == 1, found
    return Query(dashboard, "", found[0]).substituted(ALL)


def _promtool_expr_test(tmp_path: Path, series: list[dict[str, str]], checks: list[dict[str, Any]]) -> None:
    path = tmp_path / "panel.test.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}],
            }
        )
    )
    result = subprocess.run(
        [find_binary("promtool"), "test", "rules", path.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_xid_stat_counts_new_xids_not_the_sticky_last_code(tmp_path: Path) -> None:
    """DCGM_FI_DEV_XID_ERRORS holds the last XID until the driver or exporter restarts: a GPU that
    was repaired hours ago (not rebooted) still shows 79. The fleet's XID stat must count GPUs with
    a new XID, or it stays red for ever after the first one."""
    expr = _panel_expr("aiops-gpu-fleet.json", "stat", "DCGM_FI_DEV_XID_ERRORS")

    def xid(n: str, extra: str = "") -> str:
        return f'DCGM_FI_DEV_XID_ERRORS{{Hostname="node-{n}",gpu="0",UUID="GPU-{n}",modelName="NVIDIA A100-SXM4-80GB"{extra}}}'

    series = [
        # a: XID 79 long ago, repaired without a reboot: the code stands for the whole 3 h.
        {"series": xid("a"), "values": "79x180"},
        # b: a new XID 48 at 2 h 30 min.
        {"series": xid("b"), "values": "0x150 48x30"},
        # c: healthy.
        {"series": xid("c"), "values": "0x180"},
        # d: the exporter restarted at 2 h 40 min and cleared its old 79.
        {"series": xid("d"), "values": "79x160 0x20"},
        # e: an old 94; a pod attached at 2 h 45 min, and its pod-mapped series carries the old code.
        {"series": xid("e"), "values": "94x180"},
        {"series": xid("e", ',namespace="ml",pod="llama-0"'), "values": "_x165 94x15"},
        # f: dcgm-exporter 3.3.6 and later label the code (err_code, err_msg), so a new XID is a new
        # series and each series holds one value: counting changes per series sees none.
        {"series": xid("f", ',err_code="0",err_msg="No Error"'), "values": "0x149 stale"},
        {"series": xid("f", ',err_code="48",err_msg="DBE (Double Bit Error) ECC Error"'), "values": "_x150 48x30"},
    ]
    _promtool_expr_test(
        tmp_path,
        series,
        [
            # Before b's and f's XIDs, no GPU has a new one; after them, b and f.
            {"expr": expr, "eval_time": "2h", "exp_samples": [{"labels": "{}", "value": 0}]},
            {"expr": expr, "eval_time": "3h", "exp_samples": [{"labels": "{}", "value": 2}]},
        ],
    )


@pytest.mark.timeout(60)
def test_kv_cache_panel_reads_both_vllm_names(tmp_path: Path) -> None:
    """vLLM V1 renamed gpu_cache_usage_perc to kv_cache_usage_perc; servers still on the old name
    are in every fleet mid-upgrade, and the daemon's catalog reads either. A panel reading the new
    name only shows nothing for them."""
    expr = _panel_expr("aiops-inference-quality.json", "timeseries", "kv_cache_usage_perc")
    old = 'vllm:gpu_cache_usage_perc{namespace="inference",pod="llama-old-0",model_name="llama-3-8b"}'
    new = 'vllm:kv_cache_usage_perc{namespace="inference",pod="llama-new-0",model_name="llama-3-8b"}'
    _promtool_expr_test(
        tmp_path,
        [{"series": old, "values": "0.5x10"}, {"series": new, "values": "0.7x10"}],
        [{"expr": expr, "eval_time": "5m", "exp_samples": [
            {"labels": '{namespace="inference",pod="llama-new-0",model_name="llama-3-8b"}', "value": 0.7},
            {"labels": '{namespace="inference",pod="llama-old-0",model_name="llama-3-8b"}', "value": 0.5},
        ]}],
    )


@pytest.mark.timeout(60)
def test_node_memory_panel_keeps_clusters_apart(tmp_path: Path) -> None:
    """node-exporter's ``instance`` is a pod-network address (10.x.y.z:9100), and the same addresses
    are used again in every cluster. With the cluster variable on "All", a panel that aggregates and
    joins on ``instance`` alone puts two clusters' nodes into one series under one of their names."""
    expr = _panel_expr("aiops-cluster-health.json", "timeseries", "node_memory_MemAvailable_bytes")
    gib = 1024**3
    series = []
    for cluster, nodename, available in (("east", "gpu-east-1", 2 * gib), ("west", "gpu-west-1", 6 * gib)):
        where = f'cluster="{cluster}",instance="10.0.0.7:9100",job="node-exporter"'
        series += [
            {"series": f"node_memory_MemAvailable_bytes{{{where}}}", "values": f"{available}x10"},
            {"series": f"node_memory_MemTotal_bytes{{{where}}}", "values": f"{8 * gib}x10"},
            {"series": f'node_uname_info{{{where},nodename="{nodename}"}}', "values": "1x10"},
        ]
    _promtool_expr_test(
        tmp_path,
        series,
        [{"expr": expr, "eval_time": "5m", "exp_samples": [
            {"labels": '{cluster="east",nodename="gpu-east-1"}', "value": 0.75},
            {"labels": '{cluster="west",nodename="gpu-west-1"}', "value": 0.25},
        ]}],
    )
