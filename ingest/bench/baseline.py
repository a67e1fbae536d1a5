"""The benchmark's yardstick: a plain binary COPY of the same rows from Python into a hypertable
shaped like ``readings`` (same unique key, same chunking), in the same database."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

TABLE = "bench_copy_baseline"


def fetch_rows(conn: psycopg.Connection[Any], series_ids: list[int], limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` stored readings of the given series (the rows ingest wrote)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT time, series_id, value FROM readings WHERE series_id = ANY(%s) LIMIT %s",
            (series_ids, limit),
        )
        return list(cur.fetchall())


def copy_rate(
    dsn: str, rows: list[tuple[Any, ...]], batch_rows: int, server_cpu: Callable[[], float] | None = None
) -> tuple[float, float]:
    """COPY ... (FORMAT BINARY) with psycopg's ``write_row``, one commit per batch.

    Returns (rows/s, rows per CPU-second of this process plus ``server_cpu()``, the database's).
    """
    if not rows:
        return 0.0, 0.0
    with psycopg.connect(dsn, autocommit=True) as conn:
        ident = sql.Identifier(TABLE)
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
        copy_sql = sql.SQL("COPY {} (time, series_id, value) FROM STDIN (FORMAT BINARY)").format(ident)
        try:
            c0 = time.process_time() + (server_cpu() if server_cpu else 0.0)
            t0 = time.perf_counter()
            for i in range(0, len(rows), batch_rows):
                with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as cp:
                    cp.set_types(["timestamptz", "int4", "float8"])
                    for row in rows[i : i + batch_rows]:
                        cp.write_row(row)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() + (server_cpu() if server_cpu else 0.0) - c0
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
    return len(rows) / elapsed, len(rows) / cpu if cpu > 0 else 0.0
