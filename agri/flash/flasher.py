"""The flash steps in order: connect, inspect, space check, prune, copy, verify, reset.

UI-agnostic: progress goes to a :class:`Reporter` (the CLI draws a rich progress bar).
Re-flashing copies only files whose hash differs from what the device already has.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agri.flash.device import Device, ResetMode
from agri.flash.errors import FlashError
from agri.flash.plan import Plan, blocks_needed, diff, inspect_roots, verify


class Reporter(Protocol):
    def step(self, message: str) -> None: ...

    def copy_start(self, n_files: int, total_bytes: int) -> None: ...

    def file_start(self, target: str, size: int) -> None: ...

    def file_progress(self, done: int, size: int) -> None: ...

    def copy_end(self) -> None: ...


class SilentReporter:
    def step(self, message: str) -> None:
        pass

    def copy_start(self, n_files: int, total_bytes: int) -> None:
        pass

    def file_start(self, target: str, size: int) -> None:
        pass

    def file_progress(self, done: int, size: int) -> None:
        pass

    def copy_end(self) -> None:
        pass


@dataclass(frozen=True)
class FlashOptions:
    port: str
    reset: ResetMode = "hard"
    force: bool = False  # copy every file even when the device already has it
    connect_timeout: float = 10.0
    settle_s: float = 2.0  # how long to collect the device's output after a reset


@dataclass
class FlashResult:
    device: str = ""
    copied: list[str] = field(default_factory=list)
    copied_bytes: int = 0
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    verified: int = 0
    free_bytes_after: int = 0
    romfs_partitions: int = 0  # the board's ROMFS partitions (0: code runs from /lib in the heap)
    boot_output: bytes = b""
    seconds: dict[str, float] = field(default_factory=dict)


def flash(
    plan: Plan,
    opts: FlashOptions,
    reporter: Reporter | None = None,
    before_reset: Callable[[], None] | None = None,
) -> FlashResult:
    """Run every step; raises :class:`FlashError` at the first failure (the device is left at
    its REPL, files copied so far stay, no half-written file replaces a good one)."""
    rep = reporter or SilentReporter()
    res = FlashResult()
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        res.seconds[name] = round(now - t, 2)
        t = now

    rep.step(f"connecting to {opts.port}")
    dev = Device.open(opts.port, opts.connect_timeout)
    try:
        res.device = dev.describe()
        rep.step(f"connected: {res.device}")
        res.romfs_partitions = dev.romfs_partitions()
        lap("connect")
        roots = inspect_roots(plan)
        before = dev.files(roots)
        d = diff(plan, before, force=opts.force)
        res.unchanged = len(d.same)
        bsize, free, _total = dev.free_blocks()
        need = blocks_needed(d, before, bsize)
        lap("inspect")
        if need > free:
            raise FlashError(
                "space",
                f"not enough space on the device: {free * bsize} bytes free ({free} blocks of {bsize}), "
                f"the {len(d.copy)} changed files need about {need * bsize}",
                hint="remove old files from the board (mpremote connect PORT fs ls / and fs rm), "
                "or erase its filesystem and flash again",
            )
        for path in d.remove:
            rep.step(f"removing stale {path}")
            dev.remove(path)
            res.removed.append(path)
        if dev.forget_update():
            rep.step("removed /ota.json: the flashed /lib version runs, not one installed over the air")
        dev.makedirs(plan.dirs)
        rep.copy_start(len(d.copy), d.copy_bytes)
        try:
            for art in d.copy:
                rep.file_start(art.target, art.size)
                dev.write(art.target, art.data, rep.file_progress)
                res.copied.append(art.target)
                res.copied_bytes += art.size
        finally:
            rep.copy_end()
        lap("copy")
        rep.step("verifying (sha256 computed on the device)")
        after = dev.files(roots)
        problems = verify(plan, after)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise FlashError("verify", "; ".join(problems[:3]) + more)
        res.verified = len(plan.files)
        bsize, free, _ = dev.free_blocks()
        res.free_bytes_after = bsize * free
        lap("verify")
        if before_reset is not None:
            before_reset()
        if opts.reset != "none":
            rep.step(f"{opts.reset} reset")
        res.boot_output = dev.reset(opts.reset, opts.settle_s)
        lap("reset")
    finally:
        dev.close()
    return res
