"""Run the real firmware under the MicroPython unix port as the node a config file describes.

The node's filesystem root is a directory (``node.json``, ``sim.json``, the spool and its state);
the compiled firmware comes from :mod:`agri.node.stage`. By default the code runs in place from a
ROMFS image mapped outside the heap (``code="rom"``, as on boards with a ROMFS partition), so the
heap (64K unless told otherwise) holds data only; ``code="ram"`` loads the ``.mpy`` files into the
heap instead, as ``/lib`` on a board without ROMFS.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agri.node import stage
from agri.node.config import NodeConfig
from agri.node.runtime import DEFAULT_HEAP, micropython_binary, parse_heap

FAULT_KINDS = ("stuck", "spike", "drift", "dead")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_line(line: str) -> dict[str, str]:
    """Fields of one firmware log line (``level=info event=boot seq=3 ...``)."""
    out = {}
    for k, v in _FIELD.findall(line):
        out[k] = json.loads(v) if v.startswith('"') else v
    return out


def parse_fault(text: str) -> dict[str, Any]:
    """``METRIC:KIND[:FROM[:TO[:SIZE]]]`` (cycles) -> a sim.json fault entry; ValueError if bad."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 5:
        raise ValueError(
            f"fault {text!r} must look like METRIC:KIND[:FROM[:TO[:SIZE]]], e.g. air_t:stuck:10:20"
        )
    metric, kind = parts[0], parts[1]
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {text!r}: kind must be one of {', '.join(FAULT_KINDS)}")
    if not re.fullmatch(r"[a-z0-9_]{1,32}", metric):
        raise ValueError(f"fault {text!r}: bad metric name {metric!r}")
    out: dict[str, Any] = {"metric": metric, "kind": kind}
    try:
        if len(parts) > 2 and parts[2]:
            out["from"] = int(parts[2])
        if len(parts) > 3 and parts[3]:
            out["to"] = int(parts[3])
        if len(parts) > 4 and parts[4]:
            out["size"] = float(parts[4])
    except ValueError:
        raise ValueError(f"fault {text!r}: FROM and TO are cycle numbers, SIZE a number") from None
    if out.get("from", 0) < 0 or ("to" in out and out["to"] <= out.get("from", 0)):
        raise ValueError(f"fault {text!r}: need 0 <= FROM < TO")
    return out


@dataclass
class Emulator:
    config: NodeConfig | str  # a validated config, or raw node.json text (to test the firmware's checks)
    root: Path
    heap: str = DEFAULT_HEAP
    sim: dict[str, Any] = field(default_factory=dict)
    code: Literal["rom", "ram"] = "rom"
    micropython: str | None = None
    bits: int = 64  # which unix-port build: 64-bit, or 32-bit (a board's pointer size)

    def prepare(self) -> list[str]:
        """Stage the firmware, write node.json (+ sim.json) into the root; return the argv."""
        self.heap = parse_heap(self.heap)
        mp = micropython_binary(self.micropython, self.bits)
        build = stage.build()
        self.root.mkdir(parents=True, exist_ok=True)
        node_json = self.root / "node.json"
        text = self.config if isinstance(self.config, str) else self.config.to_json()
        if not node_json.exists() or node_json.read_text() != text:
            node_json.write_text(text)
            os.chmod(node_json, 0o600)
        sim_json = self.root / "sim.json"
        if self.sim:
            sim_json.write_text(json.dumps(self.sim))
        else:
            sim_json.unlink(missing_ok=True)
        code = build.romfs if self.code == "rom" else build.lib
        return [
            *[str(mp), "-X", f"heapsize={self.heap}"],
            *[str(build.board_py), str(build.board_img), str(code), str(build.main_py)],
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        return env

    def start(self, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
        argv = self.prepare()
        return subprocess.Popen(
            argv,
            cwd=self.root,
            env=self.env(),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Own process group: a terminal's Ctrl-C reaches only us, and we forward one SIGINT
            # (a second one would interrupt the firmware's clean shutdown).
            start_new_session=True,
        )


def run_foreground(emu: Emulator, on_line: Callable[[str], None] | None = None) -> int:
    """Run until the firmware exits or SIGTERM/SIGINT arrives; stop it cleanly. Returns its code."""
    proc = emu.start(stdout=subprocess.PIPE if on_line else None)
    stopping = threading.Event()

    def stop(_sig: int, _frame: Any) -> None:
        # The unix port turns SIGINT into KeyboardInterrupt: the firmware says "offline" and exits.
        stopping.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_line and proc.stdout is not None:
            for line in proc.stdout:
                on_line(line.rstrip("\n"))
        while True:
            try:
                return proc.wait(timeout=0.5 if not stopping.is_set() else 10)
            except subprocess.TimeoutExpired:
                if stopping.is_set():
                    proc.kill()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class NodeProcess:
    """A running emulated node whose log lines are collected (tests, demo)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = emu.start()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def events(self, name: str | None = None) -> Iterator[dict[str, str]]:
        with self._cond:
            lines = list(self.lines)
        for line in lines:
            f = parse_line(line)
            if name is None or f.get("event") == name:
                yield f

    def wait_event(self, name: str, timeout: float, count: int = 1) -> dict[str, str]:
        """The count-th log line with event=name; TimeoutError (with the log tail) otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [f for f in map(parse_line, self.lines) if f.get("event") == name]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "\n".join(self.lines[-15:])
                    raise TimeoutError(f"no event={name} (#{count}) within {timeout}s; log tail:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(5)

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)
