"""The scope rail and policy agree on protected namespaces, given as glob patterns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiops.config import parse_config
from aiops.config.policy import PolicyConfig
from aiops.engine.decide import Policy
from aiops.engine.facts import ClusterFacts
from aiops.engine.rails.base import RailName
from aiops.engine.rails.scope import scope_refusal
from aiops.model import Entity, Evidence, Finding, Mode

NOW = datetime(2025, 1, 1, tzinfo=UTC)
# What an SRE writes (the audit's repro): patterns, as in policy rules, replacing the defaults.
SAFETY = parse_config({"safety": {"protected_namespaces": ["gpu-operator*", "monitoring"]}}).safety


@pytest.mark.parametrize(
    ("namespace", "protected"),
    [("kube-system", True), ("kube-node-lease", True), ("gpu-operator-resources", True),
     ("monitoring", True), ("shop", False)],
)
def test_the_rail_refuses_every_namespace_a_pattern_matches(namespace: str, protected: bool) -> None:
    refusal = scope_refusal(SAFETY, Entity("pod", "x-0", namespace), None)
    assert (refusal is not None and refusal.rail is RailName.PROTECTED_NAMESPACE) is protected


@pytest.mark.parametrize("namespace", ["kube-system", "gpu-operator-resources"])
def test_policy_advises_where_the_rail_would_refuse(namespace: str) -> None:
    crashloop = Finding("conditions", "pod_crashlooping", Entity("pod", "x-0", namespace), 1.0, NOW,
                        Evidence("CrashLoopBackOff"), confirmed=True)
    policy = Policy(PolicyConfig(), Mode.AUTO, protected_namespaces=SAFETY.protected_patterns)
    (d,) = policy.decide([crashloop], now=NOW, facts=ClusterFacts())[1]
    assert d.action == "advise" and "protected namespace" in d.reason
