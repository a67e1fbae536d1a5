# Spool tests on the unix port (cwd is a fresh temp dir per test).
import json

from agrinode import fsutil
from agrinode.spool import Spool


def rec(i):
    return b'{"t":%d,"m":{"air_t":%d.5}}' % (1764201600 + i, i)


BUF = bytearray(4096)


def take(sp, fresh, n, size=4096):
    # A message as the uplink builds it: in a fixed buffer, the fresh record first.
    mv = memoryview(BUF)

    def fill(seq, drop):
        h = b'{"seq":%d,"drop":%d,"s":[' % (seq, drop)
        p = len(h)
        mv[:p] = h
        for r in fresh:
            mv[p : p + len(r)] = r
            p += len(r)
        p = sp.fill(mv, p, size - 2, n)
        mv[p : p + 2] = b"]}"
        return mv[: p + 2]

    seq, payload = sp.take(fill)
    return seq, bytes(payload)


def ts(payload):
    return [s["t"] - 1764201600 for s in json.loads(payload)["s"]]


def test_fifo_batches_and_reboot():
    sp = Spool("sp", max_n=100, seg_bytes=200)
    for i in range(10):
        sp.append(rec(i))
    assert sp.count == 10
    seq, p = take(sp, [], 4)
    assert seq == 0 and ts(p) == [0, 1, 2, 3]
    sp.ack(seq)
    sp = Spool("sp", max_n=100, seg_bytes=200)  # reboot
    assert sp.count == 6 and sp.seq == 1 and sp.pending == []
    seq, p = take(sp, [rec(99)], 3)  # a fresh reading rides first
    assert seq == 1 and ts(p) == [99, 4, 5, 6]
    sp.ack(seq)
    seq, p = take(sp, [], 10)
    assert ts(p) == [7, 8, 9] and sp.count == 0
    sp.ack(seq)
    # Consumed segments are deleted; at most the segment being appended to remains.
    segs = [n for n in fsutil_list("sp") if n.endswith(".seg")]
    assert len(segs) <= 1, segs


def fsutil_list(d):
    import os

    return [e[0] for e in os.ilistdir(d)]


def test_full_ring_drops_oldest_and_reports():
    sp = Spool("sp", max_n=5, seg_bytes=120)
    for i in range(8):
        sp.append(rec(i))
    assert sp.count == 5 and sp.drop == 3
    sp = Spool("sp", max_n=5, seg_bytes=120)  # the drop count survives a reboot
    assert sp.drop == 3 and sp.count == 5
    seq, p = take(sp, [], 2)
    assert json.loads(p)["drop"] == 3 and ts(p) == [3, 4]
    assert sp.drop == 0
    seq, p = take(sp, [], 10)
    assert json.loads(p)["drop"] == 0 and ts(p) == [5, 6, 7]


def test_unacked_message_survives_reboot_with_same_bytes():
    sp = Spool("sp", max_n=50)
    for i in range(5):
        sp.append(rec(i))
    seq, p = take(sp, [], 3)
    sp = Spool("sp", max_n=50)
    assert sp.pending == [seq]
    assert sp.load(seq, None) == p
    assert sp.load(seq, memoryview(bytearray(len(p)))) == len(p)
    assert sp.load(seq, memoryview(bytearray(len(p) - 1))) == 0  # does not fit
    assert sp.count == 2
    seq2, p2 = take(sp, [], 5)
    assert seq2 == seq + 1 and ts(p2) == [3, 4]
    sp.ack(seq)
    sp.ack(seq2)
    assert Spool("sp").pending == []


def test_crash_between_message_and_state_is_repaired():
    sp = Spool("sp", max_n=50)
    sp.next_boot()
    for i in range(6):
        sp.append(rec(i))
    old_state = fsutil.read_atomic("sp/state")
    seq, p = take(sp, [], 4)
    # As if power failed before the state write.
    if old_state is None:
        fsutil.remove("sp/state")
    else:
        fsutil.write_atomic("sp/state", old_state)
    sp = Spool("sp", max_n=50)
    assert sp.seq == seq + 1 and sp.pending == [seq] and sp.count == 2
    seq2, p2 = take(sp, [], 10)
    assert ts(p2) == [4, 5]  # nothing sent twice under different seqs


def test_torn_append_is_skipped_and_appends_continue():
    sp = Spool("sp", max_n=50, seg_bytes=10000)
    for i in range(3):
        sp.append(rec(i))
    tail = "sp/%d.seg" % sp.tail
    with open(tail, "ab") as f:  # header promising 40 bytes, only 5 written: power cut
        f.write(b"\x28\x00\x01\x02\x03\x04" + b'{"t":')
    sp = Spool("sp", max_n=50, seg_bytes=10000)
    assert sp.count == 3
    sp.append(rec(3))
    assert sp.count == 4
    seq, p = take(sp, [], 10)
    assert ts(p) == [0, 1, 2, 3]


def test_a_full_buffer_makes_a_smaller_message():
    sp = Spool("sp", max_n=50)
    for i in range(10):
        sp.append(rec(i))
    n = len(rec(0))
    seq, p = take(sp, [], 10, size=len('{"seq":0,"drop":0,"s":[') + 3 * n + 2 + 2)
    assert ts(p) == [0, 1, 2] and sp.count == 7  # the 4th did not fit: it waits for the next one
    seq, p = take(sp, [], 10)
    assert ts(p) == [3, 4, 5, 6, 7, 8, 9]


def test_corrupt_state_falls_back_to_messages():
    sp = Spool("sp")
    sp.append(rec(0))
    take(sp, [], 1)
    with open("sp/state", "wb") as f:
        f.write(b'{"seq":')
    sp = Spool("sp")
    assert sp.seq == 1  # recovered from the unacknowledged message's header


def test_boot_counter_persists():
    assert Spool("sp").next_boot() == 1
    assert Spool("sp").next_boot() == 2


class PowerCut(Exception):
    pass


class FatOs:
    # The os calls fsutil makes, with FAT's rename: it refuses to replace an existing file.
    def __init__(self, real):
        self.real = real
        self.stat = real.stat
        self.remove = real.remove
        self.mkdir = real.mkdir

    def rename(self, a, b):
        try:
            self.real.stat(b)
        except OSError:
            return self.real.rename(a, b)
        raise OSError(17)


def _cut_at(k):
    calls = [0]

    def hook(path, step):
        if path.endswith("state"):
            calls[0] += 1
            if calls[0] == k:
                raise PowerCut()

    return hook


def test_boot_counter_survives_two_power_cuts_at_every_write_point_on_fat():
    # A power cut at every point of one state write, then at every point of the next one (the
    # first cut can leave the ".tmp" as the only copy): the boot counter is never lost or
    # repeated (it reads as the last completed value or the one being written, never lower).
    import os

    real = fsutil.os
    fsutil.os = FatOs(real)
    try:
        for k1 in range(1, 5):
            for k2 in range(1, 5):
                d = "sp%d%d" % (k1, k2)
                sp = Spool(d)
                for _ in range(5):
                    sp.next_boot()
                seen = 5
                for k in (k1, k2):
                    fsutil.hook = _cut_at(k)
                    try:  # noqa: SIM105 (no contextlib in MicroPython)
                        Spool(d).next_boot()
                    except PowerCut:
                        pass
                    fsutil.hook = None
                    b = Spool(d).boot
                    assert b >= seen, "cut at write point %d then %d: boot %d after %d" % (k1, k2, b, seen)
                    seen = b
                assert Spool(d).next_boot() == seen + 1
                for e in os.ilistdir(d):
                    os.remove(d + "/" + e[0])
                os.rmdir(d)
    finally:
        fsutil.os = real
        fsutil.hook = None
