"""The benchmark's yardstick: a plain binary COPY of the same rows from Python into a hypertable
shaped like ``readings`` (same unique key, same chunking), in the same database.

"The same rows" means all of them by default: the baseline then builds a table and index as
large as the one ingest built, in the same order and commit size. Rows are streamed from
``readings`` a batch at a time through a server-side cursor (so memory stays at one batch) and
only the COPY of each batch is timed. The rate over the first million rows, i.e. into a still
small table, is reported as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

TABLE = "bench_copy_baseline"
FIRST_ROWS = 1_000_000


@dataclass(frozen=True)
class CopyRun:
    rows: int
    rows_per_s: float
    rows_per_cpu_s: float  # per CPU-second of this process plus the database's
    first_rows: int  # the first batches, up to FIRST_ROWS rows
    first_rows_per_s: float


def copy_rate(
    dsn: str,
    series_ids: list[int],
    limit: int | None,
    batch_rows: int,
    server_cpu: Callable[[], float] | None = None,
) -> CopyRun:
    """COPY ... (FORMAT BINARY) with psycopg's ``write_row``, one commit per batch of ``batch_rows``.

    The rows are ingest's stored readings of ``series_ids`` in heap (arrival) order, all of them or
    the first ``limit``.
    """

    def cpu_now() -> float:
        return time.process_time() + (server_cpu() if server_cpu else 0.0)

    ident = sql.Identifier(TABLE)
    copy_sql = sql.SQL("COPY {} (time, series_id, value) FROM STDIN (FORMAT BINARY)").format(ident)
    query = "SELECT time, series_id, value FROM readings WHERE series_id = ANY(%s)"
    params: tuple[Any, ...] = (series_ids,)
    if limit is not None:
        query += " LIMIT %s"
        params = (series_ids, limit)
    rows = first_rows = 0
    elapsed = cpu = first_elapsed = 0.0
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as src:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (time timestamptz NOT NULL, series_id int NOT NULL, value float8 NOT NULL,"
                " UNIQUE (series_id, time))"
            ).format(ident)
        )
        conn.execute(
            "SELECT create_hypertable(%s, 'time', chunk_time_interval => interval '1 day')", (TABLE,)
        )
        try:
            with src.cursor(name="bench_baseline_rows", binary=True) as rcur:
                rcur.itersize = batch_rows
                rcur.execute(query, params)
                while batch := rcur.fetchmany(batch_rows):
                    c0, t0 = cpu_now(), time.perf_counter()
                    with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as cp:
                        cp.set_types(["timestamptz", "int4", "float8"])
                        for row in batch:
                            cp.write_row(row)
                    elapsed += time.perf_counter() - t0
                    cpu += cpu_now() - c0
                    rows += len(batch)
                    if rows <= FIRST_ROWS or first_rows == 0:
                        first_rows, first_elapsed = rows, elapsed
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
    return CopyRun(
        rows=rows,
        rows_per_s=rows / elapsed if elapsed > 0 else 0.0,
        rows_per_cpu_s=rows / cpu if cpu > 0 else 0.0,
        first_rows=first_rows,
        first_rows_per_s=first_rows / first_elapsed if first_elapsed > 0 else 0.0,
    )
