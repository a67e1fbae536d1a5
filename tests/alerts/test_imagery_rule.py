"""The imagery rule: a block whose satellite NDVI falls against the farm's other blocks opens an alert
on its pseudo node (sat-<block>), naming what its soil says, and is told although the scene was
taken days before it arrived; the blocks that moved with their neighbours raise nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from alerts.config import RuleBook
from alerts.service import AlertOptions, AlertService
from store import registry
from store import sky as store_sky
from tests.alerts.support import drain, q, setup_farm, write_series


def test_a_block_whose_ndvi_falls_against_its_neighbours_alerts(db_url: str) -> None:
    farm = "tea-sky"
    setup_farm(db_url, farm, "http://127.0.0.1:9", [], kind="tea_garden")
    day = datetime.now(UTC).replace(hour=3, minute=20, second=0, microsecond=0)
    t1, t2 = day - timedelta(days=7), day - timedelta(days=2)  # Sentinel-2 passes, imported late
    before = [0.70, 0.71, 0.69, 0.72, 0.70, 0.71]
    after = [0.62, 0.40, 0.61, 0.63, 0.38, 0.62]  # haze lowers all by ~0.08; t1 and t4 fall far more
    sq = [[113.30, 23.10], [113.301, 23.10], [113.301, 23.101], [113.30, 23.101], [113.30, 23.10]]
    with psycopg.connect(db_url, autocommit=True) as db:
        store_sky.upsert_blocks(db, farm, [
            store_sky.BlockRow(f"t{i}", f"T{i}", "tea_terrace",
                               {"type": "Polygon", "coordinates": [[[x + 0.002 * i, y] for x, y in sq]]},
                               10_000.0, (0, 0, 0, 0), {})
            for i in range(6)
        ])  # fmt: skip
        sids = [
            store_sky.ensure_block_series(db, farm, f"t{i}", "satellite", ["ndvi_median"])["ndvi_median"]
            for i in range(6)
        ]
        soil = []
        for blk, vwc in (("t1", 11.0), ("t4", 41.0), ("t2", 28.0)):
            node = registry.upsert_node(db, farm, f"probe-{blk}", metrics=["soil_vwc"])
            store_sky.place_node(db, farm, node.node_id, blk)
            sid = registry.ensure_series(db, node.pk, "soil_vwc")
            soil += [(sid, t2 - timedelta(hours=h), vwc) for h in (2, 10, 30)]
        store_sky.upsert_readings(db, soil)
        # each scene is imported in its own transaction, as `agri sky import` does
        store_sky.upsert_readings(db, [(sid, t1, v) for sid, v in zip(sids, before, strict=True)])
        store_sky.upsert_readings(db, [(sid, t2, v) for sid, v in zip(sids, after, strict=True)])
    drain(db_url)
    got = q(
        db_url,
        "SELECT a.subject, a.status, a.late, a.message, extract(epoch FROM a.started_at)::float8, n.node_id"
        " FROM alerts a JOIN nodes n ON n.id = a.node_id WHERE a.farm_id = %s AND a.rule = 'ndvi-drop'"
        " ORDER BY a.subject",
        farm,
    )
    assert [(g[0], g[1], g[2], g[5]) for g in got] == [
        ("sat-t1/ndvi_fall", "open", False, "sat-t1"),
        ("sat-t4/ndvi_fall", "open", False, "sat-t4"),
    ]
    assert all(g[4] == t2.timestamp() for g in got)
    assert "likely water stress" in got[0][3] and "likely disease" in got[1][3]
    # told (not held back as late data): one opening delivery per order-0 commissioner each
    told = q(
        db_url,
        "SELECT count(*) FROM webhook_deliveries d JOIN alerts a ON a.id = d.alert_id"
        " WHERE a.farm_id = %s AND a.rule = 'ndvi-drop' AND d.event = 'alert.opened'",
        farm,
    )
    assert told == [(2 * 3,)]
    # A block's pseudo node reports once a scene (every ~5 days), not every few minutes: the clock
    # rule for sensor nodes (node silent) never applies to it, neither to what the running service
    # saw nor to what a restarted one restores; a real probe of the farm still goes silent.
    write_series(
        db_url, farm, {"probe-t2": (np.array([t2.timestamp() - 3600.0]), {"soil_vwc": np.array([28.0])})}
    )
    for _ in range(2):  # the service that read the feed, then a restarted one
        svc = AlertService(AlertOptions(database_url=db_url, dispatch=False, rules=RuleBook.load()))
        try:
            while svc.step():
                pass
            svc.tick(time.time())
        finally:
            svc.close()
    silent = q(
        db_url,
        "SELECT n.node_id FROM alerts a JOIN nodes n ON n.id = a.node_id WHERE a.farm_id = %s"
        " AND a.rule = 'node-silent' ORDER BY 1",
        farm,
    )
    nodes = [s[0] for s in silent]
    assert "probe-t2" in nodes and not [n for n in nodes if n.startswith("sat-")], nodes
