"""Store decoded messages in one transaction per batch: readings, dead letters, node bookkeeping.

Readings go in with one binary ``COPY`` straight into the hypertable. Duplicates are rare (only
redeliveries), so that fast path is tried first inside a savepoint; if the unique key
``(series_id, time)`` refuses it, the batch is copied into a temp table and moved with
``INSERT ... ON CONFLICT DO NOTHING``, which also counts the duplicates. Dead letters are keyed by
their message bytes (``ON CONFLICT (dedup_key) DO NOTHING``) and node sequence bookkeeping is
idempotent, so replaying a committed batch changes nothing: that is what makes "ack after commit"
exactly-once in storage.

Errors come in two kinds (see :func:`is_retryable`): the database is unavailable -> the caller
keeps the batch un-acked and retries; a batch the database refuses for data reasons -> each
message is stored on its own, and one that still fails becomes a ``store_error`` dead letter.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors, sql

from kernel.decode import Accepted, Decoded, Reject
from kernel.log import event, get_logger
from store import copyfmt, rollup, seqtrack
from store.registry import ensure_series

log = get_logger("ingest")

_COPY_READINGS = sql.SQL("COPY {} " + copyfmt.COLUMNS + " FROM STDIN (FORMAT BINARY)")
_STAGE = "ingest_readings_stage"
_BIGINT_MAX = 2**63 - 1


class StoreUnavailable(Exception):
    """The database cannot take the batch now (down, restarting, disk full): retry later."""


def is_retryable(exc: BaseException) -> bool:
    """Operational conditions worth retrying; everything else is about the data or a bug."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | errors.ReadOnlySqlTransaction)


@dataclass(slots=True)
class Prepared:
    """A batch's readings encoded ahead of its transaction, from the writer's caches alone."""

    known: list[tuple[int, Accepted]]  # (node pk, message) for every accepted message
    data: bytes  # binary COPY stream
    n_rows: int


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> dead letters written
    messages: int = 0  # node messages (accepted) in the batch
    committed: list[Accepted] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected.update(other.rejected)
        self.messages += other.messages
        self.committed.extend(other.committed)


def clean_text(s: str | None, limit: int = 2000) -> str | None:
    """Text PostgreSQL accepts: no NUL, no lone surrogates, bounded length."""
    if s is None:
        return None
    s = s[:limit]
    if "\x00" in s:
        s = s.replace("\x00", "\\x00")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


def reading_time(t: float | None) -> datetime | None:
    if t is None or not math.isfinite(t):
        return None
    try:
        return datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class Writer:
    """Owns one database connection and the (node, metric) -> series id cache."""

    def __init__(self, dsn: str, *, app_name: str = "agri-ingest", connect_timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.app_name = app_name
        self.connect_timeout = connect_timeout
        self.conn: psycopg.Connection[Any] | None = None
        self.nodes: dict[tuple[str, str], int] = {}
        self.series: dict[int, dict[str, int]] = {}  # node pk -> metric -> series id

    # --- connection -----------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout)),
                application_name=self.app_name,
            )
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} "
                    "(time timestamptz, series_id int, value float8) ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(_STAGE))
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(_one_line(exc)) from exc
        self.conn = conn
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def ping(self) -> None:
        try:
            self.connect().execute("SELECT 1")
        except psycopg.Error as exc:
            self.close()
            raise StoreUnavailable(_one_line(exc)) from exc

    # --- the batch ------------------------------------------------------------------------------

    def prepare(self, batch: list[Decoded]) -> Prepared | None:
        """Encode ``batch``'s readings without the database, for :meth:`write` to use.

        Called from the thread that forms the next batch while this writer's thread commits the
        previous one, so the COPY stream is ready when the transaction starts. Only reads the
        caches; None when a node or series of the batch is not cached yet (then :meth:`write`
        resolves and encodes it itself).
        """
        nodes, series = self.nodes, self.series
        known: list[tuple[int, Accepted]] = []
        for d in batch:
            for a in d.accepted:
                pk = nodes.get((a.msg.farm, a.msg.node))
                if pk is None or pk not in series:
                    return None
                known.append((pk, a))
        # rows in node order, series by series: close to the unique index's order (cheaper inserts
        # for the server, see copyfmt.encode_readings); `known` keeps arrival order for the acks
        items = [(series[pk], a.msg.readings) for pk, a in sorted(known, key=_pk)]
        try:
            data, n_rows = copyfmt.encode_readings(items)
        except (KeyError, TypeError):  # a (node, metric) not cached yet
            return None
        return Prepared(known, data, n_rows)

    def write(self, batch: list[Decoded], prepared: Prepared | None = None) -> BatchResult:
        """Store a batch in one transaction. Raises :class:`StoreUnavailable` (nothing committed).

        ``prepared`` is :meth:`prepare`'s result for the same batch, if it had one.
        """
        try:
            return self._write(batch, prepared)
        except StoreUnavailable:
            self.close()
            raise
        except psycopg.Error as exc:
            if is_retryable(exc):
                self.close()
                raise StoreUnavailable(_one_line(exc)) from exc
            event(log, "batch_refused", logging.WARNING, error=_one_line(exc), messages=len(batch))
        # The database refused the batch for a data reason: isolate the culprit message(s).
        total = BatchResult()
        for item in batch:
            try:
                total.add(self._write([item]))
            except psycopg.Error as exc:
                if is_retryable(exc):
                    self.close()
                    raise StoreUnavailable(_one_line(exc)) from exc
                total.add(self._store_error(item, exc))
        return total

    def _store_error(self, item: Decoded, exc: psycopg.Error) -> BatchResult:
        detail = f"database refused the message: {_one_line(exc)}"
        rejects = [a.as_reject("store_error", detail) for a in item.accepted] + item.rejects
        event(log, "store_error", logging.ERROR, topic=item.topic[:200], error=_one_line(exc))
        conn = self.connect()
        try:
            with conn.transaction():
                self._insert_rejects(conn, rejects)
        except psycopg.Error as exc2:
            if is_retryable(exc2):
                self.close()
                raise StoreUnavailable(_one_line(exc2)) from exc2
            # Nothing more can be done for this message; say so loudly rather than loop forever.
            event(log, "poison_message", logging.ERROR, topic=item.topic[:200], error=_one_line(exc2))
            return BatchResult()
        return BatchResult(rejected=Counter(r.reason for r in rejects))

    def _write(self, batch: list[Decoded], prepared: Prepared | None = None) -> BatchResult:
        conn = self.connect()
        rejects: list[Reject] = [r for d in batch for r in d.rejects]
        if prepared is not None:  # every node and series was cached: nothing to resolve
            known = prepared.known
            data, n_rows = prepared.data, prepared.n_rows
            for _, a in known:
                if a.msg.rejected:
                    rejects.extend(a.reading_rejects())
        else:
            accepted = [a for d in batch for a in d.accepted]
            self._resolve_nodes(conn, {(a.msg.farm, a.msg.node) for a in accepted})
            known = []
            for a in accepted:
                pk = self.nodes.get((a.msg.farm, a.msg.node))
                if pk is None:
                    rejects.append(
                        a.as_reject("unknown_node", f"node {a.msg.farm}/{a.msg.node} is not registered")
                    )
                else:
                    known.append((pk, a))
                    if a.msg.rejected:
                        rejects.extend(a.reading_rejects())
            data, n_rows = self._encode(conn, known)
        res = BatchResult(messages=len(known), rejected=Counter(r.reason for r in rejects))
        hours = self._hour_keys(known) if n_rows else set()
        with conn.transaction():
            if n_rows:
                res.stored, res.duplicates = self._copy(
                    conn, data, n_rows, lambda n: _log_feed(conn, known, n)
                )
            if rejects:
                self._insert_rejects(conn, rejects)
            if known:
                self._update_nodes(conn, known)
            if hours:  # after the node locks: see store.rollup for why that order matters
                rollup.mark_dirty(conn, hours)
        res.committed = [a for _, a in known]
        return res

    def _hour_keys(self, known: list[tuple[int, Accepted]]) -> set[tuple[int, int]]:
        """(series id, Unix hour) of every reading in the batch, for the rollup marks."""
        series = self.series
        keys: set[tuple[int, int]] = set()
        add = keys.add
        for pk, a in known:
            sids = series.get(pk, {})
            for r in a.msg.readings:
                sid = sids.get(r.metric)
                if sid is not None:
                    add((sid, int(r.t // 3600)))
        return keys

    def _encode(self, conn: psycopg.Connection[Any], known: list[tuple[int, Accepted]]) -> tuple[bytes, int]:
        """The batch's readings as one binary COPY stream (series ids resolved, created if new)."""
        series = self.series
        in_order = sorted(known, key=_pk)  # node order for index locality; `known` keeps arrival order
        items = [(series.get(pk), a.msg.readings) for pk, a in in_order]
        try:
            return copyfmt.encode_readings(items)  # type: ignore[arg-type]
        except (KeyError, TypeError):  # a (node, metric) not cached yet: the rare path
            pass
        missing = {
            (pk, r.metric) for pk, a in known for r in a.msg.readings if r.metric not in series.get(pk, {})
        }
        self._resolve_series(conn, missing)
        return copyfmt.encode_readings([(series[pk], a.msg.readings) for pk, a in in_order])

    def _resolve_nodes(self, conn: psycopg.Connection[Any], keys: set[tuple[str, str]]) -> None:
        missing = [k for k in keys if k not in self.nodes]
        if not missing:
            return
        rows = conn.execute(
            "SELECT n.farm_id, n.node_id, n.id FROM nodes n"
            " JOIN unnest(%s::text[], %s::text[]) AS k(farm, node)"
            " ON n.farm_id = k.farm AND n.node_id = k.node",
            ([f for f, _ in missing], [n for _, n in missing]),
        ).fetchall()
        for f, n, pk in rows:
            self.nodes[(f, n)] = int(pk)

    def _resolve_series(self, conn: psycopg.Connection[Any], missing: set[tuple[int, str]]) -> None:
        """Look up, and create where the catalog knows the metric, the series of ``missing``.

        Created in their own short transaction (sorted, so concurrent workers cannot deadlock) so an
        id is cached only once it is committed.
        """
        pks = sorted({pk for pk, _ in missing})
        for pk, metric, sid in conn.execute(
            "SELECT node_id, metric, id FROM series WHERE node_id = ANY(%s)", (pks,)
        ).fetchall():
            self.series.setdefault(int(pk), {})[str(metric)] = int(sid)
        create = sorted((pk, m) for pk, m in missing if m not in self.series.get(pk, {}))
        if not create:
            return
        # decode_up only yields readings of catalog metrics, and migrate seeds `metrics` from it.
        with conn.transaction():
            for pk, metric in create:
                self.series.setdefault(pk, {})[metric] = ensure_series(conn, pk, metric)
        event(log, "series_created", count=len(create))

    def _copy(
        self, conn: psycopg.Connection[Any], data: bytes, n_rows: int, feed: Callable[[int], None]
    ) -> tuple[int, int]:
        """COPY the stream into readings; return (stored, duplicates).

        ``feed(stored)`` logs the batch for the alert service in the same (sub)transaction as the
        readings, so the feed row and its readings share one ``xmin`` (see alerts/feed.py).
        """
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(_COPY_READINGS.format(sql.Identifier("readings"))) as cp:
                    cp.write(data)
                feed(n_rows)
                return n_rows, 0
        except errors.UniqueViolation:
            pass
        with conn.cursor() as cur:
            with cur.copy(_COPY_READINGS.format(sql.Identifier(_STAGE))) as cp:
                cp.write(data)
            cur.execute(
                sql.SQL(
                    "INSERT INTO readings (time, series_id, value) SELECT time, series_id, value FROM {}"
                    " ON CONFLICT DO NOTHING"
                ).format(sql.Identifier(_STAGE))
            )
            stored = max(cur.rowcount, 0)
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(_STAGE)))
        if stored:
            feed(stored)
        return stored, n_rows - stored

    def _insert_rejects(self, conn: psycopg.Connection[Any], rejects: Iterable[Reject]) -> None:
        params = [
            (
                clean_text(r.source, 300),
                clean_text(r.farm, 64),
                clean_text(r.node, 64),
                clean_text(r.metric, 100),
                reading_time(r.t),
                clean_text(r.reason, 64),
                clean_text(r.detail),
                r.raw,
                r.key,
            )
            for r in rejects
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rejects (source, farm_id, node_id, metric, reading_time, reason, detail, raw,"
                " dedup_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING",
                params,
            )

    def _update_nodes(self, conn: psycopg.Connection[Any], known: list[tuple[int, Accepted]]) -> None:
        arrivals: dict[int, list[tuple[int, int, int]]] = {}
        for pk, a in known:
            arrivals.setdefault(pk, []).append((a.msg.seq, a.msg.boot, a.msg.dropped))
        pks = sorted(arrivals)
        # Row locks in id order: concurrent workers serialise per node without deadlocks. NO KEY UPDATE
        # (what the UPDATE below takes anyway): a transaction inserting a row that references a node
        # (an alert's foreign key takes KEY SHARE, in its own order) neither waits for it nor
        # deadlocks with it, as it did with FOR UPDATE when a step opened many alerts.
        states = {
            int(pk): seqtrack.NodeState(last, boot, first)
            for pk, last, boot, first in conn.execute(
                "SELECT id, last_seq, last_boot, first_seq FROM nodes WHERE id = ANY(%s)"
                " ORDER BY id FOR NO KEY UPDATE",
                (pks,),
            ).fetchall()
        }
        late = [
            pk
            for pk in pks
            if pk in states
            and states[pk].last_seq is not None
            and any(s <= (states[pk].last_seq or 0) for s, _, _ in arrivals[pk])
        ]
        gaps: dict[int, list[seqtrack.Gap]] = {}
        if late:
            for pk, f, t, b in conn.execute(
                "SELECT node_id, from_seq, to_seq, boot FROM seq_gaps"
                " WHERE node_id = ANY(%s) AND filled_at IS NULL",
                (late,),
            ).fetchall():
                gaps.setdefault(int(pk), []).append(seqtrack.Gap(int(f), int(t), int(b)))
        upd: list[tuple[int, int | None, int | None, int | None, int, int]] = []
        deletes: list[tuple[int, int]] = []
        inserts: list[tuple[int, int, int, int, bool]] = []
        for pk in pks:
            if pk not in states:  # node deleted since it was cached
                self.nodes = {k: v for k, v in self.nodes.items() if v != pk}
                self.series.pop(pk, None)
                continue
            out = seqtrack.apply(states[pk], gaps.get(pk, []), arrivals[pk])
            st = out.state
            dropped = min(out.dropped, _BIGINT_MAX)  # node-reported: bounded, never trusted
            upd.append((pk, st.last_seq, st.last_boot, st.first_seq, out.new_messages, dropped))
            deletes += [(pk, s) for s in out.deleted_gaps]
            inserts += [(pk, g.boot, g.from_seq, g.to_seq, False) for g in out.open_gaps]
            inserts += [(pk, g.boot, g.from_seq, g.to_seq, True) for g in out.filled]
        with conn.cursor() as cur:
            # Set-based: with several workers on one shared subscription consecutive messages of a
            # node are often committed out of order, so nearly every message opens or fills a gap;
            # one statement per table per batch instead of one per row.
            if deletes:
                cur.execute(
                    "DELETE FROM seq_gaps g USING unnest(%s::int[], %s::bigint[]) AS d(node_id, from_seq)"
                    " WHERE g.node_id = d.node_id AND g.from_seq = d.from_seq",
                    [[d[0] for d in deletes], [d[1] for d in deletes]],
                )
            if inserts:
                # One row per key (the last, as applying them in order would leave it): ON CONFLICT
                # DO UPDATE may not touch a row twice in one statement.
                rows = list({(i[0], i[2]): i for i in inserts}.values())
                cur.execute(
                    "INSERT INTO seq_gaps (node_id, boot, from_seq, to_seq, filled_at)"
                    " SELECT node_id, boot, from_seq, to_seq, CASE WHEN filled THEN now() END"
                    " FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bool[])"
                    " AS v(node_id, boot, from_seq, to_seq, filled)"
                    " ON CONFLICT (node_id, from_seq) DO UPDATE SET to_seq = EXCLUDED.to_seq,"
                    " boot = EXCLUDED.boot, filled_at = EXCLUDED.filled_at, detected_at = now()",
                    [list(c) for c in zip(*rows, strict=True)],
                )
            if upd:
                cols = list(zip(*upd, strict=True))
                cur.execute(
                    "UPDATE nodes n SET last_seen = now(), last_seq = v.last_seq, last_boot = v.last_boot,"
                    " first_seq = v.first_seq, msgs_received = n.msgs_received + v.new,"
                    " dropped_reported = least(n.dropped_reported::numeric + v.dropped, %s)::bigint"
                    " FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
                    " %s::bigint[]) AS v(id, last_seq, last_boot, first_seq, new, dropped) WHERE n.id = v.id",
                    [_BIGINT_MAX, *(list(c) for c in cols)],
                )


def _log_feed(conn: psycopg.Connection[Any], known: list[tuple[int, Accepted]], stored: int) -> None:
    """One ``alert_feed`` row for the batch, in its transaction: each node's time range.

    The alert service tails this log (see alerts/feed.py) and reads the readings back by node, range
    and the feed row's ``xmin``, which is why this runs where the readings were inserted.
    """
    ranges: dict[int, list[float]] = {}
    for pk, a in known:
        rd = a.msg.readings
        if not rd:
            continue
        lo = hi = rd[0].t
        for r in rd:
            t = r.t
            if t < lo:
                lo = t
            elif t > hi:
                hi = t
        cur = ranges.get(pk)
        if cur is None:
            ranges[pk] = [lo, hi]
        else:
            cur[0] = min(cur[0], lo)
            cur[1] = max(cur[1], hi)
    log_feed(conn, ranges, stored)


def log_feed(conn: psycopg.Connection[Any], ranges: dict[int, list[float]], stored: int) -> None:
    """Write the ``alert_feed`` row of readings just stored in this transaction: node pk ->
    ``[first, last]`` reading time (Unix s). Every path that stores readings the alert service must
    evaluate calls it in the transaction that stored them (ingest's batches, imagery statistics)."""
    if not ranges:
        return
    pks = sorted(ranges)
    conn.execute(
        "INSERT INTO alert_feed (node_ids, t_from, t_to, n_rows) VALUES (%s::int[],"
        " (SELECT array_agg(to_timestamp(x) ORDER BY o) FROM unnest(%s::float8[]) WITH ORDINALITY u(x, o)),"
        " (SELECT array_agg(to_timestamp(x) ORDER BY o) FROM unnest(%s::float8[]) WITH ORDINALITY u(x, o)),"
        " %s)",
        (pks, [ranges[p][0] for p in pks], [ranges[p][1] for p in pks], stored),
    )


def _pk(item: tuple[int, Accepted]) -> int:
    return item[0]


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
