"""Helpers for the API tests: registry rows, readings written with their rollup marks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from store import rollup
from store.registry import ensure_series, upsert_farm, upsert_node


def farm_with_series(
    conn: psycopg.Connection[Any], farm: str, tz: str, node: str = "n-1", metrics: Sequence[str] = ("air_t",)
) -> dict[str, int]:
    """A farm (orchard) in ``tz`` with one node and the given metrics; metric -> series id."""
    upsert_farm(conn, farm, farm.title(), "orchard", tz=tz, lat=30.8, lon=108.4)
    n = upsert_node(conn, farm, node)
    return {m: ensure_series(conn, n.pk, m) for m in metrics}


def put(conn: psycopg.Connection[Any], sid: int, rows: Sequence[tuple[datetime | float, float]]) -> None:
    """Insert readings (skipping duplicates) and mark their hours, in one transaction."""
    ts = [t if isinstance(t, datetime) else datetime.fromtimestamp(t).astimezone() for t, _ in rows]
    with conn.transaction():
        conn.execute(
            "INSERT INTO readings (time, series_id, value) SELECT t, %s, v"
            " FROM unnest(%s::timestamptz[], %s::float8[]) AS x(t, v) ON CONFLICT DO NOTHING",
            (sid, ts, [v for _, v in rows]),
        )
        rollup.mark_dirty(conn, rollup.hour_keys((sid, t.timestamp()) for t in ts))
