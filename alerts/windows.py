"""Day-scale history of the series that derived indices need (``kernel.rules.model.WINDOWED``).

A series' window is read back from the stored readings when the series is first seen (so nothing
extra is persisted and a restarted service has the same windows) and then extended with each
evaluated reading and trimmed to its span. The QC history of ``alerts.analysis`` is read back the
same way (:func:`read_back`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from alerts.engine import Block

Arrays = tuple[np.ndarray, np.ndarray]


def read_back(
    conn: psycopg.Connection[Any], need: list[tuple[int, float, float]], limit: int | None = None
) -> dict[int, Arrays]:
    """Stored readings of each ``(series id, before, span)`` with ``before - span <= time < before``,
    oldest first (the newest ``limit`` when given); every series asked for gets an entry."""
    out: dict[int, Arrays] = {sid: (np.empty(0), np.empty(0)) for sid, _, _ in need}
    if need:
        with conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT u.sid, a.ts, a.vs FROM unnest(%b::int[], %b::float8[], %b::float8[])"
                " AS u(sid, first, span) CROSS JOIN LATERAL"
                " (SELECT string_agg(timestamptz_send(time), ''::bytea ORDER BY time) AS ts,"
                " string_agg(float8send(value), ''::bytea ORDER BY time) AS vs"
                " FROM (SELECT time, value FROM readings WHERE series_id = u.sid"
                " AND time < to_timestamp(u.first) AND time >= to_timestamp(u.first - u.span)"
                " ORDER BY time DESC LIMIT %s) r) a WHERE a.ts IS NOT NULL",
                ([n[0] for n in need], [n[1] for n in need], [n[2] for n in need], limit),
            )
            for sid, ts, vs in cur:
                out[int(sid)] = from_send(ts, vs)
    return out


_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (PostgreSQL's timestamp origin) in Unix microseconds


def from_send(ts: bytes, vs: bytes) -> Arrays:
    """Readings from ``string_agg`` of ``timestamptz_send(time)`` and ``float8send(value)`` (big-endian
    int8 microseconds since 2000, float8) as float64 seconds and values, in time order. Seconds are
    the exact microseconds divided once: the nearest float, as ``extract(epoch ...)::float8`` gives."""
    t = (np.frombuffer(ts, dtype=">i8").astype(np.int64) + _PG_EPOCH_US) / 1e6
    v = np.frombuffer(vs, dtype=">f8").astype(np.float64)
    if len(t) > 1 and not bool((t[1:] > t[:-1]).all()):  # a scan's order is not promised
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    return t, v


@dataclass
class Windows:
    data: dict[int, Arrays] = field(default_factory=dict)  # series id -> (times, values)
    by_node: dict[tuple[int, str], int] = field(default_factory=dict)  # (node pk, metric) -> series

    def update(
        self, conn: psycopg.Connection[Any], blocks: list[Block], span_for: Callable[[Block], float]
    ) -> None:
        """Extend the windows with ``blocks`` (one series each, time order); ``span_for(block)`` is
        the history its series needs (0: none)."""
        todo = [(b, span) for b in blocks if len(b) and (span := span_for(b)) > 0]
        need = [(b.series_id, float(b.t[0]), span) for b, span in todo if b.series_id not in self.data]
        self.data.update(read_back(conn, need))
        for b, span in todo:
            self.by_node[(b.node_pk, b.metric)] = b.series_id
            t, v = self.data[b.series_id]
            t = np.concatenate([t, b.t])
            v = np.concatenate([v, b.v])
            # the span before this step's first reading: each of its readings has its whole span
            # (a backlog may cover more than the span); the next step trims the rest
            keep = t > b.t[0] - span
            self.data[b.series_id] = (t[keep], v[keep])

    def of(self, node_pk: int, metric: str) -> Arrays | None:
        sid = self.by_node.get((node_pk, metric))
        return None if sid is None else self.data.get(sid)
