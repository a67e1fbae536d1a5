"""Host-side check of the node config (``/node.json`` on the device) before it is flashed.

The firmware validates the file itself and falls back to safe defaults, but a technician should
learn about a wrong file on the laptop, not from a node that never reports. The fields a node
cannot work without (farm and node ids, the broker) get a plain-words message here; then the whole
file goes through the platform's node config schema (:mod:`agri.node.config`, the one
``agri node add`` writes with), which checks every field's range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agri.flash.errors import FlashError
from agri.node.config import ConfigError, parse
from kernel.protocol import check_id, up_topic

MAX_CONFIG_BYTES = 8192  # the firmware refuses larger files (agrinode/config.py MAX_FILE)


@dataclass(frozen=True)
class NodeConfig:
    farm: str
    node: str
    broker_host: str
    broker_port: int
    raw: bytes  # exactly what is written to the device

    @property
    def up_topic(self) -> str:

        return up_topic(self.farm, self.node)


def _bad(path: Path, detail: str) -> FlashError:
    return FlashError("config", detail, str(path))


def parse_node_config(raw: bytes, path: Path) -> NodeConfig:
    if len(raw) > MAX_CONFIG_BYTES:
        raise _bad(path, f"{len(raw)} bytes, the firmware accepts at most {MAX_CONFIG_BYTES}")
    try:
        obj: Any = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise _bad(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _bad(path, f"must be a JSON object, got {type(obj).__name__}")
    if obj.get("v", 1) != 1:
        raise _bad(path, f"field v: unsupported config version {obj.get('v')!r} (expected 1)")
    ids: dict[str, str] = {}
    for kind in ("farm", "node"):
        if kind not in obj:
            raise _bad(path, f"field {kind} is missing")
        try:
            ids[kind] = check_id(kind, obj[kind])
        except ValueError as exc:
            raise _bad(path, f"field {kind}: {exc}") from None
    broker = obj.get("broker")
    if not isinstance(broker, dict):
        raise _bad(path, "field broker must be an object {host, port, user, password}")
    host = broker.get("host")
    if not isinstance(host, str) or not 0 < len(host) <= 253 or " " in host:
        raise _bad(path, f"field broker.host must be a host name or IP address, got {host!r}")
    port = broker.get("port", 1883)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise _bad(path, f"field broker.port must be an integer 1..65535, got {port!r}")
    for key in ("user", "password"):
        val = broker.get(key)
        if val is not None and not isinstance(val, str):
            raise _bad(path, f"field broker.{key} must be a string")
    sensors = obj.get("sensors", [])
    if not isinstance(sensors, list) or not all(isinstance(s, dict) and "type" in s for s in sensors):
        raise _bad(path, "field sensors must be a list of objects with a type")

    try:
        parse(obj, str(path))
    except ConfigError as exc:
        raise _bad(path, str(exc).removeprefix(f"{path}: ")) from None
    return NodeConfig(ids["farm"], ids["node"], host, port, raw)


def load_node_config(path: Path) -> NodeConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _bad(path, f"cannot read: {exc.strerror or exc}") from None
    return parse_node_config(raw, path)
