"""The MQTT side of an ingest worker: shared subscription, persistent session, manual acks.

paho runs its network loop in its own thread (``loop_start``) and calls ``on_message`` there; this
module only puts each message on a bounded queue for the writer thread and sends the PUBACKs the
writer asks for after its commit. Flow control is the broker's: the MQTT 5 Receive Maximum we
announce (and the broker's own ``max_inflight_messages``) caps how many un-acked messages the
broker sends us, so the queue never grows past it and never blocks the network thread.

Connection generations: a mid (packet id) only means something on the connection it arrived on.
Every connect and disconnect starts a new generation; an ack for a message of an older generation
is not sent (the broker redelivers that message and the duplicate dies on the unique key), so a
stale PUBACK can never acknowledge a different, not yet stored message.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from kernel.log import event, get_logger
from kernel.mqtt import make_client
from kernel.protocol import BATCH_FILTER, UP_FILTER
from kernel.settings import MqttUrl

log = get_logger("ingest")


_PUBACK = struct.Struct("!BBH")  # fixed header (PUBACK, remaining length 2), packet id: success


class FastClient(mqtt.Client):
    """paho's Client without two per-message costs of a busy consumer.

    - Reads: paho reads each packet with three or four ``recv`` calls (type byte, length bytes one
      at a time, body) after one ``select`` per packet. Here ``recv`` fills a 64 KiB buffer the
      packets are then taken from, and :meth:`loop_read` handles every packet already buffered
      before paho goes back to ``select`` (which cannot see bytes that left the socket).
    - Acks: :meth:`ack_many` queues the PUBACKs of a whole batch as one write instead of one
      queued packet, one wake-up of the network thread and one ``send`` per message.

    Both use paho 2.x internals (``_sock_recv``, ``_sock``, ``_packet_queue``); :data:`SUPPORTED`
    says whether this paho has them, else the consumer uses the plain Client.
    """

    _rsock: object = None
    _rbuf: bytes = b""
    _rpos: int = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._sock
        if self._rsock is not sock or sock is None:  # a new connection: nothing buffered is valid
            self._rsock, self._rbuf, self._rpos = sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data: bytes = super()._sock_recv(max(bufsize, 65536))  # BlockingIOError: nothing there
            if len(data) <= bufsize:
                return data  # includes b"" (connection closed)
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = start + bufsize
        return self._rbuf[start : self._rpos]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._sock is not None
            and self._rsock is self._sock
            and self._rpos < len(self._rbuf)
        ):
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK (success) for QoS 1 messages ``mids``, written together."""
        if mids:
            data = b"".join([_PUBACK.pack(0x40, 2, m) for m in mids])
            self._packet_queue(0x40, data, 0, 1)


SUPPORTED = all(hasattr(mqtt.Client, a) for a in ("_sock_recv", "_packet_queue", "_loop_rc_handle"))


@dataclass(slots=True)
class Inbound:
    gen: int  # connection generation the message arrived on
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # wall clock, seconds


def shared_filters(group: str) -> list[str]:
    return [f"$share/{group}/{UP_FILTER}", f"$share/{group}/{BATCH_FILTER}"]


def filters(group: str | None) -> list[str]:
    """Shared subscription filters of ``group``, or plain filters when ``group`` is None."""
    return shared_filters(group) if group else [UP_FILTER, BATCH_FILTER]


class Consumer:
    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        group: str | None = "ingest",
        session_expiry_s: int = 7 * 86400,
        receive_maximum: int = 1000,
        retire: bool = False,
    ) -> None:
        if not 1 <= receive_maximum <= 65535:
            raise ValueError(f"receive_maximum {receive_maximum} must be in 1..65535")
        self.url = MqttUrl(url)
        self.client_id = client_id
        self.group = group
        # Retire: take no new messages (unsubscribe everything), deliver what the session still
        # holds, then end the session -- how a worker slot is removed without losing its share.
        self.retire = retire
        self.unsubscribed = threading.Event()
        # The queue only ever holds what the broker may have in flight to us; headroom for a
        # broker that ignores Receive Maximum makes put() block (TCP backpressure), never drop.
        self.queue: queue.Queue[Inbound] = queue.Queue(maxsize=receive_maximum * 2)
        self._lock = threading.Lock()
        self._gen = 0
        self.connected = False
        self._ever_connected = False
        self._down_since: float | None = None
        self._last_refusal: str | None = None
        self._unreachable_logged = False
        self.client, self._kwargs = make_client(
            self.url,
            client_id,
            manual_ack=True,
            clean_start=False,
            session_expiry_s=session_expiry_s,
            client_class=FastClient if SUPPORTED else mqtt.Client,
        )
        self._kwargs["properties"].ReceiveMaximum = receive_maximum
        # Retry the (central, few-client) broker quickly: see docs/delivery.md on broker restarts.
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_message = self._on_message

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        event(log, "mqtt_connecting", broker=self.url.public(), client_id=self.client_id)
        self._down_since = time.monotonic()
        self.client.connect_async(**self._kwargs)
        self.client.loop_start()

    def stop(self, end_session: bool = False) -> None:
        """Disconnect; ``end_session`` asks the broker to drop the session now (nothing queued)."""
        with self._lock:
            self._gen += 1
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()

    # --- acks (writer thread) -------------------------------------------------------------------

    def ack(self, items: list[Inbound]) -> int:
        """PUBACK the messages of the current connection; return how many were acked."""
        with self._lock:
            gen = self._gen
            if not self.connected:
                return 0
            mids = [it.mid for it in items if it.gen == gen and it.qos == 1]
            others = [it for it in items if it.gen == gen and it.qos > 1]
            if isinstance(self.client, FastClient):
                self.client.ack_many(mids)
            else:
                for mid in mids:
                    self.client.ack(mid, 1)
            for it in others:
                self.client.ack(it.mid, it.qos)
        return len(mids) + len(others)

    # --- paho callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            if str(rc) != self._last_refusal:
                event(log, "mqtt_refused", logging.ERROR, broker=self.url.public(), reason=str(rc))
                self._last_refusal = str(rc)
            return
        self._last_refusal = None
        self._unreachable_logged = False
        with self._lock:
            self._gen += 1
            self.connected = True
        down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        name = "mqtt_recovered" if self._ever_connected else "mqtt_connected"
        event(
            log,
            name,
            broker=self.url.public(),
            session_present=bool(getattr(flags, "session_present", False)),
            down_s=round(down, 1),
        )
        self._ever_connected = True
        self._down_since = None
        # A persistent session remembers subscriptions: drop those of the other mode, so switching
        # between shared and exclusive never leaves the session subscribed twice.
        stale = [f for f in filters(None if self.group else "ingest") if f not in filters(self.group)]
        if self.retire:
            client.unsubscribe(filters(None) + filters(self.group or "ingest"))
            return
        client.unsubscribe(stale)
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters(self.group)])

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        if not self._unreachable_logged:  # once per outage; paho keeps retrying with backoff
            event(log, "mqtt_unavailable", logging.WARNING, broker=self.url.public())
            self._unreachable_logged = True

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._lock:
            self._gen += 1
            was = self.connected
            self.connected = False
        if was:
            self._down_since = time.monotonic()
            self._unreachable_logged = True  # the disconnect line already says it
            level = logging.INFO if not rc.is_failure else logging.WARNING
            event(log, "mqtt_disconnected", level, reason=str(rc))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        for f, rc in zip(filters(self.group), rcs, strict=False):
            if rc.is_failure:
                event(log, "subscribe_refused", logging.ERROR, filter=f, reason=str(rc))

    def _on_unsubscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _rcs: list[ReasonCode], _p: Any) -> None:
        if self.retire:
            self.unsubscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                topic = bytes(msg._topic).decode("utf-8", "backslashreplace")
            with self._lock:
                gen = self._gen
            self.queue.put(Inbound(gen, msg.mid, msg.qos, topic, bytes(msg.payload), time.time()))
        except Exception as exc:  # never let a callback kill paho's network thread
            event(log, "on_message_error", logging.ERROR, error=repr(exc)[:300])
