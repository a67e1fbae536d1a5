# Durable spool: readings not yet acknowledged by the broker (PUBACK) live here.
#
# Files under one directory (default "sp/"):
#   <n>.seg   append-only segments of records: [len u16][crc32 u32][JSON sample bytes]
#   <seq>.msg built, unacknowledged messages: a header line "seq hs ho drop", then the payload
#   state     {"seq", "boot", "hs", "ho", "drop", "t"}: next message seq, boot counter, read
#             cursor (segment, offset) of the oldest unsent record, readings dropped and not yet
#             reported, newest sample time
#
# The ring holds at most max_n records; appending to a full ring drops the oldest and counts it.
# take() builds a message into the caller's fixed buffer and writes it to <seq>.msg first (write-then-rename), then advances the cursor and
# seq in "state" (write-then-rename); a crash in between is repaired at boot from the .msg
# header. So a message keeps its seq and bytes until acknowledged, and no record is both in the
# ring and in a message. A torn append (power loss) fails its CRC: the segment ends there and
# appends continue in a new segment. Consumed segments are deleted after the state is saved.
import json
import os
import struct
from binascii import crc32

from agrinode import fsutil

MAX_RECORD = 512


class Spool:
    def __init__(self, root="sp", max_n=2000, seg_bytes=8192, log=None):
        self.root = root
        self.max_n = max_n
        self.seg_bytes = seg_bytes
        self.log = log
        self.hdr = bytearray(6)
        self.buf = bytearray(MAX_RECORD)
        fsutil.mkdir(root)
        self.seq = self.boot = self.hs = self.ho = self.drop = self.t_last = 0
        raw = fsutil.read_atomic(self._f("state"))
        try:
            st = json.loads(raw)
            self.seq, self.boot, self.hs, self.ho, self.drop = st["seq"], st["boot"], st["hs"], st["ho"], st["drop"]
            self.t_last = st.get("t", 0)
        except (TypeError, ValueError, KeyError):
            if raw is not None and log:
                log("spool_state_corrupt", "error")
        # Finish what a power cut interrupted, and find the segments.
        self.pending = []
        segs = []
        fix = False
        for e in os.ilistdir(root):
            name = e[0]
            if name.endswith(".seg"):
                segs.append(int(name[:-4]))
            elif name.endswith(".msg"):
                try:
                    with open(self._f(name), "rb") as f:
                        seq, hs, ho, drop = [int(x) for x in f.readline().split()]
                except (OSError, ValueError):
                    fsutil.remove(self._f(name))  # torn before its rename cannot happen; be safe
                    continue
                self.pending.append(seq)
                if seq >= self.seq:  # built, but the state update did not happen: finish it
                    self.seq = seq + 1
                    if (hs, ho) > (self.hs, self.ho):
                        self.hs, self.ho = hs, ho
                    self.drop = max(0, self.drop - drop)
                    fix = True
            elif name.endswith(".tmp") and name != "state.tmp":
                fsutil.remove(self._f(name))
        self.pending.sort()
        if fix:
            self._save()
        segs.sort()
        self.low = self.hs
        self.count = 0
        torn = False
        for n in segs:
            if n < self.hs:
                fsutil.remove(self._seg(n))
                continue
            torn = False
            with open(self._seg(n), "rb") as f:
                f.seek(self.ho if n == self.hs else 0)
                while True:
                    r = self._next(f)
                    if not r:
                        torn = r is False
                        break
                    self.count += 1
                    # The newest sample time: stamps must increase even if the state (saved
                    # only when a message is taken) is older than the spool's records.
                    i = 5  # b'{"t":'
                    while i < len(r) and 0x30 <= r[i] <= 0x39:
                        i += 1
                    if i > 5:
                        self.t_last = max(self.t_last, int(bytes(r[5:i])))
            if torn and log:
                log("spool_torn_record", "warning", seg=n)
        self.tail = (segs[-1] + 1 if torn else segs[-1]) if segs else self.hs
        self.tail_size = 0 if torn else max(0, fsutil.size(self._seg(self.tail)))

    def _f(self, name):
        return self.root + "/" + name

    def _seg(self, n):
        return self.root + "/%d.seg" % n

    def _save(self):
        fsutil.write_atomic(
            self._f("state"),
            '{"seq":%d,"boot":%d,"hs":%d,"ho":%d,"drop":%d,"t":%d}'
            % (self.seq, self.boot, self.hs, self.ho, self.drop, self.t_last),
        )

    def _next(self, f):
        # Next record as a memoryview into the shared buffer; None at a clean end, False if torn.
        h = self.hdr
        n = f.readinto(h)
        if not n:
            return None
        ln, crc = struct.unpack("<HI", h)
        if n < 6 or not 0 < ln <= MAX_RECORD:
            return False
        mv = memoryview(self.buf)[:ln]
        if f.readinto(mv) != ln or crc32(mv) & 0xFFFFFFFF != crc:
            return False
        return mv

    def append(self, rec):
        # rec: bytes of one sample ({"t":..,"m":{..}}). Durable when this returns.
        if len(rec) > MAX_RECORD:
            raise ValueError("record too large")
        if self.count >= self.max_n:
            self._drop_oldest()
            self.drop += 1
            self._save()
            self._gc()
        try:
            with open(self._seg(self.tail), "ab") as f:
                f.write(struct.pack("<HI", len(rec), crc32(rec) & 0xFFFFFFFF))
                f.write(rec)
        except OSError as exc:
            # Filesystem full or failing: this reading is lost, but counted and reported.
            self.drop += 1
            self._save()
            if self.log:
                self.log("spool_write_failed", "error", err=str(exc))
            return
        self.count += 1
        self.tail_size += 6 + len(rec)
        if self.tail_size >= self.seg_bytes:
            self.tail += 1
            self.tail_size = 0

    def _drop_oldest(self):
        # Forget the oldest record (ring full, or a record that cannot be sent).
        while self.count > 0:
            try:
                with open(self._seg(self.hs), "rb") as f:
                    f.seek(self.ho)
                    r = self._next(f)
            except OSError:
                r = None
            if r:
                self.ho += 6 + len(r)
                self.count -= 1
                return
            if self.hs >= self.tail:
                self.count = 0
                return
            self.hs += 1
            self.ho = 0

    def _gc(self):
        while self.low < self.hs:
            fsutil.remove(self._seg(self.low))
            self.low += 1

    def fill(self, mv, pos, end, n):
        # Copy up to n of the oldest records into mv[pos:end], comma-separated, and move the
        # in-memory cursor past them; a record that does not fit stays for the next message.
        # Returns the new pos. No allocation: the message is built in the caller's fixed buffer.
        k = 0
        while k < n and self.count > 0:
            try:
                f = open(self._seg(self.hs), "rb")
            except OSError:
                f = None
            full = False
            if f:
                with f:
                    f.seek(self.ho)
                    while k < n:
                        r = self._next(f)
                        if not r:
                            break
                        ln = len(r)
                        sep = 1 if pos and mv[pos - 1] != 0x5B else 0  # after "[": no comma
                        if pos + sep + ln > end:
                            full = True
                            break
                        if sep:
                            mv[pos] = 0x2C
                        mv[pos + sep : pos + sep + ln] = r
                        pos += sep + ln
                        k += 1
                        self.ho += 6 + ln
                        self.count -= 1
            if full or k >= n or self.count <= 0:
                break
            if self.hs >= self.tail:  # counted records that are not there: recount
                self.count = 0
                break
            self.hs += 1
            self.ho = 0
        return pos

    def take(self, fill):
        # One message: fill(seq, drop) builds it (calling self.fill for spooled records) and
        # returns the payload (a memoryview); it is written to <seq>.msg, then the state moves.
        saved = self.hs, self.ho, self.count
        try:
            seq = self.seq
            payload = fill(seq, self.drop)
            fsutil.write_atomic(self._f("%d.msg" % seq), b"%d %d %d %d\n" % (seq, self.hs, self.ho, self.drop), payload)
        except Exception:
            self.hs, self.ho, self.count = saved
            raise
        self.seq = seq + 1
        self.drop = 0
        self._save()
        self._gc()
        self.pending.append(seq)
        return seq, payload

    def load(self, seq, mv):
        # Read message seq's payload into mv; returns its length (0 if it does not fit). With
        # mv None, returns the payload as bytes.
        with open(self._f("%d.msg" % seq), "rb") as f:
            f.readline()
            if mv is None:
                return f.read()
            n = f.readinto(mv)
            return 0 if f.read(1) else n

    def ack(self, seq):
        fsutil.remove(self._f("%d.msg" % seq))
        if seq in self.pending:
            self.pending.remove(seq)

    def next_boot(self):
        self.boot += 1
        self._save()
        return self.boot
