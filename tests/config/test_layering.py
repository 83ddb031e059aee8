"""The config is read by the stages, never the other way: aiops.config imports no stage."""

from __future__ import annotations

import ast
from pathlib import Path

import aiops.config

STAGES = ("aiops.collect", "aiops.engine", "aiops.notify", "aiops.kube", "aiops.state", "aiops.advisor")


def _imports(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_config_package_imports_no_stage() -> None:
    package = Path(aiops.config.__file__).parent
    found = {
        f"{path.name} imports {name}"
        for path in sorted(package.glob("*.py"))
        for name in _imports(path)
        if name.startswith(STAGES)
    }
    assert not found, "the config must not import a stage (move what both need into aiops.config): " + ", ".join(
        sorted(found))
