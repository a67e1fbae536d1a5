"""Wait for a freshly flashed node's first message on the broker.

The subscription is made *before* the board is reset (node messages are not retained), with the
stack's read-only ``monitor`` account unless a URL is given.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agri.flash.errors import FlashError
from kernel.mqtt import make_client
from kernel.protocol import Limits, NodeMessage, ProtocolError, decode_up, up_topic
from kernel.settings import MqttUrl


@dataclass(frozen=True)
class FirstMessage:
    topic: str
    payload: bytes
    decoded: NodeMessage | None
    error: str | None  # why the payload did not decode (the node still reached the broker)
    waited_s: float


class FirstMessageWaiter:
    """Subscribed on construction; :meth:`wait` blocks until a message or the timeout."""

    def __init__(self, url: str, farm: str, node: str, connect_timeout: float = 10.0) -> None:
        self.farm, self.node = farm, node
        self.topic = up_topic(farm, node)
        self._public = MqttUrl(url).public()
        self._got: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._error: str | None = None
        self.client, kwargs = make_client(url, f"agri-flash-{node}-{int(time.time()) % 100000}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        try:
            self.client.connect(**kwargs)
        except OSError as exc:
            raise FlashError(
                "wait",
                f"cannot reach the broker at {self._public}: {exc}",
                hint="is the platform running (agri status)? or give the broker with --mqtt-url",
            ) from None
        self.client.loop_start()
        if not self._ready.wait(connect_timeout) or self._error:
            self.close()
            raise FlashError(
                "wait", self._error or f"no answer from the broker at {self._public} in {connect_timeout:g} s"
            )
        self._t0 = time.monotonic()

    def _on_connect(self, c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._error = f"the broker at {self._public} refused the login: {rc}"
            self._ready.set()
        else:
            c.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            self._error = f"the broker refused the subscription to {self.topic} (ACL?)"
        self._ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._got.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait(self, timeout: float) -> FirstMessage:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._got), timeout):
                raise FlashError(
                    "wait",
                    f"no message on {self.topic} within {timeout:g} s after the reset",
                    hint="watch the node's serial output (mpremote connect PORT repl) for network or "
                    "broker errors; check broker.host in the node config is reachable from the field",
                )
            topic, payload = self._got[0]
        waited = time.monotonic() - self._t0
        try:
            decoded: NodeMessage | None = decode_up(self.farm, self.node, payload, Limits(now=time.time()))
            error = None
        except ProtocolError as exc:
            decoded, error = None, str(exc)
        return FirstMessage(topic, payload, decoded, error, waited)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
