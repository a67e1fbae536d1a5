"""The SQLite spool: durable appends, byte bound with counted drops, batch records across reopen."""

import sqlite3
from pathlib import Path

import pytest

from gateway.spool import BatchRange, DeadLetter, Entry, Spool, SpoolError


def entries(n: int, size: int = 100, start: int = 0) -> list[Entry]:
    return [Entry(1000.0 + i, f"n-{i % 3}", bytes([65 + i % 26]) * size) for i in range(start, start + n)]


def test_wal_and_synchronous_settings(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=10**6, sync="full")
    assert sp._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sp._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    sp.close()
    sp = Spool(tmp_path / "s.db", max_bytes=10**6, sync="normal")
    assert sp._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    sp.close()


def test_append_is_visible_to_another_connection_after_return(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=10**6)
    sp.append(entries(5), [DeadLetter(1.0, "agri/v1/f/n-0/up", "n-0", "bad_json", "x", True, b"{")])
    other = sqlite3.connect(tmp_path / "s.db")
    assert other.execute("SELECT count(*) FROM spool").fetchone()[0] == 5
    assert other.execute("SELECT reason, payload FROM dead_letters").fetchall() == [("bad_json", b"{")]
    other.close()
    st = sp.stats()
    assert (st.depth, st.bytes, st.oldest_received, st.drops, st.dead_letters) == (5, 500, 1000.0, 0, 1)
    sp.close()


def test_bound_drops_oldest_and_counts_them_persistently(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=1000)
    assert sp.append(entries(8)).rows == 0
    d = sp.append(entries(5, start=8))  # 1300 bytes: the 3 oldest must go
    assert (d.rows, d.bytes, d.oldest_received) == (3, 300, 1000.0)
    assert sp.all_ids() == list(range(4, 14))
    assert sp.stats().bytes == 1000
    sp.append(entries(1, size=450, start=13))  # 450 more: 5 rows of 100 go
    st = sp.stats()
    assert (st.depth, st.bytes, st.drops) == (6, 950, 8)
    sp.close()
    again = Spool(tmp_path / "s.db", max_bytes=1000)
    st = again.stats()
    assert (st.depth, st.bytes, st.drops) == (6, 950, 8)
    again.close()


def test_a_group_larger_than_the_bound_empties_the_rest_but_is_kept(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=4096)
    sp.append(entries(3))
    d = sp.append(entries(50, start=3))  # 5000 bytes in one transaction
    assert d.rows == 3
    assert sp.stats().depth == 50
    sp.close()


def test_batches_are_recorded_and_survive_reopen(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=10**6)
    sp.append(entries(10))
    epoch = sp.epoch
    b1 = BatchRange(f"gw-{epoch}-1-4", 1, 4)
    b2 = BatchRange(f"gw-{epoch}-5-7", 5, 7)
    sp.record_batch(b1)
    sp.record_batch(b2)
    assert sp.ack_batch(b1, 2000.0) == 4
    sp.close()
    sp = Spool(tmp_path / "s.db", max_bytes=10**6)
    assert sp.epoch == epoch
    assert sp.pending_batches() == [b2]
    assert [r.id for r in sp.rows_between(5, 7)] == [5, 6, 7]
    st = sp.stats()
    assert (st.depth, st.last_ack) == (6, 2000.0)
    sp.close()


def test_row_ids_are_never_reused(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=10**6)
    sp.append(entries(3))
    sp.ack_batch(BatchRange("b", 1, 3), 1.0)
    sp.append(entries(1))
    assert sp.all_ids() == [4]  # AUTOINCREMENT: a new batch can never reuse an acked id range
    sp.close()


def test_dead_letters_are_bounded(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=10**6, dead_letter_max_rows=10)
    for i in range(25):
        sp.append([], [DeadLetter(float(i), "t", "n", "bad_json", str(i), True, b"x")])
    rows = sp.dead_letter_rows()
    assert len(rows) == 10 and rows[0].detail == "24" and rows[-1].detail == "15"
    sp.close()


def test_alert_outbox_lifecycle(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_bytes=10**6)
    a = sp.add_alert(100.0, "barn-heat", "n-1", "{}")
    assert [x.id for x in sp.due_alerts(100.0)] == [a]
    sp.alert_failed(a, "HTTP 500", 150.0)
    assert sp.due_alerts(120.0) == [] and sp.next_alert_due() == 150.0
    assert sp.due_alerts(150.0)[0].attempts == 1
    sp.alert_delivered(a, 151.0)
    assert sp.due_alerts(1e12) == [] and sp.stats().alerts_pending == 0
    b = sp.add_alert(200.0, "x", "n-1", "{}")
    sp.alert_failed(b, "HTTP 404", None)
    assert sp.due_alerts(1e12) == []
    sp.close()


def test_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "s.db"
    f.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolError, match=r"s\.db"):
        Spool(f, max_bytes=10**6)
