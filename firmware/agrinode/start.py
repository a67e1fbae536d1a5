# Boot and reconfiguration of the node (agrinode.app.Node). Run once at boot and when a config
# message is applied, then unloaded with the config check (agrinode.config) so that their code
# does not stay in the heap of a board that runs its code from /lib.
import json
import sys

from agrinode import VERSION, fsutil
from agrinode import config as cf
from agrinode.app import NEW_FILE, REMOTE_FILE, SAFE_AFTER, UNIX, crashes
from agrinode.spool import Spool


def boot(node, log):
    # Safe mode: it crashed SAFE_AFTER times in a row before completing a cycle. It then only
    # samples into the spool (a failing sensor or driver cannot take it down) and reports on
    # its status topic why; no backlog is sent. A config message or a restart by a technician
    # (or an update) takes it out: see Node.run().
    n = crashes()
    node.safe = fsutil.read_atomic("crash.txt") if n >= SAFE_AFTER else None
    # Firmware version and update state (agrinode/ota.py; main.py chose the version).
    try:
        b = json.loads(fsutil.read_atomic("ota.json") or "{}")
    except ValueError:
        b = {}
    node.version = b.get("active") or VERSION
    node.trial = bool(b.get("active")) and not b.get("ok")
    node.ota = "trial %d/%d" % (b.get("tries", 0), b.get("max", 3)) if node.trial else b.get("state", "")
    node.bad = b.get("bad", "")
    b = None
    node.cfg, errors = cf.load(log)
    if UNIX:
        from agrisim import SimHal as Hal

        if "--hal" in sys.argv:  # emulating a board's heap: it holds agrinode.hal instead
            import agrinode.hal  # noqa: F401
    else:
        from agrinode.hal import Hal
    c = node.cfg
    node.hal = Hal(c, log)
    sp = node.spool = Spool("sp", c["spool"]["max_samples"], c["spool"]["seg_bytes"], log)
    if not node.hal.woke_from_deepsleep():
        sp.next_boot()
    node.clock = node.hal.clock(sp, log)
    log("boot", version=node.version, ota=node.ota, node=c["node"], boot=sp.boot, seq=sp.seq,
        spooled=sp.count, pending=len(sp.pending), config_errors=errors)
    if node.safe is not None:
        log("safe_mode", "error", crashes=n, last=node.safe.decode())


def apply(node, log):
    # A config message saved as NEW_FILE (empty: cleared): check it against a copy of the live
    # config; if it is valid keep it as REMOTE_FILE and load the config again. -> valid?
    keep = node.cfg
    payload = fsutil.read_atomic(NEW_FILE) or b""
    ok = True
    if payload:
        probe = dict(keep)
        probe["sensors"] = [dict(x) for x in keep["sensors"]]  # probing must not touch the live config
        ok = cf.apply_remote(probe, payload, log)
        if ok:
            fsutil.write_atomic(REMOTE_FILE, payload)
        else:
            from binascii import crc32

            node.rejected = crc32(payload)
    else:
        fsutil.remove(REMOTE_FILE)  # config cleared: back to node.json
    fsutil.remove(NEW_FILE)
    probe = payload = None
    if ok:
        log("config_received", bytes=max(0, fsutil.size(REMOTE_FILE)))
        # Identity and keys change only by reflashing; the rest of the old config is dropped
        # before the new one is built (the peak of a config change).
        keep = [(k, keep[k]) for k in ("farm", "node", "broker", "ota_key")]
        node.cfg = node.hal.cfg = None
        c, _ = cf.load(log)
        for k, v in keep:
            c[k] = v
        node.cfg = node.hal.cfg = c
    return ok

