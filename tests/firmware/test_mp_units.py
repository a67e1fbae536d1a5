"""MicroPython unit tests (tests/firmware/mp/mp_*.py) run on the unix port, one process per test."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from agri.node.runtime import FIRMWARE_DIR, RuntimeMissing, micropython_binary

pytestmark = pytest.mark.firmware

MP_DIR = Path(__file__).parent / "mp"


def _cases() -> list[tuple[str, str]]:
    out = []
    for f in sorted(MP_DIR.glob("mp_*.py")):
        out += [(f.stem, name) for name in re.findall(r"^def (test_\w+)\(", f.read_text(), re.M)]
    return out


@pytest.fixture(scope="session")
def micropython() -> Path:
    try:
        return micropython_binary()
    except RuntimeMissing as exc:
        pytest.fail(str(exc))


@pytest.mark.parametrize(("module", "name"), _cases(), ids=[f"{m}::{n}" for m, n in _cases()])
def test_on_unix_port(micropython: Path, module: str, name: str, tmp_path: Path) -> None:
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE_DIR}:{FIRMWARE_DIR / 'unix'}:{MP_DIR}")
    # Sources are compiled on the device here, which needs far more heap than the .mpy files a
    # node runs; the 64K budget is checked by the emulator tests on the staged (compiled) firmware.
    proc = subprocess.run(
        [str(micropython), "-X", "heapsize=1M", str(MP_DIR / "runner.py"), module, name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and out.rstrip().endswith("PASS"), out
