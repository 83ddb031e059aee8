"""``aiops check-config --prometheus``: the queries run, and what they answer makes sense."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.cli import main
from aiops.commands.check_config import check_queries
from aiops.config import parse_config
from aiops.demo.prometheus import PrometheusServer

pytestmark = pytest.mark.timeout(60)

AT = 1_780_000_000


def _check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    """``aiops check-config FILE --prometheus`` on a config of ``text``: (exit status, stderr)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    status = main(["check-config", str(path), "--prometheus"])
    return status, capsys.readouterr().err


def test_check_config_runs_queries_against_prometheus(prometheus: PrometheusServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _check_config(tmp_path, capsys, f"prometheus:\n  url: {prometheus.url}\nsignals:\n"
                                                  "  pod_restarts:\n    query: 'sum(rate(x[5m]'\n")
    assert status == 2 and "signals.pod_restarts.query" in err and "400" in err


def test_check_config_says_when_the_scope_matches_no_series(prometheus: PrometheusServer, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _check_config(tmp_path, capsys, f"prometheus:\n  url: {prometheus.url}\n  scope: {{cluster: prod-eu}}\n")
    assert status == 2 and "prometheus.scope" in err and 'cluster="prod-eu"' in err
    assert _check_config(tmp_path, capsys, f"prometheus:\n  url: {prometheus.url}\n")[0] == 0


def _history(path: Path, *, uname_on_second: bool) -> None:
    lines: list[str] = []

    def family(name: str, rows: list[tuple[str, float]]) -> None:
        lines.append(f"# TYPE {name} gauge")
        for labels, value in rows:
            lines.extend(f"{name}{{{labels}}} {value} {t}" for t in range(AT - 600, AT + 1, 60))

    family("kube_node_status_condition", [(f'node="gpu-node-{i}",condition="Ready",status="true"', 1.0) for i in (1, 2)])
    exporters = ['instance="10.0.3.7:9100"', 'instance="10.0.3.8:9100"']
    unames = [(f'{exporters[0]},nodename="gpu-node-1"', 1.0)]
    if uname_on_second:
        unames.append((f'{exporters[1]},nodename="gpu-node-2"', 1.0))
    family("node_uname_info", unames)
    family("node_memory_MemTotal_bytes", [(e, 64e9) for e in exporters])
    family("node_memory_MemAvailable_bytes", [(e, 16e9) for e in exporters])
    path.write_text("\n".join(lines) + "\n# EOF\n")


@pytest.mark.parametrize("uname_on_second", [True, False])
def test_node_signals_must_name_nodes_kube_state_metrics_knows(tmp_path: Path, uname_on_second: bool) -> None:
    """A node-exporter scraped at its address without node_uname_info is named by its IP: no
    finding on it would meet the node's pods, and a cordon of it would fail. Said before the daemon runs."""
    _history(tmp_path / "h.om", uname_on_second=uname_on_second)
    only = {n: {"enabled": False} for n in parse_config({}).resolved_signals()
            if n not in ("node_ready", "node_memory_usage_ratio")}
    with PrometheusServer(tmp_path / "data", openmetrics=tmp_path / "h.om") as prom:
        config = parse_config({"prometheus": {"url": prom.url}, "signals": only})
        problems = dict(check_queries(config, at=AT))
    if uname_on_second:
        assert problems == {}
    else:
        msg = problems["signals.node_memory_usage_ratio"]
        assert "10.0.3.8" in msg and "node_uname_info" in msg and "gpu-node-1" not in msg


def test_gpu_signals_must_name_nodes_kube_state_metrics_knows(tmp_path: Path) -> None:
    """dcgm-exporter's Hostname is NODE_NAME where set, else the exporter pod's own host name."""
    lines = ["# TYPE kube_node_status_condition gauge"]
    lines += [f'kube_node_status_condition{{node="gpu-node-1",condition="Ready",status="true"}} 1 {t}'
              for t in range(AT - 600, AT + 1, 60)]
    for metric in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_XID_ERRORS"):
        lines.append(f"# TYPE {metric} gauge")
        for host, uuid in (("gpu-node-1", "GPU-1"), ("nvidia-dcgm-exporter-7xk2p", "GPU-2")):
            lines += [f'{metric}{{Hostname="{host}",UUID="{uuid}",gpu="0",modelName="H100"}} 0 {t}'
                      for t in range(AT - 600, AT + 1, 60)]
    (tmp_path / "h.om").write_text("\n".join(lines) + "\n# EOF\n")
    only = {n: {"enabled": False} for n in parse_config({}).resolved_signals()
            if n not in ("node_ready", "gpu_utilization", "gpu_xid")}
    with PrometheusServer(tmp_path / "data", openmetrics=tmp_path / "h.om") as prom:
        problems = dict(check_queries(parse_config({"prometheus": {"url": prom.url}, "signals": only}), at=AT))
    # Said once for all the GPU signals.
    [(key, msg)] = problems.items()
    assert key == "signals.gpu_utilization" and "(and 1 more of its signals)" in msg
    assert "nvidia-dcgm-exporter-7xk2p" in msg and "NODE_NAME" in msg and "gpu-node-1" not in msg
