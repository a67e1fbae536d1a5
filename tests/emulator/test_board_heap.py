"""Heap of the real firmware on a 32-bit board: MicroPython 1.25's qemu port (MPS2_AN385,
Cortex-M3, with a ROMFS partition: deploy/micropython/qemu-mps2-romfs.patch), flashed by
`agri flash` both ways: with ``--no-romfs`` the code goes to /lib and its bytecode is loaded into
the heap (any board without ROMFS); by default it goes to the ROMFS partition and runs in place.

The emulated board has no network and no sensor buses: a two-line socket/select stand-in is put in
/lib so the uplink module loads (its heap cost is counted; the stand-ins' is measured and
subtracted), the drivers are imported but their bus objects cannot be made. What is measured is
the heap the node holds once it has booted (agrinode.app.Node(): config loaded and dropped,
spool, sampler, uplink with its message buffer), not the per-message peaks; tests/firmware/
test_memory.py measures those on the unix port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agri.flash.build import default_firmware_dir
from agri.node.config import profile
from kernel.catalog import FARM_KINDS
from tests.emulator.qemu import QemuBoard
from tests.emulator.test_flash_emulator import raw_repl
from tests.fixtures.process import run_agri

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

STUBS = {
    "/lib/socket.py": "SOCK_STREAM = 1\ndef getaddrinfo(*a):\n    raise OSError(113)\n",
    "/lib/select.py": "POLLIN = 1\nPOLLHUP = 16\nPOLLERR = 8\n",
}
MEASURE = """\
import gc
gc.collect()
f0 = gc.mem_free()
import socket, select
gc.collect()
stubs = f0 - gc.mem_free()
from agrinode import app
node = app.Node()
gc.collect()
print('HEAP', f0 - gc.mem_free() - stubs, gc.mem_free() + gc.mem_alloc())
"""


def _flash(board: QemuBoard, cfg: Path, *extra: str) -> str:
    fw = str(default_firmware_dir())
    r = run_agri(
        "flash", "--port", board.pty, "--config", str(cfg), "--firmware", fw, "--reset", "soft", *extra
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _heap_per_profile(board: QemuBoard, code_at: str) -> dict[str, int]:
    """Heap held after Node() per farm profile; the code must come from ``code_at``."""
    used = {}
    with raw_repl(board) as t:
        for path, text in STUBS.items():
            t.fs_writefile(path, text.encode())
        for kind in FARM_KINDS:
            _, sensors = profile(kind)
            node = {"farm": "f", "node": "n-1", "broker": {"host": "192.0.2.1"}, "interval": 300,
                    "sensors": [s.model_dump(exclude_none=True) for s in sensors]}  # fmt: skip
            t.fs_writefile("/node.json", json.dumps(node).encode())
            t.exit_raw_repl()
            t.enter_raw_repl(soft_reset=True)  # a fresh heap (main.py does not run in raw mode)
            out = t.exec(MEASURE).decode()
            line = next(ln for ln in out.splitlines() if ln.startswith("HEAP"))
            used[kind] = int(line.split()[1])
        assert t.exec("print(app.__file__)").decode().strip() == code_at + "/agrinode/app.mpy"
    return used


def test_node_heap_with_code_in_ram_and_in_romfs_on_a_32_bit_board(tmp_path: Path, board: QemuBoard) -> None:
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"farm": "f", "node": "n-1", "broker": {"host": "192.0.2.1"}, "sensors": []}))
    with raw_repl(board) as t:  # as if a version had been installed over the air
        assert t.eval("__import__('vfs').rom_ioctl(1)") == 1  # this board has a ROMFS partition
        t.fs_writefile("/ota.json", b'{"active": "0.2.0", "ok": true}')
    out = _flash(board, cfg, "--no-romfs")
    assert "code: /lib (heap)" in out and "--no-romfs" in out  # it says where the code went, and why
    assert "removed /ota.json" in out  # what is flashed now runs, not the over-the-air version
    ram = _heap_per_profile(board, "/lib")
    out = _flash(board, cfg)
    assert "code: romfs" in out
    assert "removing stale /lib/agrinode/app.mpy" in out  # the /lib copy would only take space
    rom = _heap_per_profile(board, "/rom/lib")
    print("32-bit board, heap held after boot (bytes): code in RAM", ram, "code in ROMFS", rom)
    for kind in FARM_KINDS:
        assert 0 < rom[kind] < ram[kind] <= 48 * 1024, (kind, rom[kind], ram[kind])  # >= 16 KB free of 64 KiB
