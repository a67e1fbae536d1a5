"""The board on a serial port, driven through mpremote's ``SerialTransport`` (raw REPL).

Every method either succeeds or raises :class:`FlashError` naming the step and the file, with
the device's own error (``OSError: [Errno 28] ENOSPC``) turned into words.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import os
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from agri.flash.errors import FlashError
from agri.flash.plan import DeviceFile

ResetMode = Literal["hard", "soft", "none"]
CHUNK = 512  # bytes per write command (mpremote's default is 256)
ROMFS_CHUNK = 2048  # image bytes per ROMFS write command (sent as base64)
SERIAL_TIMEOUT_S = 1.0  # one blocking read; mpremote's own timeouts work on top of it

_STATE_SCRIPT = """\
import os
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
_b = bytearray(256)
_m = memoryview(_b)
def _h(p):
    if hashlib is None:
        return '-'
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(_b)
            if not n:
                break
            h.update(_m[:n])
    return binascii.hexlify(h.digest()).decode()
def _f(p):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for e in os.ilistdir(p):
            _f(p + '/' + e[0])
    else:
        print(p + '\\t' + str(st[6]) + '\\t' + _h(p))
for _p in %r:
    _f(_p)
"""

_ROMFS_INFO_SCRIPT = """\
import vfs
_n = vfs.rom_ioctl(1) if hasattr(vfs, 'rom_ioctl') else 0
_d = vfs.rom_ioctl(2, 0) if _n > 0 else 0
print(_n, 0 if isinstance(_d, int) or hasattr(_d, 'ioctl') else len(_d))
"""

_DESCRIBE_SCRIPT = """\
import sys
_i = sys.implementation
print(getattr(_i, '_machine', sys.platform) + ', MicroPython ' + '.'.join(str(x) for x in _i.version[:3]))
"""

_MAKEDIRS_SCRIPT = """\
import os
for _d in %r:
    try:
        _m = os.stat(_d)[0]
    except OSError:
        os.mkdir(_d)
        continue
    if not _m & 0x4000:
        raise OSError(20, _d)
"""


def describe_os_error(exc: OSError) -> str:
    code = exc.errno
    name = errno.errorcode.get(code, "") if isinstance(code, int) else ""
    words = {
        errno.ENOSPC: "no space left on the device's filesystem",
        errno.EISDIR: "a directory is in the way",
        errno.ENOTDIR: "a file is in the way where a directory is needed",
        errno.EEXIST: "already exists",
        errno.ENOENT: "no such file or directory on the device",
        errno.EROFS: "the device's filesystem is read-only",
        errno.ENODEV: "the device has no filesystem mounted",
        errno.EIO: "I/O error on the device's filesystem",
        errno.ENOTEMPTY: "a non-empty directory is in the way",
    }.get(code or 0, os.strerror(code) if isinstance(code, int) else str(exc))
    return f"{words} ({name})" if name else words


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """mpremote prints some protocol errors to stdout; keep them for our message instead."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


class Device:
    def __init__(self, transport: Any, port: str) -> None:
        self.t = transport
        self.port = port

    # --- connection ---------------------------------------------------------------------------

    @classmethod
    def open(cls, port: str, connect_timeout: float = 10.0) -> Device:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        _probe_port(port)
        try:
            with _quiet():
                t = SerialTransport(port, baudrate=115200, timeout=SERIAL_TIMEOUT_S)
        except TransportError as exc:
            raise FlashError("connect", f"cannot open serial port: {exc}", port) from None
        dev = cls(t, port)
        try:
            with _quiet() as noise:
                t.enter_raw_repl(soft_reset=True, timeout_overall=connect_timeout)
        except (TransportError, OSError) as exc:
            dev.close()
            # mpremote prints the bytes it got (``b'...'``) before raising.
            heard = noise.getvalue().strip()
            heard = "" if heard in ("", "b''") else heard[-120:]
            raise FlashError(
                "connect",
                f"no MicroPython REPL answered within {connect_timeout:g} s ({exc})"
                + (f"; the port sent: {heard}" if heard else "; the port sent nothing"),
                port,
                hint="check the port (it is the board, not another USB device?), the baud rate "
                "(115200) and that the board runs MicroPython; unplug and replug it",
            ) from None
        return dev

    def close(self) -> None:
        with contextlib.suppress(Exception), _quiet():
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        with contextlib.suppress(Exception):
            self.t.close()

    def _exec(self, step: str, code: str, path: str | None = None) -> bytes:
        from mpremote.transport import TransportError, TransportExecError, _convert_filesystem_error

        try:
            with _quiet():
                out: bytes = self.t.exec(code)
                return out
        except TransportExecError as exc:
            conv = _convert_filesystem_error(exc, path or "")
            if isinstance(conv, OSError):
                raise FlashError(step, describe_os_error(conv), path) from None
            last = (exc.error_output or "").strip().splitlines()[-1:] or ["(no message)"]
            raise FlashError(step, f"device error: {last[0]}", path) from None
        except (TransportError, OSError) as exc:
            raise FlashError(step, f"lost contact with the device: {exc}", path) from None

    # --- queries ------------------------------------------------------------------------------

    def describe(self) -> str:
        """Board and MicroPython version, e.g. ``mps2-an385 with Cortex-M3, MicroPython 1.25.0``."""
        out = self._exec("inspect", _DESCRIBE_SCRIPT)
        return out.decode(errors="replace").strip()

    def romfs_partitions(self) -> tuple[int, int]:
        """(ROMFS partitions the board offers (MicroPython 1.25+ ``vfs.rom_ioctl``), size of the
        first in bytes); (0, 0) if none. The size is 0 when that partition is a block-device
        object (written through its own methods, not ``vfs.rom_ioctl``)."""
        out = self._exec("inspect", _ROMFS_INFO_SCRIPT).decode(errors="replace").strip()
        try:
            n, size = (int(x) for x in out.splitlines()[-1].split())
            return max(0, n), max(0, size)
        except (ValueError, IndexError):
            return 0, 0

    def exists(self, path: str) -> bool:
        code = f"import os\ntry:\n os.stat({path!r})\n print(1)\nexcept OSError:\n print(0)"
        return self._exec("inspect", code, path).strip().endswith(b"1")

    def romfs_sha256(self, n: int) -> str:
        """sha256 (hex) of the first ``n`` bytes of ROMFS partition 0, computed on the device."""
        code = (
            "import vfs, hashlib, binascii\n"
            f"print(binascii.hexlify(hashlib.sha256(vfs.rom_ioctl(2, 0)[:{n}]).digest()).decode())"
        )
        return self._exec("romfs", code).decode(errors="replace").strip().splitlines()[-1:][0]

    def deploy_romfs(self, image: bytes, progress: Callable[[int, int], None] | None = None) -> None:
        """Write a ROMFS image into partition 0 with ``vfs.rom_ioctl`` (prepare, write, complete:
        what ``mpremote romfs deploy`` does); ``/rom`` is unmounted first and mounted again by
        the board's next reset."""
        self._exec("romfs", "import vfs\ntry:\n vfs.umount('/rom')\nexcept OSError:\n pass")
        step = self._romfs_call(f"vfs.rom_ioctl(3, 0, {len(image)})", "prepare the partition")
        step = max(1, step)
        chunk = max(step, ROMFS_CHUNK // step * step)
        for off in range(0, len(image), chunk):
            data = image[off : off + chunk]
            data += bytes(-len(data) % step)  # whole write units
            b64 = base64.b64encode(data).decode()
            self._romfs_call(f"vfs.rom_ioctl(4, 0, {off}, a2b_base64('{b64}'))", f"write at offset {off}")
            if progress is not None:
                progress(min(off + chunk, len(image)), len(image))
        self._romfs_call("vfs.rom_ioctl(5, 0)", "complete the write")

    def _romfs_call(self, expr: str, what: str) -> int:
        out = self._exec("romfs", f"import vfs\nfrom binascii import a2b_base64\nprint({expr})")
        try:
            r = int(out.decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise FlashError("romfs", f"unexpected answer to {what}: {out[-80:]!r}") from None
        if r < 0:
            raise FlashError(
                "romfs", f"the board refused to {what} of its ROMFS partition: {errno.errorcode.get(-r, -r)}"
            )
        return r

    def files(self, roots: list[str]) -> dict[str, DeviceFile]:
        """Size and sha256 of every file at or under ``roots`` (missing roots are skipped)."""
        out = self._exec("inspect", _STATE_SCRIPT % (roots,))
        files: dict[str, DeviceFile] = {}
        unhashed: list[str] = []
        for line in out.decode(errors="replace").splitlines():
            parts = line.strip().split("\t")
            if len(parts) != 3 or not parts[1].isdigit():
                continue
            path, size, digest = parts
            files[path] = DeviceFile(int(size), None if digest == "-" else digest)
            if digest == "-":
                unhashed.append(path)
        for path in unhashed:  # no hashlib on this build: read the file back and hash it here
            files[path] = DeviceFile(files[path].size, self._read_back_hash(path))
        return files

    def _read_back_hash(self, path: str) -> str:
        import hashlib

        from mpremote.transport import TransportError

        try:
            with _quiet():
                data = self.t.fs_readfile(path, chunk_size=CHUNK)
        except (TransportError, OSError) as exc:
            raise FlashError("verify", f"cannot read the file back: {exc}", path) from None
        return hashlib.sha256(bytes(data)).hexdigest()

    def free_blocks(self) -> tuple[int, int, int]:
        """(block size, free blocks, total blocks) of the filesystem at ``/``."""
        out = self._exec("space", "import os\nprint(os.statvfs('/'))")
        try:
            v = [int(x) for x in out.decode().strip().strip("()").split(",")]
            return v[1] or v[0], v[3], v[2]
        except (ValueError, IndexError):
            raise FlashError("space", f"unexpected statvfs answer {out[:80]!r}") from None

    # --- changes ------------------------------------------------------------------------------

    def makedirs(self, dirs: list[str]) -> None:
        if dirs:
            self._exec("copy", _MAKEDIRS_SCRIPT % (dirs,), path=None if len(dirs) > 1 else dirs[0])

    def remove(self, path: str) -> None:
        self._exec("prune", f"import os\nos.remove({path!r})", path)

    def forget_update(self) -> bool:
        """Remove /ota.json (a version installed over the air must not shadow what is flashed
        now; /ota/<v>/ stays until the next update clears it). True if there was one."""
        code = "import os\ntry:\n os.remove('/ota.json')\n print(1)\nexcept OSError:\n print(0)"
        return self._exec("prune", code, "/ota.json").strip().endswith(b"1")

    def write(self, target: str, data: bytes, progress: Callable[[int, int], None] | None = None) -> None:
        """Write ``data`` to ``target.part`` and rename it over ``target`` (no half-written file)."""
        from mpremote.transport import TransportError

        part = target + ".part"
        try:
            with _quiet():
                self.t.fs_writefile(part, data, chunk_size=CHUNK, progress_callback=progress)
        except OSError as exc:
            self._cleanup(part)
            raise FlashError("copy", f"writing failed: {describe_os_error(exc)}", target) from None
        except TransportError as exc:
            raise FlashError("copy", f"lost contact with the device while writing: {exc}", target) from None
        try:
            self._exec("copy", f"import os\nos.rename({part!r}, {target!r})", target)
        except FlashError as exc:
            self._cleanup(part)
            raise FlashError("copy", f"renaming {part} into place failed: {exc.detail}", target) from None

    def _cleanup(self, path: str) -> None:
        with contextlib.suppress(FlashError):
            self._exec("copy", f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass")

    # --- reset --------------------------------------------------------------------------------

    def reset(self, mode: ResetMode, settle_s: float = 2.0) -> bytes:
        """Restart the firmware; returns what the device printed in the first ``settle_s``.

        ``hard``: ``machine.reset()`` (the board restarts as after power-on).
        ``soft``: Ctrl-D at the normal REPL (MicroPython restarts; RAM and peripherals stay).
        Both run ``boot.py`` then ``main.py``. ``none`` leaves the board at its REPL.
        """
        from mpremote.transport import TransportError

        if mode == "none":
            return b""
        try:
            with _quiet():
                if mode == "hard":
                    self.t.exec_raw_no_follow("import machine\nmachine.reset()")
                    self.t.in_raw_repl = False
                else:
                    self.t.exit_raw_repl()
                    self.t.read_until(1, b">>> ", timeout=2)
                    self.t.serial.write(b"\x04")
                    seen = self.t.read_until(1, b"soft reboot\r\n", timeout=5)
                    if not seen.endswith(b"soft reboot\r\n"):
                        raise FlashError("reset", f"no soft reboot after Ctrl-D (got {seen[-80:]!r})")
        except (TransportError, OSError) as exc:
            raise FlashError("reset", f"{exc}") from None
        return self._collect(settle_s)

    def _collect(self, seconds: float) -> bytes:
        """The board's output for up to ``seconds``; stops early at the REPL prompt (main.py
        ended). A board whose USB port goes away on reset just yields nothing."""
        out = b""
        end = time.monotonic() + seconds
        with contextlib.suppress(OSError):
            while time.monotonic() < end and not out.endswith(b"\n>>> "):
                n = self.t.serial.in_waiting
                if n:
                    out += self.t.serial.read(n)
                else:
                    time.sleep(0.05)
        return out


def _probe_port(port: str) -> None:
    """Open and close the port once, to report precisely why it cannot be used."""
    import serial

    if port.startswith("/dev/"):
        try:
            st = os.stat(port)
        except FileNotFoundError:
            raise FlashError(
                "connect",
                "serial port does not exist",
                port,
                hint="is the board plugged in and powered? list ports with: ls /dev/ttyUSB* /dev/ttyACM*",
            ) from None
        except OSError as exc:
            raise FlashError("connect", f"cannot access serial port: {exc.strerror}", port) from None
        if not stat.S_ISCHR(st.st_mode):
            raise FlashError("connect", "not a serial device (not a character device)", port)
    try:
        s = serial.serial_for_url(port, do_not_open=True, baudrate=115200, exclusive=True)
        s.open()
        s.close()
    except serial.SerialException as exc:
        msg = str(exc)
        hint = None
        if "Permission denied" in msg or "Errno 13" in msg:
            hint = "add your user to the dialout group (sudo usermod -aG dialout $USER) and log in again"
        elif "lock" in msg.lower() or "busy" in msg.lower():
            hint = "another program (a serial monitor, mpremote, an IDE) has the port open: close it"
        raise FlashError("connect", f"cannot open serial port: {msg}", port, hint=hint) from None
    except (OSError, ValueError) as exc:
        raise FlashError("connect", f"cannot open serial port: {exc}", port) from None
