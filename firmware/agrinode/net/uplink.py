# Uplink policy: when to connect, what to send, when a spooled reading may be forgotten.
#
# Each wake: the fresh sample goes into a new message together with the oldest spooled ones (so
# fresh data never waits behind a backlog), then up to `drain` more backlog messages follow; at
# most `inflight` messages wait for their PUBACK at once. A message is written to the spool before
# it is sent and deleted only on its PUBACK; after a reconnect the unacknowledged ones are resent
# with the same seq and bytes. Network trouble is a state, logged when it starts and when it ends,
# never an exception out of here; reconnects back off exponentially with jitter.
import random
import time

from agrinode.net.backoff import delay as backoff_delay
from agrinode.net.mqtt import Client, MQTTError

ERRORS = (OSError, MQTTError)


class Uplink:
    def __init__(self, cfg, spool, hal, clock, log, on_config):
        self.cfg = cfg
        self.spool = spool
        self.hal = hal
        self.clock = clock
        self.log = log
        self.on_config = on_config
        base = "agri/v1/%s/%s/" % (cfg["farm"], cfg["node"])
        self.t_up = base + "up"
        self.t_status = base + "status"
        self.t_config = base + "config"
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
            c.publish(self.t_status, b"online", 1, True)
            c.subscribe(self.t_config)
            # Unacknowledged messages first, with their original seq and bytes.
            self.inflight = {}
            for seq in list(self.spool.pending):
                self._window()
                self.inflight[c.publish(self.t_up, self.spool.load(seq))] = seq
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

    def _collect(self):
        acked = self.client.acked
        while acked:
            seq = self.inflight.pop(acked.pop(), None)
            if seq is not None:
                self.spool.ack(seq)

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
        # Build the next message (fresh records + oldest backlog), spool it, publish it.
        node = self.cfg["node"]
        boot = self.spool.boot

        def build(seq, recs, drop):
            tail = b"]"
            if fresh:  # battery and signal belong with the fresh sample's time
                if bat is not None:
                    tail += b',"bat":' + bat
                if rssi is not None:
                    tail += b',"rssi":%d' % rssi
            if drop:
                tail += b',"drop":%d' % drop
            return b'{"v":1,"node":"%s","seq":%d,"boot":%d,"s":[%s%s}' % (node, seq, boot, b",".join(recs), tail)

        self._window()
        seq, payload = self.spool.take(fresh, self.cfg["batch"] - len(fresh), build)
        self.inflight[self.client.publish(self.t_up, payload)] = seq

    def wake(self, rec, bat, rssi):
        # One sampling cycle's network work; rec is the fresh record (bytes) or None.
        sent = False
        if self.ensure():
            try:
                self.client.poll(0)
                self._collect()
                if rec:
                    self._send([rec], bat, rssi)
                sent = True
                for _ in range(self.cfg["drain"]):
                    if not self.spool.count:
                        break
                    self._send([], None, None)
            except ERRORS as exc:
                self._lost(exc)
        if rec and not sent:
            self.spool.append(rec)

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
                if self.spool.count and len(self.inflight) < self.cfg["inflight"]:
                    self._send([], None, None)
                    self.client.poll(0)
                elif left <= 0:
                    self.client.poll(0)
                else:
                    self.client.poll(min(left, 500))
                self._collect()
            except ERRORS as exc:
                self._lost(exc)
            if left <= 0:
                return
