"""`aiops backtest` end to end on small generated data: NAB layout, SMD layout, a loopback Prometheus."""

from __future__ import annotations

import json
from datetime import UTC, datetime
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from aiops import plugins
from aiops.cli import main
from aiops.evaluation.baselines import RollingZScore
from aiops.plugins import Detector


class SpikeZScore(RollingZScore, Detector):
    """A detector plugin for the test: the rolling z-score, registered under a plugin name."""

    name: ClassVar[str] = "spike"

    def __init__(self, window: int = 100, **params: Any) -> None:
        Detector.__init__(self, **params)
        RollingZScore.__init__(self, window=window)

    def detect(self, frame):
        return []


@pytest.fixture(autouse=True)
def spike_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    real = plugins.load
    monkeypatch.setattr(plugins, "load", lambda group, name: SpikeZScore if name == "spike" else real(group, name))


def _nab_corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    windows = {}
    for k, name in enumerate(["cat/a.csv", "cat/b.csv", "other/c.csv"]):
        ts = pd.date_range("2024-01-01", periods=800, freq="5min")
        values = 10 + rng.standard_normal(800)
        windows[name] = []
        if k < 2:
            spike = 500 + 50 * k
            values[spike] += 15
            windows[name] = [[str(ts[spike - 20]), str(ts[spike + 20])]]
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(path, index=False)
    labels = root / "labels" / "combined_windows.json"
    labels.parent.mkdir(parents=True)
    labels.write_text(json.dumps(windows))
    return labels


@pytest.mark.slow
def test_nab_backtest_writes_scores_plots_summary_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = _nab_corpus(tmp_path)
    out = tmp_path / "out"
    code = main(["backtest", str(tmp_path / "data"), "--detector", "spike", "--param", "window=150", "--out", str(out), "--labels", str(labels), "--quiet"])
    assert code == 0
    scored = pd.read_csv(out / "cat" / "a.csv")
    assert list(scored.columns) == ["timestamp", "value", "anomaly_score"]
    assert len(scored) == 800 and scored["timestamp"].iloc[0] == "2024-01-01 00:00:00"
    assert (out / "plots" / "other" / "c.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    names = [r["detector"] for r in summary["results"]]
    assert names == ["spike", "null", "random", "rolling_zscore"]
    spike = summary["results"][0]
    assert spike["nab"]["standard"]["normalized"] > 90  # both spikes caught early in their windows, no false alarm
    assert spike["event_recall"] == 1.0
    assert summary["results"][1]["nab"]["standard"]["normalized"] == 0.0
    report = capsys.readouterr().out
    assert "standard" in report and "rolling_zscore" in report


def test_nab_backtest_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", str(tmp_path / "missing"), "--detector", "spike", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["backtest", str(tmp_path), "--detector", "nosuch", "--out", str(tmp_path / "o")]) == 2
    assert "no plugin named 'nosuch'" in capsys.readouterr().err
    assert main(["backtest", str(tmp_path), "--detector", "spike", "--param", "oops", "--out", str(tmp_path / "o")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def _smd(root: Path) -> None:
    rng = np.random.default_rng(1)
    for folder in ("train", "test", "test_label"):
        (root / folder).mkdir(parents=True)
    for machine in ("m-1", "m-2"):
        load = rng.random((1300, 1))
        rows = np.hstack([load, 0.7 * load + 0.02 * rng.standard_normal((1300, 1)), rng.random((1300, 1)) * 0.1])
        labels = np.zeros(300, dtype=int)
        rows[1000 + 150 : 1000 + 210, 1] = 0.95 - rows[1000 + 150 : 1000 + 210, 0]  # break the correlation for an hour
        labels[150:210] = 1
        np.savetxt(root / "train" / f"{machine}.txt", rows[:1000], delimiter=",")
        np.savetxt(root / "test" / f"{machine}.txt", rows[1000:], delimiter=",")
        np.savetxt(root / "test_label" / f"{machine}.txt", labels, fmt="%d")


@pytest.mark.slow
def test_smd_backtest_scores_machines_with_the_multivariate_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _smd(tmp_path / "smd")
    out = tmp_path / "out"
    assert main(["backtest", str(tmp_path / "smd"), "--format", "smd", "--out", str(out), "--threshold", "0.5", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    main_run = summary["results"]["multivariate"]
    assert main_run["event_recall"] == 1.0
    assert main_run["mean_best_f1_per_machine"] > 0.7
    # With a train split the report carries the PCA-reconstruction and IsolationForest baselines.
    assert set(summary["results"]) == {"multivariate", "random", "feature_zscore", "pca_reconstruction", "isolation_forest"}
    assert len(pd.read_csv(out / "m-1.csv")) == 300
    assert (out / "plots" / "m-2.png").exists()
    assert "F1@thr" in capsys.readouterr().out


def test_smd_cv_leaves_each_machine_out_next_to_the_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _smd(tmp_path / "smd")
    out = tmp_path / "out"
    argv = ["backtest", str(tmp_path / "smd"), "--format", "smd", "--cv", "--grid", "smooth_minutes=0,5", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    results = {r["method"]: r for r in summary["results"]}
    assert list(results) == ["multivariate", "null", "random", "pca_reconstruction", "isolation_forest"]
    main_run = results["multivariate"]
    assert [f["fold"] for f in main_run["folds"]] == ["m-1", "m-2"]
    assert all(f["candidate"] in {"smooth_minutes=0", "smooth_minutes=5"} for f in main_run["folds"])
    assert main_run["held_out_mean"]["f1_best"] > 0.7
    assert results["pca_reconstruction"]["held_out_mean"]["f1_default"] is None  # no threshold of its own
    printed = capsys.readouterr().out
    assert "held-out" in printed and "in-sample" in printed and "pca_reconstruction" in printed


def _smd_with_a_bad_machine(root: Path) -> None:
    _smd(root)
    # m-3's label file is shorter than its test rows (a truncated download): it cannot be scored.
    for folder in ("train", "test"):
        (root / folder / "m-3.txt").write_text((root / folder / "m-1.txt").read_text())
    (root / "test_label" / "m-3.txt").write_text("0\n" * 10)


@pytest.mark.slow
def test_smd_backtest_lists_a_bad_machine_and_scores_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _smd_with_a_bad_machine(tmp_path / "smd")
    out = tmp_path / "out"
    assert main(["backtest", str(tmp_path / "smd"), "--format", "smd", "--out", str(out), "--quiet", "--no-plots"]) == 1
    assert "m-3: 10 labels for 300 test rows" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["machines"] == ["m-1", "m-2"] and set(summary["failed"]) == {"m-3"}
    assert summary["results"]["multivariate"]["mean_best_f1_per_machine"] > 0.7
    assert not (out / "m-3.csv").exists()


def test_smd_cv_lists_a_bad_machine_and_leaves_the_others_out_in_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _smd_with_a_bad_machine(tmp_path / "smd")
    out = tmp_path / "out"
    assert main(["backtest", str(tmp_path / "smd"), "--format", "smd", "--cv", "--out", str(out), "--quiet"]) == 1
    assert "m-3: 10 labels for 300 test rows" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["machines"] == ["m-1", "m-2"] and set(summary["failed"]) == {"m-3"}
    assert all([f["fold"] for f in r["folds"]] == ["m-1", "m-2"] for r in summary["results"])


class _FakePrometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        from urllib.parse import parse_qs, urlparse

        query = parse_qs(urlparse(self.path).query)
        start, end, step = (float(query[k][0]) for k in ("start", "end", "step"))
        t = np.arange(start, end + step / 2, step)
        y = np.sin(t / 600.0)
        # One spike at 07:40 UTC, placed by time so the client's chunking of the range is invisible.
        y[t == datetime(2024, 1, 1, 7, 40, tzinfo=UTC).timestamp()] = 40.0
        body = {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"__name__": "queue", "pod": "api-0"}, "values": [[float(a), str(b)] for a, b in zip(t, y)]}
        ]}}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_prometheus_backtest_lists_what_would_have_been_flagged(tmp_path: Path, prometheus: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["backtest", "--prometheus", prometheus, "--query", "queue", "--start", "2024-01-01T00:00:00Z",
            "--end", "2024-01-01T12:00:00Z", "--step", "1m", "--detector", "spike", "--out", str(out), "--quiet", "--no-plots"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    [(name, info)] = summary["series"].items()
    assert "pod=api-0" in name
    assert info["points"] == 721
    assert info["alarms"] == ["2024-01-01T07:40:00+00:00"]
    assert "1 alarm(s)" in capsys.readouterr().out
    assert (out / name).exists()


@pytest.mark.slow  # waits out real timeouts, retries or renewals (about a second or more)
def test_prometheus_backtest_unreachable_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["backtest", "--prometheus", "http://127.0.0.1:9", "--query", "up", "--start", "1h", "--detector", "spike", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "Prometheus query failed" in capsys.readouterr().err


def test_nab_backtest_on_a_subfolder_matches_labels_by_trailing_path(tmp_path: Path) -> None:
    labels = _nab_corpus(tmp_path)
    out = tmp_path / "sub"
    assert main(["backtest", str(tmp_path / "data" / "cat"), "--detector", "spike", "--out", str(out), "--labels", str(labels), "--quiet", "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 2
    assert sorted(summary["per_file"]) == ["a.csv", "b.csv"]


def test_cv_holds_out_each_category_and_reports_baselines_from_the_same_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _nab_corpus(tmp_path)
    out = tmp_path / "cv"
    argv = ["backtest", str(tmp_path / "data"), "--detector", "spike", "--grid", "window=100,150", "--cv"]
    code = main([*argv, "--out", str(out), "--labels", str(labels), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == {"cat": ["cat/a.csv", "cat/b.csv"], "other": ["other/c.csv"]}
    assert [r["method"] for r in summary["results"]] == ["spike", "null", "random", "rolling_zscore"]
    spike = summary["results"][0]
    assert {f["candidate"] for f in spike["folds"]} <= {"window=100", "window=150"}
    cat = next(f for f in spike["folds"] if f["fold"] == "cat")
    assert cat["held_out"]["standard"] is not None and "threshold" in cat["settings"]
    assert spike["held_out_mean"]["standard"] == cat["held_out"]["standard"]  # "other" has no windows
    # Also at the daemon's own alarm level (policy's warning threshold), where nothing is learnt from labels.
    assert spike["fixed_threshold"]["threshold"] == 0.7
    assert set(spike["fixed_threshold"]["folds"]) == {"cat", "other"}
    report = capsys.readouterr().out
    assert "held-out (CV mean)" in report and "in-sample" in report and "rolling_zscore" in report
    assert "policy's warning threshold 0.7" in report
    assert main([*argv, "--out", str(tmp_path / "cv3"), "--labels", str(labels), "--quiet", "--threshold", "0.95"]) == 0
    assert "At the fixed threshold 0.95" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "cv2"), "--labels", str(labels), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["held_out_mean"] == spike["held_out_mean"]


def test_grid_without_cv_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = _nab_corpus(tmp_path)
    code = main(["backtest", str(tmp_path / "data"), "--grid", "window=1,2", "--out", str(tmp_path / "o"), "--labels", str(labels)])
    assert code == 2 and "--cv" in capsys.readouterr().err


def test_messy_files_are_cleaned_and_a_bad_file_does_not_abort_the_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    labels = _nab_corpus(tmp_path)
    messy = tmp_path / "data" / "cat" / "a.csv"
    frame = pd.read_csv(messy)
    # One sample repeats an earlier timestamp, one goes backwards: Prometheus keeps the first of each.
    frame = pd.concat([frame.iloc[:100], frame.iloc[[99]].assign(value=1e6), frame.iloc[[50]].assign(value=-1e6), frame.iloc[100:]])
    frame.to_csv(messy, index=False)
    (tmp_path / "data" / "cat" / "broken.csv").write_text("timestamp,value\nyesterday-ish,1\n")
    (tmp_path / "data" / "cat" / "elsewhen.csv").write_text("timestamp,value\n2030-01-01 00:00:00,1\n2030-01-01 00:05:00,2\n")
    doc = json.loads(labels.read_text())
    labels.write_text(json.dumps({**doc, "cat/broken.csv": [], "cat/elsewhen.csv": doc["cat/a.csv"]}))
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="aiops.evaluation.replay"):
        code = main(["backtest", str(tmp_path / "data"), "--detector", "spike", "--out", str(out), "--labels", str(labels), "--quiet", "--no-plots"])
    assert code == 1  # degraded: some files failed, the rest is scored
    err = capsys.readouterr().err
    assert "2 file(s) could not be replayed or scored" in err and "cat/broken.csv" in err and "unreadable timestamp" in err
    assert "cat/elsewhen.csv: labels do not fit" in err
    warned = [r for r in caplog.records if "a.csv" in r.getMessage()]
    assert len(warned) == 1 and "1 repeated, 1 going backwards" in warned[0].getMessage()
    scored = pd.read_csv(out / "cat" / "a.csv")
    assert len(scored) == 800 and scored["value"].abs().max() < 1e3  # the dropped samples are gone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 3 and list(summary["failed"]) == ["cat/broken.csv", "cat/elsewhen.csv"]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.r_[np.full(300, 5.0), np.full(300, np.nan), np.full(300, 5.0)], id="gap-in-constant"),
        pytest.param(np.full(900, 3.0), id="constant"),
        pytest.param(np.r_[np.sin(np.arange(400) / 9.0), np.full(200, np.nan), np.sin(np.arange(300) / 9.0)], id="gap"),
        pytest.param(np.r_[np.ones(450), 1e300, -1e308, np.ones(448)], id="huge-values"),
        pytest.param(np.array([1.0, 2.0, 1.0]), id="tiny"),
        pytest.param(np.array([7.0]), id="one-point"),
    ],
)
def test_default_detector_replays_awkward_series_without_error(tmp_path: Path, values: np.ndarray) -> None:
    ts = pd.date_range("2024-01-01", periods=values.shape[0], freq="5min")
    path = tmp_path / "data" / "x.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(path, index=False)
    code = main(["backtest", str(path.parent), "--out", str(tmp_path / "out"), "--quiet", "--no-plots"])
    assert code == 0
    scores = pd.read_csv(tmp_path / "out" / "x.csv")["anomaly_score"].to_numpy()
    assert scores.shape == values.shape and np.all((scores >= 0) & (scores <= 1))
    if np.nanmin(values) == np.nanmax(values) or values.shape[0] < 10:
        assert scores.max() == 0.0  # nothing unusual can be said about a flat or tiny series


def test_cv_lists_a_bad_file_and_scores_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = _nab_corpus(tmp_path)
    (tmp_path / "data" / "other" / "broken.csv").write_text("time,v\n1,2\n")
    labels.write_text(json.dumps({**json.loads(labels.read_text()), "other/broken.csv": []}))
    out = tmp_path / "cv"
    code = main(["backtest", str(tmp_path / "data"), "--detector", "spike", "--cv", "--out", str(out), "--labels", str(labels), "--quiet"])
    assert code == 1
    assert "other/broken.csv" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 3 and summary["folds"]["other"] == ["other/c.csv"]


LABELS_HINT = (
    "give label windows in NAB's combined_windows.json shape, "
    '{"folder/file.csv": [["2024-01-01 00:00:00", "2024-01-01 06:00:00"], ...]}, keys relative to DATA'
)


def _bad_labels(text: str) -> Any:
    def argv(tmp_path: Path, labels: Path) -> list[str]:
        labels.write_text(text)
        return ["--labels", str(labels)]

    return argv


@pytest.mark.parametrize(
    ("extra", "error", "hint"),
    [
        pytest.param(
            lambda tmp_path, labels: ["--param", "oops"], "--param 'oops' is not KEY=VALUE",
            "write it as KEY=VALUE, e.g. --param window=288 (VALUE is read as JSON when it parses, else as text)",
            id="param",
        ),
        pytest.param(
            lambda tmp_path, labels: ["--cv", "--labels", str(labels), "--grid", "window"], "--grid 'window' is not KEY=V1,V2,...",
            "write it as KEY=V1,V2,..., e.g. --grid window=100,150", id="grid",
        ),
        pytest.param(
            lambda tmp_path, labels: ["--labels", str(tmp_path / "nope.json")], "label file {tmp}/nope.json does not exist",
            "pass NAB's combined_windows.json with --labels, or leave --labels out to replay without scoring", id="labels-missing",
        ),
        pytest.param(
            _bad_labels("{not json"),
            "label file {labels} is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
            LABELS_HINT, id="labels-not-json",
        ),
        pytest.param(_bad_labels("[1, 2]"), "label file {labels} does not map file paths to lists of windows", LABELS_HINT, id="labels-a-list"),
        pytest.param(
            _bad_labels('{"cat/a.csv": [["2024-01-01"]]}'),
            "label file {labels}: a window of 'cat/a.csv' is not a [start, end] pair of timestamps", LABELS_HINT, id="labels-not-pairs",
        ),
        pytest.param(
            _bad_labels('{"cat/a.csv": [["2024-01-02", "2024-01-01"]]}'),
            "label file {labels}: a window of 'cat/a.csv' ends (2024-01-01 00:00:00) before it starts (2024-01-02 00:00:00)",
            "swap the window's two timestamps: [start, end]", id="labels-backwards",
        ),
        pytest.param(
            lambda tmp_path, labels: ["--capacity", "-1"], "--capacity must be positive, got -1.0",
            "give the series' hard limit in its own unit (1 for a ratio)", id="capacity",
        ),
    ],
)
def test_a_bad_input_is_one_line_and_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: Any, error: str, hint: str
) -> None:
    labels = _nab_corpus(tmp_path)
    argv = ["backtest", str(tmp_path / "data"), "--detector", "spike", "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]
    assert main([*argv, *extra(tmp_path, labels)]) == 2
    assert capsys.readouterr().err == f"error: {error.format(tmp=tmp_path, labels=labels)}\nhint: {hint}\n"


@pytest.mark.parametrize(
    ("extra", "error", "hint"),
    [
        pytest.param(
            ["--start", "soon"], "cannot read time 'soon'",
            "write it in ISO 8601 (2026-01-31T12:00Z) or as a duration before --end, like 7d", id="start",
        ),
        pytest.param(
            ["--step", "fast"], "--step 'fast' is not a duration",
            "give the step as a duration like 30s, 1m or 5m", id="step",
        ),
        pytest.param(
            ["--signal", "nosuch"], "--signal 'nosuch' is not in the catalog",
            "pick a signal of the catalog (aiops check-config lists them), or leave --signal out", id="signal",
        ),
    ],
)
def test_a_bad_prometheus_backtest_option_is_one_line_and_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], error: str, hint: str
) -> None:
    # Each is refused before anything is asked of Prometheus (nothing listens on port 9).
    argv = ["backtest", "--prometheus", "http://127.0.0.1:9", "--query", "up", "--detector", "spike", "--out", str(tmp_path)]
    assert main([*argv, *extra]) == 2
    assert capsys.readouterr().err == f"error: {error}\nhint: {hint}\n"


def test_files_in_milliseconds_are_listed_with_what_to_do_once_and_the_rest_is_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _nab_corpus(tmp_path)
    for name in ("ms1.csv", "ms2.csv"):
        (tmp_path / "data" / "cat" / name).write_text("timestamp,value\n1700000000000,1\n1700000300000,2\n")
    labels.write_text(json.dumps({**json.loads(labels.read_text()), "cat/ms1.csv": [], "cat/ms2.csv": []}))
    out = tmp_path / "out"
    argv = ["backtest", str(tmp_path / "data"), "--detector", "spike", "--out", str(out), "--labels", str(labels), "--quiet", "--no-plots"]
    assert main(argv) == 1  # degraded: two files left out, the others scored
    err = capsys.readouterr().err.splitlines()
    listed = err[err.index("2 file(s) could not be replayed or scored and are left out of every figure above:") :]
    path = tmp_path / "data" / "cat"
    reason = "numeric timestamps are read as Unix seconds, and 1700000300000 is past the year 5000"
    assert listed == [
        listed[0],
        f"  cat/ms1.csv: {path / 'ms1.csv'}: {reason}",
        f"  cat/ms2.csv: {path / 'ms2.csv'}: {reason}",
        "hint: if they are milliseconds, divide them by 1000 (or write them as text, 2024-01-01 00:00:00)",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 3 and summary["failed"] == {
        "cat/ms1.csv": f"{path / 'ms1.csv'}: {reason}", "cat/ms2.csv": f"{path / 'ms2.csv'}: {reason}",
    }


def test_a_folder_not_in_the_smd_layout_is_one_line_and_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", str(tmp_path), "--format", "smd", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path} has no test/ folder\nhint: --format smd expects DATA/train/, DATA/test/ and DATA/test_label/"
        " with one file per machine (.txt, .txt.gz, .csv): one comma-separated row per time step, no header\n"
    )


def test_a_catalog_signal_s_impossible_values_are_gaps_in_its_backtest_as_in_the_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --signal the backtest scores the series the daemon's way, so a sample the collector
    drops (aiops/collect/plausible.py) is a gap here too; a file without --signal has no unit and
    is scored as it is."""
    ts = pd.date_range("2024-01-01", periods=300, freq="1min")
    values = 50 + np.random.default_rng(1).standard_normal(300)
    values[200], values[250] = 4294967295.0, 150000.0  # NVIDIA/DCGM#199
    (tmp_path / "data").mkdir()
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(tmp_path / "data" / "util.csv", index=False)
    for flags, out in ((["--detector", "seasonal", "--signal", "gpu_utilization"], "daemon"), (["--detector", "spike"], "plain")):
        code = main(["backtest", str(tmp_path / "data"), "--out", str(tmp_path / out), "--quiet", "--no-plots", *flags])
        assert code == 0
    daemon = pd.read_csv(tmp_path / "daemon" / "util.csv")
    assert daemon["value"].isna().tolist() == [i in (200, 250) for i in range(300)]
    assert "2 samples of gpu_utilization outside what it can read" in capsys.readouterr().err
    plain = pd.read_csv(tmp_path / "plain" / "util.csv")
    assert plain["value"].iloc[200] == 4294967295.0
