"""The layers of docs/architecture.md, checked on every import in the product code.

analytics (numpy only) < kernel < store < services (gateway, ingest, alerts, api, sky) < dashboard
< agri (the app layer: CLI, embedded stack, provisioning, flash, benchmark rigs). A package may
import only packages below it, and never through an import hidden inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[str, set[str]] = {
    "analytics": set(),
    "kernel": {"analytics"},
    "store": {"kernel", "analytics"},
    "gateway": {"kernel", "analytics"},
    "ingest": {"kernel", "store", "analytics"},
    "alerts": {"kernel", "store", "analytics"},
    "api": {"kernel", "store", "analytics"},
    "sky": {"kernel", "store", "analytics"},
    "dashboard": {"api", "kernel", "analytics"},
    "agri": {"kernel", "store", "analytics", "gateway", "ingest", "alerts", "api", "sky", "dashboard"},
}
PROJECT = set(ALLOWED) | {"firmware", "tests"}


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported top-level package, inside a function?) for each import of a project package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top in PROJECT:
                    out.append((child.lineno, top, in_function))
            visit(child, nested)

    visit(tree, False)
    return out


def _product_files() -> list[Path]:
    return sorted(p for pkg in ALLOWED if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_imports_only_layers_below_it() -> None:
    bad = []
    for path in _product_files():
        pkg = path.relative_to(ROOT).parts[0]
        for line, top, _ in _imports(path):
            if top != pkg and top not in ALLOWED[pkg]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({pkg}) imports {top}")
    assert not bad, "layer violations:\n" + "\n".join(bad)


def test_no_function_level_import_of_another_project_package() -> None:
    bad = []
    for path in _product_files():
        pkg = path.relative_to(ROOT).parts[0]
        for line, top, in_function in _imports(path):
            if in_function and top != pkg:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top} inside a function")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("pkg", sorted(ALLOWED))
def test_the_check_sees_each_existing_package(pkg: str) -> None:
    if not (ROOT / pkg).is_dir():
        pytest.skip(f"{pkg}/ does not exist yet")
    assert any(True for _ in (ROOT / pkg).rglob("*.py"))


def test_the_checker_flags_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom agri.cli import main\n\ndef f():\n    from store import writer\n")
    assert _imports(f) == [(2, "agri", False), (5, "store", True)]
