"""Config edges get a clear error that names the key, never a traceback or a leaked password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiops.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("interval", "says"),
    [
        ("99999999999999d", "longer than 3650d"),
        (float("inf"), "longer than 3650d"),
        ("9" * 400 + "w", "longer than 3650d"),
        (10**400, "longer than 3650d"),  # too large for a float: OverflowError, not a ConfigError
        (float("nan"), "NaN"),
        (0, "at least 1s"),
        ("0s", "at least 1s"),
        ("500ms", "at least 1s"),
        (-5, "negative"),
    ],
)
def test_bad_intervals_are_config_errors(interval: object, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"schedule": {"interval": interval}})
    [(key, reason)] = caught.value.problems
    assert key == "schedule.interval" and says in reason


def test_a_huge_integer_duration_is_named_and_not_echoed_in_full() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"safety": {"cooldown": 10**400}})
    [(key, reason)] = caught.value.problems
    assert key == "safety.cooldown" and "longer than 3650d" in reason and len(reason) < 200


def test_a_number_too_long_for_python_to_read_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "aiops.yaml"
    path.write_text("safety:\n  cooldown: " + "1" * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [(key, reason)] = caught.value.problems
    assert "digits" in reason and len(reason) < 200


def test_longest_durations_still_accepted() -> None:
    cfg = parse_config({"schedule": {"interval": "1s"}, "state": {"audit_retention": "3650d"}})
    assert cfg.state.audit_retention.days == 3650


def test_prometheus_url_with_credentials_is_refused_without_printing_the_password(tmp_path: Path) -> None:
    password = "s3cret-in-url-9f2c"
    with pytest.raises(ConfigError) as caught:
        parse_config({"prometheus": {"url": f"http://admin:{password}@prometheus:9090"}})
    [(key, reason)] = caught.value.problems
    assert key == "prometheus.url" and "basic_auth" in reason and password not in str(caught.value)
    # A user name alone is refused too (it belongs in basic_auth with its password).
    with pytest.raises(ConfigError, match="basic_auth"):
        parse_config({"prometheus": {"url": "http://admin@prometheus:9090"}})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("yaml_text", "says"),
    [
        ('schedule:\n  interval: "99999999999999d"\n', "schedule.interval: duration"),
        ("schedule:\n  interval: .inf\n", "schedule.interval: duration"),
        ("schedule:\n  interval: 0\n", "schedule.interval: interval must be at least 1s"),
        ("prometheus:\n  url: http://admin:pw-9f2c1@prom:9090\n", "prometheus.url: credentials"),
    ],
)
def test_check_config_prints_the_key_and_no_traceback(tmp_path: Path, yaml_text: str, says: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    done = subprocess.run([sys.executable, "-m", "aiops", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and says in output
    assert "Traceback" not in output and "pw-9f2c1" not in output
