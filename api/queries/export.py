"""Readings export as CSV or Parquet, streamed in chunks: memory stays flat for any size.

CSV is PostgreSQL's own ``COPY (SELECT ...) TO STDOUT (FORMAT CSV)``, passed through in blocks
of ~256 KB; Parquet reads a server-side cursor in batches and writes one row group per batch.
Times are in the farm's time zone (CSV: ``2026-05-01 08:00:00+08``; Parquet: UTC timestamps
tagged with the zone).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from api.queries.models import SeriesInfo
from api.queries.readings import check_range

Conn = psycopg.Connection[Any]

CHUNK_BYTES = 256 * 1024
PARQUET_BATCH = 100_000
CSV_HEADER = b"time,farm,node,metric,value\n"

EXPORT_SELECT = sql.SQL(
    "SELECT r.time, n.farm_id, n.node_id, s.metric, r.value FROM readings r"
    " JOIN series s ON s.id = r.series_id JOIN nodes n ON n.id = s.node_id"
    " WHERE r.series_id = ANY({sids}) AND r.time >= {start} AND r.time < {end}"
    " ORDER BY r.series_id, r.time"
)


def export_sql(series_ids: Sequence[int], start: datetime, end: datetime) -> sql.Composed:
    """The export's SELECT with its values as literals (COPY takes no bind parameters)."""
    return EXPORT_SELECT.format(
        sids=sql.Literal(list(series_ids)), start=sql.Literal(start), end=sql.Literal(end)
    )


def csv_chunks(
    conn: Conn, series: Sequence[SeriesInfo], start: datetime, end: datetime, *, tz: str = "UTC"
) -> Iterator[bytes]:
    """CSV with a header row, in blocks of about ``CHUNK_BYTES``."""
    check_range(start, end)
    yield CSV_HEADER
    if not series:
        return
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT CSV)").format(
        export_sql([s.series_id for s in series], start, end)
    )
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT set_config('TimeZone', %s, true)", (tz,))
        with cur.copy(stmt) as cp:
            buf: list[bytes] = []
            size = 0
            for row in cp:
                buf.append(bytes(row))
                size += len(row)
                if size >= CHUNK_BYTES:
                    yield b"".join(buf)
                    buf.clear()
                    size = 0
            if buf:
                yield b"".join(buf)


class _Sink:
    """A write-only file for ParquetWriter whose bytes are taken out as they are written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0
        self.closed = False

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.parts.append(data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def parquet_chunks(
    conn: Conn, series: Sequence[SeriesInfo], start: datetime, end: datetime, *, tz: str = "UTC"
) -> Iterator[bytes]:
    """A Parquet file (columns time, farm, node, metric, value), one row group per batch."""
    check_range(start, end)
    meta = {s.series_id: s for s in series}
    names = sorted({(s.farm_id, s.node_id, s.metric) for s in series})
    farms = sorted({n[0] for n in names})
    nodes = sorted({n[1] for n in names})
    metrics = sorted({n[2] for n in names})
    fi = {v: i for i, v in enumerate(farms)}
    ni = {v: i for i, v in enumerate(nodes)}
    mi = {v: i for i, v in enumerate(metrics)}
    idx = {sid: (fi[s.farm_id], ni[s.node_id], mi[s.metric]) for sid, s in meta.items()}
    dict_type = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema(
        [
            ("time", pa.timestamp("us", tz=tz)),
            ("farm", dict_type),
            ("node", dict_type),
            ("metric", dict_type),
            ("value", pa.float64()),
        ]
    )
    farm_dict, node_dict, metric_dict = (
        pa.array(farms, pa.string()),
        pa.array(nodes, pa.string()),
        pa.array(metrics, pa.string()),
    )
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        if series:
            q = sql.SQL(
                "SELECT (extract(epoch FROM time) * 1000000)::bigint, series_id, value FROM readings"
                " WHERE series_id = ANY(%s) AND time >= %s AND time < %s ORDER BY series_id, time"
            )
            with conn.transaction(), conn.cursor(name="agri_export_parquet") as cur:
                cur.itersize = PARQUET_BATCH
                cur.execute(q, (list(meta), start, end))
                while True:
                    rows = cur.fetchmany(PARQUET_BATCH)
                    if not rows:
                        break
                    t, sid, v = zip(*rows, strict=True)
                    codes = [idx[s] for s in sid]
                    f_i, n_i, m_i = zip(*codes, strict=True)
                    table = pa.Table.from_arrays(
                        [
                            pa.array(t, pa.int64()).cast(pa.timestamp("us", tz=tz)),
                            pa.DictionaryArray.from_arrays(pa.array(f_i, pa.int32()), farm_dict),
                            pa.DictionaryArray.from_arrays(pa.array(n_i, pa.int32()), node_dict),
                            pa.DictionaryArray.from_arrays(pa.array(m_i, pa.int32()), metric_dict),
                            pa.array(v, pa.float64()),
                        ],
                        schema=schema,
                    )
                    writer.write_table(table)
                    chunk = sink.take()
                    if chunk:
                        yield chunk
    finally:
        writer.close()
    tail = sink.take()
    if tail:
        yield tail
