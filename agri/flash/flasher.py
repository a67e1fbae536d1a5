"""The flash steps in order: connect, inspect, space check, prune, copy, verify, reset.

UI-agnostic: progress goes to a :class:`Reporter` (the CLI draws a rich progress bar).
Re-flashing copies only files whose hash differs from what the device already has.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from agri.flash.build import PACKAGE, romfs_image
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
    romfs: bool = True  # compiled code into the board's ROMFS partition when it has one


@dataclass
class FlashResult:
    device: str = ""
    copied: list[str] = field(default_factory=list)
    copied_bytes: int = 0
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    verified: int = 0
    free_bytes_after: int = 0
    romfs_partitions: int = 0  # the board's ROMFS partitions
    code: str = "/lib"  # where the compiled code went: "romfs" (runs in place) or "/lib" (heap)
    code_why: str = ""  # why not ROMFS, when the board has a partition
    romfs_bytes: int = 0  # size of the ROMFS image (code == "romfs")
    romfs_unchanged: bool = False  # the partition already held this image
    romfs_cleared: bool = False  # code went to /lib; the partition's older copy was cleared
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
        res.romfs_partitions, rom_size = dev.romfs_partitions()
        image, plan = _romfs_split(plan, opts, res, rom_size)
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
        if image:
            _deploy_romfs(dev, image, opts, res, rep)
            lap("romfs")
        elif rom_size and dev.exists(f"/rom/lib/{PACKAGE}"):
            # An earlier flash put the code in ROMFS: /rom/lib comes before /lib on sys.path, so
            # that copy would shadow what was just written to /lib.
            rep.step(f"clearing ROMFS partition 0 (its {PACKAGE} would shadow the one in /lib)")
            dev.deploy_romfs(romfs_image({}))
            res.romfs_cleared = True
        rep.step("verifying (sha256 computed on the device)")
        after = dev.files(roots)
        problems = verify(plan, after)
        if image and dev.romfs_sha256(len(image)) != hashlib.sha256(image).hexdigest():
            problems.append("ROMFS partition 0: its content differs from the image written")
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


def _romfs_split(plan: Plan, opts: FlashOptions, res: FlashResult, rom_size: int) -> tuple[bytes, Plan]:
    """(ROMFS image of the compiled /lib files, the plan without them) when the code goes to the
    board's ROMFS partition; (b"", plan) otherwise, with the reason in ``res.code_why``."""
    compiled = [a for a in plan.files if a.compiled and a.target.startswith("/lib/")]
    if not res.romfs_partitions or not compiled:
        return b"", plan
    if not opts.romfs:
        res.code_why = "--no-romfs"
        return b"", plan
    image = romfs_image({a.target.lstrip("/"): a.data for a in compiled})
    if rom_size <= 0:
        res.code_why = (
            "its ROMFS partition is a block device agri flash cannot write (use mpremote romfs deploy)"
        )
        return b"", plan
    if len(image) > rom_size:
        res.code_why = (
            f"the code ({len(image)} bytes as ROMFS) does not fit its ROMFS partition ({rom_size} bytes)"
        )
        return b"", plan
    res.code, res.romfs_bytes = "romfs", len(image)
    # The compiled files leave the plan: copies of them left in /lib by an earlier flash are
    # stale files of an owned directory and are removed.
    return image, replace(plan, files=[a for a in plan.files if a not in compiled])


def _deploy_romfs(dev: Device, image: bytes, opts: FlashOptions, res: FlashResult, rep: Reporter) -> None:
    if not opts.force and dev.romfs_sha256(len(image)) == hashlib.sha256(image).hexdigest():
        res.romfs_unchanged = True
        rep.step("ROMFS partition 0 already holds this code")
        return
    rep.copy_start(1, len(image))
    try:
        rep.file_start("ROMFS partition 0", len(image))
        dev.deploy_romfs(image, rep.file_progress)
    finally:
        rep.copy_end()
