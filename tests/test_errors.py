"""One error hierarchy: every exception class the product defines is an AiopsError with a kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import aiops
from aiops.collect.prometheus import PrometheusError
from aiops.config import ConfigError
from aiops.errors import AiopsError, PermanentError, TemporaryError, explain, is_temporary
from aiops.kube.errors import KubeApiError
from aiops.plugins import PluginError

# Subclasses of another library's exception, raised and caught inside one module.
PRIVATE = {"aiops.notify.email._NoStartTLS"}


def _product_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(aiops.__path__, "aiops."):
        if info.name.startswith("aiops.testing") or info.name == "aiops.__main__":
            continue  # test-only launchers and fakes are not the product; __main__ runs the CLI
        names.append(info.name)
    return names


def test_every_exception_class_of_the_product_is_an_aiops_error() -> None:
    outside: list[str] = []
    seen = 0
    for name in _product_modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseException):
                continue
            seen += 1
            if f"{name}.{cls.__name__}" not in PRIVATE and not issubclass(cls, AiopsError):
                outside.append(f"{name}.{cls.__name__}")
    assert seen >= 10  # the walk found the product's errors at all
    assert outside == [], "derive these from aiops.errors.AiopsError (TemporaryError or PermanentError)"


def test_kinds_have_defaults_an_instance_may_override() -> None:
    assert TemporaryError("x").temporary and not PermanentError("x").temporary
    assert AiopsError("x", temporary=True, hint="wait").temporary
    assert PermanentError("x", hint="fix the query").hint == "fix the query"
    assert ConfigError("cfg.yaml", [("policy.rules.0.signal", "unknown")]).hint.startswith("fix the keys")
    assert not PluginError("no such plugin").temporary


@pytest.mark.parametrize(
    ("exc", "temporary"),
    [
        (PrometheusError("timeout", temporary=True), True),
        (PrometheusError("bad_data", temporary=False), False),
        (KubeApiError("get lease", 503, "ServiceUnavailable", "", temporary=True), True),
        (KubeApiError("evict pod", 403, "Forbidden", "", temporary=False), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_is_temporary_reads_one_attribute_whatever_raised_it(exc: BaseException, temporary: bool) -> None:
    assert is_temporary(exc) is temporary


def test_unknown_exceptions_take_the_callers_default() -> None:
    assert is_temporary(RuntimeError("a bug"), default=True)


def test_kube_api_error_hint_says_what_to_do() -> None:
    err = KubeApiError("evict pod ml/a", 403, "Forbidden", "denied", temporary=False)
    assert "clusterrole" in err.hint and err.hint in str(err)


def test_explain_adds_a_hint_the_text_does_not_say() -> None:
    assert explain(PermanentError("locked", hint="stop the other replica")) == "locked\nhint: stop the other replica"
    assert explain(PermanentError("locked: stop the other replica", hint="stop the other replica")) == (
        "locked: stop the other replica"
    )
    assert explain(TemporaryError("timeout")) == "timeout"  # no hint: the text says it
    assert explain(RuntimeError("a bug")) == "a bug"
