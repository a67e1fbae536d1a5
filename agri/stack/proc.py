"""Small process helpers for the embedded stack: pid files, detached starts, clean stops.

A pid file written by :func:`spawn` records the process's identity as well as its pid: the boot
(``/proc/sys/kernel/random/boot_id``), the start time (``/proc/PID/stat`` field 22, clock ticks since
boot) and the command line. :func:`read_pid` returns the pid only while that same process runs
(same boot, same start time, same program ``argv[0]``; the rest of the command line may change when a
service execs its server, as ``agri dashboard`` does), so a pid file left behind by a crash or a
reboot never makes ``agri down`` signal, or ``agri status`` report, an unrelated process that now
has the pid. A pid file without an identity (written by something else) is never trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """The embedded stack cannot do what was asked; the message says why and what to do."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_identity(pid: int) -> tuple[int, list[str]] | None:
    """(start time in clock ticks since boot, argv) of a live process; None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 (state) is fields[0]
    if fields[0] == "Z":
        return None
    argv = cmdline.removesuffix(b"\0").split(b"\0") if cmdline else []
    return int(fields[19]), [a.decode("utf-8", "surrogateescape") for a in argv]


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def write_pidfile(pidfile: Path, pid: int) -> None:
    """Record ``pid`` with its boot, start time and command line (see the module docstring)."""
    ident = proc_identity(pid)
    rec: dict[str, object] = {"pid": pid}
    if ident is not None:
        rec |= {"boot": boot_id(), "start": ident[0], "argv": ident[1]}
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(json.dumps(rec) + "\n")


def read_pid(pidfile: Path) -> int | None:
    """The pid recorded by :func:`write_pidfile` if that very process still runs, else None."""
    try:
        rec = json.loads(pidfile.read_text())
        pid, boot, start, argv = int(rec["pid"]), str(rec["boot"]), int(rec["start"]), list(rec["argv"])
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing, garbled, or not written by spawn: not a process we can vouch for
    ident = proc_identity(pid)
    if ident is None or boot != boot_id() or ident[0] != start:
        return None
    return pid if ident[1][:1] == argv[:1] else None


def read_foreign_pid(pidfile: Path) -> int | None:
    """The first number of a pid file another program wrote (e.g. ``postmaster.pid``), if alive.

    Only for reading, never for signalling: nothing proves the pid is still that program.
    """
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port chosen by the kernel (for tests and ephemeral stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: object, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


class Detached:
    """A process started by :func:`spawn`: no Popen object, so nothing warns when we exit first."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1 if not pid_alive(self.pid) else None
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def spawn(
    argv: Sequence[str],
    logfile: Path,
    pidfile: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Detached:
    """Start a detached process (own session) with stdout+stderr appended to ``logfile``."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(logfile), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawnp(
        argv[0], list(argv), dict(env if env is not None else os.environ), file_actions=actions, setsid=True
    )
    if pidfile is not None:
        # posix_spawn returns after the exec, so the identity is the new program's.
        write_pidfile(pidfile, pid)
    return Detached(pid)


def terminate(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM, wait, then SIGKILL the process group. True if it is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
    return not pid_alive(pid)


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
