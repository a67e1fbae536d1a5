"""A minimal MQTT 5 QoS 1 publisher for the benchmark's load generator: pre-built packets.

paho spends ~150 µs of Python per QoS 1 publish (packet object, locks, callbacks, the PUBACK
path); on a 2-core machine the load generators then took ~0.7 cores from the system under test.
The traffic here is the same -- one MQTT 5 PUBLISH (QoS 1, packet id, no properties) per node
message, each written with its own ``send`` as before, PUBACKs awaited within the broker's Receive
Maximum -- but every packet, packet id included, is encoded before the start time, so publishing
costs a ``send`` and the PUBACK bookkeeping.

Packet ids are ``i % 65535 + 1`` for message ``i``: at most Receive Maximum (<= 65535) messages are
ever un-acknowledged, so an id is always free again when it comes round. On a lost connection the
publisher reconnects (clean start off, so the broker keeps the session) and re-sends every
un-acknowledged message with the DUP flag, as MQTT 5 requires.

Only what the load generator needs: plain TCP, username/password, no TLS, no subscriptions.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Sequence

CONNECT, CONNACK, PUBLISH, PUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 12, 13, 14

# MQTT 5 property identifiers by value type (section 2.2.2.2), enough to skip any CONNACK property.
_PROP_1 = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_PROP_2 = {0x13, 0x21, 0x22, 0x23}
_PROP_4 = {0x02, 0x11, 0x18, 0x27}
_PROP_VARINT = {0x0B}
_PROP_STR = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x09, 0x16}  # strings and binary data
_PROP_PAIR = {0x26}
RECEIVE_MAXIMUM = 0x21
TICK_S = 0.004  # pacing granularity: a message goes out at most this late


class MqttError(RuntimeError):
    """The broker refused or broke the protocol; the message says how."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(
    client_id: str, username: str | None, password: str | None, *, keepalive: int, session_expiry_s: int
) -> bytes:
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    props = bytes([0x11]) + struct.pack("!I", session_expiry_s) if session_expiry_s else b""
    body = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + varint(len(props)) + props
    body += _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _str(password)
    return bytes([CONNECT << 4]) + varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, mid: int, *, dup: bool = False) -> bytes:
    """QoS 1 PUBLISH with no properties."""
    body = _str(topic) + struct.pack("!H", mid) + b"\x00" + payload
    return bytes([(PUBLISH << 4) | 0x02 | (0x08 if dup else 0)]) + varint(len(body)) + body


def parse_properties(data: bytes) -> dict[int, int | bytes]:
    """Numeric properties by id (others skipped); raises MqttError on a malformed block."""
    out: dict[int, int | bytes] = {}
    i = 0
    try:
        while i < len(data):
            pid = data[i]
            i += 1
            if pid in _PROP_1:
                out[pid] = data[i]
                i += 1
            elif pid in _PROP_2:
                out[pid] = struct.unpack_from("!H", data, i)[0]
                i += 2
            elif pid in _PROP_4:
                out[pid] = struct.unpack_from("!I", data, i)[0]
                i += 4
            elif pid in _PROP_VARINT:
                n, used = read_varint(data, i)
                out[pid] = n
                i += used
            elif pid in _PROP_STR:
                (n,) = struct.unpack_from("!H", data, i)
                out[pid] = data[i + 2 : i + 2 + n]
                i += 2 + n
            elif pid in _PROP_PAIR:
                for _ in range(2):
                    (n,) = struct.unpack_from("!H", data, i)
                    i += 2 + n
            else:
                raise MqttError(f"unknown property 0x{pid:02x}")
    except (IndexError, struct.error) as exc:
        raise MqttError(f"malformed properties: {exc}") from None
    if i != len(data):
        raise MqttError("malformed properties: overrun")
    return out


def read_varint(data: bytes | bytearray, i: int) -> tuple[int, int]:
    """(value, bytes used) of the variable byte integer at ``i``; (-1, 0) if incomplete."""
    n = shift = used = 0
    while True:
        if i + used >= len(data):
            return -1, 0
        b = data[i + used]
        used += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, used
        shift += 7
        if used == 4:
            raise MqttError("malformed remaining length")


class Publisher:
    """One connection publishing ``packets`` (built by :func:`publish_packet`, ids ``i % 65535 + 1``)."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
        *,
        max_inflight: int = 1000,
        keepalive: int = 120,
        session_expiry_s: int = 600,
        log: Callable[[str], None] = lambda m: None,
    ) -> None:
        self.host, self.port = host, port
        self.connect_bytes = connect_packet(
            client_id, username, password, keepalive=keepalive, session_expiry_s=session_expiry_s
        )
        self.keepalive = keepalive
        self.max_inflight = max_inflight
        self.window = max_inflight
        self.log = log
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.inflight: dict[int, int] = {}  # packet id -> message index
        self.acked = 0
        self.refused = 0  # PUBACKs with a failure reason code (>= 0x80)
        self.reconnects = 0
        self.last_send = 0.0

    # --- connection -----------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> bool:
        """Connect and wait for CONNACK; return session_present."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, bytearray()
        try:
            return self._handshake(sock, timeout)
        except BaseException:
            self.sock = None
            sock.close()
            raise

    def _handshake(self, sock: socket.socket, timeout: float) -> bool:
        sock.sendall(self.connect_bytes)
        deadline = time.monotonic() + timeout
        while True:
            for ptype, _flags, body in self._packets():
                if ptype != CONNACK:
                    raise MqttError(f"expected CONNACK, got packet type {ptype}")
                if len(body) < 2:
                    raise MqttError("short CONNACK")
                if body[1] >= 0x80:
                    raise MqttError(f"connection refused, reason code 0x{body[1]:02x}")
                n, used = read_varint(body, 2)
                props = parse_properties(bytes(body[2 + used : 2 + used + n])) if n > 0 else {}
                rm = props.get(RECEIVE_MAXIMUM, 65535)
                self.window = min(self.max_inflight, int(rm) if isinstance(rm, int) else 65535)
                sock.setblocking(False)
                self.last_send = time.monotonic()
                return bool(body[0] & 1)
            if time.monotonic() > deadline:
                raise MqttError("no CONNACK")
            self._fill(blocking=True)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.setblocking(True)
                self.sock.sendall(bytes([DISCONNECT << 4, 0]))
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def _reconnect(self, packets: Sequence[bytes]) -> None:
        """Reconnect and re-send every un-acknowledged message with DUP set."""
        self.reconnects += 1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        delay = 0.5
        while True:
            try:
                self.connect()
                break
            except (OSError, MqttError) as exc:
                self.log(f"reconnect failed: {exc}")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        for idx in sorted(self.inflight.values()):
            p = packets[idx]
            self._send(bytes([p[0] | 0x08]) + p[1:])

    # --- I/O ------------------------------------------------------------------------------------

    def _fill(self, blocking: bool) -> None:
        assert self.sock is not None
        if blocking:
            r, _, _ = select.select([self.sock], [], [], 1.0)
            if not r:
                return
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionResetError("broker closed the connection")
        self.buf += data

    def _packets(self) -> list[tuple[int, int, bytearray]]:
        out = []
        buf = self.buf
        i = 0
        while i + 2 <= len(buf):
            n, used = read_varint(buf, i + 1)
            if n < 0 or i + 1 + used + n > len(buf):
                break
            start = i + 1 + used
            out.append((buf[i] >> 4, buf[i] & 0x0F, buf[start : start + n]))
            i = start + n
        del buf[:i]
        return out

    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)
        self.last_send = time.monotonic()

    def poll(self, timeout: float) -> None:
        """Read and handle whatever the broker sent (waiting at most ``timeout``)."""
        assert self.sock is not None
        if timeout > 0:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return
        self._fill(blocking=False)
        inflight = self.inflight
        for ptype, _flags, body in self._packets():
            if ptype == PUBACK:
                mid = (body[0] << 8) | body[1]
                if inflight.pop(mid, None) is None:
                    continue  # an ack for a message re-sent after a reconnect and acked twice
                if len(body) > 2 and body[2] >= 0x80:
                    self.refused += 1
                else:
                    self.acked += 1
            elif ptype == DISCONNECT:
                reason = body[0] if body else 0
                raise ConnectionResetError(f"broker sent DISCONNECT, reason code 0x{reason:02x}")
            elif ptype != PINGRESP:
                raise MqttError(f"unexpected packet type {ptype}")

    def _keepalive(self) -> None:
        if time.monotonic() - self.last_send > self.keepalive / 2:
            self._send(bytes([PINGREQ << 4, 0]))

    # --- publishing -----------------------------------------------------------------------------

    def run(
        self,
        packets: Sequence[bytes],
        due: Callable[[int], float],
        sent_at: list[float],
        ack_timeout: float = 120.0,
    ) -> float:
        """Send packet ``i`` at time ``due(i)`` (wall clock) or as soon as the window allows.

        Records each message's send time in ``sent_at``; returns the time the last one was sent,
        then waits (at most ``ack_timeout``) for the remaining PUBACKs.
        """
        n = len(packets)
        i = 0
        end = 0.0
        while True:
            try:
                while i < n:
                    now = time.time()
                    wait = due(i) - now
                    if len(self.inflight) >= self.window:
                        self.poll(0.05)
                        continue
                    if wait > 0:
                        # Wake at most every TICK_S and send everything due by then (PUBACKs wait
                        # in the socket): one wake-up per message would cost more than the message.
                        time.sleep(min(max(wait, TICK_S), 1.0))
                        self.poll(0)
                        self._keepalive()
                        continue
                    self.inflight[i % 65535 + 1] = i
                    sent_at[i] = now
                    self._send(packets[i])
                    i += 1
                    if i % 64 == 0:
                        self.poll(0)
                end = time.time()
                deadline = time.monotonic() + ack_timeout
                while self.inflight and time.monotonic() < deadline:
                    self.poll(0.2)
                    self._keepalive()
                return end
            except (OSError, ConnectionError) as exc:
                self.log(f"connection lost: {exc}; resuming the session")
                self._reconnect(packets)
