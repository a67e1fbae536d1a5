# Minimal MQTT 3.1.1 client for the node: CONNECT with Last Will and credentials, QoS 0/1
# PUBLISH that returns the packet id at once (PUBACKs are collected by poll(), so several
# messages can be in flight), SUBSCRIBE, keepalive PINGREQ, DISCONNECT. Every wait has a timeout.
# Errors are OSError (network) or MQTTError (protocol, refused); the caller owns the policy.
import select
import socket
import struct
import time

MAX_INCOMING = 8192


class MQTTError(Exception):
    pass


def _pkt(kind, body, extra=0):
    # Fixed header (type byte + variable-length "remaining length" counting `extra` bytes sent
    # after this packet) followed by the body.
    n = len(body) + extra
    out = bytearray([kind])
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return out + body


def _str(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(s)) + s


class Client:
    def __init__(self, client_id, host, port, user, password, keepalive, timeout):
        self.args = (client_id, host, port, user, password)
        self.keepalive = keepalive
        self.timeout = timeout
        self.sock = None
        self.pid = 0
        self.acked = set()  # packet ids whose PUBACK arrived; the caller removes them
        self.on_message = None  # callback(topic: str, payload: bytes or None if too large)
        self.last_tx = 0
        self.ping_at = 0

    def _write(self, data):
        mv = memoryview(data)
        while mv:
            n = self.sock.write(mv)
            if not n:
                raise OSError(104)
            mv = mv[n:]
        self.last_tx = time.ticks_ms()

    def _read(self, n):
        buf = bytearray(n)
        got = 0
        while got < n:
            k = self.sock.readinto(memoryview(buf)[got:])
            if not k:
                raise OSError(104)  # peer closed
            got += k
        return buf

    def connect(self, will_topic, will_msg):
        cid, host, port, user, password = self.args
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
        self.sock = socket.socket()
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect(addr)
            # Clean session; Last Will QoS 1, retained.
            flags = 0x02 | 0x04 | 0x08 | 0x20
            body = b"\x00\x04MQTT\x04" + bytes([0]) + struct.pack("!H", self.keepalive) + _str(cid)
            body += _str(will_topic) + _str(will_msg)
            if user is not None:
                flags |= 0x80
                body += _str(user)
                if password is not None:
                    flags |= 0x40
                    body += _str(password)
            body = bytearray(body)
            body[7] = flags
            self._write(_pkt(0x10, body))
            r = self._read(4)
            if r[0] != 0x20:
                raise MQTTError("expected CONNACK")
            if r[3]:
                raise MQTTError("connection refused, code %d" % r[3] + (" (not authorized)" if r[3] in (4, 5) else ""))
        except Exception:
            self.close()
            raise
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        self.ping_at = 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def disconnect(self):
        try:
            self._write(b"\xe0\x00")
        finally:
            self.close()

    def publish(self, topic, msg, qos=1, retain=False):
        self.pid = self.pid % 65535 + 1 if qos else 0
        hdr = _str(topic) + (struct.pack("!H", self.pid) if qos else b"")
        hdr = _pkt(0x30 | qos << 1 | retain, hdr, len(msg))
        if len(msg) <= 4096:
            # One write, one TCP segment: a separate small header would be held back by Nagle's
            # algorithm until the broker's delayed ACK (~40 ms a message), and costs a packet header.
            self._write(hdr + msg)
        else:  # a long backlog message is not copied again
            self._write(hdr)
            self._write(msg)
        return self.pid

    def publish_in(self, topic, buf, start, end):
        # QoS 1 PUBLISH of buf[start:end] with no copy: the fixed header, topic (bytes) and packet
        # id go into buf just before start (the caller leaves 7 bytes + the topic). One write.
        self.pid = self.pid % 65535 + 1
        tl = len(topic)
        t = start - 2 - tl
        buf[t : start - 2] = topic
        buf[start - 2] = self.pid >> 8
        buf[start - 1] = self.pid & 0xFF
        buf[t - 2] = tl >> 8
        buf[t - 1] = tl & 0xFF
        rl = end - start + tl + 4
        h = t - 2
        if rl > 0x7F:  # remaining length as a varint: 2 bytes up to 16383
            buf[h - 2] = (rl & 0x7F) | 0x80
            buf[h - 1] = rl >> 7
            h -= 3
        else:
            buf[h - 1] = rl
            h -= 2
        buf[h] = 0x32
        self._write(memoryview(buf)[h:end])
        return self.pid

    def subscribe(self, topic):
        # QoS 1. The SUBACK is consumed by poll(); a refused subscription only means no config.
        self.pid = self.pid % 65535 + 1
        self._write(_pkt(0x82, struct.pack("!H", self.pid) + _str(topic) + b"\x01"))

    def poll(self, timeout_ms=0):
        # Wait up to timeout_ms for a packet, then handle every packet already waiting.
        # Keepalive: PINGREQ at half the interval; no PINGRESP within it means a dead link.
        now = time.ticks_ms()
        if self.ping_at and time.ticks_diff(now, self.ping_at) > self.keepalive * 1000:
            raise MQTTError("no PINGRESP: connection dead")
        if time.ticks_diff(now, self.last_tx) >= self.keepalive * 500:
            self._write(b"\xc0\x00")
            self.ping_at = self.ping_at or now
        while True:
            ev = self.poller.poll(timeout_ms)
            if not ev:
                return
            if ev[0][1] & (select.POLLHUP | select.POLLERR):
                raise OSError(104)
            self._packet()
            timeout_ms = 0

    def _packet(self):
        h = self._read(1)[0]
        n = 0
        shift = 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 21:
                raise MQTTError("bad remaining length")
        kind = h & 0xF0
        if kind == 0x30:  # PUBLISH
            tl = struct.unpack("!H", self._read(2))[0]
            topic = bytes(self._read(tl)).decode()
            n -= 2 + tl
            if h & 0x06:
                self._write(b"\x40\x02" + self._read(2))  # PUBACK
                n -= 2
            payload = None
            if n > MAX_INCOMING:
                while n:  # too large for this node's memory: skip it
                    k = min(n, 256)
                    self._read(k)
                    n -= k
            else:
                payload = bytes(self._read(n))
            if self.on_message:
                self.on_message(topic, payload)
            return
        body = self._read(n) if n else b""
        if kind == 0x40:  # PUBACK
            self.acked.add(body[0] << 8 | body[1])
        elif kind == 0xD0:  # PINGRESP
            self.ping_at = 0
