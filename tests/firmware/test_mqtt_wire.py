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
