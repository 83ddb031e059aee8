"""Shared fixtures. Real components only: Prometheus, Alertmanager and VictoriaMetrics are the Debian binaries.

Integration tests gate themselves where they start a binary: the launchers in
``aiops.demo.prometheus`` raise :class:`MissingBinary` naming the package to install. Under CI
(``CI=true``, where ``.ci/run`` installs every binary) that is a failure, because a silently skipped
suite proves nothing; on a developer's machine the test is skipped with the same message, so the
numpy-only tests still run without a Prometheus.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from aiops.demo.prometheus import MissingBinary
from tests.prometheus_history import (  # noqa: F401 - shared fixtures
    add_history_age_option,
    history_end,
    live_prometheus,
    prometheus,
)
from tests.shard_history import shard_history_end, shard_prometheus  # noqa: F401 - shared fixtures


def pytest_addoption(parser: pytest.Parser) -> None:
    add_history_age_option(parser)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if call.excinfo is None or not call.excinfo.errisinstance(MissingBinary) or in_ci():
        return
    report = outcome.get_result()
    path, line, _ = item.location
    report.outcome = "skipped"
    report.longrepr = (path, (line or 0) + 1, f"Skipped: {call.excinfo.value} (this fails under CI=true)")


# Loggers whose levels ``aiops.logs.configure_logging`` changes; commands run in-process call it.
_CONFIGURED_LOGGERS = ("", "urllib3", "apscheduler", "kubernetes", "dateparser")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A command run in-process (``main([...])``) configures the root logger for a real process: a
    handler on the stderr of that moment and quieter library loggers. Put both back afterwards, so a
    later test neither writes to a closed capture stream nor misses a library's debug line."""
    import logging

    loggers = [logging.getLogger(name) for name in _CONFIGURED_LOGGERS]
    levels = [lg.level for lg in loggers]
    handlers = list(logging.getLogger().handlers)
    yield
    for lg, level in zip(loggers, levels):
        lg.setLevel(level)
    root = logging.getLogger()
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
