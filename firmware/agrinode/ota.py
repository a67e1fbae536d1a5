# Firmware updates over the air. Imported only while an update is checked or installed, and at
# the first acknowledged publish of a version on trial.
#
# The platform publishes, retained, on agri/v1/{farm}/{node}/ota a manifest:
#   <64 hex digits: HMAC-SHA256(node's ota_key, MANIFEST)>\n<MANIFEST: JSON>
#   MANIFEST = {"node": "farm/node", "v": "0.2.0", "c": 512, "max": 3,
#               "f": [["agrinode/app.mpy", size, "<sha256 hex>"], ...]}
# and each file cut into chunks of c bytes on .../ota/c/<k> (retained; k counts the chunks of all
# files in manifest order), so a node that sleeps through the publication gets it on its next
# wake. Only this node and the platform may read or write .../ota (broker ACL).
#
# The node checks the signature (and that the manifest names it) before it writes anything,
# writes the files into ota/<v>.tmp/, checks every file's size and sha256, renames the directory
# to ota/<v> and only then switches: ota.json {"active": v, "prev": running, "ok": false,
# "tries": 0, "max": n} written atomically. main.py counts the boots of a version on trial and
# goes back to "prev" after `max` boots that did not confirm; the node confirms ("ok": true) when
# the new version has connected and had a message acknowledged. A power cut at any point leaves
# either the old version with a stray directory or the new one on trial. The spool is not touched.
import hashlib
import json
import os
import time
from binascii import crc32

from agrinode import fsutil

STATE = "ota.json"
DIR = "ota"
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def state():
    try:
        b = json.loads(fsutil.read_atomic(STATE))
        return b if isinstance(b, dict) else {}
    except (TypeError, ValueError):
        return {}


def hmac(key, msg):
    k = bytearray(64)
    k[: len(key)] = key
    h = hashlib.sha256(bytes(x ^ 0x36 for x in k))
    h.update(msg)
    inner = h.digest()
    h = hashlib.sha256(bytes(x ^ 0x5C for x in k))
    h.update(inner)
    return h.digest()


def _name(s, path=False):
    if not isinstance(s, str) or not 0 < len(s) <= 64 or ".." in s:
        return False
    for c in s:
        if c not in NAME_CHARS and not (path and c == "/"):
            return False
    return not path or (s.startswith("agrinode/") and s.endswith(".mpy"))


def check(raw, key, who, running, bad):
    # Signed manifest -> dict; ValueError(reason) if it must be refused.
    if not key:
        raise ValueError("no ota_key in node.json")
    nl = raw.find(b"\n")
    if nl != 64:
        raise ValueError("not a signed manifest")
    try:
        sig = bytes(int(raw[i : i + 2], 16) for i in range(0, 64, 2))
    except ValueError:
        raise ValueError("not a signed manifest")
    body = memoryview(raw)[65:]
    good = hmac(bytes(int(key[i : i + 2], 16) for i in range(0, 64, 2)), body)
    diff = 0
    for i in range(32):  # compare every byte: no early exit to time
        diff |= good[i] ^ sig[i]
    if diff:
        raise ValueError("wrong signature")
    try:
        m = json.loads(bytes(body))
        files = m["f"]
        ok = m["node"] == who and _name(m["v"]) and 64 <= m["c"] <= 4096 and 1 <= m["max"] <= 20
        ok = ok and isinstance(files, list) and 0 < len(files) <= 64
        for f in files:
            ok = ok and _name(f[0], True) and 0 < f[1] <= 262144 and len(f[2]) == 64
    except (ValueError, KeyError, TypeError, IndexError):
        ok = False
    if not ok:
        raise ValueError("bad manifest")
    if m["v"] == running:
        raise ValueError("already running " + running)
    if m["v"] == bad:
        raise ValueError("rolled back from %s before" % bad)
    return m


def _mkdirs(path):
    p = ""
    for part in path.split("/")[:-1]:
        p = p + "/" + part if p else part
        fsutil.mkdir(p)


def _rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
        else:
            fsutil.remove(p)
    try:
        os.rmdir(path)
    except OSError:
        pass


class Update:
    def __init__(self, m):
        self.m = m
        self.tmp = DIR + "/" + m["v"] + ".tmp"
        fsutil.mkdir(DIR)
        _rmtree(self.tmp)  # a transfer a power cut interrupted starts again
        c = m["c"]
        self.firsts = []  # chunk index of each file's first chunk
        n = 0
        for f in m["f"]:
            self.firsts.append(n)
            n += (f[1] + c - 1) // c
            p = self.tmp + "/" + f[0]
            _mkdirs(p)
            open(p, "wb").close()
        self.got = bytearray(n)
        self.left = n
        self.bytes = 0

    def chunk(self, k, data):
        # Chunk k of the whole transfer (from .../ota/c/<k>); a repeat is ignored.
        if not 0 <= k < len(self.got) or self.got[k]:
            return
        i = len(self.firsts) - 1
        while self.firsts[i] > k:
            i -= 1
        f = self.m["f"][i]
        off = (k - self.firsts[i]) * self.m["c"]
        if len(data) != min(self.m["c"], f[1] - off):
            raise ValueError("chunk %d has %d bytes" % (k, len(data)))
        p = self.tmp + "/" + f[0]
        with open(p, "r+b") as fh:
            fh.seek(off)
            fh.write(data)
        if fsutil.hook:
            fsutil.hook(p, 1)
        self.got[k] = 1
        self.left -= 1
        self.bytes += len(data)

    def install(self):
        # Every file checked, then the directory renamed, then the switch. Returns None or why not.
        buf = bytearray(512)
        for f in self.m["f"]:
            h = hashlib.sha256()
            n = 0
            with open(self.tmp + "/" + f[0], "rb") as fh:
                while True:
                    k = fh.readinto(buf)
                    if not k:
                        break
                    h.update(memoryview(buf)[:k])
                    n += k
            if n != f[1] or "".join("%02x" % x for x in h.digest()) != f[2]:
                return "sha256 mismatch in " + f[0]
        d = DIR + "/" + self.m["v"]
        _rmtree(d)
        if fsutil.hook:
            fsutil.hook(d, 0)
        os.rename(self.tmp, d)
        if fsutil.hook:
            fsutil.hook(d, 3)
        b = state()
        fsutil.write_atomic(
            STATE,
            json.dumps({"active": self.m["v"], "prev": b.get("active") or "",
                        "ok": False, "tries": 0, "max": self.m["max"], "bad": b.get("bad", "")}),
        )
        return None


def confirm():
    # The version on trial connected and published: keep it; drop versions no longer needed.
    b = state()
    b["ok"] = True
    b["state"] = "ok"
    fsutil.write_atomic(STATE, json.dumps(b))
    try:
        for e in list(os.ilistdir(DIR)):
            if e[0] not in (b.get("active"), b.get("prev")):
                _rmtree(DIR + "/" + e[0])
    except OSError:
        pass


def run(node, raw, log):
    # Check the manifest, take the chunks, install. True: installed (the caller reboots).
    node.seen = crc32(raw)
    c = node.cfg
    try:
        m = check(raw, c["ota_key"], "%s/%s" % (c["farm"], c["node"]), node.version, node.bad)
    except ValueError as exc:
        why = str(exc)
        if not why.startswith("already running") and not why.startswith("rolled back"):
            log("ota_refused", "error", reason=why)
            node.ota = "refused: " + why
            node.say()
        return False
    v = m["v"]
    log("ota_start", version=v, files=len(m["f"]))
    node.ota = "installing " + v
    node.say()
    up = node.up
    t0 = last = time.ticks_ms()
    why = None
    u = None
    try:
        u = Update(m)
        m = None
        up.on_chunk = u.chunk
        up.client.subscribe(up.t_ota + "/c/#")  # the retained chunks follow
        while u.left:
            node.feed()
            n = u.left
            up.client.poll(200)
            if u.left != n:
                last = time.ticks_ms()
            elif time.ticks_diff(time.ticks_ms(), last) > 1000 * max(10, c["ack_timeout"] * 3):
                why = "transfer stalled with %d chunks missing" % u.left
                break
    except Exception as exc:  # noqa: BLE001 (network, filesystem or a bad chunk: stay on this version)
        why = repr(exc)
    up.on_chunk = None
    if why is None:
        why = u.install()
    if why is not None:
        log("ota_failed", "error", version=v, reason=why)
        node.ota = "failed %s: %s" % (v, why)
        up.close(False)  # drops the chunk subscription; the next wake reconnects
        node.say()
        return False
    log("ota_installed", version=v, bytes=u.bytes, ms=time.ticks_diff(time.ticks_ms(), t0))
    node.ota = "installed " + v
    node.say()
    return True
