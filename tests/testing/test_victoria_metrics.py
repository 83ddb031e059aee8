"""The VictoriaMetrics launcher of the test kit: history imported as Prometheus backfills it."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from aiops.demo.prometheus import BackfillError
from aiops.testing.victoria_metrics import VictoriaMetricsServer, prometheus_text

pytestmark = pytest.mark.timeout(60)

T0 = 1_796_000_000  # seconds, on a minute


def _history(path: Path) -> Path:
    lines = ["# TYPE gpu_temp gauge"]
    lines += [f'gpu_temp{{gpu="0"}} {40 + i} {T0 + 60 * i}' for i in range(5)]
    lines += ["# TYPE up gauge", f"up 1 {T0}"]
    lines += ["# TYPE requests counter"] + [f'requests_total{{pod="a"}} {10 * i} {T0 + 60 * i}.5' for i in range(5)]
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return path


def test_openmetrics_seconds_become_the_import_s_milliseconds(tmp_path: Path) -> None:
    text = b"".join(prometheus_text(_history(tmp_path / "h.om"))).decode()
    assert text.splitlines()[0] == f'gpu_temp{{gpu="0"}} 40 {T0 * 1000}'
    assert text.splitlines()[-1] == f'requests_total{{pod="a"}} 40 {(T0 + 240) * 1000 + 500}'
    assert f"up 1 {T0 * 1000}" in text.splitlines()
    assert "#" not in text and len(text.splitlines()) == 11


def test_a_sample_without_a_timestamp_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "h.om"
    path.write_text('# TYPE x gauge\nx{a="1 2"} 3 1796000000\nx{a="1 2"} 1\n# EOF\n')
    with pytest.raises(BackfillError, match=r"h\.om:3: not 'name\{labels\} value timestamp'"):
        list(prometheus_text(path))


def test_imported_history_is_queried_at_once_and_kept_across_a_restart(tmp_path: Path) -> None:
    with VictoriaMetricsServer(tmp_path / "vm", openmetrics=_history(tmp_path / "h.om")) as vm:
        params = {"query": "gpu_temp", "start": T0, "end": T0 + 240, "step": 60}
        first = requests.get(f"{vm.url}/api/v1/query_range", params=params, timeout=10).json()
        [series] = first["data"]["result"]
        assert [float(v) for _, v in series["values"]] == [40, 41, 42, 43, 44]
        vm.restart()  # imported once: a second import would not change the answer, but costs a start
        again = requests.get(f"{vm.url}/api/v1/query_range", params=params, timeout=10).json()
        assert again["data"]["result"] == first["data"]["result"]
