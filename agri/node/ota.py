"""Firmware updates over the air: sign, publish and follow (the node side is firmware/agrinode/ota.py).

A release is the compiled ``agrinode`` package (``agri flash``'s build, ``/lib/agrinode/**.mpy``).
For each node the platform publishes, retained, the chunks on ``agri/v1/{farm}/{node}/ota/c/<k>``
and then the manifest on ``.../ota``::

    <64 hex: HMAC-SHA256(node key, MANIFEST)>\\n<MANIFEST>
    MANIFEST = {"node": "farm/node", "v": version, "c": chunk bytes, "max": trial boots,
                "f": [[path, size, sha256 hex], ...]}

The node key is HMAC-SHA256(master key, "farm/node"); the master key (32 random bytes) lives in
``$AGRI_HOME/ota.key`` (mode 0600) and each node gets its own key in node.json (``ota_key``) when
it is provisioned. Only the node's own account and the platform may read ``.../ota/#`` (broker
ACL). The node reports on its status topic (JSON ``{"s", "v", "ota"}``); :func:`follow` waits for
that and the registry keeps the outcome (``nodes.firmware_version``, ``nodes.ota_state``).

What the signature protects against: a node installs only code that the holder of the master key
released for that very node, unmodified (every file's sha256 is inside the signed manifest), and
never a version it rolled back from; a publisher that gets onto the broker, another node's stolen
key or a damaged transfer cannot make it run other code. What it does not: the key is symmetric,
so someone who reads a node's flash (its ``node.json``) can sign updates for that one node; the
master key on the platform signs for all of them; releases are not encrypted (firmware is not
secret here); an old release signed for the node can be published again (a downgrade) by whoever
holds the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agri.flash.build import build_firmware
from kernel.protocol import status_topic

VERSION_RE = re.compile(r"^[0-9A-Za-z._-]{1,32}$")
KEY_FILE = "ota.key"
CHUNK = 512


class UpdateError(RuntimeError):
    """An update cannot be prepared or published; the message says why."""


def master_key(home: Path) -> bytes:
    """The platform's update master key (created on first use, mode 0600)."""
    path = home / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    if len(key) != 32:
        raise UpdateError(f"{path}: expected 32 bytes, found {len(key)}")
    return key


def node_key(master: bytes, farm: str, node: str) -> str:
    """The node's own key (hex), as written into its node.json."""
    return hmac.new(master, f"{farm}/{node}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Release:
    version: str
    files: list[tuple[str, bytes]]  # (path under the version directory, bytes)

    @property
    def size(self) -> int:
        return sum(len(d) for _, d in self.files)


def release(version: str, firmware_dir: Path) -> Release:
    """The compiled ``agrinode`` package of ``firmware_dir`` as version ``version``."""
    if not VERSION_RE.match(version):
        raise UpdateError(f"--version {version!r} must be 1-32 characters of A-Z a-z 0-9 . _ -")
    build = build_firmware(firmware_dir)
    files = [
        (a.target.removeprefix("/lib/"), a.data)
        for a in build.artifacts
        if a.target.startswith("/lib/agrinode/")
    ]
    if not files:
        raise UpdateError(f"{firmware_dir}: no agrinode package in the build")
    return Release(version, files)


def chunks(rel: Release, chunk: int = CHUNK) -> list[bytes]:
    out = []
    for _, data in rel.files:
        out += [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return out


def manifest(
    rel: Release, farm: str, node: str, key_hex: str, chunk: int = CHUNK, max_boots: int = 3
) -> bytes:
    """The signed manifest payload for one node."""
    if not 1 <= max_boots <= 20:
        raise UpdateError(f"--max-boots {max_boots} must be 1..20")
    body = json.dumps(
        {
            "node": f"{farm}/{node}",
            "v": rel.version,
            "c": chunk,
            "max": max_boots,
            "f": [[p, len(d), hashlib.sha256(d).hexdigest()] for p, d in rel.files],
        },
        separators=(",", ":"),
    ).encode()
    sig = hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest()
    return sig.encode() + b"\n" + body


def ota_topic(farm: str, node: str) -> str:
    return f"agri/v1/{farm}/{node}/ota"


def publish(
    client: Any, farm: str, node: str, signed: bytes, parts: Iterable[bytes], timeout: float = 30
) -> int:
    """Retained chunks first, then the manifest (a node that sees it finds every chunk). Returns
    the number of chunks. ``client`` is a connected paho client (loop running)."""
    base = ota_topic(farm, node)
    n = 0
    infos = []
    for k, part in enumerate(parts):
        infos.append(client.publish(f"{base}/c/{k}", part, qos=1, retain=True))
        n += 1
    for info in infos:
        info.wait_for_publish(timeout)
    client.publish(base, signed, qos=1, retain=True).wait_for_publish(timeout)
    return n


def clear(client: Any, farm: str, node: str, n_chunks: int, timeout: float = 30) -> None:
    """Remove the retained manifest and chunks (after the node confirmed, or to cancel)."""
    base = ota_topic(farm, node)
    infos = [client.publish(base, b"", qos=1, retain=True)]
    infos += [client.publish(f"{base}/c/{k}", b"", qos=1, retain=True) for k in range(n_chunks)]
    for info in infos:
        info.wait_for_publish(timeout)


def outcome(status: dict[str, Any], version: str) -> str | None:
    """'ok', 'rolled back', 'refused', 'failed' from a node's status, or None (not decided yet)."""
    ota = str(status.get("ota", ""))
    if status.get("v") == version and ota == "ok":
        return "ok"
    if ota.startswith("rolled back from " + version):
        return "rolled back"
    if ota.startswith("refused"):
        return "refused"
    if ota.startswith("failed " + version):
        return "failed"
    return None


class StatusWatch:
    """Latest JSON status of nodes, from a subscription on their status topics."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._cond = threading.Condition()

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 5 or parts[4] != "status" or not payload.startswith(b"{"):
            return
        try:
            st = json.loads(payload)
        except ValueError:
            return
        if isinstance(st, dict):
            with self._cond:
                self.latest[(parts[2], parts[3])] = st
                self._cond.notify_all()

    def wait(
        self,
        nodes: list[tuple[str, str]],
        version: str,
        timeout: float,
        tick: Callable[[], None] | None = None,
    ) -> dict[tuple[str, str], str]:
        """Outcome per node (``'timeout'`` for those undecided after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                done = {n: outcome(self.latest.get(n, {}), version) for n in nodes}
                left = deadline - time.monotonic()
                if all(done.values()) or left <= 0:
                    return {n: o or "timeout" for n, o in done.items()}
                self._cond.wait(min(left, 1.0))
                if tick:
                    tick()


def stages(nodes: list[str], spec: str) -> list[list[str]]:
    """Split ``nodes`` by a stage spec like ``1,25%,100%`` (counts or cumulative percentages)."""
    out: list[list[str]] = []
    done = 0
    for part in spec.split(","):
        part = part.strip()
        try:
            upto = round(len(nodes) * float(part[:-1]) / 100) if part.endswith("%") else int(part)
        except ValueError:
            raise UpdateError(f"--stages {spec!r}: {part!r} is not a count or a percentage") from None
        upto = max(done, min(len(nodes), upto))
        if upto > done:
            out.append(nodes[done:upto])
            done = upto
    if done < len(nodes):
        out.append(nodes[done:])
    return out


def status_topics(farm: str, nodes: Iterable[str]) -> list[str]:
    return [status_topic(farm, n) for n in nodes]


def mqtt_bytes(topic: str, payload: bytes) -> int:
    """Bytes a QoS 1 PUBLISH and its PUBACK take on the wire (MQTT framing, no TCP/IP)."""
    rl = 2 + len(topic.encode()) + 2 + len(payload)
    varint = 1 if rl < 128 else 2 if rl < 16384 else 3 if rl < 2097152 else 4
    return 1 + varint + rl + 4


def air_bytes(farm: str, node: str, signed: bytes, parts: list[bytes]) -> int:
    """MQTT bytes of one node's update (manifest + chunks, each with its PUBACK)."""
    base = ota_topic(farm, node)
    return mqtt_bytes(base, signed) + sum(mqtt_bytes(f"{base}/c/{k}", p) for k, p in enumerate(parts))


@dataclass
class Outcome:
    node: str
    result: str  # ok | rolled back | refused | failed | timeout | not started
    air_bytes: int = 0
    seconds: float = 0.0


def roll_out(
    client: Any,
    watch: StatusWatch,
    farm: str,
    nodes: list[str],
    rel: Release,
    master: bytes,
    *,
    stage_spec: str = "100%",
    max_boots: int = 3,
    chunk: int = CHUNK,
    timeout: float = 600,
    record: Callable[[str, str, str | None], None] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> list[Outcome]:
    """Update ``nodes`` of ``farm`` stage by stage; a stage with any node not 'ok' (rolled back,
    refused, failed, or no answer within ``timeout``) stops the roll-out. ``client`` is a connected
    paho client whose messages on the nodes' status topics go to ``watch.on_message``. Retained
    update messages are cleared once a node has answered; a node that did not (asleep) keeps
    them and takes the update at its next wake."""
    parts = chunks(rel, chunk)
    out: list[Outcome] = []
    plan = stages(nodes, stage_spec)
    for i, group in enumerate(plan):
        say(f"stage {i + 1}/{len(plan)}: {', '.join(group)}")
        t0 = time.monotonic()
        sizes = {}
        for node in group:
            signed = manifest(rel, farm, node, node_key(master, farm, node), chunk, max_boots)
            publish(client, farm, node, signed, parts)
            sizes[node] = air_bytes(farm, node, signed, parts)
            if record:
                record(node, "pending", None)
        results = watch.wait([(farm, n) for n in group], rel.version, timeout)
        for (_f, node), res in results.items():
            out.append(Outcome(node, res, sizes[node], time.monotonic() - t0))
            if res != "timeout":
                clear(client, farm, node, len(parts))
            if record:
                record(node, res if res != "timeout" else "pending", rel.version if res == "ok" else None)
        if any(r != "ok" for r in results.values()):
            out += [Outcome(n, "not started") for g in plan[i + 1 :] for n in g]
            break
    return out


def firmware_summary(conn: Any) -> str | None:
    """'0.2.0 ok: 12, 0.1.0 rolled back: 1' over the registry's nodes (for agri status), or None
    before migration 0007."""
    has = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'nodes' AND column_name = 'ota_state'"
    ).fetchone()
    if not has:
        return None
    rows = conn.execute(
        "SELECT coalesce(firmware_version, 'unknown'), ota_state, count(*) FROM nodes"
        " WHERE retired_at IS NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1"
    ).fetchall()
    return ", ".join(f"{v}{' ' + s if s else ''}: {n}" for v, s, n in rows) or "no nodes"
