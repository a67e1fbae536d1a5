"""The gateway's durable spool: one SQLite file in WAL mode.

Tables: ``spool`` (messages not yet acknowledged by the central broker, in arrival order),
``batches`` (row ranges already published upstream, so a re-send after a crash carries the same
batch id and rows), ``dead_letters`` (invalid node messages with reason and raw payload, bounded),
``local_alerts`` (local rule notifications waiting for webhook delivery) and ``meta`` (counters).

Durability: every :meth:`Spool.append` is one transaction; with ``synchronous=FULL`` its commit
returns only after the WAL is fsync'ed, so a message acked to the node after ``append`` survives a
power cut. ``NORMAL`` skips that fsync (the WAL is synced at checkpoints): still safe against a
process crash, but a power cut can lose the last commits -- messages the node already deleted.

The spool is bounded by payload bytes: when an append would exceed the bound, the oldest rows are
deleted and counted in ``meta.drops`` (reported in health and logs). One connection is shared by
the gateway's threads behind a lock; every operation is short.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: batch ids are derived from row ids
    received REAL NOT NULL,
    node TEXT NOT NULL,
    payload BLOB NOT NULL,
    invalid TEXT  -- NULL: forwarded verbatim; else why it cannot be (sent as an invalid entry)
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received REAL NOT NULL,
    topic TEXT NOT NULL,
    node TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    whole INTEGER NOT NULL,  -- 1: the whole message is unusable; 0: some readings were rejected
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS local_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    rule TEXT NOT NULL,
    node TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    last_error TEXT,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS local_alerts_pending ON local_alerts (next_try) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SpoolError(RuntimeError):
    """The spool file cannot be opened or used (operational: disk, permissions, corruption)."""


@dataclass(frozen=True, slots=True)
class Entry:
    received: float
    node: str
    payload: bytes
    invalid: str | None = None  # reason, when the message cannot travel verbatim


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received: float
    topic: str
    node: str | None
    reason: str
    detail: str
    whole: bool
    payload: bytes


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    received: float
    node: str
    payload: bytes
    invalid: str | None


@dataclass(frozen=True, slots=True)
class BatchRange:
    batch_id: str
    first_id: int
    last_id: int


@dataclass(frozen=True, slots=True)
class Dropped:
    rows: int
    bytes: int
    oldest_received: float | None


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int
    bytes: int
    oldest_received: float | None
    drops: int
    last_ack: float | None
    dead_letters: int
    alerts_pending: int


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    rule: str
    node: str
    body: str
    attempts: int


class Spool:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        sync: Literal["full", "normal"] = "full",
        dead_letter_max_rows: int = 10_000,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dead_letter_max_rows = dead_letter_max_rows
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise SpoolError(f"spool {path}: the file system does not support SQLite WAL mode")
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA journal_size_limit=67108864")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            row = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM spool").fetchone()
            self._rows, self._bytes = int(row[0]), int(row[1])
            self.epoch = self._meta_get("epoch") or self._init_epoch()
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"spool {path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- meta -------------------------------------------------------------------------------

    def _meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_set(self, key: str, value: object) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def _init_epoch(self) -> str:
        # Distinguishes this spool file from an earlier one whose row ids started at 1 too.
        epoch = secrets.token_hex(4)
        self._meta_set("epoch", epoch)
        return epoch

    # --- appending (the ack path) -------------------------------------------------------------

    def append(self, entries: Sequence[Entry], dead: Sequence[DeadLetter] = ()) -> Dropped:
        """Store messages (and their dead letters) in one durable transaction.

        Returns what had to be dropped (oldest first) to keep the spool under its byte bound.
        """
        new_bytes = sum(len(e.payload) for e in entries)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._make_room(new_bytes)
                self._db.executemany(
                    "INSERT INTO spool (received, node, payload, invalid) VALUES (?, ?, ?, ?)",
                    [(e.received, e.node, e.payload, e.invalid) for e in entries],
                )
                if dead:
                    self._db.executemany(
                        "INSERT INTO dead_letters (received, topic, node, reason, detail, whole, payload)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (d.received, d.topic, d.node, d.reason, d.detail, int(d.whole), d.payload)
                            for d in dead
                        ],
                    )
                    self._db.execute(
                        "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
                        (self.dead_letter_max_rows,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._rows += len(entries) - dropped.rows
            self._bytes += new_bytes - dropped.bytes
            return dropped

    def _make_room(self, new_bytes: int) -> Dropped:
        need = self._bytes + new_bytes - self.max_bytes
        if need <= 0:
            return Dropped(0, 0, None)
        freed = n = 0
        cutoff: int | None = None
        oldest: float | None = None
        after = 0
        while freed < need:
            chunk = self._db.execute(
                "SELECT id, received, length(payload) FROM spool WHERE id > ? ORDER BY id LIMIT 512", (after,)
            ).fetchall()
            if not chunk:
                break  # everything old is gone; the new group alone exceeds the bound
            for rid, received, size in chunk:
                if oldest is None:
                    oldest = float(received)
                cutoff, after = int(rid), int(rid)
                freed += int(size)
                n += 1
                if freed >= need:
                    break
        if cutoff is None:
            return Dropped(0, 0, None)
        self._db.execute("DELETE FROM spool WHERE id <= ?", (cutoff,))
        drops = int(self._meta_get("drops") or 0) + n
        self._meta_set("drops", drops)
        return Dropped(n, freed, oldest)

    # --- forwarding ---------------------------------------------------------------------------

    def pending_batches(self) -> list[BatchRange]:
        """Batches published before but not yet acknowledged (e.g. before a crash), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, first_id, last_id FROM batches ORDER BY first_id"
            ).fetchall()
        return [BatchRange(str(b), int(f), int(last)) for b, f, last in rows]

    def rows_after(self, after_id: int, limit: int) -> list[Row]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received, node, payload, invalid FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Row(int(i), float(r), str(n), bytes(p), inv) for i, r, n, p, inv in rows]

    def rows_between(self, first_id: int, last_id: int) -> list[Row]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received, node, payload, invalid FROM spool WHERE id BETWEEN ? AND ? ORDER BY id",
                (first_id, last_id),
            ).fetchall()
        return [Row(int(i), float(r), str(n), bytes(p), inv) for i, r, n, p, inv in rows]

    def head_after(self, after_id: int, limit: int) -> list[tuple[int, float, int]]:
        """(id, received, payload size) of up to ``limit`` rows after ``after_id``: cheap planning."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received, length(payload) FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [(int(i), float(r), int(s)) for i, r, s in rows]

    def record_batch(self, batch: BatchRange) -> None:
        """Remember a batch before publishing it, so a restart re-sends the same id and rows."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO batches (batch_id, first_id, last_id, created) VALUES (?, ?, ?, ?)",
                (batch.batch_id, batch.first_id, batch.last_id, time.time()),
            )

    def ack_batch(self, batch: BatchRange, acked_at: float) -> int:
        """The central broker has the batch: delete its rows. Returns how many rows were deleted."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                sizes = self._db.execute(
                    "DELETE FROM spool WHERE id BETWEEN ? AND ? RETURNING length(payload)",
                    (batch.first_id, batch.last_id),
                ).fetchall()
                self._db.execute("DELETE FROM batches WHERE batch_id = ?", (batch.batch_id,))
                self._meta_set("last_ack", acked_at)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._rows -= len(sizes)
            self._bytes -= sum(int(s[0]) for s in sizes)
        return len(sizes)

    def forget_batch(self, batch: BatchRange) -> None:
        """Drop a batch record whose rows are all gone (dropped by the size bound)."""
        with self._lock:
            self._db.execute("DELETE FROM batches WHERE batch_id = ?", (batch.batch_id,))

    # --- local alerts -------------------------------------------------------------------------

    def add_alert(self, created: float, rule: str, node: str, body: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO local_alerts (created, rule, node, body, next_try) VALUES (?, ?, ?, ?, ?)",
                (created, rule, node, body, created),
            )
            return int(cur.lastrowid or 0)

    def due_alerts(self, now: float, limit: int = 20) -> list[Alert]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, rule, node, body, attempts FROM local_alerts"
                " WHERE state = 'pending' AND next_try <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Alert(int(i), str(r), str(n), str(b), int(a)) for i, r, n, b, a in rows]

    def next_alert_due(self) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT min(next_try) FROM local_alerts WHERE state = 'pending'"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def alert_delivered(self, alert_id: int, now: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE local_alerts SET state = 'delivered', attempts = attempts + 1, delivered = ?,"
                " last_error = NULL WHERE id = ?",
                (now, alert_id),
            )

    def alert_failed(self, alert_id: int, error: str, next_try: float | None) -> None:
        """Record a failed attempt; ``next_try`` None gives up (state ``failed``)."""
        with self._lock:
            self._db.execute(
                "UPDATE local_alerts SET attempts = attempts + 1, last_error = ?,"
                " state = CASE WHEN ? IS NULL THEN 'failed' ELSE 'pending' END,"
                " next_try = coalesce(?, next_try) WHERE id = ?",
                (error[:500], next_try, next_try, alert_id),
            )

    # --- inspection ---------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        with self._lock:
            oldest = self._db.execute("SELECT received FROM spool ORDER BY id LIMIT 1").fetchone()
            dead = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
            pending = self._db.execute("SELECT count(*) FROM local_alerts WHERE state = 'pending'").fetchone()
            drops = self._meta_get("drops")
            last_ack = self._meta_get("last_ack")
            return SpoolStats(
                depth=self._rows,
                bytes=self._bytes,
                oldest_received=float(oldest[0]) if oldest else None,
                drops=int(drops or 0),
                last_ack=float(last_ack) if last_ack else None,
                dead_letters=int(dead[0]),
                alerts_pending=int(pending[0]),
            )

    def dead_letter_rows(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT received, topic, node, reason, detail, whole, payload FROM dead_letters"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(float(r), str(t), n, str(re), str(d), bool(w), bytes(p))
            for r, t, n, re, d, w, p in rows
        ]

    def all_ids(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute("SELECT id FROM spool ORDER BY id")]
