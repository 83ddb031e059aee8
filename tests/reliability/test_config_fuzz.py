"""Random and mutated configs: either valid or a clear error naming the key; never a traceback,
never a start with unsafe defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops.config import ConfigError, parse_config
from aiops.model import Mode

BASE: dict[str, Any] = {
    "prometheus": {"url": "http://prometheus:9090", "timeout": "30s", "step": "60s", "lookback": "6h"},
    "schedule": {"interval": "60s"},
    "detectors": [{"plugin": "exhaustion"}],
    "policy": {"severity": {"warning": 0.7, "critical": 0.9},
               "rules": [{"name": "r", "signal": "pod_memory_usage_ratio", "action": "restart_pod"}]},
    "safety": {"mode": "suggest", "dry_run": True},
    "state": {"path": "/tmp/state.sqlite"},
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["auto", "5m", "-1s", "http://x", "", "1e309", "yes", "observe"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def check(data: Any) -> None:
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert exc.problems, "an error must name at least one problem"
        for key, reason in exc.problems:
            assert isinstance(key, str) and reason and "Traceback" not in reason
        return
    # Valid: acting must have been asked for explicitly.
    explicit_auto = isinstance(data, dict) and isinstance(data.get("safety"), dict) and data["safety"].get("mode") == "auto"
    if cfg.safety.mode is Mode.AUTO:
        assert explicit_auto
    if not (isinstance(data, dict) and isinstance(data.get("safety"), dict) and "dry_run" in data["safety"]):
        assert cfg.safety.dry_run is True


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_configs(data: st.DataObject) -> None:
    doc = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        doc = _set(doc, path, data.draw(values))
    check(doc)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(values)
def test_random_documents(doc: Any) -> None:
    check(doc)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_yaml_text(text: str) -> None:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # load_config reports these with the line; covered in the foundation tests
    check(doc)
