"""Benchmark load generator: one process publishing pre-encoded node messages at a fixed rate.

`agri bench ingest` starts several of these (``python -m agri.bench.ingest.loadgen SPEC OUT``) so the
generator is not what limits the measurement. Every payload -- the whole MQTT PUBLISH packet -- is
built before the start time; the publish loop only paces, sends and counts PUBACKs
(:mod:`agri.bench.ingest.mqttpub`), so the generator takes little CPU from the system under test.
The process writes one JSON line of results to OUT and, next to it, ``OUT.pub``: one
``farm node seq publish_time`` line per message (for latency).

Payloads look like a real fleet's: each node sends ``samples`` samples of ``metrics`` every message
(a node that batches readings between uplinks), plus battery and RSSI; values random-walk inside
the catalog range (each sample moves by ``WALK`` of the range: 0.1 degC a minute for air
temperature, so a rule or QC test fires as often as on a field's data, not on one reading in five);
sample times are unique per node so every reading is a distinct row.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agri.bench.ingest.mqttpub import Publisher, publish_packet
from kernel.catalog import CATALOG
from kernel.protocol import batch_topic, encode_batch, encode_up, up_topic
from kernel.settings import MqttUrl

DEFAULT_METRICS = ("air_t", "air_rh", "soil_vwc", "soil_t", "leaf_wet", "solar_wm2")
# Random-walk step per sample, as a fraction of the metric's catalog range (standard deviation).
# 0.01 (1 degC a minute) made QC's rate-of-change test flag 21 % of the readings and opened ~2,600
# alert transitions per million readings: nothing like a fleet.
WALK = 0.001
# Where each node's walk starts (catalog units): a field's usual values. Starting anywhere in
# 30-70 % of the catalog range put a third of the nodes in frost and half the soil above QC's range.
TYPICAL: dict[str, tuple[float, float]] = {
    "air_t": (8.0, 28.0),
    "air_rh": (45.0, 90.0),
    "soil_vwc": (18.0, 40.0),
    "soil_t": (10.0, 24.0),
    "leaf_wet": (0.0, 60.0),
    "solar_wm2": (0.0, 800.0),
}


def _start_level(rnd: random.Random, metric: str) -> float:
    meta = CATALOG[metric]
    lo, hi = TYPICAL.get(metric, (meta.lo + 0.3 * (meta.hi - meta.lo), meta.lo + 0.7 * (meta.hi - meta.lo)))
    return (rnd.uniform(lo, hi) - meta.lo) / (meta.hi - meta.lo)


@dataclass
class LoadSpec:
    mqtt_url: str
    client_id: str
    nodes: list[tuple[str, str]]  # (farm, node)
    msgs_per_node: int
    msg_rate: float  # messages per second for this process
    start_at: float  # wall clock
    samples: int = 10
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    sample_interval_s: float = 60.0
    t0: float = 0.0  # time of each node's first sample
    seed: int = 0
    via_batch: int = 0  # >0: publish gateway envelopes of this many node messages instead
    max_inflight: int = 1000

    @property
    def readings_per_msg(self) -> int:
        return self.samples * len(self.metrics) + 2  # + bat_v, rssi_dbm


def build_messages(spec: LoadSpec) -> list[tuple[str, bytes, list[tuple[str, str, int]]]]:
    """(topic, payload, [(farm, node, seq) carried]) in publish order (round-robin over nodes)."""
    rnd = random.Random(spec.seed)
    level = {(f, n, m): _start_level(rnd, m) for f, n in spec.nodes for m in spec.metrics}
    out: list[tuple[str, bytes, list[tuple[str, str, int]]]] = []
    for seq in range(spec.msgs_per_node):
        for farm, node in spec.nodes:
            samples = []
            for k in range(spec.samples):
                t = spec.t0 + (seq * spec.samples + k) * spec.sample_interval_s
                values = {}
                for m in spec.metrics:
                    key = (farm, node, m)
                    level[key] = min(0.99, max(0.01, level[key] + rnd.gauss(0, WALK)))
                    meta = CATALOG[m]
                    values[m] = round(meta.lo + level[key] * (meta.hi - meta.lo), meta.decimals)
                samples.append((float(int(t)), values))
            payload = encode_up(
                node, seq, samples, boot=1, bat=round(rnd.uniform(3.6, 4.1), 2), rssi=rnd.randint(-110, -60)
            )
            out.append((up_topic(farm, node), payload, [(farm, node, seq)]))
    if spec.via_batch > 0:
        out = _as_batches(out, spec.via_batch)
    return out


def _as_batches(
    msgs: list[tuple[str, bytes, list[tuple[str, str, int]]]], size: int
) -> list[tuple[str, bytes, list[tuple[str, str, int]]]]:
    """Group node messages per farm into gateway envelopes, as a farm gateway would send them."""
    by_farm: dict[str, list[tuple[str, bytes, tuple[str, str, int]]]] = {}
    for _topic, payload, ids in msgs:
        farm, node, _seq = ids[0]
        by_farm.setdefault(farm, []).append((node, payload, ids[0]))
    out = []
    counters = dict.fromkeys(by_farm, 0)
    pending = {f: list(v) for f, v in by_farm.items()}
    while any(pending.values()):
        for farm, items in pending.items():
            if not items:
                continue
            chunk, pending[farm] = items[:size], items[size:]
            counters[farm] += 1
            gw = f"gw-{farm}"[:32]
            env = encode_batch(gw, farm, f"{gw}-{counters[farm]}", [(n, p) for n, p, _ in chunk])
            out.append((batch_topic(farm, gw), env, [i for _, _, i in chunk]))
    return out


def run(spec: LoadSpec, out_path: Path) -> dict[str, Any]:
    msgs = build_messages(spec)
    # Whole PUBLISH packets, packet ids included, are built before the start: publishing then
    # costs a send and the PUBACK bookkeeping (see agri.bench.ingest.mqttpub), not paho's ~150 µs.
    packets = [publish_packet(topic, payload, i % 65535 + 1) for i, (topic, payload, _) in enumerate(msgs)]
    url = MqttUrl(spec.mqtt_url)
    if url.tls:
        raise ValueError("the load generator speaks plain TCP only")
    pub = Publisher(
        url.host,
        url.port,
        spec.client_id,
        url.username,
        url.password,
        max_inflight=spec.max_inflight,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    # Clean start off and a session expiry: if the broker drops us under CPU starvation, the
    # publisher resumes the session and re-sends every un-acked publish, so "acked" stays the
    # truth about what the broker took.
    pub.connect()
    pub_times: list[float] = [0.0] * len(msgs)
    delay = spec.start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    start = time.time()
    cpu0 = time.process_time()
    interval = 1.0 / spec.msg_rate if spec.msg_rate > 0 else 0.0
    end = pub.run(packets, lambda i: start + i * interval, pub_times)
    all_acked = time.time()
    cpu_s = time.process_time() - cpu0
    pub.close()
    with open(str(out_path) + ".pub", "w") as f:
        for (_t, _p, ids), tp in zip(msgs, pub_times, strict=True):
            for farm, node, seq in ids:
                f.write(f"{farm} {node} {seq} {tp:.6f}\n")
    node_msgs = sum(len(ids) for _, _, ids in msgs)
    return {
        "client_id": spec.client_id,
        "messages": len(msgs),
        "node_messages": node_msgs,
        "acked": pub.acked,
        "refused": pub.refused,
        "reconnects": pub.reconnects,
        "readings": node_msgs * spec.readings_per_msg,
        "start": start,
        "end": end,
        "all_acked": all_acked,
        "publish_rate_msgs_s": len(msgs) / max(end - start, 1e-9),
        "bytes": sum(len(p) for _, p, _ in msgs),
        "cpu_s": cpu_s,  # publishing only (payloads were built before the start)
    }


def main(argv: list[str]) -> int:
    spec = LoadSpec(**json.loads(Path(argv[0]).read_text()))
    spec.nodes = [tuple(n) for n in spec.nodes]  # type: ignore[misc]
    res = run(spec, Path(argv[1]))
    Path(argv[1]).write_text(json.dumps(res))
    return 0


def write_spec(spec: LoadSpec, path: Path) -> None:
    path.write_text(json.dumps(asdict(spec)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
