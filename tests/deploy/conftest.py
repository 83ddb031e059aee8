from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.helm_binary import HOW_TO_GET, find_helm
from tests.deploy.manifests import CHART, helm_template, parse


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_helm()
    if path is None:
        pytest.skip(f"helm is not installed: {HOW_TO_GET}")
    return path


@pytest.fixture(scope="session")
def default_docs(helm: str) -> list[dict[str, Any]]:
    return parse(helm_template(helm))


@pytest.fixture(scope="session")
def production_docs(helm: str) -> list[dict[str, Any]]:
    return parse(helm_template(helm, CHART / "ci" / "production-values.yaml"))


@pytest.fixture(params=["default", "production"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return request.getfixturevalue(f"{request.param}_docs")
