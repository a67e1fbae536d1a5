# The node's main loop: sample -> spool/publish -> sleep, forever.
import gc
import sys
import time

from agrinode import VERSION, fsutil
from agrinode.log import log
from agrinode.sampler import Sampler
from agrinode.spool import Spool

UNIX = sys.platform in ("linux", "darwin")
REMOTE_FILE = "remote.json"


def config(fn, *args):
    # The config module is big and needed only at boot and when a config message arrives:
    # import it, call fn, and let the collector take the code back.
    import agrinode
    from agrinode import config as mod

    try:
        return getattr(mod, fn)(*args)
    finally:
        sys.modules.pop("agrinode.config", None)
        try:
            delattr(agrinode, "config")
        except AttributeError:
            pass


class Node:
    def __init__(self):
        self.reload = False
        self.cfg, errors = config("load", log)
        gc.collect()
        if UNIX:
            from agrinode.sim import SimHal as Hal
        else:
            from agrinode.hal import Hal
        c = self.cfg
        self.hal = Hal(c, log)
        self.spool = Spool("sp", c["spool"]["max_samples"], c["spool"]["seg_bytes"], log)
        if not self.hal.woke_from_deepsleep():
            self.spool.next_boot()
        self.clock = self.hal.clock(self.spool, log)
        log("boot", version=VERSION, node=c["node"], boot=self.spool.boot, seq=self.spool.seq,
            spooled=self.spool.count, pending=len(self.spool.pending), config_errors=errors)
        self.sampler = Sampler(self.hal, c["sensors"], log)
        self.up = None
        if c["farm"] and c["node"] and c["broker"]:
            from agrinode.net.uplink import Uplink

            self.up = Uplink(c, self.spool, self.hal, self.clock, log, self.on_config)
        else:
            log("offline_mode", "error", reason="no valid farm/node/broker in node.json: sampling to the spool only")
        self.wdt = self.hal.wdt(c["wdt"]) if c["wdt"] else None
        self.healthy = False
        self.cycle = 0

    def on_config(self, payload):
        # Retained .../config message: validated, saved, applied from the next wake.
        if payload is None:
            log("config_rejected", "error", reason="message too large")
            return
        if payload == (fsutil.read_atomic(REMOTE_FILE) or b""):
            return
        if payload:
            probe = dict(self.cfg)
            probe["sensors"] = [dict(x) for x in self.cfg["sensors"]]  # probing must not touch the live config
            if not config("apply_remote", probe, payload, log):
                return
            fsutil.write_atomic(REMOTE_FILE, payload)
        else:
            fsutil.remove(REMOTE_FILE)  # config cleared: back to node.json
        log("config_received", bytes=len(payload))
        self.reload = True

    def feed(self):
        if self.wdt and self.healthy:
            self.wdt.feed()

    def step(self):
        # One sampling cycle. Healthy = it completed; only then is the watchdog fed.
        self.healthy = False
        if self.reload:
            self.reload = False
            keep = self.cfg
            self.sampler = None
            gc.collect()
            self.cfg, _ = config("load", log)
            for k in ("farm", "node", "broker"):  # identity and credentials change only by reflashing
                self.cfg[k] = keep[k]
            if self.up:
                self.up.cfg = self.cfg
            self.sampler = Sampler(self.hal, self.cfg["sensors"], log)
            log("config_applied", interval=self.cfg["interval"], sensors=len(self.cfg["sensors"]))
        # Stamps strictly increase: two samples never share a (series, time) key downstream.
        t = max(self.clock.now(), self.spool.t_last + 1)
        self.spool.t_last = t
        self.hal.before_sample(t, self.cycle)
        rec, bat = self.sampler.read(t)
        if self.up:
            self.up.wake(rec, bat, self.hal.rssi())
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
            if self.cycle == 1:
                fsutil.remove("crash.count")  # a full cycle ran: the crash backoff restarts
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
    except Exception as exc:
        log("crash", "error", err=repr(exc))
        sys.print_exception(exc)
        if UNIX:
            sys.exit(1)
        n = 0
        try:
            n = int(fsutil.read_atomic("crash.count") or 0)
        except ValueError:
            pass
        fsutil.write_atomic("crash.count", b"%d" % (n + 1))
        time.sleep(min(600, 5 << min(n, 7)))
        node.hal.reset() if node else __import__("machine").reset()
