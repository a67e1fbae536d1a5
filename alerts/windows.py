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
    got: dict[int, list[tuple[float, float]]] = {sid: [] for sid, _, _ in need}
    if need:
        for sid, tt, v in conn.execute(
            "SELECT u.sid, extract(epoch FROM r.time)::float8, r.value"
            " FROM unnest(%b::int[], %b::float8[], %b::float8[]) AS u(sid, first, span)"
            " CROSS JOIN LATERAL (SELECT time, value FROM readings WHERE series_id = u.sid"
            " AND time < to_timestamp(u.first) AND time >= to_timestamp(u.first - u.span)"
            " ORDER BY time DESC LIMIT %s) r",
            ([n[0] for n in need], [n[1] for n in need], [n[2] for n in need], limit),
        ).fetchall():
            got[int(sid)].append((float(tt), float(v)))
    out: dict[int, Arrays] = {}
    for sid, pairs in got.items():
        pairs.reverse()
        out[sid] = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    return out


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
