"""House rules on the product code as a whole: imports have no side effects on the environment,
the declared runtime dependencies are the ones the code imports, and nothing knows about folders
outside the checkout."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.unit.test_layers import ALLOWED, ROOT

IMPORTED_PACKAGES = [p for p in ALLOWED if p != "dashboard" and (ROOT / p).is_dir()]
# Set by a library when imported, not by our code: pyproj (through sky/) points its bundled PROJ
# and GDAL at certifi's CA bundle; streamlit (through dashboard/) sets MPLBACKEND=Agg.
LIBRARY_SET = {"GDAL_CURL_CA_BUNDLE", "PROJ_CURL_CA_BUNDLE", "MPLBACKEND"}


def _product_files() -> list[Path]:
    return sorted(p for pkg in ALLOWED if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py"))


def test_importing_the_product_sets_no_environment_variable() -> None:
    """`agri` imports every command module for every command: an import must not change os.environ
    (it used to set OMP_NUM_THREADS for every process, services included)."""
    code = f"""
import importlib, json, os, pkgutil
before = dict(os.environ)
import agri.cli.main
for pkg in {IMPORTED_PACKAGES!r}:
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
after = dict(os.environ)
print(json.dumps(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(json.loads(out.stdout.strip().splitlines()[-1])) - LIBRARY_SET == set()


def _third_party_imports() -> set[str]:
    local = set(ALLOWED) | {"firmware", "tests"}
    found: set[str] = set()
    for path in _product_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in local and top not in sys.stdlib_module_names:
                    found.add(top)
    return found


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def test_runtime_dependencies_are_the_ones_the_code_imports() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())

    def names(reqs: list[str]) -> set[str]:
        return {_canonical(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in reqs}

    declared = names(meta["project"]["dependencies"])
    extras = names([r for reqs in meta["project"]["optional-dependencies"].values() for r in reqs])
    dists = packages_distributions()
    undeclared, imported = [], set()
    for top in _third_party_imports():
        assert top in dists, f"{top} is imported but no installed distribution provides it"
        provided_by = {_canonical(d) for d in dists[top]}  # a namespace (pystac) may have several
        imported |= provided_by
        # Extras (river: an optional baseline of `agri bench anomaly`) may be imported where optional.
        if not provided_by & (declared | extras):
            undeclared.append(top)
    assert undeclared == [], "imported but not declared in [project] dependencies"
    assert declared - imported == set(), "declared but imported nowhere in the product code"


def test_no_product_code_knows_where_the_shared_folder_is() -> None:
    pattern = re.compile(r"""\.\./shared|["']shared["']""")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in _product_files()
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_every_document_the_code_cites_exists() -> None:
    cited = re.compile(r"\bdocs/[A-Za-z0-9_.-]+\.md")
    missing = sorted(
        f"{p.relative_to(ROOT)}: {m}"
        for p in _product_files()
        for m in set(cited.findall(p.read_text(encoding="utf-8")))
        if not (ROOT / m).is_file()
    )
    assert missing == []
