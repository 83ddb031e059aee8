"""Generate the Grafana dashboards in this folder: ``python dashboards/generate.py``.

The JSON files are what users import; this script is how they are written, so every panel shares
one datasource variable, one layout rule and the metric names of aiops/config/catalog.py,
aiops/metrics.py and the recording rules in alert-rules/. Edit here, regenerate, commit both:
tests/dashboards/ fails when the JSON and this script disagree.

Classic dashboard JSON (schemaVersion 39) imports into Grafana 10 and 11 unchanged, through the
UI import dialog (``__inputs``) or file provisioning (the ``datasource`` variable).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiops.config.catalog import by_node_name

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
GRID_COLUMNS = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# LLM latency objectives: p99 time to first token and inter-token latency, the defaults of the
# catalog's serving_ttft_p99 / serving_itl_p99 signals and of the alerts in alert-rules/.
# End-to-end latency grows with the answer's length: context, never an objective.
TTFT_OBJECTIVE_SECONDS = 2.0
ITL_OBJECTIVE_SECONDS = 0.1
DRIFT_BAND = 0.05  # accuracy drop that counts as drift

Json = dict[str, Any]


# --- building blocks ------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False) -> Json:
    """One PromQL query; its refId is assigned by the panel."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "editorMode": "code",
    }


def thresholds(*steps: tuple[float, str], base: str = "green") -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": c, "value": v} for v, c in steps)],
    }


# Display options per panel type: the last value for single stats, legends below graphs.
_REDUCE_LAST: Json = {"calcs": ["lastNotNull"], "fields": "", "values": False}
PANEL_OPTIONS: dict[str, Json] = {
    "timeseries": {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "stat": {"reduceOptions": _REDUCE_LAST, "colorMode": "background", "graphMode": "none", "textMode": "auto"},
    "bargauge": {"reduceOptions": _REDUCE_LAST, "displayMode": "gradient", "orientation": "horizontal"},
    "table": {"showHeader": True, "cellHeight": "sm"},
}


@dataclass
class Panel:
    """One panel; its position is assigned by :class:`Layout`."""

    type: str
    title: str
    targets: list[Json]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    steps: tuple[tuple[float, str], ...] = ()
    base: str = "green"  # colour below the first step
    min: float | None = None
    max: float | None = None
    threshold_lines: bool = False
    stacked: bool = False
    options: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    mappings: list[Json] = field(default_factory=list)

    def to_json(self, panel_id: int, grid: Json) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "thresholds": thresholds(*self.steps, base=self.base),
            "mappings": self.mappings,
        }
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        if self.type == "timeseries":
            defaults["color"] = {"mode": "palette-classic"}
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if self.stacked else "none", "group": "A"},
                "thresholdsStyle": {"mode": "line" if self.threshold_lines else "off"},
            }
        else:
            defaults["color"] = {"mode": "thresholds"}
        options = PANEL_OPTIONS[self.type]
        refs = "ABCDEFGH"
        return {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "gridPos": grid,
            "datasource": DATASOURCE,
            "targets": [
                # Tables read one row per series with its labels as columns.
                {**t, "refId": refs[i], **({"format": "table"} if self.type == "table" else {})}
                for i, t in enumerate(self.targets)
            ],
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": {**options, **self.options},
        }


@dataclass
class Row:
    title: str


class Layout:
    """Places panels left to right on the 24-column grid, wrapping to the next line when full."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._line_height = 0

    def add(self, item: Panel | Row) -> None:
        panel_id = len(self.panels) + 1
        if isinstance(item, Row):
            self._newline()
            self.panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": self._y},
                    "panels": [],
                }
            )
            self._y += 1
            return
        if self._x + item.width > GRID_COLUMNS:
            self._newline()
        grid = {"h": item.height, "w": item.width, "x": self._x, "y": self._y}
        self.panels.append(item.to_json(panel_id, grid))
        self._x += item.width
        self._line_height = max(self._line_height, item.height)

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0


def query_variable(name: str, label: str, metric: str, label_name: str) -> Json:
    """A multi-value variable from ``label_values``; "All" is sent as ``.*`` so regex matchers work."""
    query = f"label_values({metric}, {label_name})"
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
        "regex": "",
    }


DATASOURCE_VARIABLE: Json = {
    "type": "datasource",
    "name": "datasource",
    "label": "Prometheus",
    "query": "prometheus",
    # Filled in by the import dialog through __inputs; provisioning falls back to the default.
    "current": {"selected": False, "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"},
    "hide": 0,
    "refresh": 1,
    "regex": "",
    "options": [],
}


def actions_annotation(selector: str) -> Json:
    """Marks on every graph where aiops changed the cluster, so cause and effect line up."""
    return {
        "name": "aiops actions",
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "orange",
        "expr": f'sum by (action) (increase(aiops_actions_total{{{selector},status="applied"}}[2m])) > 0',
        "step": "1m",
        "titleFormat": "aiops applied {{action}}",
        "textFormat": "see `aiops history --kind action`",
        "useValueForTime": False,
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[Json], items: list[Panel | Row], *, actions: str = ""
) -> Json:
    """``actions``: the selector of the aiops actions marked on graphs (default: the chosen cluster)."""
    layout = Layout()
    for item in items:
        layout.add(item)
    panel_types = sorted({p["type"] for p in layout.panels if p["type"] != "row"})
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "Prometheus that scrapes the cluster and aiops",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": t, "name": t, "version": ""} for t in panel_types),
        ],
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["aiops"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "links": [
            {
                "type": "dashboards",
                "tags": ["aiops"],
                "asDropdown": True,
                "title": "aiops dashboards",
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                actions_annotation(actions or 'cluster=~"$cluster"'),
            ]
        },
        "templating": {"list": [DATASOURCE_VARIABLE, *variables]},
        "panels": layout.panels,
    }


# --- the dashboards ---------------------------------------------------------------------------

_CONTAINER = 'container!="",container!="POD"'
# Every selector carries the chosen cluster (kubernetes-mixin style): one dashboard serves many
# clusters in one Prometheus (Thanos, Mimir). "All" is `.*`, which also matches series that have
# no cluster label at all, so single-cluster setups need nothing.
CLUSTER = 'cluster=~"$cluster"'


def cluster_variable(metric: str) -> Json:
    return query_variable("cluster", "Cluster", metric, "cluster")
_FS = 'fstype!~"tmpfs|overlay|squashfs"'


# A scrape address is unique within a cluster only: pod-network addresses repeat across clusters.
ADDRESS = "cluster, instance"


def node_exporter(per_instance: Callable[[str], str], by: str = "") -> str:
    """A node-exporter expression for the chosen clusters and nodes, per node as aiops's catalog names
    nodes (node_uname_info's nodename, not the scrape address). ``per_instance(matchers)`` is the
    expression aggregated by ``ADDRESS`` (and ``by``), with ``matchers`` in each selector."""
    return by_node_name(
        lambda m: per_instance(",".join(filter(None, [CLUSTER, m]))),
        by,
        uname=f'{CLUSTER},nodename=~"$node"',
        node="$node",
        scope="cluster",
    )


def filesystem_panel(title: str, free: str, total: str, steps: tuple[tuple[float, str], ...], description: str = "") -> Panel:
    """A node-exporter filesystem resource in use per node and mountpoint: 1 - ``free`` / ``total``."""
    return Panel(
        "timeseries",
        title,
        [
            target(
                node_exporter(
                    lambda m: f"1 - max by ({ADDRESS}, mountpoint) ({free}{{{_FS},{m}}})"
                    f" / max by ({ADDRESS}, mountpoint) ({total}{{{_FS},{m}}} > 0)",
                    "mountpoint",
                ),
                "{{nodename}} {{mountpoint}}",
            )
        ],
        width=12,
        unit="percentunit",
        min=0,
        max=1,
        steps=steps,
        threshold_lines=True,
        description=description,
    )


def cluster_health() -> Json:
    ns = f'{CLUSTER},namespace=~"$namespace"'
    node = f'{CLUSTER},node=~"$node"'
    return dashboard(
        "aiops-cluster-health",
        "aiops / Cluster health",
        "Nodes, pods, restarts, OOMKills, pressure and volume fill: the signals aiops reads for pods and nodes. "
        "node-exporter's series are named by node_uname_info's nodename (the host part of instance where it is missing), as in aiops's signal catalog.",
        [
            cluster_variable("kube_node_status_condition"),
            query_variable("namespace", "Namespace", f"kube_pod_info{{{CLUSTER}}}", "namespace"),
            query_variable("node", "Node", f"kube_node_status_condition{{{CLUSTER}}}", "node"),
        ],
        [
            Row("Nodes"),
            Panel(
                "stat",
                "Nodes ready",
                [target(f'sum(kube_node_status_condition{{condition="Ready",status="true",{node}}})', instant=True)],
                width=6,
                height=4,
                steps=(),
                description="Nodes whose Ready condition is true.",
            ),
            Panel(
                "stat",
                "Nodes not ready",
                [
                    target(
                        f'sum(kube_node_status_condition{{condition="Ready",status=~"false|unknown",{node}}}) or vector(0)',
                        instant=True,
                    )
                ],
                width=6,
                height=4,
                steps=((1, "red"),),
            ),
            Panel(
                "stat",
                "Cordoned nodes",
                [target(f"sum(kube_node_spec_unschedulable{{{node}}}) or vector(0)", instant=True)],
                width=6,
                height=4,
                steps=((1, "orange"),),
                description="Unschedulable nodes, including those aiops cordoned.",
            ),
            Panel(
                "stat",
                "Nodes under pressure",
                [
                    target(
                        f'count(kube_node_status_condition{{condition=~"MemoryPressure|DiskPressure|PIDPressure",status="true",{node}}} == 1) or vector(0)',
                        instant=True,
                    )
                ],
                width=6,
                height=4,
                steps=((1, "red"),),
            ),
            Panel(
                "timeseries",
                "Node CPU in use",
                [
                    target(
                        node_exporter(
                            lambda m: f'1 - avg by ({ADDRESS}) (rate(node_cpu_seconds_total{{mode="idle",{m}}}[$__rate_interval]))'
                        ),
                        "{{nodename}}",
                    )
                ],
                width=8,
                unit="percentunit",
                min=0,
                max=1,
                steps=((0.8, "orange"), (0.9, "red")),
                threshold_lines=True,
            ),
            Panel(
                "timeseries",
                "Node memory in use",
                [
                    target(
                        node_exporter(
                            lambda m: f"1 - max by ({ADDRESS}) (node_memory_MemAvailable_bytes{{{m}}})"
                            f" / max by ({ADDRESS}) (node_memory_MemTotal_bytes{{{m}}})"
                        ),
                        "{{nodename}}",
                    )
                ],
                width=8,
                unit="percentunit",
                min=0,
                max=1,
                steps=((0.8, "orange"), (0.9, "red")),
                threshold_lines=True,
            ),
            Panel(
                "timeseries",
                "Node pressure conditions",
                [
                    target(
                        f'max by (node, condition) (kube_node_status_condition{{condition=~"MemoryPressure|DiskPressure|PIDPressure",status="true",{node}}})',
                        "{{node}} {{condition}}",
                    )
                ],
                width=8,
                min=0,
                max=1,
                steps=((1, "red"),),
            ),
            filesystem_panel("Filesystem in use", "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
                             ((0.8, "orange"), (0.9, "red"))),
            Panel(
                "table",
                "Filesystems predicted full within 4 h",
                [
                    target(
                        node_exporter(
                            lambda m: f"max by ({ADDRESS}, mountpoint)"
                            f" (predict_linear(node_filesystem_avail_bytes{{{_FS},{m}}}[6h], 4 * 3600)) < 0",
                            "mountpoint",
                        ),
                        instant=True,
                    )
                ],
                width=12,
                unit="bytes",
                description="The predict_linear baseline (as node-exporter's NodeFilesystemSpaceFillingUp): a 6 h linear trend below zero within 4 h.",
            ),
            filesystem_panel(
                "Inodes in use", "node_filesystem_files_free", "node_filesystem_files", ((0.9, "orange"), (0.95, "red")),
                description="Many small files exhaust the inodes with space to spare; the kubelet evicts at nodefs.inodesFree < 5 %.",
            ),
            Row("Pods"),
            Panel(
                "timeseries",
                "Pods by phase",
                [target(f"sum by (phase) (kube_pod_status_phase{{{ns}}})", "{{phase}}")],
                width=8,
                stacked=True,
            ),
            Panel(
                "timeseries",
                "Container restarts (15 min, top 10)",
                [
                    target(
                        f"topk(10, sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{{{ns}}}[15m])))",
                        "{{namespace}}/{{pod}}",
                    )
                ],
                width=8,
                steps=((3, "red"),),
                threshold_lines=True,
            ),
            Panel(
                "table",
                "OOMKilled and crash-looping containers",
                [
                    target(
                        f'max by (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{{reason="OOMKilled",{ns}}}) > 0',
                        "OOMKilled",
                        instant=True,
                    ),
                    target(
                        f'max by (namespace, pod, container) (kube_pod_container_status_waiting_reason{{reason="CrashLoopBackOff",{ns}}}) > 0',
                        "CrashLoopBackOff",
                        instant=True,
                    ),
                ],
                width=8,
            ),
            Panel(
                "timeseries",
                "Container memory / limit (top 10)",
                [
                    target(
                        f"topk(10, max by (namespace, pod, container) (container_memory_working_set_bytes{{{_CONTAINER},{ns}}})"
                        f' / on (namespace, pod, container) max by (namespace, pod, container) (kube_pod_container_resource_limits{{resource="memory",{ns}}} > 0))',
                        "{{namespace}}/{{pod}}/{{container}}",
                    )
                ],
                width=12,
                unit="percentunit",
                min=0,
                steps=((0.9, "orange"), (1, "red")),
                threshold_lines=True,
                description="Working set against the memory limit: the kernel OOM-kills the container at 100 %.",
            ),
            Panel(
                "timeseries",
                "CPU throttling (top 10)",
                [
                    target(
                        f"topk(10, sum by (namespace, pod) (rate(container_cpu_cfs_throttled_periods_total{{{_CONTAINER},{ns}}}[$__rate_interval]))"
                        f" / sum by (namespace, pod) (rate(container_cpu_cfs_periods_total{{{_CONTAINER},{ns}}}[$__rate_interval])))",
                        "{{namespace}}/{{pod}}",
                    )
                ],
                width=12,
                unit="percentunit",
                min=0,
                steps=((0.25, "orange"), (0.5, "red")),
            ),
            Panel(
                "timeseries",
                "Deployments with unavailable replicas",
                [target(f"kube_deployment_status_replicas_unavailable{{{ns}}} > 0", "{{namespace}}/{{deployment}}")],
                width=12,
                steps=((1, "red"),),
            ),
            Row("Persistent volumes"),
            Panel(
                "timeseries",
                "PersistentVolume fill",
                [
                    target(
                        f"max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_used_bytes{{{ns}}})"
                        f" / max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_capacity_bytes{{{ns}}} > 0)",
                        "{{namespace}}/{{persistentvolumeclaim}}",
                    )
                ],
                width=12,
                unit="percentunit",
                min=0,
                max=1,
                steps=((0.8, "orange"), (0.9, "red")),
                threshold_lines=True,
            ),
            Panel(
                "table",
                "Volumes predicted full within 4 h",
                [
                    target(
                        f"predict_linear(kubelet_volume_stats_available_bytes{{{ns}}}[6h], 4 * 3600) < 0", instant=True
                    )
                ],
                width=12,
                unit="bytes",
            ),
        ],
    )


def gpu_fleet() -> Json:
    sel = f'{CLUSTER},Hostname=~"$node",modelName=~"$model"'
    by_gpu = "Hostname, gpu, UUID, modelName"
    return dashboard(
        "aiops-gpu-fleet",
        "aiops / GPU fleet",
        "dcgm-exporter metrics per GPU: utilisation, framebuffer, temperature, power, XID/ECC health, "
        "idle GPUs (the waste you pay for) and MIG slices. Reads recording rules from alert-rules/.",
        [
            cluster_variable("DCGM_FI_DEV_GPU_UTIL"),
            query_variable("node", "Node", f"DCGM_FI_DEV_GPU_UTIL{{{CLUSTER}}}", "Hostname"),
            query_variable("model", "GPU model", f'DCGM_FI_DEV_GPU_UTIL{{{CLUSTER},Hostname=~"$node"}}', "modelName"),
        ],
        [
            Row("Fleet"),
            Panel(
                "stat",
                "GPUs",
                [target(f"count(max by (UUID) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}))", instant=True)],
                width=6,
                height=4,
                steps=(),
            ),
            Panel(
                "stat",
                "Fleet utilisation",
                [target(f"avg(max by (UUID) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}))", instant=True)],
                width=6,
                height=4,
                unit="percent",
                steps=((20, "orange"), (30, "green")),
                base="red",
                description="Mean utilisation of the selected GPUs right now: red below 20 %, where GPUs are paid for and idle.",
            ),
            Panel(
                "stat",
                "Idle GPUs (< 30 % for 1 h)",
                [target(f"count(gpu:dcgm_gpu_util:max_1h{{{sel}}} < 30) or vector(0)", instant=True)],
                width=6,
                height=4,
                steps=((1, "orange"),),
                description="GPUs that never exceeded 30 % utilisation in the last hour: capacity paid for and not used.",
            ),
            Panel(
                "stat",
                "GPUs with a new XID (1 h)",
                [
                    target(
                        # The code per GPU first, then its changes (a subquery): dcgm-exporter
                        # 3.3.6 and later label the code (err_code, err_msg), so a new XID is a new
                        # series whose own value never changes.
                        f"count((changes((max by (UUID) (DCGM_FI_DEV_XID_ERRORS{{{sel}}}))[1h:1m]) > 0)"
                        f" and on (UUID) (max by (UUID) (DCGM_FI_DEV_XID_ERRORS{{{sel}}}) > 0)) or vector(0)",
                        instant=True,
                    )
                ],
                width=6,
                height=4,
                steps=((1, "red"),),
                description="GPUs whose XID code changed to a new one in the last hour. dcgm-exporter's XID gauge is "
                "sticky (the last code stands until the driver or exporter restarts), so a GPU repaired without a "
                "reboot is not counted again; a restart's return to 0 is not an XID. Read per GPU, so it also counts "
                "the new series dcgm-exporter 3.3.6+ starts for each new code (err_code label).",
            ),
            Row("Per GPU"),
            Panel(
                "timeseries",
                "Utilisation",
                [target(f"max by ({by_gpu}) (DCGM_FI_DEV_GPU_UTIL{{{sel}}})", "{{Hostname}} GPU {{gpu}}")],
                unit="percent",
                min=0,
                max=100,
                steps=((20, "green"), (80, "red")),
                base="orange",
                threshold_lines=True,
                description="Lines at the seed thresholds: below 20 % scale down or share, above 80 % pre-scale.",
            ),
            Panel(
                "timeseries",
                "Framebuffer used",
                [target(f"gpu:dcgm_fb_used:ratio{{{sel}}}", "{{Hostname}} GPU {{gpu}}")],
                unit="percentunit",
                min=0,
                max=1,
                steps=((0.9, "orange"), (0.97, "red")),
                threshold_lines=True,
            ),
            Panel(
                "timeseries",
                "Temperature",
                [target(f"max by ({by_gpu}) (DCGM_FI_DEV_GPU_TEMP{{{sel}}})", "{{Hostname}} GPU {{gpu}}")],
                width=8,
                unit="celsius",
                steps=((80, "orange"), (87, "red")),
                threshold_lines=True,
            ),
            Panel(
                "timeseries",
                "Power draw",
                [target(f"max by ({by_gpu}) (DCGM_FI_DEV_POWER_USAGE{{{sel}}})", "{{Hostname}} GPU {{gpu}}")],
                width=8,
                unit="watt",
                min=0,
            ),
            Panel(
                "timeseries",
                "Memory copy utilisation",
                [target(f"max by ({by_gpu}) (DCGM_FI_DEV_MEM_COPY_UTIL{{{sel}}})", "{{Hostname}} GPU {{gpu}}")],
                width=8,
                unit="percent",
                min=0,
                max=100,
            ),
            Row("Health"),
            Panel(
                "table",
                "Last XID per GPU",
                [target(f"max by ({by_gpu}) (DCGM_FI_DEV_XID_ERRORS{{{sel}}}) > 0", instant=True)],
                width=8,
                unit="none",
                steps=((1, "red"),),
                description="dcgm-exporter reports the code of the last XID, not a count, and keeps it until the driver or exporter restarts: a GPU repaired without a reboot still shows its old code (the stat above counts new ones). 48/79/95 need a drain; 94 a pod restart; 63/64 a GPU reset or RMA.",
            ),
            Panel(
                "timeseries",
                "Uncorrectable remapped rows / remap failures",
                [
                    target(
                        f"max by ({by_gpu}) (DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{sel}}})",
                        "{{Hostname}} GPU {{gpu}} remapped rows",
                    ),
                    target(
                        f"max by ({by_gpu}) (DCGM_FI_DEV_ROW_REMAP_FAILURE{{{sel}}}) > 0",
                        "{{Hostname}} GPU {{gpu}} remap failure",
                    ),
                ],
                width=8,
                steps=((1, "red"),),
            ),
            Panel(
                "timeseries",
                "Double-bit ECC errors (1 h)",
                [
                    target(
                        f"sum by ({by_gpu}) (increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{sel}}}[1h]))",
                        "{{Hostname}} GPU {{gpu}}",
                    )
                ],
                width=8,
                steps=((1, "red"),),
                description="Needs the ECC counters enabled in dcgm-exporter's counters CSV; empty otherwise.",
            ),
            Row("Idle capacity"),
            Panel(
                "bargauge",
                "Idle GPUs per node and model (< 30 % for 1 h)",
                [
                    target(
                        f"Hostname_modelName:dcgm_gpu_idle_1h:count{{{sel}}}",
                        "{{Hostname}} {{modelName}}",
                        instant=True,
                    )
                ],
                steps=((1, "orange"),),
                min=0,
            ),
            Panel(
                "table",
                "Idle GPUs: highest utilisation in the last hour",
                [target(f"gpu:dcgm_gpu_util:max_1h{{{sel}}} < 30", instant=True)],
                unit="percent",
            ),
            Row("MIG slices (empty when MIG is off)"),
            Panel(
                "timeseries",
                "MIG slice graphics engine activity",
                [
                    target(
                        f'max by (Hostname, gpu, GPU_I_PROFILE, GPU_I_ID) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{sel},GPU_I_PROFILE!=""}})',
                        "{{Hostname}} GPU {{gpu}} {{GPU_I_PROFILE}} #{{GPU_I_ID}}",
                    )
                ],
                unit="percentunit",
                min=0,
                max=1,
                description="Needs the DCP profiling metrics (dcp-metrics-included.csv).",
            ),
            Panel(
                "bargauge",
                "MIG slices by profile",
                [
                    target(
                        f'count by (modelName, GPU_I_PROFILE) (max by (UUID, modelName, GPU_I_PROFILE, GPU_I_ID) (DCGM_FI_DEV_FB_USED{{{sel},GPU_I_PROFILE!=""}}))',
                        "{{modelName}} {{GPU_I_PROFILE}}",
                        instant=True,
                    )
                ],
                min=0,
            ),
        ],
    )


def objective_panels(
    objective_name: str, title: str, recorded: str, objective: float, alert: str, served: str, note: str = ""
) -> list[Panel]:
    """A latency objective: how many models breach it now, and its p99 per model against it."""
    series = f"namespace_model_name:{recorded}:p99_rate5m{{{served}}}"
    return [
        Panel(
            "stat",
            f"Models over the {objective_name} objective",
            [target(f"count({series} > {objective}) or vector(0)", instant=True)],
            width=6,
            steps=((1, "red"),),
        ),
        Panel(
            "timeseries",
            f"{title} p99 vs objective",
            [target(series, "{{model_name}} p99")],
            width=18,
            unit="s",
            min=0,
            steps=((objective, "red"),),
            threshold_lines=True,
            description=f"The red line is the objective {alert} alerts on (a default: adjust it to your SLO). {note}".strip(),
        ),
    ]


def inference_quality() -> Json:
    served = f'{CLUSTER},namespace=~"$namespace",model_name=~"$model"'
    quality = f'{CLUSTER},namespace=~"$namespace",model=~"$quality_model"'
    ttft, itl = TTFT_OBJECTIVE_SECONDS, ITL_OBJECTIVE_SECONDS
    return dashboard(
        "aiops-inference-quality",
        "aiops / Inference and model quality",
        "vLLM (V1) time to first token and inter-token latency against their objectives (end-to-end latency as context), queueing and KV-cache, and model accuracy "
        "against its reference with the 5 % drift band, the business KPI beside it. Reads recording rules from alert-rules/.",
        [
            cluster_variable("vllm:num_requests_waiting"),
            query_variable("namespace", "Namespace", f"vllm:num_requests_waiting{{{CLUSTER}}}", "namespace"),
            query_variable(
                "model", "Served model", f'vllm:num_requests_waiting{{{CLUSTER},namespace=~"$namespace"}}', "model_name"
            ),
            query_variable("quality_model", "Quality model", f'model_accuracy{{{CLUSTER},namespace=~"$namespace"}}', "model"),
        ],
        [
            Row("Latency"),
            *objective_panels(
                f"{ttft:g} s p99 time-to-first-token", "Time to first token", "vllm_time_to_first_token_seconds",
                ttft, "InferenceTimeToFirstTokenP99High", served,
            ),
            *objective_panels(
                f"{itl * 1000:g} ms p99 inter-token latency", "Inter-token latency", "vllm_inter_token_latency_seconds",
                itl, "InferenceInterTokenLatencyP99High", served,
                "Reads vllm:inter_token_latency_seconds or, before vLLM V1, vllm:time_per_output_token_seconds.",
            ),
            Panel(
                "timeseries",
                "End-to-end latency p50 / p99 (context)",
                [
                    target(
                        f"namespace_model_name:vllm_e2e_request_latency_seconds:p99_rate5m{{{served}}}",
                        "{{model_name}} p99",
                    ),
                    target(
                        f"namespace_model_name:vllm_e2e_request_latency_seconds:p50_rate5m{{{served}}}",
                        "{{model_name}} p50",
                    ),
                ],
                width=12,
                unit="s",
                min=0,
                description="Grows with the length of the answer (seconds to minutes by design): context, not an objective.",
            ),
            Panel(
                "timeseries",
                "Successful requests",
                [
                    target(
                        f"sum by (namespace, model_name) (rate(vllm:request_success_total{{{served}}}[$__rate_interval]))",
                        "{{model_name}}",
                    )
                ],
                width=12,
                unit="reqps",
                min=0,
            ),
            Row("Saturation"),
            Panel(
                "timeseries",
                "Queue length (waiting requests)",
                [
                    target(
                        f"sum by (namespace, model_name) (vllm:num_requests_waiting{{{served}}})",
                        "{{model_name}} waiting",
                    ),
                    target(
                        f"sum by (namespace, model_name) (vllm:num_requests_running{{{served}}})",
                        "{{model_name}} running",
                    ),
                ],
                width=8,
                min=0,
            ),
            Panel(
                "timeseries",
                "KV-cache usage",
                # vLLM V1 renamed gpu_cache_usage_perc to kv_cache_usage_perc; either is read (as the catalog does).
                [target(f"max by (namespace, pod, model_name) (vllm:kv_cache_usage_perc{{{served}}}"
                        f" or vllm:gpu_cache_usage_perc{{{served}}})", "{{pod}}")],
                width=8,
                unit="percentunit",
                min=0,
                max=1,
                steps=((0.9, "orange"), (0.98, "red")),
                threshold_lines=True,
                description="Preemptions start as the KV-cache fills up.",
            ),
            Panel(
                "timeseries",
                "Preemptions",
                [
                    target(
                        f"sum by (namespace, model_name) (rate(vllm:num_preemptions_total{{{served}}}[$__rate_interval]))",
                        "{{model_name}}",
                    )
                ],
                width=8,
                unit="ops",
                min=0,
            ),
            Row("Model quality"),
            Panel(
                "timeseries",
                "Accuracy vs reference (5 % drift band)",
                [
                    target(f"namespace_model:model_accuracy:avg_15m{{{quality}}}", "{{model}} accuracy"),
                    target(f"namespace_model:model_accuracy:reference_1d{{{quality}}}", "{{model}} reference"),
                    target(
                        f"namespace_model:model_accuracy:reference_1d{{{quality}}} * {1 - DRIFT_BAND}",
                        "{{model}} drift limit (-5 %)",
                    ),
                ],
                width=12,
                unit="percentunit",
                description="Reference: the previous day's mean, ending an hour ago. Below the drift limit for 15 min, ModelAccuracyDrop fires.",
                overrides=[
                    {
                        "matcher": {"id": "byRegexp", "options": ".*drift limit.*"},
                        "properties": [
                            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                        ],
                    }
                ],
            ),
            Panel(
                "timeseries",
                "Business KPI (conversion) vs reference",
                [
                    target(f"namespace_model:business_conversion_rate:avg_15m{{{quality}}}", "{{model}} conversion"),
                    target(
                        f"namespace_model:business_conversion_rate:reference_1d{{{quality}}}", "{{model}} reference"
                    ),
                ],
                width=12,
                unit="percentunit",
            ),
            Panel(
                "bargauge",
                "Accuracy drop vs reference",
                [
                    target(
                        f"namespace_model:model_accuracy:drop_ratio{{{quality}}}",
                        "{{namespace}}/{{model}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                min=0,
                max=0.2,
                steps=((0.03, "orange"), (DRIFT_BAND, "red")),
            ),
            Panel(
                "bargauge",
                "Business KPI drop vs reference",
                [
                    target(
                        f"namespace_model:business_conversion_rate:drop_ratio{{{quality}}}",
                        "{{namespace}}/{{model}}",
                        instant=True,
                    )
                ],
                unit="percentunit",
                min=0,
                max=0.3,
                steps=((0.05, "orange"), (0.1, "red")),
            ),
        ],
    )


def aiops_self() -> Json:
    # One aiops deployment ($job) in one cluster; its replicas ($instance).
    inst = f'{CLUSTER},job=~"$job",instance=~"$instance"'
    # The leader's series only. Both sides keep job and instance, so the match has something to match on.
    leader = f"and on (job, instance) (aiops_leader{{{inst}}} == 1)"
    return dashboard(
        "aiops-self",
        "aiops / The daemon",
        "aiops's own metrics: cycles and their stages, findings, predicted failures and lead time, actions by result "
        "and the rail that blocked them, budgets, circuit breaker and the notification outbox.",
        [
            cluster_variable("aiops_build_info"),
            query_variable("job", "Job", f"aiops_build_info{{{CLUSTER}}}", "job"),
            query_variable("instance", "Replica", f'aiops_leader{{{CLUSTER},job=~"$job"}}', "instance"),
        ],
        [
            Row("Health"),
            Panel(
                "stat",
                "Replicas holding the lease",
                [target(f'sum(aiops_leader{{{CLUSTER},job=~"$job"}}) or vector(0)', instant=True)],
                width=4,
                height=4,
                steps=((1, "green"), (2, "red")),
                base="red",
                description="Exactly one: zero means nothing acts, two means a split brain.",
            ),
            Panel(
                "stat",
                "Since the last good cycle",
                [target(f"time() - max(aiops_last_successful_cycle_timestamp_seconds{{{inst}}})", instant=True)],
                width=4,
                height=4,
                unit="s",
                steps=((300, "orange"), (900, "red")),
            ),
            Panel(
                "stat",
                "Prometheus reachable",
                [target(f"min(aiops_prometheus_up{{{inst}}})", instant=True)],
                width=4,
                height=4,
                steps=((1, "green"),),
                base="red",
                mappings=[{"type": "value", "options": {"0": {"text": "no"}, "1": {"text": "yes"}}}],
            ),
            Panel(
                "stat",
                "Circuit breaker",
                # Per replica first: max() without "by" would drop the labels the leader match needs.
                [target(f"max(max by (job, instance) (aiops_circuit_breaker_open{{{inst}}}) {leader})", instant=True)],
                width=4,
                height=4,
                steps=((1, "red"),),
                mappings=[{"type": "value", "options": {"0": {"text": "closed"}, "1": {"text": "open"}}}],
            ),
            Panel(
                "stat",
                "Action budget left (leader)",
                [target(f"max by (window) (aiops_budget_remaining{{{inst}}} {leader})", "{{window}}", instant=True)],
                width=8,
                height=4,
                steps=((1, "orange"), (3, "green")),
                base="red",
            ),
            Row("Cycles"),
            Panel(
                "timeseries",
                "Cycles by result",
                [target(f"sum by (result) (rate(aiops_cycles_total{{{inst}}}[$__rate_interval])) * 60", "{{result}}")],
                width=8,
                unit="cpm",
                min=0,
                stacked=True,
            ),
            Panel(
                "timeseries",
                "Cycle duration p95 by stage",
                [target(f'stage:aiops_cycle_duration_seconds:p95_rate5m{{{CLUSTER},job=~"$job"}}', "{{stage}}")],
                width=8,
                unit="s",
                min=0,
            ),
            Panel(
                "timeseries",
                "Stage errors",
                [
                    target(
                        f"sum by (stage) (increase(aiops_stage_errors_total{{{inst}}}[$__rate_interval]))", "{{stage}}"
                    )
                ],
                width=8,
                min=0,
                steps=((1, "red"),),
            ),
            Panel(
                "timeseries",
                "Series in the window",
                [target(f"max by (instance) (aiops_series{{{inst}}})", "{{instance}}")],
                width=8,
                min=0,
            ),
            Panel(
                "timeseries",
                "Samples fetched",
                [
                    target(
                        f"sum by (instance) (rate(aiops_points_fetched_total{{{inst}}}[$__rate_interval]))",
                        "{{instance}}",
                    )
                ],
                width=8,
                unit="ops",
                min=0,
            ),
            Panel(
                "timeseries",
                "Prometheus queries by result",
                [
                    target(
                        f"sum by (result) (rate(aiops_prometheus_queries_total{{{inst}}}[$__rate_interval]))",
                        "{{result}}",
                    )
                ],
                width=8,
                unit="reqps",
                min=0,
            ),
            Panel(
                "timeseries",
                "Samples dropped as impossible, by signal",
                [
                    target(
                        f"max by (signal, reason) (increase(aiops_samples_rejected_total{{{inst}}}[$__rate_interval]))",
                        "{{signal}} {{reason}}",
                    )
                ],
                width=24,
                unit="short",
                min=0,
                description="Samples no instrument can read, dropped as missing before any detector sees them: "
                "out_of_range (outside the signal's valid range, e.g. a GPU utilisation of 4294967295) or sentinel "
                "(a DCGM blank: a field the GPU does not support reads so on every scrape). A steady sentinel line "
                "is an unsupported field; a new one or out_of_range is an exporter to look at (the daemon's log "
                "names the series). Replicas collapsed with max.",
            ),
            Row("Findings and predictions"),
            Panel(
                "timeseries",
                "Findings by detector and severity",
                [
                    target(
                        f"max by (detector, severity) (rate(aiops_findings_total{{{inst}}}[$__rate_interval])) * 3600",
                        "{{detector}} {{severity}}",
                    )
                ],
                unit="short",
                min=0,
                description="Per hour. Every replica detects, so replicas are collapsed with max, not summed.",
            ),
            Panel(
                "timeseries",
                "Active findings",
                [target(f"max by (detector, severity) (aiops_active_findings{{{inst}}})", "{{detector}} {{severity}}")],
                min=0,
                stacked=True,
            ),
            Panel(
                "timeseries",
                "Predicted failures: median lead time",
                [
                    target(
                        f"histogram_quantile(0.5, max by (detector, le) (rate(aiops_predicted_failure_lead_seconds_bucket{{{inst}}}[1h])))",
                        "{{detector}}",
                    )
                ],
                unit="s",
                min=0,
                description="How long before the predicted failure each detector first raised it (1 h window).",
            ),
            Panel(
                "bargauge",
                "Predicted failures in range by detector",
                [
                    target(
                        f"max by (detector) (increase(aiops_predicted_failure_lead_seconds_count{{{inst}}}[$__range]))",
                        "{{detector}}",
                        instant=True,
                    )
                ],
                min=0,
            ),
            Row("Actions"),
            Panel(
                "timeseries",
                "Actions by result",
                [
                    target(
                        f"sum by (action, status) (increase(aiops_actions_total{{{inst}}}[$__rate_interval]))",
                        "{{action}} {{status}}",
                    )
                ],
                min=0,
                stacked=True,
            ),
            Panel(
                "timeseries",
                "Actions blocked, by rail",
                [
                    target(
                        f"sum by (action, rail) (increase(aiops_actions_blocked_total{{{inst}}}[$__rate_interval]))",
                        "{{action}} blocked by {{rail}}",
                    )
                ],
                min=0,
                stacked=True,
            ),
            Panel(
                "bargauge",
                "Outcomes in range (healed / not healed)",
                [
                    target(
                        f"sum by (action, outcome) (increase(aiops_action_outcomes_total{{{inst}}}[$__range]))",
                        "{{action}} {{outcome}}",
                        instant=True,
                    )
                ],
                min=0,
            ),
            Panel(
                "timeseries",
                "Decisions by action and mode",
                [
                    target(
                        f"sum by (action, mode) (increase(aiops_decisions_total{{{inst}}}[$__rate_interval]))",
                        "{{action}} {{mode}}",
                    )
                ],
                min=0,
                stacked=True,
            ),
            Row("Notifications"),
            Panel(
                "timeseries",
                "Outbox pending by channel",
                [target(f"max by (channel) (aiops_outbox_pending{{{inst}}})", "{{channel}}")],
                min=0,
                steps=((10, "orange"), (50, "red")),
            ),
            Panel(
                "timeseries",
                "Deliveries by channel and result",
                [
                    target(
                        f"sum by (channel, result) (increase(aiops_notifications_total{{{inst}}}[$__rate_interval]))",
                        "{{channel}} {{result}}",
                    )
                ],
                min=0,
                stacked=True,
            ),
        ],
        actions=f'{CLUSTER},job=~"$job"',
    )


DASHBOARDS = {
    "aiops-cluster-health.json": cluster_health,
    "aiops-gpu-fleet.json": gpu_fleet,
    "aiops-inference-quality.json": inference_quality,
    "aiops-self.json": aiops_self,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else HERE
    for name, build in DASHBOARDS.items():
        (out / name).write_text(render(build), encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
