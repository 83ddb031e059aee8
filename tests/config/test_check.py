"""check-config checks a config against the installed plugins and the catalog, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aiops import plugins
from aiops.cli import main
from aiops.config import parse_config
from aiops.config.check import ENGINE_DETECTORS, INBOUND_DETECTOR, check_plugins
from aiops.notify import alertmanager


def _rule(**overrides: Any) -> dict[str, Any]:
    return {"name": "r", "signal": "gpu_xid", "action": "evacuate_node", "target": "node", **overrides}


def _problems(*rules: dict[str, Any], **sections: Any) -> dict[str, str]:
    return dict(check_plugins(parse_config({"policy": {"rules": list(rules)}, **sections})))


def _check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: dict[str, Any]) -> str:
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump({"policy": {"rules": [rule]}}))
    assert main(["check-config", str(path)]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("rule", "key", "words"),
    [
        (_rule(ladder={"prepare_action": "evacuate_nodee"}), "policy.rules[0].ladder.prepare_action", "evacuate_nodee"),
        (_rule(action="restart_pod", signal="pod_crashlooping", target="entity", params={"stratgy": "x"}),
         "policy.rules[0].params.stratgy", "known: grace_period_seconds, strategy"),
        (_rule(signal="gpu_xid_erors"), "policy.rules[0].signal", "'gpu_xid_erors' matches no known signal"),
    ],
    ids=["prepare_action", "params", "signal"],
)
def test_check_config_rejects_each_typo_with_the_exact_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: dict[str, Any], key: str, words: str
) -> None:
    err = _check_config(tmp_path, capsys, rule)
    line = next(line for line in err.splitlines() if line.strip().startswith(f"{key}:"))
    assert words in line


def test_check_config_names_a_misspelt_detector_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "aiops.yaml"
    detectors = [{"plugin": "ensemble"}, {"plugin": "conditions"}, {"plugin": "seasonal", "name": "slow-days",
                                                                   "params": {"min_reference_zz": 6}}]
    path.write_text(yaml.safe_dump({"detectors": detectors}))
    assert main(["check-config", str(path)]) == 2
    line = next(line.strip() for line in capsys.readouterr().err.splitlines() if "min_reference_zz" in line)
    assert line.startswith("detectors[2].params.min_reference_zz: unknown parameter of seasonal; known: damp,"), line


def test_the_default_config_and_every_documented_shape_pass() -> None:
    assert check_plugins(parse_config({})) == []
    ok = _problems(
        _rule(name="pattern", signal="gpu_*"),
        _rule(name="inbound", detector="alertmanager", signal="KubePodCrashLooping", action="restart_pod", target="entity"),
        _rule(name="engine", signal="gpu_metrics_missing", ladder={"prepare_params": {"cordon_only": True}}),
        _rule(name="mine", signal="queue_depth", action="advise", params={"suggestion": "add workers"}),
        signals={"queue_depth": {"query": "sum(jobs_waiting)", "entity": "service", "entity_labels": {"name": "queue"}}},
    )
    assert ok == {}


def test_prepare_params_are_checked_against_the_prepare_action() -> None:
    problems = _problems(_rule(ladder={"prepare_action": "scale_ahead", "prepare_params": {"cordon_only": True}}))
    assert "unknown parameter" in problems["policy.rules[0].ladder.prepare_params.cordon_only"]
    problems = _problems(_rule(ladder={"prepare_params": {"cordon_onyl": True}}))
    assert "policy.rules[0].ladder.prepare_params.cordon_onyl" in problems


def test_parameter_values_are_validated_too() -> None:
    problems = _problems(_rule(action="restart_pod", signal="pod_crashlooping", target="entity", params={"strategy": "reboot"}))
    assert "'delete' or 'rollout'" in problems["policy.rules[0].params.strategy"]
    assert "policy.rules[0].action" in _problems(_rule(action="evacuate"))


def test_a_wildcard_detector_does_not_excuse_an_unknown_signal() -> None:
    assert "policy.rules[0].signal" in _problems(_rule(detector="*", signal="NodeFailing"))
    assert "policy.rules[0].signal" in _problems(_rule(signal="gpuu_*"))


def test_detector_parameters_are_checked_against_the_declared_ones_naming_the_key() -> None:
    detectors = [
        {"plugin": "exhaustion", "params": {"horizn": "1h"}},
        {"plugin": "seasonal", "params": {"min_reference_zz": 3}},
        {"plugin": "ensemble", "name": "e", "params": {"members": {"seasonal": {"seasons": "weekly"}, "nope": {}}}},
        {"plugin": "exhaustion", "name": "x", "params": {"hold_seconds": 99999}},
    ]
    problems = dict(check_plugins(parse_config({"detectors": detectors})))
    assert problems["detectors[0].params.horizn"].startswith("unknown parameter of exhaustion; known: capacity,")
    assert "min_reference_z," in problems["detectors[1].params.min_reference_zz"]
    assert "integer" in problems["detectors[2].params.members.seasonal.seasons"]
    assert "no plugin named 'nope'" in problems["detectors[2].params.members.nope"]
    # A bound that spans two parameters names the later one.
    assert "between 0 and horizon_seconds" in problems["detectors[3].params.hold_seconds"]
    assert len(problems) == 5, problems


# One out-of-range value per bound each built-in declares (a cross-field bound names the later key).
OUT_OF_RANGE = [
    ("seasonal", "period_seconds", 0), ("seasonal", "window_seconds", -1.0), ("seasonal", "short_seconds", 0),
    ("seasonal", "memory_seconds", 0), ("seasonal", "fade_seconds", float("nan")), ("seasonal", "seasons", 0),
    ("seasonal", "min_history_points", 7), ("seasonal", "damp", 1.5), ("seasonal", "min_reference_z", 0),
    ("seasonal", "scale_stride", 0), ("seasonal", "scale_refresh", 0), ("seasonal", "profile_seconds", -60),
    ("quality_drift", "drop_fraction", 1.0), ("quality_drift", "reference_seconds", 0),
    ("quality_drift", "recent_seconds", -5), ("quality_drift", "cusum_h", 0), ("quality_drift", "trend_seconds", 0),
    ("quality_drift", "horizon_seconds", float("nan")),
    ("multivariate", "variance", 1.0), ("multivariate", "neighbours", -1), ("multivariate", "smooth_minutes", float("inf")),
    ("multivariate", "alarm_rate", 0.5), ("multivariate", "calibration_share", 0.9), ("multivariate", "top_features", 0),
    ("multivariate", "min_reference", 10), ("multivariate", "window", 10), ("multivariate", "refresh_minutes", 0),
    ("multivariate", "min_scale", 0), ("multivariate", "min_residual", -0.1),
    ("exhaustion", "horizon_seconds", 0), ("exhaustion", "window_seconds", -1), ("exhaustion", "jump_fraction", 0),
    ("exhaustion", "max_lead_seconds", 400 * 86400.0), ("exhaustion", "daily_memory_days", 15),
    ("exhaustion", "hold_seconds", 99999),
    ("gpu_health", "throttle_score", 1.5),
]


@pytest.mark.parametrize(("plugin", "key", "value"), OUT_OF_RANGE)
def test_an_out_of_range_detector_parameter_is_named_by_its_key(plugin: str, key: str, value: object) -> None:
    problems = dict(check_plugins(parse_config({"detectors": [{"plugin": plugin, "params": {key: value}}]})))
    assert list(problems) == [f"detectors[0].params.{key}"], problems
    with pytest.raises(ValueError, match=key):
        plugins.load(plugins.DETECTORS, plugin)(**{key: value})


@pytest.mark.parametrize("name", sorted(plugins.available(plugins.DETECTORS)))
def test_every_detector_declares_its_parameters(name: str) -> None:
    cls = plugins.load(plugins.DETECTORS, name)
    assert issubclass(cls.Params, plugins.DetectorParams) and cls.Params is not plugins.DetectorParams
    cls(**cls.Params().model_dump())  # the declared defaults are accepted by the constructor
    with pytest.raises(plugins.PluginError, match=f"unknown parameter of {name}"):
        plugins.instantiate(plugins.DETECTORS, name, {"no_such_parameter": 1})


def test_inbound_detector_name_is_the_webhook_one() -> None:
    assert INBOUND_DETECTOR == alertmanager.INBOUND_DETECTOR
    from aiops.engine import correlate

    assert ENGINE_DETECTORS == (correlate.DETECTOR,)


def test_a_rule_whose_detector_names_nothing_is_refused() -> None:
    problems = _problems(_rule(detector="gpu_helth"), _rule(name="ok", detector="gpu_*"),
                         _rule(name="mine", detector="night-shift", signal="gpu_temperature"),
                         detectors=[{"plugin": "gpu_health", "name": "night-shift"}])
    assert list(problems) == ["policy.rules[0].detector"]
    assert problems["policy.rules[0].detector"].startswith("'gpu_helth' matches no detector; known: alertmanager,")


def test_a_remediation_bound_across_parameters_names_the_later_key() -> None:
    rule = _rule(signal="inference_latency_p99", action="scale_ahead", target="owner",
                 params={"min_replicas": 5, "max_replicas": 2})
    assert _problems(rule) == {"policy.rules[0].params.max_replicas": "max_replicas must be at least min_replicas (5)"}


@pytest.mark.parametrize("name", sorted(plugins.available(plugins.REMEDIATIONS)))
def test_every_remediation_declares_its_parameters(name: str) -> None:
    cls = plugins.load(plugins.REMEDIATIONS, name)
    defaults = cls.Params()
    cls(**defaults.model_dump())  # the declared defaults are accepted by the constructor
    with pytest.raises(plugins.PluginError, match="unknown parameter"):
        plugins.instantiate(plugins.REMEDIATIONS, name, {"no_such_parameter": 1})


def test_an_xid_remediation_that_is_no_remediation_is_named() -> None:
    """``policy.xid_remediation`` names the action an XID calls for: a typo there would decide an
    action nothing can carry out, on the day the GPU fails."""
    problems = dict(check_plugins(parse_config({"policy": {"xid_remediation": {94: "restart_pods", 79: "evacuate_node"}}})))
    assert list(problems) == ["policy.xid_remediation.94"]
    assert "restart_pods" in problems["policy.xid_remediation.94"]


def test_a_misspelt_action_in_action_modes_is_named_with_the_likely_one() -> None:
    # The cap is looked up by the decision's action name: a misspelt key caps nothing, silently.
    problems = dict(check_plugins(parse_config({"safety": {"action_modes": {"evacuate-node": "suggest"}}})))
    reason = problems["safety.action_modes.evacuate-node"]
    assert "did you mean 'evacuate_node'?" in reason and "restart_pod" in reason
    assert check_plugins(parse_config({"safety": {"action_modes": {"evacuate_node": "suggest", "advise": "observe"}}})) == []
