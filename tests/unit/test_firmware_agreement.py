"""The host and the firmware validate the same node config and compute the same 1-Wire CRC.

The firmware (``firmware/agrinode``) is plain Python, so its own config check runs here on every
config ``agri node add`` can write (each farm kind's profile, interval and broker port limits, long
ids and host names, with and without Wi-Fi): a config the host writes must pass on the device with
zero errors and mean the same thing there. Change one schema without the other and this fails.
"""

from __future__ import annotations

import importlib
import itertools
import json
import random
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import pytest

from agri.node import config as nodecfg
from agri.node.crc import crc8_maxim
from agri.node.runtime import FIRMWARE_DIR
from agri.stack.mqtt_auth import new_password, node_username
from kernel.catalog import FARM_KINDS


@pytest.fixture(scope="module")
def fw() -> Iterator[SimpleNamespace]:
    """``agrinode.config`` and ``agrinode.crc`` imported from the firmware sources."""
    sys.path.insert(0, str(FIRMWARE_DIR))
    try:
        mods: dict[str, ModuleType] = {n: importlib.import_module(f"agrinode.{n}") for n in ("config", "crc")}
        yield SimpleNamespace(**mods)
    finally:
        sys.path.remove(str(FIRMWARE_DIR))
        for name in [m for m in sys.modules if m == "agrinode" or m.startswith("agrinode.")]:
            del sys.modules[name]


def _device_check(fw: SimpleNamespace, text: str) -> tuple[dict[str, object], list[str]]:
    errors: list[str] = []

    def log(event: str, level: str = "info", **kw: object) -> None:
        errors.append(f"{event} {kw}")

    rep = fw.config.Report(log, "node.json")
    return fw.config.check(json.loads(text), rep), errors


def test_sensor_types_agree(fw: SimpleNamespace) -> None:
    host = {t: (bus, metrics) for t, (bus, metrics, _cal) in nodecfg.SENSOR_TYPES.items()}
    device = {t: (bus, metrics) for t, (bus, metrics, _mod) in fw.config.TYPES.items()}
    assert host == device


def test_every_config_node_add_writes_passes_the_firmware_check(fw: SimpleNamespace) -> None:
    ids = [("orchard-1", "n-0012"), ("f" * 32, "n" * 32)]
    hosts = ["127.0.0.1", "gw.longju-orchard.example.cn", "h" * 253]
    wifis: list[tuple[str | None, str]] = [(None, ""), ("farm-ap", ""), ("s" * 32, "p" * 64)]
    checked = 0
    for kind, (farm, node), interval, host, port, (ssid, wpw) in itertools.product(
        FARM_KINDS, ids, [None, 1, 86400], hosts, [1, 1883, 65535], wifis
    ):
        cfg = nodecfg.for_node(
            farm, node, kind, interval=interval, host=host, port=port, user=node_username(farm, node),
            password=new_password(), wifi_ssid=ssid, wifi_password=wpw,
        )  # fmt: skip
        text = cfg.to_json()
        dev, errors = _device_check(fw, text)
        assert errors == [], (kind, text)
        assert (dev["farm"], dev["node"], dev["interval"]) == (farm, node, cfg.interval)
        broker = dev["broker"]
        assert isinstance(broker, dict)
        assert (broker["host"], broker["port"], broker["user"], broker["password"]) == (
            cfg.broker.host, cfg.broker.port, cfg.broker.user, cfg.broker.password,
        )  # fmt: skip
        sensors = dev["sensors"]
        assert isinstance(sensors, list)
        assert [(s["type"], s["metrics"], s["cal"]) for s in sensors] == [
            (s.type, s.outputs(), s.cal or {}) for s in cfg.sensors
        ]
        assert dev["wifi"] == (None if ssid is None else {"ssid": ssid, "password": wpw})
        checked += 1
    assert checked == 4 * 2 * 3 * 3 * 3 * 3


def test_the_firmware_check_is_not_a_rubber_stamp(fw: SimpleNamespace) -> None:
    cfg = nodecfg.for_node(
        "farm-a", "n-1", "orchard", interval=None, host="h", port=1883, user="u", password="p"
    )
    obj = json.loads(cfg.to_json())
    obj["interval"] = 0
    obj["sensors"][0]["type"] = "sht99"
    _, errors = _device_check(fw, json.dumps(obj))
    assert len(errors) == 2


def test_crc8_maxim_is_the_same_on_host_and_device(fw: SimpleNamespace) -> None:
    assert crc8_maxim(b"123456789") == fw.crc.crc8_maxim(b"123456789") == 0xA1  # CRC-8/MAXIM check value
    rng = random.Random(9)
    for n in range(200):
        data = bytes(rng.randrange(256) for _ in range(n % 40))
        assert crc8_maxim(data) == fw.crc.crc8_maxim(data), data.hex()
    rom = bytes.fromhex("28ff4c6a01160400")[:7]
    rom += bytes([crc8_maxim(rom)])
    assert fw.crc.crc8_maxim(rom) == 0 and fw.config.parse_rom(rom.hex()) == rom
