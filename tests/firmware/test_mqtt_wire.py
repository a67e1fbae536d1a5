"""The firmware's MQTT client on the wire: exact CONNECT bytes, one segment per message."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from agri.node.runtime import FIRMWARE_DIR, micropython_binary

pytestmark = pytest.mark.firmware


def test_connect_and_publish_bytes() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    code = f"""
from agrinode.net.mqtt import Client
c = Client("cid", "127.0.0.1", {port}, "u", "p", 60, 5)
c.connect("t/st", b"offline")
c.publish("t/up", b"x" * 3)
c.poll(2000)
print(sorted(c.acked))
c.disconnect()
"""
    out: list[str] = []
    runner = threading.Thread(
        target=lambda: out.append(
            subprocess.run(
                [str(micropython_binary()), "-c", code],
                env=dict(os.environ, MICROPYPATH=str(FIRMWARE_DIR)),
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        )
    )
    runner.start()
    conn, _ = srv.accept()
    with conn, srv:
        conn.settimeout(10)
        connect = conn.recv(1024)
        # Fixed header; "MQTT" level 4; flags: user, password, will retain, will QoS 1, will, clean
        # session; keepalive 60; then client id, will topic, will message, user, password.
        assert connect == (
            b"\x10\x24\x00\x04MQTT\x04\xee\x00\x3c\x00\x03cid\x00\x04t/st\x00\x07offline\x00\x01u\x00\x01p"
        )
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK accepted
        publish = conn.recv(1024)
        assert publish == b"\x32\x0b\x00\x04t/up\x00\x01xxx"  # QoS 1, packet id 1, in one segment
        conn.sendall(b"\x40\x02\x00\x01")  # PUBACK
        assert conn.recv(1024) == b"\xe0\x00"  # DISCONNECT
    runner.join(30)
    assert out == ["[1]\n"]


def test_wire_efficiency_counts_match_the_firmware_framing() -> None:
    from agri.node import wire

    # The exchange above: 13-byte PUBLISH (topic t/up, 3-byte payload) + 4-byte PUBACK.
    assert wire.qos1_bytes("t/up", b"xxx") == 13 + 4
    # Remaining length 128 needs a 2-byte varint.
    assert wire.qos1_bytes("t", b"x" * 123) == 1 + 2 + 128 + 4
    one, batch = wire.batched(1), wire.batched(24, with_envelope=False)
    per_value = wire.one_value(with_time=True)
    assert one.readings == 8 and per_value.messages == 8
    assert batch.per_reading < one.per_reading < per_value.per_reading
