"""Plausible farm data for the dashboard's tests, screenshots and benchmark, generated in the server.

Farms of every kind around Wanzhou with located nodes, a boundary polygon and a gateway; each node's
readings follow a daily cycle with noise (``generate_series`` in SQL, so 30 days x 200 nodes of
1-minute data load at the database's own speed), one node silent for the last two days, a gap of
a few hours, and the hourly/daily rollups refreshed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from analytics.imagery.colour import DISPLAY_RANGE, colormap
from sky.render import encode_png
from store import rollup
from store import sky as store_sky
from store.registry import ensure_series, upsert_farm, upsert_node

Conn = psycopg.Connection[Any]

# metric -> (base, daily amplitude, noise, low clamp, high clamp); the cycle peaks at 14:00 local.
SHAPES: dict[str, tuple[float, float, float, float, float]] = {
    "air_t": (18.0, 6.0, 0.4, -40, 60),
    "air_rh": (72.0, -15.0, 2.0, 0, 100),
    "soil_vwc": (28.0, -1.0, 0.2, 0, 100),
    "soil_t": (17.0, 2.0, 0.1, -30, 60),
    "leaf_wet": (35.0, -40.0, 8.0, 0, 100),
    "wind_ms": (2.0, 1.0, 0.4, 0, 75),
    "solar_wm2": (250.0, 450.0, 20.0, 0, 1500),
    "rain_mm": (0.0, 0.0, 0.0, 0, 200),
    "nh3_ppm": (12.0, 4.0, 1.0, 0, 500),
    "co2_ppm": (2200.0, 500.0, 80.0, 0, 40000),
    "h2s_ppm": (2.0, 0.8, 0.2, 0, 200),
    "water_l": (2.0, 1.5, 0.3, 0, 10000),
    "do_mgl": (6.0, 2.5, 0.2, 0, 25),
    "ph": (7.6, 0.3, 0.03, 0, 14),
    "water_t": (22.0, 1.5, 0.1, -5, 50),
    "bat_v": (3.95, 0.03, 0.01, 0, 15),
    "rssi_dbm": (-75.0, 3.0, 3.0, -140, 0),
}
PROFILES: dict[str, tuple[str, ...]] = {
    "orchard": ("air_t", "air_rh", "soil_vwc", "soil_t", "leaf_wet", "wind_ms", "solar_wm2", "rain_mm"),
    "tea_garden": ("air_t", "air_rh", "soil_vwc", "leaf_wet", "solar_wm2", "rain_mm"),
    "pig_farm": ("air_t", "air_rh", "nh3_ppm", "co2_ppm", "h2s_ppm", "water_l"),
    "pond": ("do_mgl", "ph", "water_t"),
}
HEALTH = ("bat_v", "rssi_dbm")
FARMS: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("longju-orchard", "龙驹镇柑橘园", "orchard", 30.905, 108.571, 420.0),
    ("ganning-pigs", "甘宁镇生态猪场", "pig_farm", 30.701, 108.312, 380.0),
    ("taibai-tea", "太白茶园", "tea_garden", 30.812, 108.402, 650.0),
    ("xiaozhou-pond", "小周镇生态渔场", "pond", 30.774, 108.532, 180.0),
)


@dataclass(frozen=True)
class Seeded:
    farms: list[str]
    nodes: list[tuple[str, str]]
    series: dict[tuple[str, str, str], int]
    rows: int
    offline: tuple[str, str]  # the node that went silent two days ago
    gap: tuple[str, str, datetime, datetime]  # a node whose readings stop for a few hours
    alerts: dict[str, int] = field(default_factory=dict)  # rule -> alert id (seed_alerts)


_GEN = sql.SQL(
    "INSERT INTO readings (time, series_id, value)"
    " SELECT t, %(sid)s, least(greatest({expr}, %(lo)s), %(hi)s)"
    " FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz, %(step)s::interval) AS t"
    " WHERE NOT (t >= %(gap0)s AND t < %(gap1)s)"
    " ON CONFLICT DO NOTHING"
)
# Peaks at 14:00 in UTC+8 (06:00 UTC); the DO cycle two hours later, lowest at 04:00.
_CYCLE = sql.SQL("sin(2 * pi() * extract(epoch FROM t) / 86400.0)")
_CYCLE_DO = sql.SQL("sin(2 * pi() * (extract(epoch FROM t) / 3600.0 - 2) / 24.0)")


def _expr(metric: str) -> sql.Composable:
    if metric == "rain_mm":  # a shower now and then
        return sql.SQL("CASE WHEN random() < 0.004 THEN random() * 2 ELSE 0 END")
    if metric == "solar_wm2":
        return sql.SQL("greatest(0, %(amp)s * 2 * {c}) + %(noise)s * random()").format(c=_CYCLE)
    if metric == "bat_v":  # slow discharge over the range
        return sql.SQL(
            "%(base)s - 0.004 * extract(epoch FROM (t - %(start)s::timestamptz)) / 86400"
            " + %(amp)s * {c} + %(noise)s * (random() - 0.5)"
        ).format(c=_CYCLE)
    # Dissolved oxygen peaks late in the afternoon and is lowest at dawn (photosynthesis stops at dusk).
    cycle = _CYCLE_DO if metric == "do_mgl" else _CYCLE
    return sql.SQL("%(base)s + %(amp)s * {c} + %(noise)s * (random() + random() + random() - 1.5)").format(
        c=cycle
    )


def seed(
    conn: Conn,
    *,
    nodes_per_farm: int = 2,
    days: float = 3.0,
    interval_s: int = 600,
    health_interval_s: int = 900,
    farms: int = 4,
    now: datetime | None = None,
    metrics_per_node: int | None = None,
    refresh: bool = True,
    noise_seed: float | None = None,
) -> Seeded:
    """Register ``farms`` farms (cycling over the four kinds) with ``nodes_per_farm`` nodes each and
    fill ``days`` of readings ending at ``now`` (every ``interval_s``; battery and RSSI every
    ``health_interval_s``). ``metrics_per_node`` keeps only the first metrics of each profile.
    ``noise_seed`` (in [-1, 1]) seeds the server's ``random()`` so the noise is the same every run
    (tests whose outcome depends on it, such as which points score anomalous, need that)."""
    if noise_seed is not None:
        conn.execute("SELECT setseed(%s)", (noise_seed,))
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start = now - timedelta(days=days)
    farm_ids: list[str] = []
    node_ids: list[tuple[str, str]] = []
    series: dict[tuple[str, str, str], int] = {}
    total = 0
    offline: tuple[str, str] | None = None
    gap: tuple[str, str, datetime, datetime] | None = None
    for i in range(farms):
        fid, name, kind, lat, lon, elev = FARMS[i % len(FARMS)]
        if i >= len(FARMS):
            fid, name = f"{fid}-{i // len(FARMS)}", f"{name}{i // len(FARMS) + 1}"
            lat, lon = lat + 0.02 * (i // len(FARMS)), lon + 0.03 * (i // len(FARMS))
        upsert_farm(conn, fid, name, kind, lat=lat, lon=lon, elevation_m=elev)
        d = 0.006
        ring = [
            [lon - d, lat - d],
            [lon + d, lat - d],
            [lon + d, lat + d],
            [lon - d, lat + d],
            [lon - d, lat - d],
        ]
        conn.execute(
            "UPDATE farms SET boundary = %s WHERE id = %s",
            (Jsonb({"type": "Polygon", "coordinates": [ring]}), fid),
        )
        gw_seen = now - (timedelta(hours=6) if kind == "pond" else timedelta(seconds=30))
        # the health the alert service keeps (store.registry.record_gateway_health): a pond's gateway
        # lost its uplink 6 h ago and holds what its nodes sent since
        health = {"state": "online", "uplink": "down" if kind == "pond" else "up",
                  "depth": 1440 if kind == "pond" else 0, "drops": 0}  # fmt: skip
        conn.execute(
            "INSERT INTO gateways (farm_id, gateway_id, name, lat, lon, last_seen, meta)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (farm_id, gateway_id) DO UPDATE SET last_seen = EXCLUDED.last_seen,"
            " meta = EXCLUDED.meta",
            (fid, "gw-1", f"{name} 网关", lat + 0.001, lon - 0.002, gw_seen, Jsonb({"health": health})),
        )
        farm_ids.append(fid)
        metrics = PROFILES[kind][: metrics_per_node or None]
        for j in range(nodes_per_farm):
            nid = f"n-{j + 1:04d}"
            angle = 2 * math.pi * j / max(nodes_per_farm, 1)
            silent = i == 0 and j == nodes_per_farm - 1 and nodes_per_farm > 1
            end = now - timedelta(days=2) if silent else now
            node = upsert_node(conn, fid, nid, name=f"{nid}", profile=kind)
            n_msgs = int((end - start).total_seconds() // interval_s)
            conn.execute(
                "UPDATE nodes SET lat = %s, lon = %s, last_seen = %s, first_seq = 1, last_seq = %s,"
                " msgs_received = %s, dropped_reported = %s, firmware_version = '0.1.0' WHERE id = %s",
                (
                    lat + 0.004 * math.sin(angle),
                    lon + 0.004 * math.cos(angle),
                    end,
                    n_msgs,
                    n_msgs,
                    3 if j == 0 else 0,
                    node.pk,
                ),
            )
            if silent:
                offline = (fid, nid)
            g0 = g1 = start - timedelta(days=1)  # no gap
            if i == 1 % max(farms, 1) and j == 0:
                g0, g1 = now - timedelta(hours=30), now - timedelta(hours=26)
                gap = (fid, nid, g0, g1)
            for metric in (*metrics, *HEALTH):
                sid = ensure_series(conn, node.pk, metric)
                series[(fid, nid, metric)] = sid
                base, amp, noise, lo, hi = SHAPES[metric]
                step = health_interval_s if metric in HEALTH else interval_s
                cur = conn.execute(
                    _GEN.format(expr=_expr(metric)),
                    {
                        "sid": sid, "start": start, "end": end, "step": timedelta(seconds=step),
                        "base": base + 0.3 * j, "amp": amp, "noise": noise, "lo": lo, "hi": hi,
                        "gap0": g0, "gap1": g1,
                    },
                )  # fmt: skip
                total += max(cur.rowcount, 0)
            node_ids.append((fid, nid))
    conn.commit() if not conn.autocommit else None
    if refresh:
        rollup.mark_range(conn, list(series.values()), start, now + timedelta(seconds=1))
        rollup.refresh_all(conn)
    return Seeded(
        farms=farm_ids,
        nodes=node_ids,
        series=series,
        rows=total,
        offline=offline or ("", ""),
        gap=gap or ("", "", start, start),
    )


def seed_alerts(conn: Conn, seeded: Seeded, *, now: datetime | None = None) -> dict[str, int]:
    """Three alerts as the alert service would leave them: a critical one open on the pig farm's
    ammonia, the silent orchard node's acknowledged warning, and the pond's resolved low oxygen."""
    now = now or datetime.now(UTC)
    out: dict[str, int] = {}
    specs = (
        ("open", "ganning-pigs", "n-0001", "nh3_ppm", "nh3_high", "critical", 31.5, timedelta(hours=3),
         None, "氨气浓度 31.5 ppm，超过 25 ppm 已持续 3 小时"),
        ("acknowledged", seeded.offline[0], seeded.offline[1], None, "node_silent", "warning", None,
         timedelta(days=2), None, "节点 2 天未上报数据"),
        ("resolved", "xiaozhou-pond", "n-0002", "do_mgl", "do_low", "warning", 2.7, timedelta(hours=30),
         timedelta(hours=27), "溶解氧 2.7 mg/L，低于 3 mg/L"),
    )  # fmt: skip
    for status, farm, node, metric, rule, sev, value, ago, ended_ago, msg in specs:
        if not farm or (farm, node) not in seeded.nodes:
            continue
        row = conn.execute(
            "SELECT n.id, s.id FROM nodes n LEFT JOIN series s ON s.node_id = n.id AND s.metric = %s"
            " WHERE n.farm_id = %s AND n.node_id = %s",
            (metric, farm, node),
        ).fetchone()
        assert row is not None
        started = now - ago
        ended = now - ended_ago if ended_ago is not None else None
        got = conn.execute(
            "INSERT INTO alerts (farm_id, node_id, series_id, rule, subject, severity, status, message,"
            " value, details, started_at, ended_at, acked_at, acked_by, resolved_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                farm, row[0], row[1], rule, node, sev, status, msg, value,
                Jsonb({"node": node, "metric": metric}), started, ended,
                started + timedelta(minutes=20) if status != "open" else None,
                "李技术员" if status != "open" else None,
                "auto" if status == "resolved" else None,
            ),
        ).fetchone()  # fmt: skip
        assert got is not None
        alert_id = int(got[0])
        events = [("opened", "alerts", started)]
        if status != "open":
            events.append(("acknowledged", "李技术员", started + timedelta(minutes=20)))
        if ended is not None:
            events.append(("resolved", "auto", ended))
        for kind, who, at in events:
            conn.execute(
                "INSERT INTO alert_events (alert_id, at, kind, by_whom) VALUES (%s, %s, %s, %s)",
                (alert_id, at, kind, who),
            )
        out[rule] = alert_id
    return out


def seed_sky(conn: Conn, farm_id: str, *, days: float, now: datetime | None = None) -> list[int]:
    """Two field blocks of the farm with a satellite NDVI mean every 5 days (what `agri sky import`
    stores: a ``sat-<block>`` pseudo node per block, its index statistics as ordinary series)."""
    now = now or datetime.now(UTC)
    row = conn.execute("SELECT lat, lon FROM farms WHERE id = %s", (farm_id,)).fetchone()
    assert row is not None
    lat, lon = float(row[0]), float(row[1])
    sids = []
    for k, (block, name, base) in enumerate((("b1", "一号地块", 0.72), ("b2", "二号地块", 0.61))):
        w, s_, e, n = lon - 0.005 + 0.005 * k, lat - 0.004, lon + 0.005 * k, lat + 0.004
        ring = [[w, s_], [e, s_], [e, n], [w, n], [w, s_]]
        conn.execute(
            "INSERT INTO blocks (farm_id, block_id, name, kind, geometry, area_m2, west, south, east, north)"
            " VALUES (%s, %s, %s, 'orchard_block', %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (farm_id, block, name, Jsonb({"type": "Polygon", "coordinates": [ring]}), 400_000.0, w, s_, e, n),
        )
        node = upsert_node(conn, farm_id, f"sat-{block}", name=f"{name} (Sentinel-2)", profile="satellite")
        conn.execute("UPDATE nodes SET source = 'satellite', block_id = %s WHERE id = %s", (block, node.pk))
        sid = ensure_series(conn, node.pk, "ndvi_mean")
        conn.execute(
            "INSERT INTO readings (time, series_id, value)"
            " SELECT t, %s, %s + 0.04 * sin(extract(epoch FROM t) / 864000.0) + 0.01 * random()"
            " FROM generate_series(%s::timestamptz, %s::timestamptz, interval '5 days') AS t"
            " ON CONFLICT DO NOTHING",
            (sid, base, now - timedelta(days=days), now),
        )
        sids.append(sid)
    rollup.mark_range(conn, sids, now - timedelta(days=days + 1), now + timedelta(seconds=1))
    rollup.refresh_all(conn)
    seed_overlay(conn, farm_id, (lon - 0.005, lat - 0.004, lon + 0.005, lat + 0.004), now - timedelta(days=1))
    return sids


def seed_overlay(conn: Conn, farm_id: str, bounds: tuple[float, float, float, float], when: datetime) -> None:
    """A colour-mapped NDVI image over ``bounds`` as `agri sky import` keeps it (``sky_overlays``):
    vigorous on the west block, a withered patch on the east one, transparent ring outside."""
    h, w = 80, 100
    r, c = np.mgrid[0:h, 0:w]
    ndvi = np.where(c < w // 2, 0.72, 0.61) + 0.05 * np.sin(r / 7.0) * np.cos(c / 9.0)
    ndvi = np.where((c > 70) & (r > 45), 0.2, ndvi)  # the withered corner
    ndvi[(r < 2) | (r >= h - 2) | (c < 2) | (c >= w - 2)] = np.nan
    vmin, vmax = DISPLAY_RANGE["ndvi"]
    pk = store_sky.upsert_item(
        conn, collection="sentinel-2-l2a", item_id=f"S2_SEED_{farm_id}", source="satellite", when=when,
        cloud_cover=3.0, processing_baseline="05.11", bbox=bounds, href=None, stac={"type": "Feature"},
    )  # fmt: skip
    png = encode_png(colormap(ndvi, vmin, vmax))
    store_sky.save_overlay(
        conn, store_sky.Overlay(farm_id, "ndvi", "satellite", pk, when, png, bounds, vmin, vmax)
    )
