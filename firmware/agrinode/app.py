# The node's main loop: sample -> spool/publish -> sleep, forever.
import gc
import json
import sys
import time
from binascii import crc32

from agrinode import fsutil
from agrinode.log import log
from agrinode.sampler import Sampler

UNIX = sys.platform in ("linux", "darwin")
REMOTE_FILE = "remote.json"
NEW_FILE = "remote.new"  # a config message received, checked at the next wake
CRASHES = "crash.count"
# The uplink's message buffer: net.uplink.MSG (1,024) plus room for the MQTT header and the
# longest topic (ids of at most 32 characters: 7 + len("agri/v1/<32>/<32>/up") = 83).
MSG_BUF = 1107
SAFE_AFTER = 3  # crashes in a row before a cycle completed: boot in safe mode


def crashes():
    try:
        return int(fsutil.read_atomic(CRASHES) or 0)
    except ValueError:
        return 0


def unload(prefix):
    # Drop modules (and their parent's attribute) so the collector takes their code back.
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            try:
                delattr(sys.modules[parent], child)
            except AttributeError:
                pass


def setup(fn, node):
    # Boot and a config change (agrinode.start, with the config check, the largest module): its
    # code is loaded for the call, then unloaded so the collector takes it back.
    from agrinode import start

    try:
        return getattr(start, fn)(node, log)
    finally:
        unload("agrinode.start")
        unload("agrinode.config")
        gc.collect()


class Reboot(Exception):
    # A new firmware version was installed: stop cleanly and restart into it.
    pass


class Node:
    def __init__(self):
        self.reload = False
        self.rejected = None  # crc32 of the last config message refused (not retried)
        self.manifest = None
        self.seen = None  # crc32 of the last manifest handled this boot
        # The one long-lived 1 KB block, allocated first, at the bottom of the heap, and kept for
        # the node's life: it is never freed, so later config changes (which unload and reload
        # code) cannot leave the heap without a hole for it (tests/firmware/test_memory.py).
        self.msg = bytearray(MSG_BUF)
        setup("boot", self)  # version, safe mode, config, hal, spool, clock (agrinode.start)
        c = self.cfg
        self.sampler = Sampler(self.hal, c["sensors"], log)
        self.up = None
        self.connect()
        if not self.up:
            log("offline_mode", "error", reason="no valid farm/node/broker in node.json: sampling to the spool only")
        self.wdt = self.hal.wdt(c["wdt"]) if c["wdt"] else None
        self.healthy = False
        self.cycle = 0

    def connect(self):
        c = self.cfg
        if c["farm"] and c["node"] and c["broker"]:
            from agrinode.net.uplink import Uplink

            self.up = Uplink(c, self.spool, self.hal, self.clock, log, self.on_config, self.msg)
            self.up.on_ota = self.on_ota
            self.up.status = self.status()
            self.up.quiet = self.safe is not None

    def status(self):
        # Retained on .../status while connected (the Last Will says "offline").
        d = {"s": "online" if self.safe is None else "safe", "v": self.version}
        if self.ota:
            d["ota"] = self.ota
        if self.safe is not None:
            d["why"] = self.safe.decode()
        return json.dumps(d).encode()

    def say(self):
        if self.up:
            self.up.status = self.status()
            self.up.say()

    def on_ota(self, payload):
        # Retained .../ota manifest: checked and installed at the next wake (update()).
        if payload and crc32(payload) != self.seen:
            self.manifest = payload

    def update(self, raw):
        # The update itself lives in agrinode.ota (loaded only now).
        from agrinode import ota

        try:
            if ota.run(self, raw, log):
                raise Reboot()
        finally:
            unload("agrinode.ota")

    def on_config(self, payload):
        # Retained .../config message: saved as it came; checked and applied at the next wake,
        # after the network and the drivers are unloaded (the config check is the largest module).
        if payload is None:
            log("config_rejected", "error", reason="message too large")
            return
        n = len(payload)
        if n == max(0, fsutil.size(REMOTE_FILE)) and (not n or payload == fsutil.read_atomic(REMOTE_FILE)):
            return  # the config in effect (the file is read only if the sizes match)
        if crc32(payload) == self.rejected:
            return
        fsutil.write_atomic(NEW_FILE, payload)
        self.reload = True

    def apply(self):
        # A config message arrived: unload network and drivers, check it (agrinode.start), then
        # build them again. The message buffer (self.msg) stays: allocated anew after the check
        # it once found no contiguous 1 KB left on a 64 KiB heap with code in RAM.
        if self.up:
            self.up.flush()
            self.up.close(False)
        self.up = self.sampler = None
        unload("agrinode.net")
        unload("agrinode.drivers.")
        gc.collect()
        ok = setup("apply", self)
        self.sampler = Sampler(self.hal, self.cfg["sensors"], log)
        self.connect()
        if ok:
            log("config_applied", interval=self.cfg["interval"], sensors=len(self.cfg["sensors"]))
            if self.safe is not None:  # a technician's new config: try the normal mode again
                self.safe = None
                if self.up:
                    self.up.quiet = False
                self.say()

    def confirm(self):
        # This version (on trial after an update) connected and had a message acknowledged.
        from agrinode import ota

        ota.confirm()
        unload("agrinode.ota")
        self.trial = False
        self.ota = "ok"
        log("ota_confirmed", version=self.version)
        self.say()

    def feed(self):
        if self.wdt and self.healthy:
            self.wdt.feed()

    def step(self):
        # One sampling cycle. Healthy = it completed; only then is the watchdog fed.
        self.healthy = False
        if self.reload:
            self.reload = False
            self.apply()
        if self.manifest is not None and self.up and self.up.client:
            raw, self.manifest = self.manifest, None
            self.update(raw)
        # Stamps strictly increase: two samples never share a (series, time) key downstream.
        t = max(self.clock.now(), self.spool.t_last + 1)
        self.spool.t_last = t
        if self.safe is not None:
            try:
                self.hal.before_sample(t, self.cycle)
                rec, bat = self.sampler.read(t)
            except Exception as exc:  # noqa: BLE001 (safe mode must not crash)
                rec = None
                if self.cycle == 0:
                    log("safe_sample_failed", "error", err=repr(exc))
            if rec:
                self.spool.append(rec)
            if self.up:
                self.up.status_only()
        else:
            self.hal.before_sample(t, self.cycle)
            rec, bat = self.sampler.read(t)
            if self.up:
                self.up.wake(rec, bat, self.hal.rssi())
                if self.trial and self.up.acks:
                    self.confirm()
            elif rec:
                self.spool.append(rec)
        self.cycle += 1
        self.healthy = True
        self.feed()

    def sleep(self, ms):
        c = self.cfg
        if c["sleep"] == "deep" or (
            c["sleep"] == "auto" and self.hal.can_deepsleep()
            and not [s for s in c["sensors"] if s["bus"] == "pulse"]  # counting needs power
        ):
            if self.up:
                self.up.flush()
                self.up.close(False)
            self.hal.deepsleep(ms)  # the board resets; main.py runs again on wake
        if self.up:
            self.up.idle(0 if self.clock.fast else ms, self.feed)
        if self.clock.fast or not self.up:
            self.clock.sleep_ms(ms)

    def run(self, cycles=0, heap_every=0):
        # Sample every interval on a fixed schedule (no drift from the work each cycle takes).
        next_at = self.clock.ticks_ms()
        while True:
            self.step()
            if self.cycle == 1 and self.safe is None:
                fsutil.remove(CRASHES)  # a full cycle ran: the crash backoff restarts
            gc.collect()
            if heap_every and self.cycle % heap_every == 0:
                log("heap", cycle=self.cycle, free=gc.mem_free(), alloc=gc.mem_alloc())
            if self.cycle == cycles:
                return
            period = self.cfg["interval"] * 1000
            next_at = time.ticks_add(next_at, period)
            wait = time.ticks_diff(next_at, self.clock.ticks_ms())
            if wait < -period:  # far behind (a long stall): restart the schedule from now
                next_at = self.clock.ticks_ms()
                wait = 0
            self.sleep(wait)

    def stop(self):
        if self.up:
            self.up.flush()  # PUBACKs read first: closing on unread data resets the connection
            self.up.close(True)
        log("stopped", cycles=self.cycle, seq=self.spool.seq, spooled=self.spool.count, pending=len(self.spool.pending))


def main():
    # Entry point called by /main.py. A crash is logged on one line; on a board a reset follows
    # after a delay that doubles with each crash in a row, so a bug cannot become a tight crash
    # loop that drains the battery.
    node = None
    try:
        node = Node()
        o = node.hal.run_options()
        node.run(o.get("cycles", 0), o.get("heap_every", 0))
        node.stop()
    except KeyboardInterrupt:
        if node:
            node.stop()
    except Reboot:
        node.stop()
        if UNIX:
            sys.exit(3)  # the emulator's "reset": whoever runs it starts it again
        node.hal.reset()
    except Exception as exc:
        n = crashes() + 1
        log("crash", "error", err=repr(exc), count=n)
        sys.print_exception(exc)
        fsutil.write_atomic(CRASHES, b"%d" % n)
        fsutil.write_atomic("crash.txt", repr(exc)[:120])
        if UNIX:
            sys.exit(1)
        time.sleep(min(600, 5 << min(n - 1, 7)))
        node.hal.reset() if node else __import__("machine").reset()
