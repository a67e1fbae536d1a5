"""PostgreSQL binary COPY encoding of ``readings (time, series_id, value)`` rows. Pure.

One precompiled ``struct`` per row is several times cheaper than a generic per-value adapter, and
the writer's CPU is what limits ingest throughput (see docs/benchmarks.md).
Format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

PG_EPOCH_UNIX = 946_684_800  # 2000-01-01T00:00:00Z, the origin of binary timestamps
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
# field count, then (length, value) for timestamptz (int64 µs), int4 series id, float8 value
_ROW = struct.Struct("!hiqiiid")
ROW_SIZE = _ROW.size
COLUMNS = "(time, series_id, value)"

# timestamptz range PostgreSQL accepts (4713 BC .. 294276 AD), in Unix seconds, rounded inwards.
MIN_UNIX = -210_866_803_200.0
MAX_UNIX = 9_224_318_015_999.0


def pg_micros(t: float) -> int:
    """Unix seconds -> microseconds since the PostgreSQL epoch."""
    return round((t - PG_EPOCH_UNIX) * 1_000_000)


def encode(rows: Iterable[tuple[int, float, float]]) -> bytes:
    """Binary COPY stream (header + rows + trailer) for ``(series_id, unix_time, value)`` rows."""
    pack = _ROW.pack
    parts = [HEADER]
    parts.extend(pack(3, 8, round((t - PG_EPOCH_UNIX) * 1_000_000), 4, sid, 8, v) for sid, t, v in rows)
    parts.append(TRAILER)
    return b"".join(parts)


class _Reading(Protocol):
    metric: str
    t: float
    value: float


def encode_readings(
    items: Iterable[tuple[Mapping[str, int], Sequence[_Reading]]], *, by_series: bool = True
) -> tuple[bytes, int]:
    """Binary COPY stream of readings, each group with its metric -> series id map; (data, rows).

    The writer's hot loop: one pack per reading, one time conversion per distinct sample time.
    With ``by_series`` (the default) each group's rows are written series by series (ascending
    series id, time order kept within a series) instead of sample by sample: consecutive rows
    then land next to each other in the ``(series_id, time)`` unique index, which makes the
    server's index inserts cheaper (see docs/benchmarks.md). Callers that pass the groups in node
    order get a batch that is close to index order. Raises KeyError for a metric missing from its
    group's map.
    """
    pack = _ROW.pack
    parts = [HEADER]
    append = parts.append
    n = 0
    last_t = math.nan
    us = 0
    for sids, readings in items:
        rows: dict[int, list[bytes]] = {}
        for r in readings:
            t = r.t
            if t != last_t:
                us = round((t - PG_EPOCH_UNIX) * 1_000_000)
                last_t = t
            sid = sids[r.metric]
            row = pack(3, 8, us, 4, sid, 8, r.value)
            if not by_series:
                append(row)
            elif sid in rows:
                rows[sid].append(row)
            else:
                rows[sid] = [row]
        for sid in sorted(rows):
            parts.extend(rows[sid])
        n += len(readings)
    append(TRAILER)
    return b"".join(parts), n


def decode(data: bytes) -> list[tuple[int, float, float]]:
    """Inverse of :func:`encode` (tests and tools)."""
    if not data.startswith(HEADER) or not data.endswith(TRAILER):
        raise ValueError("not a readings binary COPY stream")
    body = data[len(HEADER) : -len(TRAILER)]
    if len(body) % ROW_SIZE:
        raise ValueError("truncated row")
    out = []
    for off in range(0, len(body), ROW_SIZE):
        _n, _l1, us, _l2, sid, _l3, v = _ROW.unpack_from(body, off)
        out.append((sid, us / 1_000_000 + PG_EPOCH_UNIX, v))
    return out
