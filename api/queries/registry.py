"""Registry reads: farms (with commissioners), nodes (with health), gateways, the metric catalog.

``farms`` restricts every function to the farms a caller may see (None: all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from api.queries import cursor as cursors
from api.queries.errors import NotFound
from api.queries.models import Commissioner, Farm, Gateway, MetricInfo, NodeStatus, Page

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


def list_nodes(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    farm: str | None = None,
    include_retired: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[NodeStatus]:
    allowed, params = _farm_filter(farms, "n.farm_id")
    conds: list[sql.Composable] = [allowed]
    if farm is not None:
        conds.append(sql.SQL("n.farm_id = %s"))
        params.append(farm)
    if not include_retired:
        conds.append(sql.SQL("n.retired_at IS NULL"))
    after = cursors.decode(cursor, 2)
    if after is not None:
        conds.append(sql.SQL("(n.farm_id, n.node_id) > (%s, %s)"))
        params += [str(after[0]), str(after[1])]
    q = sql.SQL("{} WHERE {} ORDER BY n.farm_id, n.node_id LIMIT %s").format(
        _NODE_SELECT, sql.SQL(" AND ").join(conds)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = [NodeStatus(**r) for r in cur.execute(q, [*params, limit + 1]).fetchall()]
    nxt = cursors.encode(rows[limit - 1].farm_id, rows[limit - 1].node_id) if len(rows) > limit else None
    return Page[NodeStatus](items=rows[:limit], next_cursor=nxt)


def get_node(conn: Conn, farm_id: str, node_id: str, *, farms: Sequence[str] | None = None) -> NodeStatus:
    if farms is not None and farm_id not in farms:
        raise NotFound(f"node {farm_id}/{node_id} not found", field="node")
    q = sql.SQL("{} WHERE n.farm_id = %s AND n.node_id = %s").format(_NODE_SELECT)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q, (farm_id, node_id)).fetchone()
    if row is None:
        raise NotFound(f"node {farm_id}/{node_id} not found", field="node")
    return NodeStatus(**row)


_GW_SELECT = sql.SQL(
    "SELECT farm_id, gateway_id, name, lat, lon, last_seen, meta, created_at, retired_at FROM gateways g"
)


def list_gateways(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    farm: str | None = None,
    include_retired: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Gateway]:
    allowed, params = _farm_filter(farms, "g.farm_id")
    conds: list[sql.Composable] = [allowed]
    if farm is not None:
        conds.append(sql.SQL("g.farm_id = %s"))
        params.append(farm)
    if not include_retired:
        conds.append(sql.SQL("g.retired_at IS NULL"))
    after = cursors.decode(cursor, 2)
    if after is not None:
        conds.append(sql.SQL("(g.farm_id, g.gateway_id) > (%s, %s)"))
        params += [str(after[0]), str(after[1])]
    q = sql.SQL("{} WHERE {} ORDER BY g.farm_id, g.gateway_id LIMIT %s").format(
        _GW_SELECT, sql.SQL(" AND ").join(conds)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = [Gateway(**r) for r in cur.execute(q, [*params, limit + 1]).fetchall()]
    nxt = cursors.encode(rows[limit - 1].farm_id, rows[limit - 1].gateway_id) if len(rows) > limit else None
    return Page[Gateway](items=rows[:limit], next_cursor=nxt)


def get_gateway(conn: Conn, farm_id: str, gateway_id: str, *, farms: Sequence[str] | None = None) -> Gateway:
    if farms is not None and farm_id not in farms:
        raise NotFound(f"gateway {farm_id}/{gateway_id} not found", field="gateway")
    q = sql.SQL("{} WHERE g.farm_id = %s AND g.gateway_id = %s").format(_GW_SELECT)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(q, (farm_id, gateway_id)).fetchone()
    if row is None:
        raise NotFound(f"gateway {farm_id}/{gateway_id} not found", field="gateway")
    return Gateway(**row)


def metrics(conn: Conn) -> list[MetricInfo]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT name, unit, lo, hi, kind, label_zh, label_en, decimals, aggregate"
            " FROM metrics ORDER BY name"
        ).fetchall()
    return [MetricInfo(**r) for r in rows]
