from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from aiops.cli import main
from aiops.config import ConfigError, load_config, parse_config, resolve_secret
from aiops.model import EntityKind, Mode


def problems(data: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)  # type: ignore[arg-type]
    return dict(info.value.problems)


def test_defaults_are_safe_and_complete() -> None:
    cfg = parse_config({})
    assert cfg.safety.mode is Mode.OBSERVE and cfg.safety.dry_run is True
    signals = cfg.resolved_signals()
    assert signals["pod_memory_usage_ratio"].capacity == 1.0
    assert "DCGM_FI_DEV_GPU_UTIL" in signals["gpu_utilization"].query
    assert "vllm:e2e_request_latency_seconds_bucket" in signals["inference_latency_p99"].query


def test_unknown_key_is_named() -> None:
    assert "unknown key" in problems({"prometheus": {"urll": "http://x"}})["prometheus.urll"]
    assert "unknown key" in problems({"promethus": {}})["promethus"]


def test_durations_accept_prometheus_syntax_and_reject_garbage() -> None:
    cfg = parse_config({"prometheus": {"timeout": "1m30s", "lookback": "2h"}, "schedule": {"interval": 45}})
    assert cfg.prometheus.timeout == timedelta(seconds=90)
    assert cfg.schedule.interval == timedelta(seconds=45)
    assert "duration" in problems({"prometheus": {"timeout": "soon"}})["prometheus.timeout"]
    assert "lookback" in problems({"prometheus": {"lookback": "5m", "step": "1m"}})["prometheus"]


def test_secrets_never_in_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert "in clear" in problems({"prometheus": {"bearer_token": "abc123"}})["prometheus.bearer_token"]
    monkeypatch.setenv("PROM_TOKEN", "s3cr3t-token")
    cfg = parse_config({"prometheus": {"bearer_token": {"env": "PROM_TOKEN"}}})
    value = resolve_secret(cfg.prometheus.bearer_token, "prometheus.bearer_token")
    assert value is not None and value.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t" not in repr(value) and "s3cr3t" not in str(cfg)
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    cfg = parse_config({"prometheus": {"bearer_token": {"file": str(secret_file)}}})
    assert resolve_secret(cfg.prometheus.bearer_token, "k").get_secret_value() == "from-file"  # type: ignore[union-attr]
    cfg = parse_config({"prometheus": {"bearer_token": {"env": "NOT_SET_ANYWHERE"}}})
    with pytest.raises(ConfigError) as info:
        resolve_secret(cfg.prometheus.bearer_token, "prometheus.bearer_token")
    assert info.value.problems == [("prometheus.bearer_token", "environment variable NOT_SET_ANYWHERE is not set")]


def test_resolved_secret_is_masked_in_logs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from aiops.logs import RedactingFilter

    monkeypatch.setenv("PROM_TOKEN2", "tok-AAAA-BBBB")
    cfg = parse_config({"prometheus": {"bearer_token": {"env": "PROM_TOKEN2"}}})
    resolve_secret(cfg.prometheus.bearer_token, "prometheus.bearer_token")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "header was Bearer %s", ("tok-AAAA-BBBB",), None)
    RedactingFilter().filter(record)
    assert "tok-AAAA-BBBB" not in record.getMessage() and "***" in record.getMessage()


def test_signal_overrides_and_new_signals() -> None:
    cfg = parse_config({"signals": {
        "gpu_temperature": {"enabled": False},
        "pod_memory_usage_ratio": {"query": "my_ratio"},
        "queue_depth": {"query": "sum by (queue) (jobs_waiting)", "entity": "service", "entity_labels": {"name": "queue"}},
    }})
    sig = cfg.resolved_signals()
    assert "gpu_temperature" not in sig
    assert sig["pod_memory_usage_ratio"].query == "my_ratio" and sig["pod_memory_usage_ratio"].capacity == 1.0
    assert sig["queue_depth"].entity == "service"
    assert "needs query and entity" in problems({"signals": {"nope": {"unit": "x"}}})[""]


def test_entity_kinds_in_the_config_come_from_the_closed_set() -> None:
    sig = parse_config({"signals": {"q": {"query": "up", "entity": "service"}}}).resolved_signals()["q"]
    assert sig.entity is EntityKind.SERVICE
    # A typo, and a kind no signal's labels identify, are named with the kinds a signal may have.
    for kind in ("pods", "signal", "application"):
        msg = problems({"signals": {"q": {"query": "up", "entity": kind}}})["signals.q.entity"]
        assert msg.startswith(f"{kind!r} is not an entity kind") and "gpu, deployment, statefulset, hpa" in msg, msg
    # A rule's entity_kind is a pattern: one that matches no kind would never fire.
    rule = {"name": "r", "action": "advise"}
    msg = problems({"policy": {"rules": [{**rule, "entity_kind": "pods"}]}})["policy.rules[0].entity_kind"]
    assert msg.startswith("'pods' matches no entity kind; use one of: cluster,") and "signal" in msg, msg
    assert parse_config({"policy": {"rules": [{**rule, "entity_kind": "stateful*"}]}}).policy.rules[0].entity_kind == "stateful*"


def test_detector_and_rule_validation() -> None:
    assert "unknown signal" in problems({"detectors": [{"plugin": "exhaustion", "signals": ["typo"]}]})[""]
    assert "unique" in problems({"detectors": [{"plugin": "exhaustion"}, {"plugin": "exhaustion"}]})[""]
    assert problems({"policy": {"rules": [{"name": "r"}]}})["policy.rules[0].action"] == "Field required"
    assert "mode" in "".join(problems({"safety": {"mode": "yolo"}}))


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("prometheus:\n  url: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line" in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("prometheus:\n  url: http://prometheus.monitoring:9090\nsafety:\n  mode: suggest\n")
    assert main(["check-config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("prometheus:\n  timeout: forever\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "prometheus.timeout" in err and "Traceback" not in err
    plugin = tmp_path / "plugin.yaml"
    plugin.write_text("detectors:\n  - plugin: no_such_detector\n")
    assert main(["check-config", str(plugin)]) == 2
    assert "detectors[0].plugin" in capsys.readouterr().err


def test_store_transactions_nest_and_roll_back_together(tmp_path: Path) -> None:
    from aiops.state import Store

    store = Store(tmp_path / "s.sqlite")
    with store.transaction():
        store.put("a", 1)  # joins the outer transaction
    assert store.get("a") == 1
    with pytest.raises(RuntimeError), store.transaction():
        store.put("b", 2)
        raise RuntimeError("the outer write fails")
    assert store.get("b") is None  # the nested write went with it
    with store.transaction():  # and the store is usable afterwards
        store.put("c", 3)
    assert store.get("c") == 3


def test_prometheus_scope_keeps_every_signal_query_on_one_cluster() -> None:
    from tests.config.test_promql import _selectors

    config = parse_config({"prometheus": {"scope": {"cluster": "prod-eu"}},
                           "signals": {"mine": {"query": "max by (pod) (my_gauge)", "entity": "pod"}}})
    signals = config.resolved_signals()
    assert "mine" in signals
    for name, signal in signals.items():
        assert all(s.get("cluster") == "prod-eu" for s in _selectors(signal.query)), name
    # Without a scope the queries are the catalog's own.
    plain = parse_config({}).resolved_signals()
    assert all("prod-eu" not in s.query for s in plain.values())


@pytest.mark.parametrize(("scope", "why"), [
    ({"0cluster": "x"}, "label name"),
    ({"__name__": "up"}, "label name"),
])
def test_a_scope_that_is_no_label_matcher_is_refused(scope: dict[str, str], why: str) -> None:
    found = problems({"prometheus": {"scope": scope}})
    assert any(key.startswith("prometheus.scope") and why in msg for key, msg in found.items()), found


def test_a_signal_query_the_scope_cannot_be_added_to_is_named() -> None:
    with pytest.raises(ConfigError, match=r"signals\.mine.*'or' matchers"):
        parse_config({"prometheus": {"scope": {"cluster": "a"}},
                      "signals": {"mine": {"query": 'up{a="1" or b="2"}', "entity": "pod"}}})


def test_prometheus_headers_are_checked() -> None:
    assert parse_config({"prometheus": {"headers": {"X-Scope-OrgID": "gpu-prod"}}}).prometheus.headers == {
        "X-Scope-OrgID": "gpu-prod"}
    found = problems({"prometheus": {"headers": {"Authorization": "Bearer x"}}})
    assert any("bearer_token" in msg for msg in found.values()), found
