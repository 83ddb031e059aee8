"""The notify config section: the documented example is valid, mistakes name the key."""

from __future__ import annotations

import pytest
import yaml

import aiops.config.notify as notify_config
from aiops.config import ConfigError, parse_config


def test_documented_example_is_a_valid_config() -> None:
    example = yaml.safe_load(notify_config.__doc__.split("Example::")[1])  # type: ignore[union-attr]
    cfg = parse_config(example)
    assert [r.name for r in cfg.notify.routes] == ["ml-critical", "everything"]
    assert cfg.notify.routes[0].continue_ and cfg.notify.channels["ml-robot"].fallback == "oncall-mail"


@pytest.mark.parametrize(
    ("notify", "key", "says"),
    [
        ({"routes": [{"name": "r", "channels": ["pager"]}]}, "notify", "undefined channels ['pager']"),
        ({"channels": {"a": {"plugin": "console", "fallback": "a"}}}, "notify", "must be another channel"),
        ({"links": {"grafana": "https://g/{pods}"}}, "notify.links", "unknown placeholders ['pods']"),
        ({"routes": [{"name": "r", "channels": ["console"]}, {"name": "r", "channels": ["console"]}]}, "notify",
         "route names must be unique"),
        ({"outbox": {"backoff_initial": "1h", "backoff_max": "1m"}}, "notify.outbox", "backoff_initial"),
        ({"routes": [{"name": "r", "channels": ["console"], "min_severity": "urgent"}]}, "notify.routes[0].min_severity", "info"),
        ({"routes": [{"name": "r", "channels": ["console"], "match": {"kind": "pods"}}]}, "notify.routes[0].match",
         "kind 'pods' matches no kind a notification carries; use one of: cluster,"),
    ],
)
def test_mistakes_name_the_key(notify: dict[str, object], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"notify": notify})
    problems = dict(info.value.problems)
    assert key in problems and says in problems[key]
