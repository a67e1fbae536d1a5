"""Many simulated sensor nodes in one process: the real wire format, each with its own broker account.

Every node is one MQTT client with its own credentials (so the broker's ACL applies to it exactly as
to a real node); all clients are driven by one thread through paho's external-loop calls
(``loop_read`` / ``loop_write`` / ``loop_misc`` over one ``select``), so hundreds of nodes cost one
process and a few percent of a core. A node publishes ``{"v":1,"node":..,"seq":..,"boot":..,"s":[..]}``
to ``agri/v1/{farm}/{node}/up`` at QoS 1, ``seq`` one higher per message, like the firmware.

Values come from a plain diurnal model per farm kind (Wanzhou, UTC+8) with per-node offsets and
noise; a scenario may replace a metric's value of one node for a time (:attr:`SimNode.override`).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from kernel.log import event, get_logger

log = get_logger("agri.fleet")
LOCAL_UTC_OFFSET_H = 8.0

# (farm, node, metric, t, modelled value) -> the value to send, or None to keep the model's
Override = Callable[[str, float, float], float | None]


def _wave(t: float, peak_hour: float) -> float:
    """cos-shaped daily wave in [-1, 1], largest at ``peak_hour`` local time."""
    h = ((t / 3600.0) + LOCAL_UTC_OFFSET_H) % 24.0
    return math.cos(2 * math.pi * (h - peak_hour) / 24.0)


def model_value(kind: str, metric: str, t: float, offset: float, rng: random.Random) -> float:
    """A plausible reading of ``metric`` at ``t`` on a farm of ``kind`` (never crossing an alert rule)."""
    d = _wave(t, 15.0)
    g = rng.gauss
    if metric == "air_t":
        if kind == "pig_farm":
            v = 22.5 + 1.5 * d + offset + g(0, 0.2)
        elif kind == "tea_garden":
            v = 11.0 + 5.0 * d + offset + g(0, 0.3)
        else:
            v = 14.0 + 6.0 * d + offset + g(0, 0.3)
    elif metric == "air_rh":
        v = (66.0 if kind == "pig_farm" else 72.0) - 12.0 * d + g(0, 1.0)
    elif metric == "soil_vwc":
        v = 27.0 + 2.0 * offset - 0.8 * d + g(0, 0.03)  # soil moisture moves slowly
    elif metric == "soil_t":
        v = 15.0 + 2.0 * _wave(t, 17.0) + g(0, 0.1)
    elif metric == "leaf_wet":
        v = 35.0 - 25.0 * d + g(0, 3.0)
    elif metric == "rain_mm":
        v = 0.0
    elif metric == "bat_v":
        v = 3.95 + 0.05 * d + g(0, 0.01)
    elif metric == "co2_ppm":
        v = 1600.0 - 300.0 * d + 100 * offset + g(0, 40.0)
    elif metric == "nh3_ppm":
        v = 9.0 + 2.0 * offset - 1.5 * d + g(0, 0.5)
    elif metric == "water_l":
        v = 4.0 + 1.5 * d + g(0, 0.3)
    elif metric == "do_mgl":
        v = 6.6 + 1.7 * _wave(t, 17.0) + 0.3 * offset + g(0, 0.08)
    elif metric == "ph":
        v = 7.5 + 0.25 * _wave(t, 16.0) + g(0, 0.03)
    elif metric == "water_t":
        v = 22.0 + 1.5 * _wave(t, 16.0) + g(0, 0.1)
    else:
        v = 0.0
    lo = 0.0 if metric not in ("air_t", "soil_t", "water_t") else -40.0
    return round(max(lo, min(v, 100.0 if metric in ("air_rh", "soil_vwc", "leaf_wet") else 1e5)), 2)


@dataclass
class SimNode:
    farm: str
    node: str
    kind: str
    metrics: tuple[str, ...]
    interval: int
    host: str
    port: int
    user: str
    password: str
    seed: int = 0
    seq: int = 0
    boot: int = 1
    next_t: float = 0.0
    last_t: int = 0  # newest sample time sent (a sample time is never sent twice)
    offset: float = 0.0
    override: Override | None = None
    client: mqtt.Client | None = None
    connected: bool = False
    published: int = 0  # readings handed to the broker (PUBACK received)
    pending: dict[int, int] = field(default_factory=dict)  # mid -> readings in it
    rng: random.Random = field(default_factory=random.Random)

    @property
    def topic(self) -> str:
        return f"agri/v1/{self.farm}/{self.node}/up"

    def sample(self, t: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.metrics:
            v = model_value(self.kind, m, t, self.offset, self.rng)
            if self.override is not None:
                o = self.override(m, float(t), v)
                if o is not None:
                    v = round(o, 2)
            out[m] = v
        return out

    def message(self, samples: list[dict[str, Any]]) -> bytes:
        self.seq += 1
        obj = {"v": 1, "node": self.node, "seq": self.seq, "boot": self.boot, "s": samples,
               "rssi": -60 - (self.seed % 25)}  # fmt: skip
        return json.dumps(obj, separators=(",", ":")).encode()


class Fleet:
    """Drive many :class:`SimNode` clients from one thread."""

    def __init__(self, nodes: list[SimNode]) -> None:
        self.nodes = nodes
        self.lock = threading.Lock()
        self.sent_readings = 0  # readings in messages handed to paho
        self.acked_readings = 0  # readings in messages the broker acknowledged
        self._by_sock: dict[Any, SimNode] = {}
        self._last_misc = 0.0
        self._last_retry = 0.0
        for i, n in enumerate(nodes):
            n.rng = random.Random(n.seed or i)
            n.offset = n.rng.uniform(-1.0, 1.0)

    # --- connections --------------------------------------------------------------------------

    def _client(self, n: SimNode) -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{n.farm}-{n.node}"[:64],
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        c.username_pw_set(n.user, n.password)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            n.connected = not rc.is_failure
            if rc.is_failure:
                event(log, "sim_connect_refused", farm=n.farm, node=n.node, reason=str(rc))

        def on_disconnect(_c: Any, _u: Any, _f: Any, _rc: Any, _p: Any = None) -> None:
            n.connected = False

        def on_publish(_c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
            k = n.pending.pop(mid, 0)
            n.published += k
            with self.lock:
                self.acked_readings += k

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        c.on_publish = on_publish
        return c

    def connect(self) -> None:
        for n in self.nodes:
            n.client = self._client(n)
            try:
                n.client.connect(n.host, n.port, keepalive=60)
            except OSError as exc:
                event(log, "sim_connect_failed", farm=n.farm, node=n.node, error=str(exc))

    def _socks(self) -> dict[Any, SimNode]:
        out = {}
        for n in self.nodes:
            s = n.client.socket() if n.client is not None else None
            if s is not None:
                out[s] = n
        return out

    def pump(self, timeout: float = 0.05) -> None:
        """One round of network I/O for every client."""
        socks = self._socks()
        if not socks:
            time.sleep(timeout)
        else:
            wr = [s for s, n in socks.items() if n.client is not None and n.client.want_write()]
            r, w, _ = select.select(list(socks), wr, [], timeout)
            for s in r:
                c = socks[s].client
                if c is not None:
                    c.loop_read()
            for s in w:
                c = socks[s].client
                if c is not None:
                    c.loop_write()
        now = time.monotonic()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            for n in self.nodes:
                if n.client is not None:
                    n.client.loop_misc()
        if now - self._last_retry >= 5.0:
            self._last_retry = now
            for n in self.nodes:
                if n.client is not None and not n.connected and n.client.socket() is None:
                    with contextlib.suppress(OSError):
                        n.client.reconnect()

    def wait_connected(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(n.connected for n in self.nodes):
            self.pump()
        return sum(n.connected for n in self.nodes)

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, n: SimNode, samples: list[dict[str, Any]]) -> None:
        if n.client is None or not samples:
            return
        k = sum(len(s["m"]) for s in samples) + 1  # + the message's "rssi" (stored as rssi_dbm)
        info = n.client.publish(n.topic, n.message(samples), qos=1)
        n.pending[info.mid] = k
        with self.lock:
            self.sent_readings += k

    def backfill(self, start: float, end: float, step: int, per_msg: int = 48) -> None:
        """History every ``step`` seconds back from ``end`` to ``start``, ``per_msg`` samples a message.

        The newest sample is at ``end``, so no node looks silent when its history is evaluated.
        """
        times = list(range(int(end), int(start), -step))[::-1]
        for n in self.nodes:
            ts = [t for t in times if t > n.last_t]
            for i in range(0, len(ts), per_msg):
                self.publish(n, [{"t": t, "m": n.sample(t)} for t in ts[i : i + per_msg]])
            if ts:
                n.last_t = ts[-1]
            self.pump(0)
        self.drain()

    def drain(self, timeout: float = 300.0) -> bool:
        """Pump until every published message is acknowledged (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(n.pending for n in self.nodes):
                return True
            self.pump()
        return False

    def tick(self, now: float) -> int:
        """Publish one sample for every node that is due; return how many nodes published."""
        k = 0
        for n in self.nodes:
            if n.next_t <= now and n.connected:
                t = max(int(now), n.last_t + 1)
                n.last_t = t
                self.publish(n, [{"t": t, "m": n.sample(t)}])
                n.next_t = max(n.next_t + n.interval, now + n.interval * 0.5)
                k += 1
        return k

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick(time.time())
            self.pump(0.2)

    def close(self) -> None:
        self.drain(10.0)
        for n in self.nodes:
            if n.client is not None:
                try:
                    n.client.disconnect()
                    n.client.loop_write()
                except OSError:
                    pass
