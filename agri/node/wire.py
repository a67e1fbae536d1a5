"""Bytes on the wire per reading: the contract's batched JSON message vs one value per message.

Counts every MQTT byte of a QoS 1 exchange (PUBLISH fixed header with its variable-length
remaining length, topic, packet id, payload, and the 4-byte PUBACK), the same framing the firmware
writes (``firmware/agrinode/net/mqtt.py``, checked byte for byte in ``tests/firmware``), and an
estimate with TCP/IPv4 headers (52 bytes per segment with the timestamp option Linux and lwIP
send; one segment for the PUBLISH and one for the PUBACK, as the firmware writes a message in one
piece). Run: ``python -m agri.node.wire``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kernel.protocol import encode_up, up_topic

TCPIP_PER_SEGMENT = 52  # IPv4 20 + TCP 20 + timestamps option 12
PUBACK = 4
FARM, NODE = "gy-orchard", "n-0012"
T0 = 1764201600
# A typical orchard node sample: 6 sensor metrics; battery and RSSI ride in the envelope.
SAMPLE = {"air_t": 21.5, "air_rh": 65.2, "soil_vwc": 31.4, "soil_t": 18.9, "leaf_wet": 12.0, "rain_mm": 0.2}
ENVELOPE = {"bat": 3.91, "rssi": -71}


def varint_len(n: int) -> int:
    size = 1
    while n > 127:
        n >>= 7
        size += 1
    return size


def qos1_bytes(topic: str, payload: bytes) -> int:
    """MQTT bytes of one QoS 1 publish and its PUBACK."""
    remaining = 2 + len(topic.encode()) + 2 + len(payload)
    return 1 + varint_len(remaining) + remaining + PUBACK


@dataclass(frozen=True)
class Layout:
    name: str
    messages: int
    readings: int
    payload_bytes: int
    mqtt_bytes: int

    @property
    def per_reading(self) -> float:
        return self.mqtt_bytes / self.readings

    @property
    def per_reading_tcpip(self) -> float:
        return (self.mqtt_bytes + 2 * TCPIP_PER_SEGMENT * self.messages) / self.readings


def batched(samples: int, with_envelope: bool = True) -> Layout:
    rows = [(T0 + 300 * i, SAMPLE) for i in range(samples)]
    env = ENVELOPE if with_envelope else {}
    payload = encode_up(NODE, 1234, rows, boot=7, bat=env.get("bat"), rssi=env.get("rssi"))
    readings = samples * len(SAMPLE) + len(env)
    return Layout(
        f"contract v1, {samples} sample(s) per message",
        1,
        readings,
        len(payload),
        qos1_bytes(up_topic(FARM, NODE), payload),
    )


def one_value(with_time: bool) -> Layout:
    total = payload_total = 0
    values = {**SAMPLE, "bat_v": ENVELOPE["bat"], "rssi_dbm": ENVELOPE["rssi"]}
    for metric, v in values.items():
        topic = f"agri/v1/{FARM}/{NODE}/{metric}"
        payload = (
            json.dumps({"t": T0, "v": v}, separators=(",", ":")) if with_time else json.dumps(v)
        ).encode()
        payload_total += len(payload)
        total += qos1_bytes(topic, payload)
    name = "one value per message, " + ('{"t":..,"v":..}' if with_time else "bare number (no time)")
    return Layout(name, len(values), len(values), payload_total, total)


def table() -> str:
    rows = [batched(1), batched(24, with_envelope=False), one_value(True), one_value(False)]
    out = [
        "| layout | messages | readings | payload B | MQTT B (QoS 1 + PUBACK) | MQTT B/reading "
        "| with TCP/IPv4 B/reading |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.name} | {r.messages} | {r.readings} | {r.payload_bytes} | {r.mqtt_bytes} "
            f"| {r.per_reading:.1f} | {r.per_reading_tcpip:.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    print(f"topic {up_topic(FARM, NODE)!r}; sample {SAMPLE}; envelope {ENVELOPE}\n")
    print(table())


if __name__ == "__main__":
    main()
