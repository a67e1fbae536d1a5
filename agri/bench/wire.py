"""Bytes on the gateway's uplink per node message: what a farm's 4G plan pays for.

Node messages are made as the firmware makes them (one sample per message, every metric of the
farm kind's sensor profile with the catalog's decimals, battery and RSSI), with values that move
like field data: a daily cycle, an offset per node and random-walk noise, so no two messages are
alike. Arrivals are a farm of ``nodes`` nodes each reporting once per ``interval_s`` at its own
phase; batches are cut as the gateway cuts them (a partial batch leaves ``linger_s`` after its
oldest message, at most ``batch_max`` messages). Each batch is the real envelope
(:func:`kernel.protocol.encode_batch`, zlib level 6); the MQTT 5 PUBLISH header (fixed header,
topic, packet id, properties length) is counted next to it.

Baselines in the same run: the same messages in full 500-message batches (a backlog after an
outage), and 5 identical values per message in full batches (what the first published figure
measured).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from agri.node.config import profile
from kernel.catalog import CATALOG
from kernel.protocol import batch_topic, encode_batch, encode_up

FARM, GW = "longju-orchard", "gw-1"
T0 = 1_764_201_600  # 2025-11-27 00:00 UTC


@dataclass(frozen=True)
class WireResult:
    scenario: str
    messages: int
    batches: int
    messages_per_batch: float
    payload_bytes_per_message: float  # node payload as the node sent it
    envelope_bytes_per_message: float  # zlib envelope
    mqtt_bytes_per_message: float  # envelope + PUBLISH header


def _publish_overhead(topic: str, body: int) -> int:
    """MQTT 5 PUBLISH, QoS 1: fixed header, remaining length, topic, packet id, properties length."""
    rest = 2 + len(topic.encode()) + 2 + 1 + body
    return 1 + (1 if rest < 128 else 2 if rest < 16_384 else 3 if rest < 2_097_152 else 4) + rest - body


def farm_messages(nodes: int, minutes: int, kind: str, seed: int) -> list[tuple[float, str, bytes]]:
    """(arrival time, node, payload) of every message, in arrival order."""
    rng = random.Random(seed)
    _, sensors = profile(kind)
    metrics = [m for s in sensors for m in s.outputs() if m != "bat_v"]
    out: list[tuple[float, str, bytes]] = []
    for k in range(nodes):
        node = f"n-{k:04d}"
        phase = rng.uniform(0, 60)
        offset = {m: rng.gauss(0, 0.03) for m in metrics}
        walk = dict.fromkeys(metrics, 0.0)
        bat, rssi = rng.uniform(3.7, 4.1), rng.randint(-95, -60)
        for i in range(minutes):
            t = T0 + 8 * 3600 + i * 60 + phase
            day = math.sin(2 * math.pi * (t % 86_400) / 86_400 - math.pi / 2)  # low at dawn
            values = {}
            for m in metrics:
                spec = CATALOG[m]
                walk[m] += rng.gauss(0, 0.004)
                x = 0.5 + 0.2 * day + offset[m] + walk[m] + rng.gauss(0, 0.002)
                v = spec.lo + (spec.hi - spec.lo) * min(max(x, 0.0), 1.0)
                if spec.aggregate == "sum":  # counters: mostly nothing per minute
                    v = 0.2 * rng.randint(1, 3) if rng.random() < 0.05 else 0.0
                values[m] = round(v, spec.decimals) if spec.decimals else float(round(v))
            bat -= rng.uniform(0, 0.0002)
            rssi_now = max(-120, min(-40, rssi + rng.randint(-3, 3)))
            payload = encode_up(node, i + 1, [(int(t), values)], boot=1, bat=round(bat, 2), rssi=rssi_now)
            out.append((t, node, payload))
    out.sort(key=lambda x: x[0])
    return out


def cut_batches(
    msgs: list[tuple[float, str, bytes]], linger_s: float | None, batch_max: int
) -> list[list[tuple[str, bytes]]]:
    """Batches as the gateway plans them; ``linger_s`` None: full batches (a backlog)."""
    batches: list[list[tuple[str, bytes]]] = []
    i = 0
    while i < len(msgs):
        first = msgs[i][0]
        j = i
        while j < len(msgs) and j - i < batch_max and (linger_s is None or msgs[j][0] <= first + linger_s):
            j += 1
        batches.append([(node, p) for _, node, p in msgs[i:j]])
        i = j
    return batches


def measure(scenario: str, batches: list[list[tuple[str, bytes]]]) -> WireResult:
    topic = batch_topic(FARM, GW)
    n = sum(len(b) for b in batches)
    payload = sum(len(p) for b in batches for _, p in b)
    envelope = mqtt = 0
    for k, b in enumerate(batches):
        size = len(encode_batch(GW, FARM, f"{GW}-ab12cd34-{k * 500 + 1}-{k * 500 + len(b)}", b))
        envelope += size
        mqtt += size + _publish_overhead(topic, size)
    return WireResult(
        scenario, n, len(batches), round(n / len(batches), 2), round(payload / n, 1),
        round(envelope / n, 1), round(mqtt / n, 1),
    )  # fmt: skip


def identical(msgs: list[tuple[float, str, bytes]]) -> list[tuple[float, str, bytes]]:
    """The same messages with 5 identical values each (what the first figure was measured on)."""
    out: list[tuple[float, str, bytes]] = []
    for t, node, _p in msgs:
        seq = len(out) + 1
        values = dict.fromkeys(("air_t", "air_rh", "soil_vwc", "soil_t", "leaf_wet"), 20.0)
        out.append((t, node, encode_up(node, seq, [(int(t), values)])))
    return out


def run(
    nodes: int = 500, minutes: int = 30, linger_s: float = 0.5, kind: str = "orchard", seed: int = 1
) -> list[WireResult]:
    msgs = farm_messages(nodes, minutes, kind, seed)
    return [
        measure(
            f"live farm: {nodes} nodes, 1 msg/min each, linger {linger_s} s", cut_batches(msgs, linger_s, 500)
        ),
        measure("same messages, backlog (500 per batch)", cut_batches(msgs, None, 500)),
        measure("5 identical values per message, 500 per batch", cut_batches(identical(msgs), None, 500)),
    ]
