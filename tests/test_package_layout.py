"""The shipped code does not depend on the test kit, and the tests mirror the package.

``aiops.testing`` is published for plugin authors' tests (contract checks, fakes, receivers) and
may use test-only packages (aiosmtpd, jsonpatch, cryptography). The daemon, the CLI (``aiops demo``
included) and the built-in plugins must run with the wheel's runtime dependencies alone, so they
never import it, and every third-party package they import is one those dependencies install.

The tests of ``aiops/engine`` live in ``tests/engine/``, and so on for every package, so the tests
of a module are found where its package is; folders for the repository's other parts (``bench/``,
``deploy/`` …) and for the cross-cutting fault tests (``tests/reliability/``) are the only others.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("aiops", "detectors", "remediations")
TEST_KIT = ROOT / "aiops" / "testing"


def _product_files() -> Iterator[Path]:
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if TEST_KIT not in path.parents:
                yield path


def _imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, lazy and TYPE_CHECKING ones included."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield node.lineno, base
            for alias in node.names:  # `from aiops import testing` names a module
                yield node.lineno, f"{base}.{alias.name}"


@functools.cache
def _product_imports() -> list[tuple[Path, int, str]]:
    """(file, line, module) of every import in the shipped code, read once for all the tests here."""
    return [(path, line, module) for path in _product_files() for line, module in _imported_modules(path)]


def _is_test_kit(module: str) -> bool:
    return module == "aiops.testing" or module.startswith("aiops.testing.")


def test_the_imports_are_read_from_every_product_module() -> None:
    """The walk sees what it must: the CLI's demo command imports the demo launchers."""
    demo = ROOT / "aiops" / "commands" / "demo.py"
    assert demo in set(_product_files())
    assert "aiops.demo.prometheus" in {m for path, _, m in _product_imports() if path == demo}
    assert _is_test_kit("aiops.testing.kubeapi") and not _is_test_kit("aiops.testing_tools")


def test_nothing_outside_the_test_kit_imports_it() -> None:
    offenders: dict[str, str] = {}
    for path, line, module in _product_imports():
        if _is_test_kit(module):
            offenders.setdefault(f"{path.relative_to(ROOT)}:{line}", module)
    assert not offenders, (
        "shipped code imports the test kit; move what it needs out of aiops/testing "
        "(launchers the CLI uses live in aiops/demo):\n"
        + "\n".join(f"{where} imports {module}" for where, module in offenders.items())
    )


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_distributions() -> set[str]:
    """The project's runtime dependencies (pyproject.toml, no extras) and everything they require."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    todo = [Requirement(line) for line in declared]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = _normalise(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: nothing to follow, and the import check below says so
        todo.extend(Requirement(line) for line in requires)
    return seen


def test_shipped_code_imports_only_what_the_runtime_dependencies_install() -> None:
    runtime = _runtime_distributions()
    providers = importlib.metadata.packages_distributions()
    missing = []
    for path, line, module in _product_imports():
        top = module.split(".")[0]
        if not top or top in sys.stdlib_module_names or top in PRODUCT or top == "__future__":
            continue
        dists = {_normalise(d) for d in providers.get(top, [])}
        if not dists & runtime:
            missing.append(f"{path.relative_to(ROOT)}:{line} imports {top} ({', '.join(sorted(dists)) or '?'})")
    assert not missing, (
        "shipped code imports packages that only the test extra (or nothing) installs; add them to "
        "[project] dependencies in pyproject.toml or keep them in aiops/testing:\n" + "\n".join(sorted(set(missing)))
    )


# Test folders that mirror no package: the repository's other top-level folders, and fault
# injection across packages (a killed process, a full disk, hostile peers).
NOT_PACKAGES = {"alert_rules", "bench", "dashboards", "deploy", "reliability"}


def _packages() -> set[str]:
    """The product's packages as test folders name them: aiops/engine -> engine, detectors -> detectors."""
    inner = {p.parent.name for p in (ROOT / "aiops").glob("*/__init__.py")}
    return inner | {top for top in PRODUCT if top != "aiops"}


def test_every_package_has_its_test_folder_and_every_test_folder_a_package() -> None:
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert sorted(_packages() - folders) == [], "add tests/<package>/ for these packages"
    assert sorted(folders - _packages() - NOT_PACKAGES) == [], (
        "move these tests under tests/<package>/ of the package they test"
    )
