"""Where the firmware sources and the MicroPython unix port live, and how to run the firmware.

The unix port is built by ``deploy/install.sh`` into ``$AGRI_CACHE_DIR`` (default
``~/.cache/agri``) and linked as ``micropython`` there; ``AGRI_MICROPYTHON`` overrides the path.
A 32-bit build of the same port (``-m32``: pointers and object headers the size of a 32-bit board's,
ESP32 or RP2040, so its heap figures are a board's) is linked as ``micropython-32``;
``AGRI_MICROPYTHON_32`` overrides that one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
DEFAULT_HEAP = "64K"
WORD_BITS = (32, 64)


class RuntimeMissing(RuntimeError):
    """The MicroPython unix port or the firmware sources are not where they should be."""


def cache_dir() -> Path:
    if os.environ.get("AGRI_CACHE_DIR"):
        return Path(os.environ["AGRI_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "agri"


def micropython_binary(explicit: str | os.PathLike[str] | None = None, bits: int = 64) -> Path:
    """Path of the MicroPython unix port (``bits``: its 64- or 32-bit build);
    :class:`RuntimeMissing` says how to get it."""
    if bits not in WORD_BITS:
        raise ValueError(f"bits: {bits} is not one of {', '.join(map(str, WORD_BITS))}")
    env_var, name = (
        ("AGRI_MICROPYTHON", "micropython") if bits == 64 else ("AGRI_MICROPYTHON_32", "micropython-32")
    )
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get(env_var):
        candidates.append(Path(os.environ[env_var]))
    else:
        candidates.append(cache_dir() / name)
        found = shutil.which(name) if bits == 64 else None
        if found:
            candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise RuntimeMissing(
        f"MicroPython unix port ({bits}-bit) not found at {', '.join(map(str, candidates))}: "
        f"run deploy/install.sh (or set {env_var})"
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
