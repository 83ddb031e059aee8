"""``aiops backtest --signal/--capacity`` scores a series exactly as the daemon scores that signal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops.cli import main
from aiops.collect.collector import entity_of, signal_info
from aiops.collect.prometheus import PrometheusClient, RawSeries
from aiops.config import parse_config
from aiops.model import Frame, Series, from_epoch
from detectors.ensemble import DefaultEnsemble

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
STEP = 60.0


def _disk_fill(hours: float = 5.0, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A disk filling 10 % an hour with noise, a log rotation (drop) after 2 h, then filling again."""
    t = T0 + STEP * np.arange(int(hours * 60))
    rng = np.random.default_rng(seed)
    y = 0.45 + 0.10 * (t - T0) / 3600.0 + rng.normal(0, 0.003, t.shape[0])
    y[120:] -= 0.12
    return t, y


def _daemon_scores(signal: str, labels: dict[str, str], t: np.ndarray, y: np.ndarray, cycles: list[int]) -> list[float]:
    """Run the default ensemble cycle by cycle, each frame holding the history up to that cycle."""
    cfg = parse_config({}).resolved_signals()
    infos = {n: signal_info(n, s) for n, s in cfg.items()}
    ensemble = DefaultEnsemble(report_floor=0.0)
    out = []
    for i in cycles:
        series = Series(signal, labels, t[: i + 1], y[: i + 1], entity_of(cfg[signal], labels))
        findings = ensemble.detect(Frame(from_epoch(t[i]), (series,), infos, STEP))
        [f] = [f for f in findings if f.signal == signal]
        out.append(f.score)
    return out


def _csv(path: Path, t: np.ndarray, y: np.ndarray) -> Path:
    stamps = pd.to_datetime(t, unit="s", utc=True).strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"timestamp": stamps, "value": y}).to_csv(path, index=False)
    return path


def _backtest_scores(out: Path) -> np.ndarray:
    [scores] = list(out.rglob("*.csv"))
    return pd.read_csv(scores)["anomaly_score"].to_numpy()


CYCLES = [59, 100, 119, 130, 150, 200, 239, 260, 280, 299]


def test_backtest_of_a_file_with_signal_gives_the_daemons_scores(tmp_path: Path) -> None:
    t, y = _disk_fill()
    out = tmp_path / "out"
    assert main(["backtest", str(_csv(tmp_path / "disk.csv", t, y)), "--signal", "node_filesystem_usage_ratio",
                 "--out", str(out), "--no-plots", "--quiet"]) == 0
    scores = _backtest_scores(out)
    daemon = _daemon_scores("node_filesystem_usage_ratio", {"instance": "n1", "mountpoint": "/"}, t, y, CYCLES)
    np.testing.assert_allclose(scores[CYCLES], daemon, rtol=0, atol=1e-9)
    assert max(daemon) > 0.9  # the comparison is not between two zeros


def test_backtest_from_prometheus_with_signal_gives_the_daemons_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The series' labels pick its failure point (the image filesystem's, 85 %) in both."""
    t, y = _disk_fill(seed=2)
    labels = {"instance": "n1", "mountpoint": "/var/lib/containerd"}
    asked: list[str] = []

    def query_range(self, query, start, end, step):  # noqa: ANN001 - the client's signature
        asked.append(query)
        return [RawSeries(labels, t, y)]

    monkeypatch.setattr(PrometheusClient, "query_range", query_range)
    out = tmp_path / "out"
    assert main(["backtest", "--prometheus", "http://127.0.0.1:1", "--signal", "node_filesystem_usage_ratio",
                 "--start", "2025-12-31T00:00Z", "--end", "2026-01-02T00:00Z", "--out", str(out), "--no-plots", "--quiet"]) == 0
    assert asked == [parse_config({}).resolved_signals()["node_filesystem_usage_ratio"].query]
    scores = _backtest_scores(out)
    daemon = _daemon_scores("node_filesystem_usage_ratio", labels, t, y, CYCLES)
    np.testing.assert_allclose(scores[CYCLES], daemon, rtol=0, atol=1e-9)
    # 85 % is reached sooner than 90 %: the image filesystem's point was applied, not the nodefs one.
    root = _daemon_scores("node_filesystem_usage_ratio", {"instance": "n1", "mountpoint": "/"}, t, y, CYCLES)
    assert sum(daemon) > sum(root)


def test_default_backtest_of_a_ratio_is_not_the_forecast_but_capacity_routes_it(tmp_path: Path) -> None:
    """Without a signal a file goes to the seasonal baseline; --capacity sends it to the forecaster."""
    t, y = _disk_fill()
    csv = _csv(tmp_path / "disk.csv", t, y)
    assert main(["backtest", str(csv), "--out", str(tmp_path / "plain"), "--no-plots", "--quiet"]) == 0
    assert main(["backtest", str(csv), "--capacity", "0.9", "--out", str(tmp_path / "cap"), "--no-plots", "--quiet"]) == 0
    assert main(["backtest", str(csv), "--detector", "exhaustion", "--param", "capacity=0.9", "--out", str(tmp_path / "ex"), "--no-plots", "--quiet"]) == 0
    np.testing.assert_allclose(_backtest_scores(tmp_path / "cap"), _backtest_scores(tmp_path / "ex"), atol=1e-12)
    assert _backtest_scores(tmp_path / "cap").max() > 0.9 > _backtest_scores(tmp_path / "plain").max()


def test_signal_and_capacity_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t, y = _disk_fill()
    csv = str(_csv(tmp_path / "disk.csv", t, y))
    assert main(["backtest", csv, "--signal", "nosuch", "--out", str(tmp_path / "o")]) == 2
    assert "not in the catalog" in capsys.readouterr().err
    assert main(["backtest", csv, "--capacity", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--capacity must be positive" in capsys.readouterr().err
    # model_accuracy has no capacity: the ensemble sends it to quality_drift, which replays with its direction.
    assert main(["backtest", csv, "--signal", "model_accuracy", "--out", str(tmp_path / "q"), "--no-plots", "--quiet"]) == 0
