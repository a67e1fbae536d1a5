"""Start MicroPython's qemu port (board MPS2_AN385) on a pty, as the flash tests' target board.

The board must be built with deploy/micropython/qemu-mps2-fs-time.patch (deploy/install.sh does
it): a littlefs filesystem on a RAM disk that survives soft reset and machine.reset(), and is
fresh for every QEMU process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from agri.flash.build import default_cache_dir

PTY_RE = re.compile(rb"char device redirected to (/dev/pts/\d+)")


def qemu_elf() -> Path:
    return Path(os.environ.get("AGRI_QEMU_ELF") or default_cache_dir() / "micropython-qemu.elf")


class QemuBoard:
    def __init__(self, workdir: Path, elf: Path | None = None, start_timeout: float = 15.0) -> None:
        self.elf = elf or qemu_elf()
        qemu = shutil.which("qemu-system-arm")
        if qemu is None or not self.elf.is_file():
            raise RuntimeError(
                f"qemu-system-arm or {self.elf} missing: run deploy/install.sh to build the emulated board"
            )
        self.log_path = workdir / "qemu.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                qemu,
                "-machine",
                "mps2-an385",
                "-nographic",
                "-monitor",
                "null",
                "-semihosting",
                "-serial",
                "pty",
                "-kernel",
                str(self.elf),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + start_timeout
        while True:
            m = PTY_RE.search(self.log_path.read_bytes())
            if m:
                self.pty = m.group(1).decode()
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"qemu did not offer a pty: {self.log_path.read_bytes()[-300:]!r}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
