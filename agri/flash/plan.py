"""What goes where on the device, and how the device's files compare with it (pure functions)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from agri.flash.build import PACKAGE, Artifact, Build
from agri.flash.config import NodeConfig

CONFIG_TARGET = "/node.json"


@dataclass(frozen=True)
class DeviceFile:
    size: int
    sha256: str | None  # None when the device could not hash it


@dataclass(frozen=True)
class Plan:
    files: list[Artifact]
    build: Build
    config: NodeConfig

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def owned_dirs(self) -> list[str]:
        """Device directories that hold nothing but flashed files: stale files there are removed.

        ``/`` is not one of them: it also holds the node's spool, sequence counter and state.
        """
        dirs = {f"/lib/{PACKAGE}"}
        for f in self.files:
            parts = f.target.split("/")
            if len(parts) > 3 and parts[1] == "lib":  # /lib/<pkg>/...
                dirs.add(f"/lib/{parts[2]}")
        return sorted(dirs)

    @property
    def dirs(self) -> list[str]:
        """Every directory the files need, parents first."""
        out: set[str] = set()
        for f in self.files:
            d = posixpath.dirname(f.target)
            while d not in ("", "/"):
                out.add(d)
                d = posixpath.dirname(d)
        return sorted(out, key=lambda d: (d.count("/"), d))

    def is_owned(self, path: str) -> bool:
        return any(path.startswith(d + "/") for d in self.owned_dirs)


def make_plan(build: Build, config: NodeConfig, config_source: str) -> Plan:
    files = [*build.artifacts, Artifact(CONFIG_TARGET, config.raw, config_source)]
    return Plan(sorted(files, key=lambda a: a.target), build, config)


@dataclass
class Diff:
    copy: list[Artifact] = field(default_factory=list)
    same: list[Artifact] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)  # stale files in owned directories

    @property
    def copy_bytes(self) -> int:
        return sum(a.size for a in self.copy)


def diff(plan: Plan, device: Mapping[str, DeviceFile], force: bool = False) -> Diff:
    out = Diff()
    wanted = {f.target for f in plan.files}
    for f in plan.files:
        have = device.get(f.target)
        if not force and have is not None and have.size == f.size and have.sha256 == f.sha256:
            out.same.append(f)
        else:
            out.copy.append(f)
    out.remove = sorted(p for p in device if _stale(plan, p, wanted))
    return out


def _stale(plan: Plan, path: str, wanted: set[str]) -> bool:
    """A file in a flashed-only directory that is not flashed, or a leftover ``.part`` file."""
    if path in wanted:
        return False
    return plan.is_owned(path) or (path.endswith(".part") and path[: -len(".part")] in wanted)


def inspect_roots(plan: Plan) -> list[str]:
    """Device paths to list before and after the copy: owned directories, targets, .part files."""
    loose = [f.target for f in plan.files if not plan.is_owned(f.target)]
    return plan.owned_dirs + loose + [t + ".part" for t in loose]


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block))


def blocks_needed(d: Diff, device: Mapping[str, DeviceFile], block_size: int) -> int:
    """Free blocks the copy needs at its peak (an upper estimate).

    Stale files are removed first; then each file is written to ``<target>.part`` and renamed
    over the old copy, so while file *i* is written the old copy still exists. A few blocks are
    kept for filesystem metadata (littlefs copies directory blocks on write).
    """
    net = -sum(_blocks(device[p].size, block_size) for p in d.remove if p in device)
    peak = 0
    for f in d.copy:
        new = _blocks(f.size, block_size)
        peak = max(peak, net + new)
        old = device.get(f.target)
        net += new - (_blocks(old.size, block_size) if old is not None else 0)
    return max(peak, net, 0) + 4


def verify(plan: Plan, device: Mapping[str, DeviceFile]) -> list[str]:
    """Problems found when comparing the device's files with the plan (empty = verified)."""
    problems = []
    for f in plan.files:
        have = device.get(f.target)
        if have is None:
            problems.append(f"{f.target}: missing on the device")
        elif have.size != f.size:
            problems.append(f"{f.target}: {have.size} bytes on the device, expected {f.size}")
        elif have.sha256 != f.sha256:
            got = (have.sha256 or "unknown")[:16]
            problems.append(f"{f.target}: sha256 on the device {got}…, expected {f.sha256[:16]}…")
    wanted = {f.target for f in plan.files}
    for p in sorted(device):
        if _stale(plan, p, wanted):
            problems.append(f"{p}: stale file left on the device")
    return problems
