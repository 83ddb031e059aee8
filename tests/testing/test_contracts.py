"""The published contract checks hold for every installed plugin and catch plugins that break them."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from aiops import plugins
from aiops.kube.view import ClusterView, NodeInfo, OwnerRef, PodInfo, WorkloadInfo
from aiops.model import Entity, Evidence, Finding, Frame, Plan
from aiops.plugins import Detector, Remediation
from aiops.testing import ContractError, check_detector, check_remediation
from aiops.testing.contracts import NOW, check_series_scorer, sample_decision

DETECTORS = sorted(plugins.available(plugins.DETECTORS))
REMEDIATIONS = sorted(plugins.available(plugins.REMEDIATIONS))


@pytest.mark.parametrize("name", DETECTORS)
def test_every_installed_detector_keeps_the_contract(name: str) -> None:
    check_detector(plugins.instantiate(plugins.DETECTORS, name))


def _view() -> ClusterView:
    rs = WorkloadInfo("replicaset", "web-abc", "ml", 2, 2, owners=(OwnerRef("Deployment", "web"),))
    web = WorkloadInfo("deployment", "web", "ml", 2, 2)
    pods = tuple(PodInfo(f"web-{i}", "ml", "n1", owners=(OwnerRef("ReplicaSet", "web-abc"),)) for i in (1, 2))
    return ClusterView(NOW, {"n1": NodeInfo("n1")}, pods, {w.key: w for w in (rs, web)})


@pytest.mark.parametrize("name", REMEDIATIONS)
def test_every_installed_remediation_keeps_the_contract(name: str) -> None:
    remediation = plugins.instantiate(plugins.REMEDIATIONS, name)
    check_remediation(remediation, view=_view())
    check_remediation(remediation, sample_decision(name, Entity("node", "n1")), view=_view())


class _Peeking(Detector):
    """Scores the last point by the series' maximum, which includes nothing in the future here,
    but its score_series looks ahead: the check must say so."""

    name = "peeking"
    default_signals = ("sample_signal",)

    def detect(self, frame: Frame) -> list[Finding]:
        return []

    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        clean = np.nan_to_num(values)
        return np.full(len(values), 1.0 if len(values) and clean.max() > 1.0 else 0.0)


class _OutOfRange(Detector):
    name = "out_of_range"
    default_signals = ("sample_signal",)

    def detect(self, frame: Frame) -> list[Finding]:
        return [Finding(self.name, s.signal, s.entity, 0.5, frame.now, Evidence("x")) for s in frame.series[:1]] + [
            Finding(self.name, "sample_signal", Entity("pod", "elsewhere", "ml"), 0.5, frame.now, Evidence("x"))
        ] if frame.series else []


class _Raising(Detector):
    name = "raising"
    default_signals = ("sample_signal",)

    def detect(self, frame: Frame) -> list[Finding]:
        if any(np.isnan(s.values).all() for s in frame.series):
            raise ValueError("all NaN")
        return []


@pytest.mark.parametrize(
    ("detector", "rule"),
    [
        (_Peeking(), "score_series looks ahead"),
        (_OutOfRange(), "must be about an entity of the frame, got pod/ml/elsewhere"),
        (_Raising(), "detect raised on all-NaN series"),
    ],
    ids=["look-ahead", "foreign entity", "raises"],
)
def test_a_detector_that_breaks_a_rule_is_told_which(detector: Detector, rule: str) -> None:
    with pytest.raises(ContractError, match=rule):
        check_detector(detector)


class _Undeclared(Detector):
    """Takes a parameter its Params does not declare: check-config could not validate it."""

    name = "undeclared"
    default_signals = ("sample_signal",)

    def __init__(self, signals: Any = None, report_floor: float = 0.5, *, threshold: float = 3.0) -> None:
        super().__init__(signals, report_floor=report_floor)
        self.threshold = threshold

    def detect(self, frame: Frame) -> list[Finding]:
        return []


def test_a_detector_must_declare_its_parameters() -> None:
    with pytest.raises(ContractError, match="Params must declare every constructor parameter; not declared: threshold"):
        check_detector(_Undeclared())


class _Impure(Remediation):
    name = "impure"
    calls: ClassVar[list[int]] = []

    def plan(self, decision: Any, view: Any) -> Plan:
        self.calls.append(1)
        return Plan(self.name, decision.target, (), f"call {len(self.calls)}")


class _SilentlyInfeasible(Remediation):
    name = "silently_infeasible"

    def plan(self, decision: Any, view: Any) -> Plan:
        return Plan(self.name, decision.target, (), "no", feasible=False)


@pytest.mark.parametrize(
    ("remediation", "rule"),
    [(_Impure(), "plan must be pure"), (_SilentlyInfeasible(), "an infeasible plan must say why")],
    ids=["impure", "infeasible without a reason"],
)
def test_a_remediation_that_breaks_a_rule_is_told_which(remediation: Remediation, rule: str) -> None:
    with pytest.raises(ContractError, match=rule):
        check_remediation(remediation)


def test_series_scorer_check_accepts_a_causal_scorer() -> None:
    class Causal:
        def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
            return np.clip(np.nan_to_num(values) - 0.5, 0.0, 1.0)

    check_series_scorer(Causal())


def test_the_plugins_the_readme_shows_keep_the_contract() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "(Detector)" in b or "(Remediation)" in b]
    assert len(blocks) == 2, "the README shows one detector and one remediation"
    found: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), found)  # the project's own documentation
    check_detector(found["QueueStall"]())
    check_remediation(found["DrainQueue"]())
    with pytest.raises(ValueError, match="treshold"):
        found["QueueStall"](treshold=10)
