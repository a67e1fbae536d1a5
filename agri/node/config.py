"""The node configuration file (``/node.json`` on a device): schema, validation, sensor profiles.

The firmware validates the same file on the device (``firmware/agrinode/config.py``) and falls back
to safe defaults field by field; here a bad file is refused outright, so what ``agri node add`` and
``agri flash`` write is always fully valid. The schema is documented in ``firmware/README.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agri.node.crc import crc8_maxim
from kernel.catalog import CATALOG, FARM_KINDS
from kernel.protocol import FarmId, NodeId
from kernel.settings import error_line

# type -> (bus, default metrics of the driver's outputs, calibration keys it understands)
SENSOR_TYPES: dict[str, tuple[str, tuple[str, ...], frozenset[str]]] = {
    "sht3x": ("i2c", ("air_t", "air_rh"), frozenset()),
    "sht4x": ("i2c", ("air_t", "air_rh"), frozenset()),
    "scd4x": ("i2c", ("co2_ppm",), frozenset()),
    "ds18b20": ("ow", ("soil_t",), frozenset()),
    "soil": ("adc", ("soil_vwc",), frozenset({"dry", "wet", "sat"})),
    "leaf": ("adc", ("leaf_wet",), frozenset({"dry", "wet"})),
    "nh3": ("adc", ("nh3_ppm",), frozenset({"v1", "x1", "v2", "x2"})),
    "do": ("adc", ("do_mgl",), frozenset({"v1", "x1", "v2", "x2"})),
    "ph": ("adc", ("ph",), frozenset({"v1", "x1", "v2", "x2"})),
    "battery": ("adc", ("bat_v",), frozenset({"div"})),
    "flow": ("pulse", ("water_l",), frozenset({"pulses_per_l"})),
    "rain": ("pulse", ("rain_mm",), frozenset({"mm_per_tip", "debounce_ms"})),
}
SensorType = Literal[
    "sht3x", "sht4x", "scd4x", "ds18b20", "soil", "leaf", "nh3", "do", "ph", "battery", "flow", "rain"
]
DEFAULT_I2C_ADDR = {"scd4x": 0x62}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class I2CSpec(_Strict):
    id: int = Field(0, ge=0, le=8)
    scl: int | None = Field(None, ge=0, le=255)
    sda: int | None = Field(None, ge=0, le=255)
    freq: int = Field(100_000, ge=10_000, le=1_000_000)


class Sensor(_Strict):
    type: SensorType
    metrics: list[str] | None = None
    pin: int | str | None = None
    i2c: I2CSpec | None = None
    addr: int | None = Field(None, ge=0x08, le=0x77)
    vref: float = Field(3.3, ge=0.5, le=6.0)
    rom: str | None = Field(None, pattern=r"^28[0-9a-fA-F]{14}$")
    cal: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Sensor:
        bus, outputs, cal_keys = SENSOR_TYPES[self.type]
        if self.metrics is not None:
            if len(self.metrics) != len(outputs):
                raise ValueError(
                    f"{self.type}: metrics must list {len(outputs)} name(s) like {list(outputs)}"
                )
            for m in self.metrics:
                if m not in CATALOG:
                    raise ValueError(f"{self.type}: metric {m!r} is not in the catalog")
        if bus == "i2c":
            if self.pin is not None:
                raise ValueError(f"{self.type} is an I2C sensor: give i2c {{id, scl, sda}} and addr, not pin")
        elif self.pin is None:
            raise ValueError(f"{self.type} needs 'pin' (the GPIO of its {bus} line)")
        elif isinstance(self.pin, int) and not 0 <= self.pin <= 255:
            raise ValueError(f"{self.type}: pin {self.pin} outside 0..255")
        elif isinstance(self.pin, str) and not 0 < len(self.pin) <= 8:
            raise ValueError(f"{self.type}: pin name {self.pin!r} must be 1..8 characters")
        unknown = set(self.cal) - cal_keys
        if unknown:
            allowed = ", ".join(sorted(cal_keys)) or "none"
            raise ValueError(f"{self.type}: unknown calibration keys {sorted(unknown)} (allowed: {allowed})")
        c = self.cal
        if self.type in ("soil", "leaf") and c.get("dry", 1.0) == c.get("wet", 2.0):
            raise ValueError(f"{self.type}: cal.dry and cal.wet must differ")
        if "v1" in c and "v2" in c and c["v1"] == c["v2"]:
            raise ValueError(f"{self.type}: cal.v1 and cal.v2 must differ")
        if self.type == "battery" and c.get("div", 2.0) < 1:
            raise ValueError("battery: cal.div must be >= 1")
        for key in ("pulses_per_l", "mm_per_tip"):
            if key in c and c[key] <= 0:
                raise ValueError(f"{self.type}: cal.{key} must be positive")
        if self.rom is not None and crc8_maxim(bytes.fromhex(self.rom)) != 0:
            raise ValueError("ds18b20: rom has a bad CRC")
        return self

    def outputs(self) -> list[str]:
        return list(self.metrics or SENSOR_TYPES[self.type][1])


class Broker(_Strict):
    host: str = Field(min_length=1, max_length=253, pattern=r"^[^\s/:]+$")
    port: int = Field(1883, ge=1, le=65535)
    user: str | None = Field(None, max_length=256)
    password: str | None = Field(None, max_length=256)
    keepalive: int = Field(60, ge=10, le=3600)
    backoff_base: int = Field(2, ge=1, le=3600)
    backoff_cap: int = Field(300, ge=1, le=86400)

    @model_validator(mode="after")
    def _cap(self) -> Broker:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("broker.backoff_cap must be >= backoff_base")
        return self


class SpoolLimits(_Strict):
    max_samples: int = Field(2000, ge=10, le=100_000)
    seg_bytes: int = Field(8192, ge=512, le=65536)


class Wifi(_Strict):
    ssid: str = Field(min_length=1, max_length=32)
    password: str = Field("", max_length=64)


class NodeConfig(_Strict):
    v: Literal[1] = 1
    farm: FarmId
    node: NodeId
    broker: Broker
    interval: int = Field(300, ge=1, le=86400)
    batch: int = Field(24, ge=1, le=200)
    drain: int = Field(4, ge=0, le=100)
    inflight: int = Field(4, ge=1, le=16)
    ack_timeout: int = Field(10, ge=1, le=120)
    sleep: Literal["auto", "deep", "light"] = "auto"
    wdt: int = Field(0, ge=0, le=3600)
    ntp: str = Field("", max_length=64)
    spool: SpoolLimits = Field(default_factory=lambda: SpoolLimits.model_validate({}))
    wifi: Wifi | None = None
    sensors: list[Sensor] = Field(default_factory=list, max_length=16)
    # HMAC-SHA256 key the node checks firmware update manifests with (agri.node.ota); none: the
    # node refuses every update.
    ota_key: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    def metrics(self) -> list[str]:
        return [m for s in self.sensors for m in s.outputs()]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), indent=1, ensure_ascii=False) + "\n"


class ConfigError(ValueError):
    """A node config is invalid; the message names the file and each bad field."""


def parse(obj: Any, source: str = "node config") -> NodeConfig:
    try:
        return NodeConfig.model_validate(obj)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + error_line(exc)) from None


def load(path: Path) -> NodeConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if len(text) > 8192:
        raise ConfigError(f"{path}: {len(text)} bytes; a node config must fit in 8192")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse(obj, str(path))


def write(cfg: NodeConfig, path: Path) -> None:
    """Write atomically with mode 0600 (the file holds the node's broker password)."""
    text = cfg.to_json()
    if len(text) > 8192:
        raise ConfigError(f"{path}: config is {len(text)} bytes; a node config must fit in 8192")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --- sensor profiles per farm kind ------------------------------------------------------------
# Pins are an ESP32 DevKit layout (I2C on 22/21, ADC1 inputs 32-36, counters on 26/27): change
# them in the file for other boards. Calibration starts at the probes' typical values; calibrate
# per node in the field and push it with the retained config message.

_I2C = {"id": 0, "scl": 22, "sda": 21}
PROFILES: dict[str, tuple[int, list[dict[str, Any]]]] = {
    "orchard": (
        300,
        [
            {"type": "sht3x", "i2c": _I2C},
            {"type": "soil", "pin": 34, "cal": {"dry": 2.6, "wet": 1.2, "sat": 45.0}},
            {"type": "ds18b20", "pin": 4, "metrics": ["soil_t"]},
            {"type": "leaf", "pin": 35, "cal": {"dry": 0.5, "wet": 2.5}},
            {"type": "rain", "pin": 27, "cal": {"mm_per_tip": 0.2}},
            {"type": "battery", "pin": 36, "cal": {"div": 2.0}},
        ],
    ),
    "pig_farm": (
        60,
        [
            {"type": "sht3x", "i2c": _I2C},
            {"type": "scd4x", "i2c": _I2C, "addr": 0x62},
            {"type": "nh3", "pin": 34, "cal": {"v1": 0.4, "x1": 0.0, "v2": 2.0, "x2": 100.0}},
            {"type": "flow", "pin": 27, "cal": {"pulses_per_l": 450}},
        ],
    ),
    "tea_garden": (
        300,
        [
            {"type": "sht3x", "i2c": _I2C},
            {"type": "soil", "pin": 34, "cal": {"dry": 2.6, "wet": 1.2, "sat": 45.0}},
            {"type": "leaf", "pin": 35, "cal": {"dry": 0.5, "wet": 2.5}},
            {"type": "battery", "pin": 36, "cal": {"div": 2.0}},
        ],
    ),
    "pond": (
        120,
        [
            {"type": "do", "pin": 34, "cal": {"v1": 0.0, "x1": 0.0, "v2": 1.6, "x2": 8.26}},
            {"type": "ph", "pin": 35, "cal": {"v1": 1.5, "x1": 7.0, "v2": 2.03, "x2": 4.0}},
            {"type": "ds18b20", "pin": 4, "metrics": ["water_t"]},
            {"type": "battery", "pin": 36, "cal": {"div": 2.0}},
        ],
    ),
}
assert set(PROFILES) == set(FARM_KINDS)


def profile(kind: str) -> tuple[int, list[Sensor]]:
    """(default interval, sensors) for a farm kind; ValueError for an unknown kind."""
    if kind not in PROFILES:
        raise ValueError(f"farm kind {kind!r} must be one of {', '.join(FARM_KINDS)}")
    interval, sensors = PROFILES[kind]
    return interval, [Sensor.model_validate(s) for s in sensors]


def for_node(
    farm: str,
    node: str,
    kind: str,
    *,
    interval: int | None,
    host: str,
    port: int,
    user: str,
    password: str,
    wifi_ssid: str | None = None,
    wifi_password: str = "",
    ota_key: str | None = None,
) -> NodeConfig:
    """The config ``agri node add`` writes: the farm kind's sensor profile and the node's broker
    account (``tests/firmware/test_config_agreement.py`` runs the firmware's check on all of them)."""
    default_interval, sensors = profile(kind)
    obj: dict[str, Any] = {
        "farm": farm,
        "node": node,
        "broker": {"host": host, "port": port, "user": user, "password": password},
        "interval": default_interval if interval is None else interval,
        "sensors": [x.model_dump(exclude_none=True) for x in sensors],
    }
    if ota_key is not None:
        obj["ota_key"] = ota_key
    if wifi_ssid:
        obj["wifi"] = {"ssid": wifi_ssid, "password": wifi_password}
    return parse(obj, "node config")
