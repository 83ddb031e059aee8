"""The safety section: protected namespaces are glob patterns and never unprotect the control plane."""

from __future__ import annotations

import pytest

from aiops.config import ConfigError, parse_config
from aiops.config.safety import SYSTEM_NAMESPACES


def _problems(safety: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"safety": safety})
    return dict(caught.value.problems)


def test_protected_namespaces_are_glob_patterns_like_policy_rules() -> None:
    safety = parse_config({"safety": {"protected_namespaces": ["gpu-operator*", "monitoring"]}}).safety
    assert safety.is_protected("gpu-operator-resources") and safety.is_protected("monitoring")
    assert not safety.is_protected("shop") and not safety.is_protected("monitoring-2")


@pytest.mark.parametrize("listed", [[], ["monitoring"], ["gpu-operator*"]])
def test_a_list_that_replaces_the_defaults_keeps_the_system_namespaces_protected(listed: list[str]) -> None:
    safety = parse_config({"safety": {"protected_namespaces": listed}}).safety
    assert SYSTEM_NAMESPACES == ("kube-system", "kube-public", "kube-node-lease")
    assert all(safety.is_protected(ns) for ns in SYSTEM_NAMESPACES)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("Monitoring", "lower-case letters, digits and '-' (with * ? [ ] as wildcards); did you mean 'monitoring'?"),
        ("gpu_operator", "did you mean 'gpu-operator'?"),
        ("", "an empty pattern matches no namespace; remove it"),
    ],
)
def test_a_pattern_that_can_match_no_namespace_is_named(entry: str, says: str) -> None:
    problems = _problems({"protected_namespaces": ["kube-*", entry]})
    reason = problems["safety.protected_namespaces[1]"]
    assert says in reason
