"""Fixtures for the flash tests against the emulated board."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator.qemu import QemuBoard

FIXTURE_FW = Path(__file__).parent / "fixture_fw"


@pytest.fixture
def board(tmp_path: Path) -> Iterator[QemuBoard]:
    """A freshly booted emulated board (empty filesystem), killed after the test."""
    b = QemuBoard(tmp_path)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    """A private copy of the test firmware (tests may edit it)."""
    dest = tmp_path / "fw"
    shutil.copytree(FIXTURE_FW, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def node_config(tmp_path: Path) -> Path:
    p = tmp_path / "node.json"
    p.write_text(
        '{"v": 1, "farm": "orchard-1", "node": "n-0001", "interval": 60,\n'
        ' "broker": {"host": "192.0.2.10", "port": 1883, "user": "node-orchard-1-n-0001",'
        ' "password": "pw-for-tests"},\n'
        ' "sensors": [{"type": "sht3x"}]}\n'
    )
    return p


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Builds go to a per-session cache, not the user's (the CLI subprocess inherits it).
    monkeypatch.setenv("AGRI_FIRMWARE_BUILD_DIR", str(tmp_path_factory.getbasetemp() / "firmware-build"))
