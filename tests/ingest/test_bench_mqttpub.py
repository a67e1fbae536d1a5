"""The benchmark's pre-built-packet MQTT 5 publisher: wire encoding, and a real broker delivers
every message it counts as acknowledged, in order."""

import struct
import time

import pytest

from agri.bench.ingest.mqttpub import (
    MqttError,
    Publisher,
    parse_properties,
    publish_packet,
    read_varint,
    varint,
)
from kernel.settings import MqttUrl
from tests.fixtures.mqtt import BrokerHandle, Collector


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455])
def test_variable_byte_integer_round_trips(n: int) -> None:
    b = varint(n)
    assert len(b) == 1 + (n > 127) + (n > 16_383) + (n > 2_097_151)
    assert read_varint(b"\x00" + b, 1) == (n, len(b))
    assert read_varint(b[:-1], 0) == (-1, 0)  # incomplete


def test_publish_packet_layout() -> None:
    p = publish_packet("a/b", b"xyz", 513)
    assert p == bytes([0x32, 2 + 3 + 2 + 1 + 3]) + b"\x00\x03a/b" + struct.pack("!H", 513) + b"\x00xyz"
    assert publish_packet("a/b", b"xyz", 513, dup=True)[0] == 0x3A


def test_properties_are_parsed_or_refused() -> None:
    block = bytes([0x21]) + struct.pack("!H", 20) + bytes([0x1F]) + struct.pack("!H", 2) + b"ok"
    assert parse_properties(block) == {0x21: 20, 0x1F: b"ok"}
    with pytest.raises(MqttError):
        parse_properties(bytes([0x21, 0]))  # truncated
    with pytest.raises(MqttError):
        parse_properties(bytes([0x7F]))  # unknown id


def _publisher(url: str, client_id: str, **kw: int) -> Publisher:
    u = MqttUrl(url)
    return Publisher(u.host, u.port, client_id, u.username, u.password, **kw)


def test_every_acknowledged_message_is_delivered_in_order(mqtt_broker: BrokerHandle) -> None:
    url = mqtt_broker.account("admin")
    topic = f"agri/v1/bench-pub/n-{time.monotonic_ns() % 10**6}/up"
    sink = Collector(url, [topic])
    try:
        n = 3000
        packets = [publish_packet(topic, f"m{i}".encode(), i % 65535 + 1) for i in range(n)]
        pub = _publisher(url, "bench-pub-test", max_inflight=50)
        pub.connect()
        assert pub.window == 50
        sent_at = [0.0] * n
        start = time.time()
        pub.run(packets, lambda i: start + i * 1e-4, sent_at)
        pub.close()
        assert pub.acked == n and pub.refused == 0 and not pub.inflight
        assert all(t >= start for t in sent_at)
        got = sink.wait(n)
        assert [p for _, p in got] == [f"m{i}".encode() for i in range(n)]
    finally:
        sink.close()


def test_a_refused_connection_is_an_error(mqtt_broker: BrokerHandle) -> None:
    u = MqttUrl(mqtt_broker.account("admin"))
    pub = Publisher(u.host, u.port, "bench-pub-bad", u.username, "wrong-password")
    with pytest.raises(MqttError, match="refused"):
        pub.connect()
