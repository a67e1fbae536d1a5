"""The consumer's paho client (buffered reads, batched PUBACKs) against the real broker: every
message is handed over once and in order, including the last ones of a burst that left the
socket together, and PUBACKs written together really settle the session."""

import queue
import secrets
import threading
import time
from typing import Any

import pytest

from agri.bench.ingest.mqttpub import Publisher, publish_packet
from ingest.consumer import SUPPORTED, Consumer, FastClient, Inbound
from kernel.settings import MqttUrl
from tests.fixtures.mqtt import BrokerHandle

pytestmark = pytest.mark.integration


def _publish(url: str, topic: str, n: int) -> None:
    u = MqttUrl(url)
    pub = Publisher(u.host, u.port, f"pub-{secrets.token_hex(3)}", u.username, u.password)
    pub.connect()
    packets = [publish_packet(topic, f"m{i}".encode(), i % 65535 + 1) for i in range(n)]
    pub.run(packets, lambda i: 0.0, [0.0] * n)  # all due at once: bursts of many per TCP segment
    pub.close()
    assert pub.acked == n


def _start(c: Consumer) -> None:
    subscribed = threading.Event()
    orig = c.client.on_subscribe

    def on_subscribe(*a: Any) -> None:
        orig(*a)
        subscribed.set()

    c.client.on_subscribe = on_subscribe
    c.start()
    assert subscribed.wait(10), "consumer did not subscribe"


def _wait_broker_saw_disconnect(broker: BrokerHandle, client_id: str) -> None:
    line = f"Client {client_id} disconnected"
    deadline = time.monotonic() + 10
    while line not in broker.broker.logfile.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"broker never logged {line!r}"
        time.sleep(0.02)


def _take(c: Consumer, n: int, ack_every: int) -> list[Inbound]:
    got: list[Inbound] = []
    held: list[Inbound] = []
    while len(got) < n:
        try:
            it = c.queue.get(timeout=15)
        except queue.Empty:
            raise AssertionError(f"stalled after {len(got)} of {n} messages") from None
        got.append(it)
        held.append(it)
        if len(held) >= ack_every:
            assert c.ack(held) == len(held)
            held = []
    assert c.ack(held) == len(held)
    return got


def test_bursts_are_delivered_once_in_order_and_batched_acks_settle_the_session(
    mqtt_broker: BrokerHandle,
) -> None:
    assert SUPPORTED  # the paho in use has what FastClient relies on
    admin = mqtt_broker.account("admin")
    ingest = mqtt_broker.account("ingest")
    tag = secrets.token_hex(3)
    topic = f"agri/v1/farm-{tag}/n-1/up"
    cid = f"consumer-{tag}"
    c = Consumer(ingest, cid, group=f"g{tag}", receive_maximum=20, session_expiry_s=60)
    assert isinstance(c.client, FastClient)
    _start(c)
    try:
        _publish(admin, topic, 600)
        got = _take(c, 600, ack_every=7)
        assert [it.payload for it in got] == [f"m{i}".encode() for i in range(600)]
        _publish(admin, topic, 3)  # a small last burst must not wait in the buffer
        assert [it.payload for it in _take(c, 3, ack_every=1)] == [b"m0", b"m1", b"m2"]
    finally:
        c.stop()
    # The PUBACKs travel ahead of the DISCONNECT on the same connection; wait until the broker has
    # read that far. (A client reconnecting sooner takes over a connection the broker has not read
    # to the end, and Mosquitto drops its unread PUBACKs: a redelivery the unique key absorbs.)
    _wait_broker_saw_disconnect(mqtt_broker, cid)
    # Everything was acked: the resumed session has nothing to redeliver.
    c2 = Consumer(ingest, cid, group=f"g{tag}", receive_maximum=20, session_expiry_s=60)
    _start(c2)
    try:
        with pytest.raises(queue.Empty):
            c2.queue.get(timeout=2)
    finally:
        c2.stop(end_session=True)
