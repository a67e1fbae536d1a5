"""Gateway health: the retained JSON on ``agri/v1/{farm}/gw/{gateway}/health`` and how to read it.

The gateway publishes it every ``AGRI_GATEWAY_HEALTH_INTERVAL_S`` on both brokers (the farm broker
sees it while the uplink is down), plus ``state: "offline"`` as its MQTT Last Will upstream.
``agri status`` reads the retained messages from the central broker (:func:`read_health`) and shows
one component per gateway (:func:`component`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from gateway.spool import SpoolStats
from kernel.mqtt import make_client
from kernel.protocol import ROOT, ProtocolError, parse_topic

HEALTH_FILTER = f"{ROOT}/+/gw/+/health"


@dataclass(frozen=True, slots=True)
class UplinkSnapshot:
    up: bool
    since: float  # when the current state began
    error: str | None
    inflight_batches: int


def build(
    farm: str,
    gateway: str,
    *,
    stats: SpoolStats,
    uplink: UplinkSnapshot,
    counters: dict[str, int],
    interval_s: float,
    now: float,
    state: str = "online",
    error: str | None = None,
    spool_error: str | None = None,
) -> dict[str, Any]:
    """``state`` is ``online``, ``stopped`` or ``failed`` (``error`` says why: a loop died);
    ``spool_error`` is set while spool writes fail (the gateway keeps retrying, acks nothing)."""
    return {
        "v": 1,
        "farm": farm,
        "gw": gateway,
        "ts": round(now, 3),
        "state": state,
        "error": error,
        "spool_error": spool_error,
        "interval_s": interval_s,
        "uplink": "up" if uplink.up else "down",
        "uplink_since": round(uplink.since, 3),
        "uplink_error": uplink.error,
        "inflight_batches": uplink.inflight_batches,
        "depth": stats.depth,
        "depth_bytes": stats.bytes,
        "oldest_age_s": None
        if stats.oldest_received is None
        else round(max(0.0, now - stats.oldest_received), 1),
        "last_ack": stats.last_ack,
        "last_ack_age_s": None if stats.last_ack is None else round(max(0.0, now - stats.last_ack), 1),
        "drops": stats.drops,
        "dead_letters": stats.dead_letters,
        "alerts_pending": stats.alerts_pending,
        **counters,
    }


def offline_payload(farm: str, gateway: str) -> bytes:
    return json.dumps({"v": 1, "farm": farm, "gw": gateway, "state": "offline"}).encode()


def read_health(
    url: str, timeout: float = 3.0, quiet_s: float = 0.3, topic: str = HEALTH_FILTER
) -> dict[tuple[str, str], dict[str, Any]]:
    """Retained gateway health messages on a broker: {(farm, gateway): health}.

    Retained messages arrive right after the SUBACK; we stop once none arrived for ``quiet_s``.
    ``topic`` narrows the subscription (a gateway account may read only its own health topic).
    Raises ``OSError`` / ``TimeoutError`` when the broker cannot be reached or refuses.
    """
    client, kwargs = make_client(url, "")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    subscribed = threading.Event()
    failed: list[str] = []
    last = [time.monotonic()]

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            failed.append(str(rc))
            subscribed.set()
        else:
            c.subscribe(topic, qos=0)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, rcs: list[Any], _p: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            failed.append(f"subscription refused: {rcs[0]}")
        last[0] = time.monotonic()
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        last[0] = time.monotonic()
        try:
            t = parse_topic(msg.topic)
            obj = json.loads(msg.payload)
        except (ProtocolError, ValueError, UnicodeDecodeError):
            return
        if isinstance(obj, dict):
            found[(t.farm, t.source)] = obj

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(**kwargs)
    client.loop_start()
    try:
        if not subscribed.wait(timeout):
            raise TimeoutError("no SUBACK from the broker")
        if failed:
            raise OSError(f"broker refused: {failed[0]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() - last[0] < quiet_s and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return found


def component(health: dict[str, Any], now: float) -> dict[str, Any]:
    """One ``agri status`` component from a gateway's retained health."""
    state = str(health.get("state", "unknown"))
    ts = health.get("ts")
    interval = health.get("interval_s")
    age = now - ts if isinstance(ts, (int, float)) else None
    out: dict[str, Any] = {"address": None}
    fresh = age is not None and isinstance(interval, (int, float)) and age <= 3 * interval + 5
    if state == "online" and fresh and not health.get("spool_error"):
        out["state"] = "running"
    else:
        out["state"] = "error"
        if state == "online" and not fresh:
            out["error"] = f"last health {age:.0f}s ago" if age is not None else "no health timestamp"
        elif state == "online":
            out["error"] = f"spool writes failing: {health['spool_error']}"
        else:
            why = health.get("error")
            out["error"] = f"gateway {state}" + (f": {why}" if why else "")
    for k in ("uplink", "depth", "oldest_age_s", "last_ack_age_s", "drops", "dead_letters"):
        if k in health:
            out[k] = health[k]
    if age is not None:
        out["health_age_s"] = round(age, 1)
    return out
