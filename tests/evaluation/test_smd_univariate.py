"""The SMD-layout -> NAB-layout converter on a tiny generated machine pair (both label conventions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops.cli import main
from aiops.evaluation.errors import ReplayError
from aiops.evaluation.nab import load_windows
from aiops.evaluation.smd_univariate import INTERPRETATION_HINT, convert, nab_windows, read_interpretation


def _machine(root: Path, name: str, segments: list[tuple[int, int]], lines: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    train, test = rng.random((300, 4)), rng.random((700, 4))
    labels = np.zeros(700, dtype=int)
    for first, last in segments:
        labels[first : last + 1] = 1
        test[first : last + 1, 1] += 5.0
    for folder, rows in (("train", train), ("test", test), ("test_label", labels[:, None])):
        (root / folder).mkdir(parents=True, exist_ok=True)
        fmt = "%d" if folder == "test_label" else "%.6f"
        np.savetxt(root / folder / f"{name}.txt", rows, delimiter=",", fmt=fmt)
    (root / "interpretation_label").mkdir(exist_ok=True)
    (root / "interpretation_label" / f"{name}.txt").write_text("\n".join(lines) + "\n")


def test_windows_follow_nab_rule_centred_widened_clipped_and_merged() -> None:
    # 10 % of 1000 rows over 2 anomalies: 50 rows, centred on each segment.
    assert nab_windows(1000, [(100, 100), (500, 509)]) == [(75, 125), (479, 530)]
    # A segment longer than the window keeps all its rows; windows clip to the file.
    assert nab_windows(1000, [(0, 2), (300, 500)]) == [(0, 26), (300, 500)]
    # Overlapping windows merge into one.
    assert nab_windows(1000, [(100, 100), (120, 120)]) == [(75, 145)]
    assert nab_windows(1000, []) == []


def test_segment_bounds_come_from_the_row_labels_whatever_the_end_convention(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    labels = np.zeros(50, dtype=bool)
    labels[10:16] = True  # rows 10..15
    path.write_text("10-16:2,1,2\n")  # SMD writes the end exclusive
    assert [(s.first, s.last, s.dims) for s in read_interpretation(path, labels)] == [(10, 15, (1, 2))]
    path.write_text("10-15:3\n")  # ASD writes it inclusive
    assert read_interpretation(path, labels)[0].last == 15
    path.write_text("10:3\n")
    with pytest.raises(ReplayError, match="m.txt:1: '10:3' is not 'start-end:dim,dim,...'") as raised:
        read_interpretation(path)
    assert raised.value.hint == INTERPRETATION_HINT


def test_converter_writes_one_labelled_file_per_named_metric_and_one_category_per_machine(tmp_path: Path) -> None:
    src = tmp_path / "smd"
    _machine(src, "m-1", [(100, 109), (400, 404)], ["100-110:2,3", "400-405:2"], seed=1)
    _machine(src, "m-2", [(600, 609)], ["600-610:2"], seed=2)
    (src / "test" / "m-3.txt").write_text("0.1,0.2,0.3,0.4\n")  # no interpretation label: skipped
    out = tmp_path / "uni"
    result = convert([(src, 300)], out)
    assert result.files == 3 and result.segments == 3 and result.skipped == {"smd-m-3": "no interpretation_label file"}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == [
        "smd-m-1/dim-02.csv", "smd-m-1/dim-03.csv", "smd-m-2/dim-02.csv",
    ]
    frame = pd.read_csv(out / "smd-m-1" / "dim-02.csv", parse_dates=["timestamp"])
    assert len(frame) == 1000 and (frame["timestamp"].diff().dropna() == pd.Timedelta(minutes=5)).all()
    raw = np.vstack([np.loadtxt(src / "train" / "m-1.txt", delimiter=","), np.loadtxt(src / "test" / "m-1.txt", delimiter=",")])
    np.testing.assert_allclose(frame["value"], raw[:, 1])
    windows = load_windows(out / "combined_windows.json")
    stamps = frame["timestamp"]
    # dim 2 of m-1: two anomalies at test rows 100..109 and 400..404 (file rows +300), 50-row windows.
    assert windows["smd-m-1/dim-02.csv"] == [(stamps[379], stamps[430]), (stamps[677], stamps[727])]
    # dim 3 is named once: a 100-row window.
    assert windows["smd-m-1/dim-03.csv"] == [(stamps[354], stamps[455])]
    instants = json.loads((out / "combined_labels.json").read_text())
    assert instants["smd-m-1/dim-02.csv"] == [str(stamps[400]) + ".000000", str(stamps[700]) + ".000000"]


def test_backtest_cv_leaves_one_machine_out_of_the_converted_corpus(tmp_path: Path) -> None:
    src = tmp_path / "asd"
    _machine(src, "a", [(500, 509)], ["500-509:2"], seed=3)
    _machine(src, "b", [(550, 559)], ["550-559:2"], seed=4)
    convert([(src, 60)], tmp_path / "uni")
    argv = ["backtest", str(tmp_path / "uni"), "--labels", str(tmp_path / "uni" / "combined_windows.json")]
    assert main([*argv, "--cv", "--quiet", "--out", str(tmp_path / "cv")]) == 0
    summary = json.loads((tmp_path / "cv" / "summary.json").read_text())
    assert summary["folds"] == {"asd-a": ["asd-a/dim-02.csv"], "asd-b": ["asd-b/dim-02.csv"]}
    ensemble = summary["results"][0]
    assert ensemble["method"] == "ensemble" and set(ensemble["held_out_mean"]) >= {"standard", "reward_low_FP"}
    # A +5 step on [0, 1) noise is caught at the policy's warning threshold (no threshold learnt).
    # The learnt one is each fold's single training file's own first detection, which need not
    # transfer to the other file: the reading at 0.7 is what says the step is seen.
    assert ensemble["fixed_threshold"]["mean"]["standard"] > 50
