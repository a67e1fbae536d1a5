"""Registry queries: farms, nodes and series. Pure SQL functions on a psycopg connection.

Used by provisioning (`agri node add`), ingest (series lookup / registration), the API and tests.
They know nothing about HTTP or MQTT; validation errors are ``ValueError`` with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from kernel.catalog import CATALOG, FARM_KINDS
from kernel.protocol import check_id


@dataclass(frozen=True)
class Farm:
    id: str
    name: str
    kind: str
    lat: float | None
    lon: float | None
    elevation_m: float | None
    tz: str


@dataclass(frozen=True)
class Node:
    pk: int
    farm_id: str
    node_id: str
    name: str | None
    profile: str | None
    config: dict[str, Any]


def upsert_farm(
    conn: psycopg.Connection[Any],
    farm_id: str,
    name: str,
    kind: str,
    *,
    lat: float | None = None,
    lon: float | None = None,
    elevation_m: float | None = None,
    tz: str = "Asia/Shanghai",
) -> Farm:
    check_id("farm", farm_id)
    if kind not in FARM_KINDS:
        raise ValueError(f"farm kind {kind!r} must be one of {', '.join(FARM_KINDS)}")
    if lat is not None and not -90 <= lat <= 90:
        raise ValueError(f"latitude {lat} outside [-90, 90]")
    if lon is not None and not -180 <= lon <= 180:
        raise ValueError(f"longitude {lon} outside [-180, 180]")
    row = conn.execute(
        "INSERT INTO farms (id, name, kind, lat, lon, elevation_m, tz) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,"
        " lat = coalesce(EXCLUDED.lat, farms.lat), lon = coalesce(EXCLUDED.lon, farms.lon),"
        " elevation_m = coalesce(EXCLUDED.elevation_m, farms.elevation_m), tz = EXCLUDED.tz"
        " RETURNING id, name, kind, lat, lon, elevation_m, tz",
        (farm_id, name, kind, lat, lon, elevation_m, tz),
    ).fetchone()
    assert row is not None
    return Farm(*row)


def get_farm(conn: psycopg.Connection[Any], farm_id: str) -> Farm | None:
    row = conn.execute(
        "SELECT id, name, kind, lat, lon, elevation_m, tz FROM farms WHERE id = %s", (farm_id,)
    ).fetchone()
    return Farm(*row) if row else None


def upsert_node(
    conn: psycopg.Connection[Any],
    farm_id: str,
    node_id: str,
    *,
    name: str | None = None,
    profile: str | None = None,
    config: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
) -> Node:
    """Register a node (its farm must exist) and, optionally, the series of the given metrics."""
    check_id("node", node_id)
    if get_farm(conn, farm_id) is None:
        raise ValueError(f"farm {farm_id!r} is not registered")
    row = conn.execute(
        "INSERT INTO nodes (farm_id, node_id, name, profile, config) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (farm_id, node_id) DO UPDATE SET name = coalesce(EXCLUDED.name, nodes.name),"
        " profile = coalesce(EXCLUDED.profile, nodes.profile),"
        " config = CASE WHEN EXCLUDED.config = '{}'::jsonb THEN nodes.config ELSE EXCLUDED.config END"
        " RETURNING id, farm_id, node_id, name, profile, config",
        (farm_id, node_id, name, profile, Jsonb(config or {})),
    ).fetchone()
    assert row is not None
    node = Node(*row)
    for metric in metrics or []:
        ensure_series(conn, node.pk, metric)
    return node


def get_node(conn: psycopg.Connection[Any], farm_id: str, node_id: str) -> Node | None:
    row = conn.execute(
        "SELECT id, farm_id, node_id, name, profile, config FROM nodes WHERE farm_id = %s AND node_id = %s",
        (farm_id, node_id),
    ).fetchone()
    return Node(*row) if row else None


def ensure_series(conn: psycopg.Connection[Any], node_pk: int, metric: str) -> int:
    """Id of the (node, metric) series, creating it if the catalog knows the metric."""
    if metric not in CATALOG:
        raise ValueError(f"metric {metric!r} is not in the catalog")
    row = conn.execute(
        "INSERT INTO series (node_id, metric) VALUES (%s, %s) ON CONFLICT (node_id, metric)"
        " DO UPDATE SET metric = EXCLUDED.metric RETURNING id",
        (node_pk, metric),
    ).fetchone()
    assert row is not None
    return int(row[0])


def series_map(conn: psycopg.Connection[Any]) -> dict[tuple[str, str, str], int]:
    """All series ids keyed by (farm, node, metric) — the ingest writer's lookup table."""
    rows = conn.execute(
        "SELECT n.farm_id, n.node_id, s.metric, s.id FROM series s JOIN nodes n ON n.id = s.node_id"
    ).fetchall()
    return {(f, n, m): int(i) for f, n, m, i in rows}


def node_map(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], int]:
    """All node primary keys keyed by (farm, node)."""
    rows = conn.execute("SELECT farm_id, node_id, id FROM nodes").fetchall()
    return {(f, n): int(i) for f, n, i in rows}


def farm_nodes(conn: psycopg.Connection[Any], farm_id: str) -> list[str]:
    """Node ids of a farm that are not retired, sorted."""
    rows = conn.execute(
        "SELECT node_id FROM nodes WHERE farm_id = %s AND retired_at IS NULL ORDER BY node_id", (farm_id,)
    ).fetchall()
    return [r[0] for r in rows]


def set_node_firmware(
    conn: psycopg.Connection[Any], farm_id: str, node_id: str, state: str, version: str | None = None
) -> None:
    """Record an update outcome (and the version the node now runs, when known)."""
    conn.execute(
        "UPDATE nodes SET ota_state = %s, ota_at = now(), firmware_version = COALESCE(%s, firmware_version)"
        " WHERE farm_id = %s AND node_id = %s",
        (state, version, farm_id, node_id),
    )


#: What a gateway's health message may record in ``gateways.meta['health']`` (and nothing else).
HEALTH_FIELDS = ("state", "uplink", "depth", "oldest_age_s", "last_ack_age_s", "drops", "dead_letters")


def record_gateway_health(
    conn: psycopg.Connection[Any], farm_id: str, gateway_id: str, health: dict[str, Any], at: float
) -> bool:
    """Keep a gateway's latest health (its spool depth, drops, uplink) and, when it is online, its
    last-seen time; False if the registry has no such gateway (nothing is created from a message).

    Only :data:`HEALTH_FIELDS` with plain values are kept, so a message cannot grow the row.
    """
    kept = {
        k: v
        for k in HEALTH_FIELDS
        if isinstance(v := health.get(k), int | float | str) and not isinstance(v, bool) and len(str(v)) <= 40
    }
    online = health.get("state") != "offline"
    cur = conn.execute(
        "UPDATE gateways SET meta = meta || jsonb_build_object('health', %s::jsonb, 'health_at', %s::float8),"
        " last_seen = CASE WHEN %s THEN greatest(last_seen, to_timestamp(%s)) ELSE last_seen END"
        " WHERE farm_id = %s AND gateway_id = %s AND retired_at IS NULL",
        (Jsonb(kept), at, online, at, farm_id, gateway_id),
    )
    return cur.rowcount > 0
