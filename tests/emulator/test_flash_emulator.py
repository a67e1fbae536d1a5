"""`agri flash` against the emulated board (MicroPython qemu port, MPS2-AN385, on a pty).

Each test boots a fresh board (empty RAM filesystem), runs `agri flash` as a subprocess, and
checks the result through its own mpremote connection: files and hashes, the import of the
compiled package, boot.py/main.py after each kind of reset, and the error paths.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.qemu import QemuBoard
from tests.fixtures.process import run_agri

pytestmark = pytest.mark.emulator


@contextmanager
def raw_repl(board: QemuBoard) -> Iterator[Any]:
    """An independent mpremote session (not agri's code) to inspect the board."""
    from mpremote.transport_serial import SerialTransport

    t = SerialTransport(board.pty, baudrate=115200, timeout=1)
    try:
        t.enter_raw_repl(soft_reset=False)
        yield t
    finally:
        t.exit_raw_repl()
        t.close()


def device_paths(t: Any, d: str = "/") -> list[str]:
    """Every file on the board (walked with mpremote's fs_listdir)."""
    out: list[str] = []
    for e in t.fs_listdir(d):
        p = d.rstrip("/") + "/" + e.name
        out += device_paths(t, p) if e.st_mode & 0x4000 else [p]
    return out


def device_files(t: Any) -> dict[str, str]:
    """sha256 of every file on the board, read back byte by byte."""
    return {p: hashlib.sha256(bytes(t.fs_readfile(p))).hexdigest() for p in device_paths(t)}


def dry_run_plan(firmware: Path, config: Path) -> dict[str, Any]:
    r = run_agri("flash", "--config", str(config), "--firmware", str(firmware), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    plan: dict[str, Any] = json.loads(r.stdout)
    return plan


def flash(board: QemuBoard, firmware: Path, config: Path, *extra: str, romfs: bool = False) -> Any:
    # The test firmware's main.py ends at once; waiting for its output stops at the REPL prompt.
    # These tests are about the copy to the filesystem: the code goes to /lib unless romfs.
    return run_agri(
        "flash",
        "--port",
        board.pty,
        "--config",
        str(config),
        "--firmware",
        str(firmware),
        "--boot-output",
        "15",
        *extra,
        *([] if romfs else ["--no-romfs"]),
    )


def test_flash_copies_verifies_resets_and_the_firmware_imports(
    board: QemuBoard, firmware: Path, node_config: Path
) -> None:
    plan = dry_run_plan(firmware, node_config)
    r = flash(board, firmware, node_config, "--reset", "soft")
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(plan["files"])
    assert f"copied {n} files" in r.stdout
    assert f"verified {n} files on the device" in r.stdout
    # Soft reset ran boot.py, then main.py, which imported the compiled package from /lib.
    assert "fixture boot.py ran" in r.stdout
    assert "fixture main.py ran fixture-1 orchard-1 n-0001 42 boot 1" in r.stdout

    with raw_repl(board) as t:
        files = device_files(t)
        for f in plan["files"]:
            assert files[f["target"]] == f["sha256"], f["target"]
        assert files["/node.json"] == hashlib.sha256(node_config.read_bytes()).hexdigest()
        # Exactly the planned files plus what main.py wrote: nothing stray (.part files etc.).
        assert set(files) == {f["target"] for f in plan["files"]} | {"/boots.txt"}
        assert all(t.endswith(".mpy") for t in files if t.startswith("/lib/agrinode/"))
        out = t.exec("import agrinode.sub.calc as c, agrinode\nprint(c.double(4), agrinode.__file__)")
        assert out.decode().split() == ["8", "/lib/agrinode/__init__.mpy"]


def test_hard_reset_is_a_system_reset_that_keeps_the_files(
    board: QemuBoard, firmware: Path, node_config: Path
) -> None:
    r = flash(board, firmware, node_config, "--reset", "hard")
    assert r.returncode == 0, r.stdout + r.stderr
    # machine.reset() restarted the emulated board (QEMU still runs) and main.py ran from the
    # files that survived the reset.
    assert board.alive()
    assert "fixture main.py ran fixture-1 orchard-1 n-0001 42 boot 1" in r.stdout
    with raw_repl(board) as t:
        assert bytes(t.fs_readfile("/boots.txt")) == b"1"
    # Flash again (nothing to copy) and hard-reset again: main.py finds its file from boot 1.
    r = flash(board, firmware, node_config, "--reset", "hard")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fixture main.py ran fixture-1 orchard-1 n-0001 42 boot 2" in r.stdout


def test_reflash_copies_only_changes_and_removes_stale_modules(
    board: QemuBoard, firmware: Path, node_config: Path
) -> None:
    r = flash(board, firmware, node_config, "--reset", "none")
    assert r.returncode == 0, r.stdout + r.stderr
    (firmware / "agrinode" / "__init__.py").write_text('VERSION = "fixture-2"\n')
    (firmware / "agrinode" / "sub" / "calc.py").unlink()
    (firmware / "main.py").write_text('import agrinode\nprint("v2 main ran", agrinode.VERSION)\n')
    r = flash(board, firmware, node_config, "--reset", "soft")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "copied 2 files" in r.stdout  # /main.py and /lib/agrinode/__init__.mpy
    assert "removed 1 stale" in r.stdout
    assert "v2 main ran fixture-2" in r.stdout
    with raw_repl(board) as t:
        files = device_paths(t)
    assert "/lib/agrinode/sub/calc.mpy" not in files
    assert "/lib/agrinode/sub/__init__.mpy" in files


def test_code_goes_to_romfs_where_the_board_has_it_and_back_to_lib(
    board: QemuBoard, firmware: Path, node_config: Path
) -> None:
    """The emulated board has a ROMFS partition (MicroPython 1.25 vfs.rom_ioctl): the compiled
    package goes there and runs in place; flashing again with the same code leaves it; with
    --no-romfs the code goes to /lib and the ROMFS copy, which would shadow it, is cleared."""
    r = flash(board, firmware, node_config, "--reset", "soft", romfs=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "code: romfs" in r.stdout and "written" in r.stdout
    assert "fixture main.py ran fixture-1 orchard-1 n-0001 42 boot 1" in r.stdout
    with raw_repl(board) as t:
        assert not [p for p in device_paths(t) if p.startswith("/lib/agrinode/")]
        out = t.exec("import agrinode.sub.calc as c, agrinode\nprint(c.double(4), agrinode.__file__)")
        assert out.decode().split() == ["8", "/rom/lib/agrinode/__init__.mpy"]
    r = flash(board, firmware, node_config, "--reset", "soft", romfs=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "code: romfs" in r.stdout and "already there" in r.stdout
    r = flash(board, firmware, node_config, "--reset", "soft")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "code: /lib (heap)" in r.stdout and "clearing ROMFS partition 0" in r.stdout
    with raw_repl(board) as t:
        out = t.exec("import agrinode\nprint(agrinode.__file__)")
        assert out.decode().split() == ["/lib/agrinode/__init__.mpy"]


def test_full_filesystem_stops_before_copying(board: QemuBoard, firmware: Path, node_config: Path) -> None:
    with raw_repl(board) as t:
        # Fill the RAM disk until 3 blocks are left.
        t.exec(
            "import os\nf = open('/filler.bin', 'wb')\nb = bytes(8192)\n"
            "for i in range((os.statvfs('/')[3] - 24) // 8):\n f.write(b)\n"
            "f.flush()\nb = bytes(512)\n"
            "while os.statvfs('/')[3] > 3:\n f.write(b)\n f.flush()\nf.close()"
        )
    r = flash(board, firmware, node_config)
    assert r.returncode == 1
    assert "flash failed at step space: not enough space on the device:" in r.stderr
    assert "hint: remove old files from the board" in r.stderr
    with raw_repl(board) as t:
        assert device_paths(t) == ["/filler.bin"]  # nothing was written


def test_failed_copy_names_the_file_and_the_step(board: QemuBoard, firmware: Path, node_config: Path) -> None:
    with raw_repl(board) as t:
        # A directory where /main.py must go (left by some other tool).
        t.exec("import os\nos.mkdir('/main.py')\nf = open('/main.py/x', 'w')\nf.write('x')\nf.close()")
    r = flash(board, firmware, node_config)
    assert r.returncode == 1
    assert re.search(
        r"flash failed at step copy, file /main\.py: renaming /main\.py\.part into place failed: .*"
        r"directory is in the way",
        " ".join(r.stderr.split()),
    ), r.stderr
    with raw_repl(board) as t:
        files = device_paths(t)
    assert "/main.py.part" not in files  # cleaned up
    assert "/boot.py" in files  # files before it in the plan were copied and stay


def test_verification_failure_is_reported(
    board: QemuBoard, firmware: Path, node_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transfer that corrupts one file (simulated by flipping a byte on its way) is caught by
    the hashes the device computes, and named."""
    from agri.flash import device as device_mod
    from agri.flash.build import build_firmware
    from agri.flash.config import load_node_config
    from agri.flash.errors import FlashError
    from agri.flash.flasher import FlashOptions
    from agri.flash.flasher import flash as run_flash
    from agri.flash.plan import make_plan

    real_write = device_mod.Device.write

    def corrupting_write(self: Any, target: str, data: bytes, progress: Any = None) -> None:
        if target == "/lib/agrinode/sub/calc.mpy":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        real_write(self, target, data, progress)

    monkeypatch.setattr(device_mod.Device, "write", corrupting_write)
    plan = make_plan(build_firmware(firmware), load_node_config(node_config), str(node_config))
    with pytest.raises(FlashError) as ei:
        run_flash(plan, FlashOptions(port=board.pty, reset="none", romfs=False))
    assert ei.value.step == "verify"
    assert "/lib/agrinode/sub/calc.mpy: sha256 on the device" in ei.value.detail


def test_port_held_by_another_program(board: QemuBoard, firmware: Path, node_config: Path) -> None:
    import serial

    other = serial.Serial(board.pty, 115200, exclusive=True)  # e.g. a serial monitor left open
    try:
        r = flash(board, firmware, node_config)
    finally:
        other.close()
    assert r.returncode == 1
    err = " ".join(r.stderr.split())
    assert f"flash failed at step connect, file {board.pty}: cannot open serial port:" in err
    assert "Could not exclusively lock" in err
    assert "hint: another program (a serial monitor, mpremote, an IDE) has the port open: close it" in err
