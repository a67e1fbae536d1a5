"""Registry reads: farms (with commissioners), nodes (with health), gateways, the metric catalog.

``farms`` restricts every function to the farms a caller may see (None: all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, TypeVar, Unpack

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel

from api.queries import cursor as cursors
from api.queries.errors import NotFound
from api.queries.models import Commissioner, Farm, Gateway, MetricInfo, NodeStatus, Page

_Item = TypeVar("_Item", bound=BaseModel)

Conn = psycopg.Connection[Any]

# The newest reading of series `{sid}` as `{alias}.time`, `{alias}.value`: from the newest hourly
# rollup row (its last reading), unless a newer or equal hour is still marked dirty, in which case
# only that hour's raw rows are probed. Two primary-key probes per series, plus one bounded index
# probe for the few series written since the refresher's last round (see store.rollup).
LATEST_OF = sql.SQL(
    "LEFT JOIN LATERAL (SELECT coalesce(rw.time, h.last_time) AS time,"
    " CASE WHEN rw.time IS NOT NULL THEN rw.value ELSE h.last_value END AS value FROM (SELECT 1) AS one"
    " LEFT JOIN LATERAL (SELECT hh.hour, hh.last_time, hh.last_value FROM readings_hourly hh"
    " WHERE hh.series_id = {sid} ORDER BY hh.hour DESC LIMIT 1) h ON true"
    " LEFT JOIN LATERAL (SELECT dd.hour FROM rollup_dirty dd WHERE dd.series_id = {sid}"
    " ORDER BY dd.hour DESC LIMIT 1) d ON true"
    " LEFT JOIN LATERAL (SELECT r.time, r.value FROM readings r WHERE d.hour IS NOT NULL"
    " AND (h.hour IS NULL OR d.hour >= h.hour) AND r.series_id = {sid} AND r.time >= d.hour"
    " ORDER BY r.time DESC LIMIT 1) rw ON true) {alias} ON true"
)


def _farm_filter(farms: Sequence[str] | None, column: str = "f.id") -> tuple[sql.Composable, list[Any]]:
    if farms is None:
        return sql.SQL("true"), []
    return sql.SQL("{} = ANY(%s)").format(sql.SQL(column)), [list(farms)]


def _farm_rows(conn: Conn, where: sql.Composable, params: list[Any], limit: int | None) -> list[Farm]:
    q = sql.SQL(
        "SELECT f.id, f.name, f.kind, f.lat, f.lon, f.elevation_m, f.tz, f.boundary, f.created_at,"
        " f.retired_at,"
        " (SELECT count(*) FROM nodes n WHERE n.farm_id = f.id AND n.retired_at IS NULL) AS nodes,"
        " coalesce((SELECT json_agg(json_build_object('id', c.id, 'name', c.name,"
        " 'min_severity', fc.min_severity) ORDER BY c.id) FROM farm_commissioners fc"
        " JOIN commissioners c ON c.id = fc.commissioner_id WHERE fc.farm_id = f.id), '[]') AS commissioners"
        " FROM farms f WHERE {} ORDER BY f.id {}"
    ).format(where, sql.SQL("LIMIT %s") if limit is not None else sql.SQL(""))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(q, [*params, *([limit] if limit is not None else [])]).fetchall()
    out = []
    for r in rows:
        r["commissioners"] = [Commissioner(**c) for c in r["commissioners"]]
        out.append(Farm(**r))
    return out


def list_farms(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    kind: str | None = None,
    include_retired: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Farm]:
    allowed, params = _farm_filter(farms)
    conds: list[sql.Composable] = [allowed]
    if kind is not None:
        conds.append(sql.SQL("f.kind = %s"))
        params.append(kind)
    if not include_retired:
        conds.append(sql.SQL("f.retired_at IS NULL"))
    after = cursors.decode(cursor, 1)
    if after is not None:
        conds.append(sql.SQL("f.id > %s"))
        params.append(str(after[0]))
    rows = _farm_rows(conn, sql.SQL(" AND ").join(conds), params, limit + 1)
    nxt = cursors.encode(rows[limit - 1].id) if len(rows) > limit else None
    return Page[Farm](items=rows[:limit], next_cursor=nxt)


def get_farm(conn: Conn, farm_id: str, *, farms: Sequence[str] | None = None) -> Farm:
    if farms is not None and farm_id not in farms:
        raise NotFound(f"farm {farm_id!r} not found", field="farm")
    rows = _farm_rows(conn, sql.SQL("f.id = %s"), [farm_id], None)
    if not rows:
        raise NotFound(f"farm {farm_id!r} not found", field="farm")
    return rows[0]


_NODE_SELECT = sql.SQL(
    "SELECT n.farm_id, n.node_id, n.name, n.profile, n.lat, n.lon, n.firmware_version, n.last_seen,"
    " n.last_seq, n.msgs_received, n.created_at, n.retired_at, c.completeness,"
    " coalesce((SELECT array_agg(s.metric ORDER BY s.metric) FROM series s WHERE s.node_id = n.id),"
    " '{{}}') AS metrics, bat.value AS battery_v, rssi.value AS rssi_dbm"
    " FROM nodes n JOIN node_completeness c ON c.node_pk = n.id"
    " LEFT JOIN series sb ON sb.node_id = n.id AND sb.metric = 'bat_v'"
    " LEFT JOIN series sr ON sr.node_id = n.id AND sr.metric = 'rssi_dbm'"
    " {bat} {rssi}"
).format(
    bat=LATEST_OF.format(sid=sql.SQL("sb.id"), alias=sql.Identifier("bat")),
    rssi=LATEST_OF.format(sid=sql.SQL("sr.id"), alias=sql.Identifier("rssi")),
)


class Listing(TypedDict, total=False):
    """A page of nodes or gateways: of one farm or all (``farms``: those a token is limited to)."""

    farms: Sequence[str] | None
    farm: str | None
    include_retired: bool
    limit: int
    cursor: str | None


def _list_page(
    conn: Conn, select: sql.Composable, alias: str, key: str, model: type[_Item], listing: Listing
) -> Page[_Item]:
    """One page of a farm's nodes or gateways (``alias``: the table alias; ``key``: the id column),
    ordered by (farm, id), resuming after ``cursor``."""
    farm, limit = listing.get("farm"), listing.get("limit", 100)
    farm_col, key_col = sql.Identifier(alias, "farm_id"), sql.Identifier(alias, key)
    allowed, params = _farm_filter(listing.get("farms"), f"{alias}.farm_id")
    conds: list[sql.Composable] = [allowed]
    if farm is not None:
        conds.append(sql.SQL("{} = %s").format(farm_col))
        params.append(farm)
    if not listing.get("include_retired", False):
        conds.append(sql.SQL("{} IS NULL").format(sql.Identifier(alias, "retired_at")))
    after = cursors.decode(listing.get("cursor"), 2)
    if after is not None:
        conds.append(sql.SQL("({}, {}) > (%s, %s)").format(farm_col, key_col))
        params += [str(after[0]), str(after[1])]
    q = sql.SQL("{} WHERE {} ORDER BY {}, {} LIMIT %s").format(
        select, sql.SQL(" AND ").join(conds), farm_col, key_col
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = [model(**r) for r in cur.execute(q, [*params, limit + 1]).fetchall()]
    last = rows[limit - 1] if len(rows) > limit else None
    nxt = cursors.encode(*(getattr(last, k) for k in ("farm_id", key))) if last is not None else None
    return Page[model](items=rows[:limit], next_cursor=nxt)  # type: ignore[valid-type]


def _get_one(
    conn: Conn,
    select: sql.Composable,
    alias: str,
    key: str,
    model: type[_Item],
    what: str,
    farm_id: str,
    item_id: str,
    farms: Sequence[str] | None,
) -> _Item:
    """One node or gateway; NotFound (never another farm's) for a farm the caller may not see."""
    if farms is not None and farm_id not in farms:
        raise NotFound(f"{what} {farm_id}/{item_id} not found", field=what)
    q = sql.SQL("{} WHERE {} = %s AND {} = %s").format(
        select, sql.Identifier(alias, "farm_id"), sql.Identifier(alias, key)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q, (farm_id, item_id)).fetchone()
    if row is None:
        raise NotFound(f"{what} {farm_id}/{item_id} not found", field=what)
    return model(**row)


def list_nodes(conn: Conn, **listing: Unpack[Listing]) -> Page[NodeStatus]:
    return _list_page(conn, _NODE_SELECT, "n", "node_id", NodeStatus, listing)


def get_node(conn: Conn, farm_id: str, node_id: str, *, farms: Sequence[str] | None = None) -> NodeStatus:
    return _get_one(conn, _NODE_SELECT, "n", "node_id", NodeStatus, "node", farm_id, node_id, farms)


_GW_SELECT = sql.SQL(
    "SELECT farm_id, gateway_id, name, lat, lon, last_seen, meta, created_at, retired_at FROM gateways g"
)


def list_gateways(conn: Conn, **listing: Unpack[Listing]) -> Page[Gateway]:
    return _list_page(conn, _GW_SELECT, "g", "gateway_id", Gateway, listing)


def get_gateway(conn: Conn, farm_id: str, gateway_id: str, *, farms: Sequence[str] | None = None) -> Gateway:
    return _get_one(conn, _GW_SELECT, "g", "gateway_id", Gateway, "gateway", farm_id, gateway_id, farms)


def metrics(conn: Conn) -> list[MetricInfo]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT name, unit, lo, hi, kind, label_zh, label_en, decimals, aggregate"
            " FROM metrics ORDER BY name"
        ).fetchall()
    return [MetricInfo(**r) for r in rows]
