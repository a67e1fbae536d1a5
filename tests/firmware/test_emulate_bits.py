"""`agri node emulate --bits`: the firmware on the 32-bit build of the unix port, and a bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.conftest import node_config

pytestmark = [pytest.mark.firmware]

AGRI = str(Path(sys.executable).with_name("agri"))


def _emulate(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGRI, "node", "emulate", "--config", str(cfg), "--root", str(cfg.with_suffix(".fs")), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_emulate_on_32_bit_port(firmware_build: None, tmp_path: Path) -> None:
    cfg = tmp_path / "n-1.json"
    cfg.write_text(node_config(None, "f1", "n-1", "pond").to_json())
    r = _emulate(cfg, "--bits", "32", "--code", "ram", "--fast", "--cycles", "20", "--heap-every", "10")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "32-bit MicroPython unix port" in r.stdout
    frees = [int(line.split("free=")[1].split()[0]) for line in r.stdout.splitlines() if "event=heap" in line]
    assert len(frees) == 2 and min(frees) >= 16 * 1024, r.stdout[-2000:]
    assert "event=stopped spooled=20" in r.stdout


def test_emulate_rejects_other_word_sizes(tmp_path: Path) -> None:
    cfg = tmp_path / "n-1.json"
    cfg.write_text(node_config(None, "f1", "n-1", "pond").to_json())
    r = _emulate(cfg, "--bits", "16")
    assert r.returncode == 2
    assert "--bits: 16 is not one of 32, 64" in r.stdout + r.stderr
