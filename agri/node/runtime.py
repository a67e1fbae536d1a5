"""Where the firmware sources and the MicroPython unix port live, and how to run the firmware.

The unix port is built by ``deploy/install.sh`` into ``$AGRI_CACHE_DIR`` (default
``~/.cache/agri``) and linked as ``micropython`` there; ``AGRI_MICROPYTHON`` overrides the path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
DEFAULT_HEAP = "64K"


class RuntimeMissing(RuntimeError):
    """The MicroPython unix port or the firmware sources are not where they should be."""


def cache_dir() -> Path:
    if os.environ.get("AGRI_CACHE_DIR"):
        return Path(os.environ["AGRI_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "agri"


def micropython_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Path of the MicroPython unix port; :class:`RuntimeMissing` says how to get it."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("AGRI_MICROPYTHON"):
        candidates.append(Path(os.environ["AGRI_MICROPYTHON"]))
    else:
        candidates.append(cache_dir() / "micropython")
        found = shutil.which("micropython")
        if found:
            candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise RuntimeMissing(
        f"MicroPython unix port not found at {', '.join(map(str, candidates))}: "
        "run deploy/install.sh (or set AGRI_MICROPYTHON)"
    )


def firmware_dir() -> Path:
    if not (FIRMWARE_DIR / "main.py").is_file():
        raise RuntimeMissing(f"firmware sources not found in {FIRMWARE_DIR}")
    return FIRMWARE_DIR


def parse_heap(text: str) -> str:
    """Validate a MicroPython heap size such as ``64K`` or ``1M`` (16K..64M); return it normalised."""
    t = text.strip().upper()
    mult = {"K": 1024, "M": 1024 * 1024}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in ("K", "M") else t
    if not digits.isdigit():
        raise ValueError(f"heap size {text!r} must look like 64K, 256K or 1M")
    n = int(digits) * mult
    if not 16 * 1024 <= n <= 64 * 1024 * 1024:
        raise ValueError(f"heap size {text!r} must be between 16K and 64M")
    return t
