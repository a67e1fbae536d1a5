# Uplink policy: when to connect, what to send, when a spooled reading may be forgotten.
#
# Each wake: the fresh sample goes into a new message together with the oldest spooled ones (so
# fresh data never waits behind a backlog), then up to `drain` more backlog messages follow; at
# most `inflight` messages wait for their PUBACK at once. A message is written to the spool before
# it is sent and deleted only on its PUBACK; after a reconnect the unacknowledged ones are resent
# with the same seq and bytes. Network trouble is a state, logged when it starts and when it ends,
# never an exception out of here; reconnects back off exponentially with jitter.
#
# Messages are built in one buffer allocated at start (MSG bytes: the payload plus room for the
# MQTT header in front of it), records copied from the spool straight into it: a batch that does
# not fit is smaller, never an allocation. Any other exception while sending (MemoryError, a bug,
# a record that cannot be sent) halves the batch, down to one sample a message, logged once; a
# record that fails alone is dropped and counted, so one bad record cannot stop the drain.
import gc
import random
import time
from micropython import const

from agrinode.net.mqtt import Client, MQTTError

ERRORS = (OSError, MQTTError)
MSG = const(1024)
TAIL = const(64)  # room kept for the envelope after the samples


def backoff_delay(failures, base, cap, rand):
    # Capped exponential backoff with jitter for reconnects: after the n-th consecutive failure
    # wait between half and all of min(cap, base * 2^(n-1)) seconds, so a farm's nodes that lost
    # the broker together do not reconnect in lockstep, and the wait never drops to zero.
    n = failures - 1
    d = cap if n >= 30 else min(cap, base * (1 << n))
    return d / 2 + rand() * d / 2


class Uplink:
    def __init__(self, cfg, spool, hal, clock, log, on_config, buf):
        self.cfg = cfg
        self.spool = spool
        self.hal = hal
        self.clock = clock
        self.log = log
        self.on_config = on_config
        base = "agri/v1/%s/%s/" % (cfg["farm"], cfg["node"])
        self.t_up = (base + "up").encode()
        self.off = len(self.t_up) + 7  # payload offset: MQTT fixed header, topic, packet id before it
        # buf: the node's long-lived message buffer (agrinode.app.MSG_BUF >= MSG + the largest
        # offset); a scratch area, nothing in it outlives a message.
        self.buf = buf
        self.cap = cfg["batch"]  # samples per message now (smaller after a failure)
        self.ok = 0
        self.took = False
        self.status = b"online"  # retained on .../status (the node sets its JSON status)
        self.quiet = False  # safe mode: no readings sent
        self.t_status = base + "status"
        self.t_config = base + "config"
        self.t_ota = base + "ota"
        self.on_ota = None  # callback(manifest payload)
        self.on_chunk = None  # callback(chunk index, payload) while an update is transferred
        self.acks = 0
        self.client = None
        self.next_try = None
        self.inflight = {}  # packet id -> seq
        self.down_since = None
        self.failures = 0
        self.synced = False

    def ensure(self):
        # Connected (or reconnected now, if the backoff allows)?
        if self.client:
            return True
        now = time.ticks_ms()
        if self.next_try is not None and time.ticks_diff(now, self.next_try) < 0:
            return False
        b = self.cfg["broker"]
        c = Client(
            "%s.%s" % (self.cfg["farm"], self.cfg["node"]),
            b["host"], b["port"], b["user"], b["password"], b["keepalive"], self.cfg["ack_timeout"],
        )
        try:
            if not self.hal.link_up():
                raise OSError("network link down")
            c.connect(self.t_status, b"offline")  # Last Will: retained "offline"
            c.on_message = self._message
            self.client = c
            c.publish(self.t_status, self.status, 1, True)
            c.subscribe(self.t_config)
            c.subscribe(self.t_ota)
            # Unacknowledged messages first, with their original seq and bytes.
            self.inflight = {}
            for seq in () if self.quiet else list(self.spool.pending):
                self._window()
                n = self.spool.load(seq, memoryview(self.buf)[self.off :])
                if n:
                    pid = c.publish_in(self.t_up, self.buf, self.off, self.off + n)
                else:  # built by an earlier version with a larger buffer
                    pid = c.publish(self.t_up, self.spool.load(seq, None))
                self.inflight[pid] = seq
        except ERRORS as exc:
            self._lost(exc)
            return False
        self.log("connected", host=b["host"], failures=self.failures,
                 down_s=0 if self.down_since is None else time.ticks_diff(now, self.down_since) // 1000)
        self.down_since = None
        self.failures = 0
        if not self.synced and not self.hal.sim:
            self.synced = self.clock.sync(self.cfg["ntp"] or b["host"], self.log)
        return True

    def _lost(self, exc):
        if self.client:
            self.client.close()
            self.client = None
        self.inflight = {}
        self.failures += 1
        b = self.cfg["broker"]
        d = backoff_delay(self.failures, b["backoff_base"], b["backoff_cap"], random.random)
        self.next_try = time.ticks_add(time.ticks_ms(), int(d * 1000))
        if self.down_since is None:
            self.down_since = time.ticks_ms()
            self.log("disconnected", "warning", err=str(exc) or repr(exc), retry_s=int(d))

    def close(self, clean):
        # clean: say "offline" ourselves (a DISCONNECT suppresses the Last Will).
        if self.client:
            try:
                if clean:
                    self.client.publish(self.t_status, b"offline", 0, True)
                self.client.disconnect()
            except ERRORS:
                self.client.close()
            self.client = None

    def _message(self, topic, payload):
        if topic == self.t_config:
            self.on_config(payload)
        elif topic == self.t_ota:
            if self.on_ota:
                self.on_ota(payload)
        elif self.on_chunk and payload and topic.startswith(self.t_ota + "/c/"):
            self.on_chunk(int(topic[len(self.t_ota) + 3 :]), payload)

    def say(self):
        # Publish the status now (retained), if connected.
        if self.client:
            try:
                self.client.publish(self.t_status, self.status, 1, True)
            except ERRORS as exc:
                self._lost(exc)

    def _collect(self):
        acked = self.client.acked
        while acked:
            seq = self.inflight.pop(acked.pop(), None)
            if seq is not None:
                self.spool.ack(seq)
                self.acks += 1

    def _window(self, limit=0):
        # Wait (at most ack_timeout) until fewer than `limit` messages are in flight.
        limit = limit or self.cfg["inflight"]
        t0 = time.ticks_ms()
        while len(self.inflight) >= limit:
            left = self.cfg["ack_timeout"] * 1000 - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                raise MQTTError("no PUBACK within %d s" % self.cfg["ack_timeout"])
            self.client.poll(min(left, 200))
            self._collect()

    def _send(self, fresh, bat, rssi):
        # Build the next message (fresh record + oldest backlog) in the buffer, spool it, publish.
        self._window()
        buf = self.buf
        mv = memoryview(buf)
        p0 = self.off
        sp = self.spool

        def fill(seq, drop):
            h = b'{"v":1,"node":"%s","seq":%d,"boot":%d,"s":[' % (self.cfg["node"], seq, sp.boot)
            p = p0 + len(h)
            mv[p0:p] = h
            n = self.cap
            if fresh:
                mv[p : p + len(fresh)] = fresh
                p += len(fresh)
                n -= 1
            p = sp.fill(mv, p, p0 + MSG - TAIL, n)
            t = b"]"
            if fresh:  # battery and signal belong with the fresh sample's time
                if bat is not None:
                    t += b',"bat":' + bat
                if rssi is not None:
                    t += b',"rssi":%d' % rssi
            if drop:
                t += b',"drop":%d' % drop
            t += b"}"
            mv[p : p + len(t)] = t
            self.end = p + len(t)
            return mv[p0 : self.end]

        seq, _ = sp.take(fill)
        self.took = True
        self.inflight[self.client.publish_in(self.t_up, buf, p0, self.end)] = seq
        if self.cap < self.cfg["batch"]:
            self.ok += 1
            if self.ok >= 20:  # 20 good messages: try twice the batch again
                self.ok = 0
                self.cap = min(self.cfg["batch"], self.cap * 2)
                if self.cap == self.cfg["batch"]:
                    self.log("send_recovered", batch=self.cap)

    def _failed(self, exc):
        # Not a network error: a MemoryError or a bug while building or sending a message.
        gc.collect()
        self.ok = 0
        if self.cap > 1:
            if self.cap == self.cfg["batch"]:
                self.log("send_degraded", "error", err=repr(exc), free=gc.mem_free())
            self.cap = max(1, self.cap // 2)
        elif not isinstance(exc, MemoryError) and self.spool.count:
            # One record alone fails: it is dropped and counted, the rest goes on.
            self.spool._drop_oldest()
            self.spool.drop += 1
            self.log("record_dropped", "error", err=repr(exc))

    def wake(self, rec, bat, rssi):
        # One sampling cycle's network work; rec is the fresh record (bytes) or None.
        self.took = False
        if self.ensure():
            try:
                self.client.poll(0)
                self._collect()
                if rec:
                    self._send(rec, bat, rssi)
                for _ in range(self.cfg["drain"]):
                    if not self.spool.count:
                        break
                    self._send(None, None, None)
            except ERRORS as exc:
                self._lost(exc)
            except Exception as exc:
                self._failed(exc)
        if rec and not self.took:
            self.spool.append(rec)

    def status_only(self):
        # Safe mode: stay connected (status, config messages), send no readings.
        if self.ensure():
            try:
                self.client.poll(0)
            except ERRORS as exc:
                self._lost(exc)

    def flush(self):
        # Before a deep sleep: wait (bounded) for every PUBACK.
        if self.client:
            try:
                self._window(1)
            except ERRORS as exc:
                self._lost(exc)

    def idle(self, ms, feed):
        # Wait ms while keeping the session alive: take config messages, reconnect when the
        # backoff allows, drain the backlog a batch at a time within the in-flight window.
        t0 = time.ticks_ms()
        while True:
            feed()
            left = ms - time.ticks_diff(time.ticks_ms(), t0)
            if not self.client and not self.ensure():
                if left <= 0:
                    return
                time.sleep_ms(max(1, min(left, time.ticks_diff(self.next_try, time.ticks_ms()), 500)))
                continue
            try:
                if self.spool.count and len(self.inflight) < self.cfg["inflight"] and not self.quiet:
                    self._send(None, None, None)
                    self.client.poll(0)
                elif left <= 0:
                    self.client.poll(0)
                else:
                    self.client.poll(min(left, 500))
                self._collect()
            except ERRORS as exc:
                self._lost(exc)
            except Exception as exc:
                self._failed(exc)
            if left <= 0:
                return
