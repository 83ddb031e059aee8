from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboards.grafana import DASHBOARD_FILES, load


@pytest.fixture(params=DASHBOARD_FILES, ids=lambda p: p.stem)
def dashboard(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    return request.param, load(request.param)
