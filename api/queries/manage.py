"""Registry changes: create, update and retire farms, nodes and gateways. No HTTP here.

Retiring keeps the rows (their readings stay queryable) and hides them from default listings.
A farm's time-zone change rebuilds its daily rollups (store.rollup.mark_farm_days) in the same
transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import psycopg
from psycopg import errors, sql
from psycopg.types.json import Jsonb

from api.queries import registry
from api.queries.errors import Conflict, InvalidArgument, NotFound
from api.queries.models import Farm, Gateway, NodeStatus
from kernel import protocol
from kernel.catalog import CATALOG, FARM_KINDS
from store import rollup

Conn = psycopg.Connection[Any]

_ZONES: frozenset[str] | None = None


def check_tz(tz: str) -> str:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if tz not in _ZONES:
        raise InvalidArgument(f"unknown time zone {tz!r} (an IANA name such as Asia/Shanghai)", field="tz")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {tz!r}", field="tz") from None
    return tz


def check_id(kind: str, value: str) -> str:
    """:func:`kernel.protocol.check_id` as an API error naming the field."""
    try:
        return protocol.check_id(kind, value)
    except ValueError as exc:
        raise InvalidArgument(str(exc), field=kind) from None


def check_location(lat: float | None, lon: float | None) -> None:
    if lat is not None and not (math.isfinite(lat) and -90 <= lat <= 90):
        raise InvalidArgument(f"latitude {lat} outside [-90, 90]", field="lat")
    if lon is not None and not (math.isfinite(lon) and -180 <= lon <= 180):
        raise InvalidArgument(f"longitude {lon} outside [-180, 180]", field="lon")


def _ring(ring: Any, where: str) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise InvalidArgument(f"{where}: a linear ring needs at least 4 positions", field="boundary")
    for i, p in enumerate(ring):
        ok = (
            isinstance(p, list)
            and len(p) in (2, 3)
            and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in p)
        )
        if not ok:
            raise InvalidArgument(f"{where}[{i}]: a position is [lon, lat]", field="boundary")
        if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
            raise InvalidArgument(f"{where}[{i}]: [lon, lat] out of range", field="boundary")
    if ring[0][:2] != ring[-1][:2]:
        raise InvalidArgument(f"{where}: a linear ring must end where it starts", field="boundary")


def check_boundary(geo: dict[str, Any] | None) -> dict[str, Any] | None:
    """A GeoJSON Polygon or MultiPolygon (RFC 7946, WGS 84) or None."""
    if geo is None:
        return None
    kind = geo.get("type")
    coords = geo.get("coordinates")
    if kind == "Polygon":
        polys = [coords]
    elif kind == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise InvalidArgument("MultiPolygon needs at least one polygon", field="boundary")
        polys = coords
    else:
        raise InvalidArgument("boundary must be a GeoJSON Polygon or MultiPolygon", field="boundary")
    for k, poly in enumerate(polys):
        if not isinstance(poly, list) or not poly:
            raise InvalidArgument(f"polygon {k}: needs at least one ring", field="boundary")
        for j, ring in enumerate(poly):
            _ring(ring, f"polygon {k} ring {j}")
    return {"type": kind, "coordinates": coords}


def _known(changes: dict[str, Any], fields: Sequence[str]) -> None:
    """Refuse a field an update does not know; check lat/lon where given."""
    bad = [k for k in changes if k not in fields]
    if bad:
        raise InvalidArgument(f"unknown field {bad[0]!r}", field=bad[0])
    check_location(changes.get("lat"), changes.get("lon"))


def _sets(changes: dict[str, Any]) -> sql.Composable:
    """``col = %s, ...`` for the changed columns (their values: ``changes.values()``)."""
    return sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)


# --- farms ---------------------------------------------------------------------------------------


def create_farm(
    conn: Conn,
    farm_id: str,
    name: str,
    kind: str,
    *,
    lat: float | None = None,
    lon: float | None = None,
    elevation_m: float | None = None,
    tz: str = "Asia/Shanghai",
    boundary: dict[str, Any] | None = None,
) -> Farm:
    check_id("farm", farm_id)
    if kind not in FARM_KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(FARM_KINDS)}", field="kind")
    check_location(lat, lon)
    check_tz(tz)
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO farms (id, name, kind, lat, lon, elevation_m, tz, boundary)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    farm_id,
                    name,
                    kind,
                    lat,
                    lon,
                    elevation_m,
                    tz,
                    Jsonb(check_boundary(boundary)) if boundary else None,
                ),
            )
    except errors.UniqueViolation:
        raise Conflict(f"farm {farm_id!r} exists already", field="id") from None
    return registry.get_farm(conn, farm_id)


FARM_FIELDS = ("name", "kind", "lat", "lon", "elevation_m", "tz", "boundary")


def update_farm(conn: Conn, farm_id: str, changes: dict[str, Any]) -> Farm:
    """Change the given fields (keys of ``FARM_FIELDS``; a None value clears an optional one)."""
    _known(changes, FARM_FIELDS)
    if "kind" in changes and changes["kind"] not in FARM_KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(FARM_KINDS)}", field="kind")
    for req in ("name", "kind", "tz"):
        if req in changes and changes[req] is None:
            raise InvalidArgument(f"{req} cannot be cleared", field=req)
    if changes.get("tz") is not None:
        check_tz(changes["tz"])
    if "boundary" in changes:
        b = check_boundary(changes["boundary"])
        changes = {**changes, "boundary": Jsonb(b) if b is not None else None}
    with conn.transaction():
        row = conn.execute("SELECT tz FROM farms WHERE id = %s FOR UPDATE", (farm_id,)).fetchone()
        if row is None:
            raise NotFound(f"farm {farm_id!r} not found", field="farm")
        if changes:
            conn.execute(
                sql.SQL("UPDATE farms SET {} WHERE id = %s").format(_sets(changes)),
                [*changes.values(), farm_id],
            )
        if changes.get("tz") not in (None, row[0]):
            rollup.mark_farm_days(conn, farm_id)
    return registry.get_farm(conn, farm_id)


def retire_farm(conn: Conn, farm_id: str) -> Farm:
    with conn.transaction():
        row = conn.execute(
            "UPDATE farms SET retired_at = coalesce(retired_at, now()) WHERE id = %s RETURNING id", (farm_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"farm {farm_id!r} not found", field="farm")
        conn.execute(
            "UPDATE nodes SET retired_at = coalesce(retired_at, now()) WHERE farm_id = %s", (farm_id,)
        )
        conn.execute(
            "UPDATE gateways SET retired_at = coalesce(retired_at, now()) WHERE farm_id = %s", (farm_id,)
        )
    return registry.get_farm(conn, farm_id)


def _live_farm(conn: Conn, farm_id: str) -> None:
    row = conn.execute("SELECT retired_at FROM farms WHERE id = %s", (farm_id,)).fetchone()
    if row is None:
        raise NotFound(f"farm {farm_id!r} not found", field="farm")
    if row[0] is not None:
        raise Conflict(f"farm {farm_id!r} is retired", field="farm")


# --- nodes ---------------------------------------------------------------------------------------


def check_metrics(metrics: Sequence[str]) -> list[str]:
    bad = [m for m in metrics if m not in CATALOG]
    if bad:
        raise InvalidArgument(f"unknown metric {bad[0]!r}", field="metrics")
    return sorted(set(metrics))


def create_node(
    conn: Conn,
    farm_id: str,
    node_id: str,
    *,
    name: str | None = None,
    profile: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    metrics: Sequence[str] = (),
    firmware_version: str | None = None,
) -> NodeStatus:
    check_id("node", node_id)
    check_location(lat, lon)
    if profile is not None and profile not in FARM_KINDS:
        raise InvalidArgument(f"profile must be one of {', '.join(FARM_KINDS)}", field="profile")
    ms = check_metrics(metrics)
    with conn.transaction():
        _live_farm(conn, farm_id)
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO nodes (farm_id, node_id, name, profile, lat, lon, firmware_version)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (farm_id, node_id, name, profile, lat, lon, firmware_version),
                ).fetchone()
        except errors.UniqueViolation:
            raise Conflict(f"node {farm_id}/{node_id} exists already", field="node_id") from None
        assert row is not None
        _add_series(conn, int(row[0]), ms)
    return registry.get_node(conn, farm_id, node_id)


def _add_series(conn: Conn, node_pk: int, metrics: Sequence[str]) -> None:
    if metrics:
        conn.execute(
            "INSERT INTO series (node_id, metric) SELECT %s, m FROM unnest(%s::text[]) AS m ORDER BY m"
            " ON CONFLICT (node_id, metric) DO NOTHING",
            (node_pk, list(metrics)),
        )


NODE_FIELDS = ("name", "profile", "lat", "lon", "firmware_version", "metrics")


def update_node(conn: Conn, farm_id: str, node_id: str, changes: dict[str, Any]) -> NodeStatus:
    """Change fields; ``metrics`` adds series (existing series and their readings are kept)."""
    _known(changes, NODE_FIELDS)
    if changes.get("profile") is not None and changes["profile"] not in FARM_KINDS:
        raise InvalidArgument(f"profile must be one of {', '.join(FARM_KINDS)}", field="profile")
    ms = check_metrics(changes.pop("metrics", None) or [])
    with conn.transaction():
        row = conn.execute(
            "SELECT id FROM nodes WHERE farm_id = %s AND node_id = %s FOR UPDATE", (farm_id, node_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"node {farm_id}/{node_id} not found", field="node")
        if changes:
            conn.execute(
                sql.SQL("UPDATE nodes SET {} WHERE id = %s").format(_sets(changes)),
                [*changes.values(), row[0]],
            )
        _add_series(conn, int(row[0]), ms)
    return registry.get_node(conn, farm_id, node_id)


def retire_node(conn: Conn, farm_id: str, node_id: str) -> NodeStatus:
    row = conn.execute(
        "UPDATE nodes SET retired_at = coalesce(retired_at, now()) WHERE farm_id = %s AND node_id = %s"
        " RETURNING id",
        (farm_id, node_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"node {farm_id}/{node_id} not found", field="node")
    return registry.get_node(conn, farm_id, node_id)


# --- gateways ------------------------------------------------------------------------------------


def create_gateway(
    conn: Conn,
    farm_id: str,
    gateway_id: str,
    *,
    name: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> Gateway:
    check_id("gateway", gateway_id)
    check_location(lat, lon)
    with conn.transaction():
        _live_farm(conn, farm_id)
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO gateways (farm_id, gateway_id, name, lat, lon) VALUES (%s, %s, %s, %s, %s)",
                    (farm_id, gateway_id, name, lat, lon),
                )
        except errors.UniqueViolation:
            raise Conflict(f"gateway {farm_id}/{gateway_id} exists already", field="gateway_id") from None
    return registry.get_gateway(conn, farm_id, gateway_id)


GATEWAY_FIELDS = ("name", "lat", "lon")


def update_gateway(conn: Conn, farm_id: str, gateway_id: str, changes: dict[str, Any]) -> Gateway:
    _known(changes, GATEWAY_FIELDS)
    if changes:
        cur = conn.execute(
            sql.SQL("UPDATE gateways SET {} WHERE farm_id = %s AND gateway_id = %s").format(_sets(changes)),
            [*changes.values(), farm_id, gateway_id],
        )
        if cur.rowcount == 0:
            raise NotFound(f"gateway {farm_id}/{gateway_id} not found", field="gateway")
    return registry.get_gateway(conn, farm_id, gateway_id)


def retire_gateway(conn: Conn, farm_id: str, gateway_id: str) -> Gateway:
    cur = conn.execute(
        "UPDATE gateways SET retired_at = coalesce(retired_at, now()) WHERE farm_id = %s AND gateway_id = %s",
        (farm_id, gateway_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"gateway {farm_id}/{gateway_id} not found", field="gateway")
    return registry.get_gateway(conn, farm_id, gateway_id)
