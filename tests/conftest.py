"""Shared fixtures. Real components only: Prometheus and Alertmanager are the Debian binaries."""

from __future__ import annotations

import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Fail loudly rather than skip: CI installs these, and a silently skipped suite proves nothing.
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        raise pytest.UsageError(
            f"missing {', '.join(missing)}: install the Debian package with `apt-get install prometheus` "
            "(.ci/run does this)"
        )
