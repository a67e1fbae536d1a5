"""Rollups (store.rollup) and bucketed reads (api.queries.readings) against a real TimescaleDB.

Rollups must equal raw aggregation after late data, with several writers and a refresher running
at once; day buckets start at local midnight, also across daylight-saving changes.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pydantic import TypeAdapter

from api.queries import readings as rq
from api.queries.models import LatestValue
from kernel.decode import Decoded, decode_message
from kernel.protocol import Limits, encode_up, up_topic
from store import rollup
from store import sky as store_sky
from store.writer import Writer
from tests.api.support import farm_with_series, put
from tests.ingest.support import register

pytestmark = pytest.mark.integration

NOW = float(int(time.time()) // 3600 * 3600)


def raw_hourly(conn: psycopg.Connection[Any], sids: list[int]) -> dict[tuple[int, float], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT series_id, extract(epoch FROM time_bucket('1 hour', time))::float8 AS h, count(*)::int,"
        " round(sum(value)::numeric, 6), min(value), max(value) FROM readings WHERE series_id = ANY(%s)"
        " GROUP BY 1, 2",
        (sids,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def rolled_hourly(conn: psycopg.Connection[Any], sids: list[int]) -> dict[tuple[int, float], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT series_id, extract(epoch FROM hour)::float8, n, round(sum::numeric, 6), min, max"
        " FROM readings_hourly WHERE series_id = ANY(%s)",
        (sids,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def raw_daily(
    conn: psycopg.Connection[Any], sids: list[int], tz: str
) -> dict[tuple[int, Any], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT series_id, (time AT TIME ZONE %s)::date, count(*)::int, round(sum(value)::numeric, 6),"
        " min(value), max(value) FROM readings WHERE series_id = ANY(%s) GROUP BY 1, 2",
        (tz, sids),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def rolled_daily(conn: psycopg.Connection[Any], sids: list[int]) -> dict[tuple[int, Any], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT series_id, day, n, round(sum::numeric, 6), min, max FROM readings_daily"
        " WHERE series_id = ANY(%s)",
        (sids,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def msg(farm: str, node: str, seq: int, samples: list[tuple[float, dict[str, float]]]) -> Decoded:
    payload = encode_up(node, seq, samples, boot=1)
    return decode_message(up_topic(farm, node), payload, Limits(now=time.time()))


def test_writer_marks_hours_and_refresh_equals_raw_after_late_data(
    db: psycopg.Connection[Any], db_url: str
) -> None:
    register(db_url, "farm-r", ["n-1", "n-2"])
    w = Writer(db_url)
    try:
        w.write([msg("farm-r", "n-1", 0, [(NOW - 7200 + 60, {"air_t": 10.0, "rain_mm": 1.5})])])
        assert rollup.pending(db) == 2  # air_t, rain_mm of one hour
        assert rollup.refresh_all(db).hours == 2
        assert rollup.pending(db) == 0
        # late data: a backlog into the hour already rolled up, and an hour before it
        w.write(
            [
                msg(
                    "farm-r",
                    "n-1",
                    1,
                    [
                        (NOW - 7200 + 120, {"air_t": 14.0, "rain_mm": 0.5}),
                        (NOW - 10800 + 5, {"air_t": 3.0}),
                    ],
                ),
                msg("farm-r", "n-2", 0, [(NOW - 60, {"air_t": 21.0})]),
            ]
        )
        sids = [int(r[0]) for r in db.execute("SELECT id FROM series").fetchall()]
        series = rq.find_series(db, farm="farm-r")
        start = datetime.fromtimestamp(NOW - 4 * 3600, UTC)
        end = datetime.fromtimestamp(NOW + 3600, UTC)
        # before the refresher ran, answers already include the late rows
        before = rq.buckets(db, series, start, end, "1h")
        rollup.refresh_all(db)
        assert rolled_hourly(db, sids) == raw_hourly(db, sids)
        assert rolled_daily(db, sids) == raw_daily(db, sids, "Asia/Shanghai")
        after = rq.buckets(db, series, start, end, "1h")
        assert [b.model_dump() for b in before] == [b.model_dump() for b in after]
        air = next(b for b in after if b.series.metric == "air_t" and b.series.node_id == "n-1")
        i = [t.timestamp() for t in air.start].index(NOW - 7200)
        assert (air.count[i], air.min[i], air.mean[i], air.max[i]) == (2, 10.0, 12.0, 14.0)
        assert air.sum is None
        assert air.count[i + 1] == 0 and air.mean[i + 1] is None  # a gap stays a gap
        rain = next(b for b in after if b.series.metric == "rain_mm")
        assert rain.sum is not None and rain.sum[i] == 2.0
        assert rain.start[i].utcoffset() == timedelta(hours=8)  # in the farm's zone
    finally:
        w.close()


def test_concurrent_writers_and_refresher_keep_rollups_equal_to_raw(
    db: psycopg.Connection[Any], db_url: str
) -> None:
    nodes = [f"c-{i}" for i in range(4)]
    register(db_url, "farm-c", nodes)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        w = Writer(db_url)
        rnd = random.Random(k)
        try:
            for seq in range(40):
                node = nodes[rnd.randrange(len(nodes))]
                # mostly recent, some late backlog hours earlier
                base = NOW - 3600 * rnd.choice([0, 0, 1, 2, 5, 30])
                samples = [(base + rnd.randrange(0, 3600 - 1), {"air_t": round(rnd.uniform(0, 30), 2)})]
                w.write([msg("farm-c", node, k * 1000 + seq, samples)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            w.close()

    def refresher() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            while not stop.is_set():
                rollup.refresh(c, limit=7)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    ref = threading.Thread(target=refresher)
    ref.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    ref.join()
    assert not errors
    rollup.refresh_all(db)
    sids = [s.series_id for s in rq.find_series(db, farm="farm-c")]
    assert raw_hourly(db, sids) and rolled_hourly(db, sids) == raw_hourly(db, sids)
    assert rolled_daily(db, sids) == raw_daily(db, sids, "Asia/Shanghai")
    # the maintained latest row of each series is its newest hour, and latest() its newest reading
    newest_hour = db.execute(
        "SELECT DISTINCT ON (series_id) series_id, hour, last_time, last_value FROM readings_hourly"
        " WHERE series_id = ANY(%s) ORDER BY series_id, hour DESC",
        (sids,),
    ).fetchall()
    kept = db.execute(
        "SELECT series_id, hour, last_time, last_value FROM series_latest WHERE series_id = ANY(%s)"
        " ORDER BY series_id",
        (sids,),
    ).fetchall()
    assert kept == newest_hour
    newest = db.execute(
        "SELECT DISTINCT ON (series_id) series_id, time, value FROM readings WHERE series_id = ANY(%s)"
        " ORDER BY series_id, time DESC",
        (sids,),
    ).fetchall()
    assert [(v.series_id, v.time, v.value) for v in rq.latest(db, farm="farm-c")] == newest


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("Asia/Shanghai", "2026-03-29", 24),
        ("Europe/Berlin", "2026-03-29", 23),  # spring forward
        ("Europe/Berlin", "2026-10-25", 25),  # fall back
    ],
)
def test_day_buckets_start_at_local_midnight(
    db: psycopg.Connection[Any], tz: str, day: str, hours: int
) -> None:
    farm = "d-" + tz.split("/")[1].lower() + "-" + day[5:7]
    sid = farm_with_series(db, farm, tz, metrics=["air_t"])["air_t"]
    z = ZoneInfo(tz)
    d0 = datetime.fromisoformat(day).replace(tzinfo=z)
    # one reading every 30 min from local noon the day before to local noon the day after
    t0 = (d0 - timedelta(hours=12)).astimezone(UTC)
    rows = [(t0 + timedelta(minutes=30 * i), float(i)) for i in range(2 * (hours + 24))]
    put(db, sid, rows)
    series = rq.find_series(db, farm=farm)
    start, end = d0 - timedelta(days=1), d0 + timedelta(days=2)
    for refreshed in (False, True):
        if refreshed:
            rollup.refresh_all(db)
        (b,) = rq.buckets(db, series, start, end, "1d")
        assert [t.isoformat()[:10] for t in b.start] == [
            (d0 + timedelta(days=k)).isoformat()[:10] for k in (-1, 0, 1)
        ]
        assert all(t.hour == 0 and t.minute == 0 for t in b.start)  # local midnight
        assert b.count[1] == 2 * hours  # the whole local day, 23 or 25 hours long on DST days
        assert b.count[0] == 24 and b.count[2] == 24  # the half days around it
        inside = [v for t, v in rows if d0 <= t < d0 + timedelta(days=1)]  # wall-clock: next midnight
        assert b.min[1] == min(inside) and b.max[1] == max(inside)
        assert b.mean[1] == pytest.approx(sum(inside) / len(inside))


def test_latest_raw_pages_and_short_buckets(db: psycopg.Connection[Any]) -> None:
    sids = farm_with_series(db, "farm-l", "Asia/Shanghai", metrics=["air_t", "soil_t"])
    t0 = datetime.fromtimestamp(NOW - 3600, UTC)
    put(db, sids["air_t"], [(t0 + timedelta(minutes=i), float(i)) for i in range(60)])
    (lv_air, lv_soil) = rq.latest(db, farm="farm-l")
    assert (lv_air.metric, lv_air.value, lv_air.time) == ("air_t", 59.0, t0 + timedelta(minutes=59))
    assert (lv_soil.metric, lv_soil.value, lv_soil.time) == ("soil_t", None, None)
    rollup.refresh_all(db)
    assert rq.latest(db, farm="farm-l", metric="air_t")[0].value == 59.0  # from the hourly rollup
    put(db, sids["air_t"], [(t0 - timedelta(hours=5), -1.0)])  # late data in an older hour: no change
    assert rq.latest(db, farm="farm-l", metric="air_t")[0].value == 59.0
    put(db, sids["air_t"], [(t0 + timedelta(minutes=59, seconds=30), 60.0)])  # same hour, marked again
    assert rq.latest(db, farm="farm-l", metric="air_t")[0].value == 60.0
    put(db, sids["air_t"], [(t0 + timedelta(minutes=75), 61.0)])  # a newer hour, not rolled up yet
    assert rq.latest(db, farm="farm-l", metric="air_t")[0].value == 61.0
    rollup.refresh_all(db)
    assert rq.latest(db, farm="farm-l", metric="air_t")[0].value == 61.0
    s = rq.get_series(db, sids["air_t"])
    got: list[float] = []
    cursor = None
    while True:
        page = rq.raw(db, s, t0, t0 + timedelta(hours=1), limit=25, cursor=cursor)
        got += page.value
        cursor = page.next_cursor
        if cursor is None:
            break
    assert got == [float(i) for i in range(60)] + [60.0]
    (b,) = rq.buckets(db, [s], t0, t0 + timedelta(hours=1), "15min")
    assert b.count == [15, 15, 15, 16] and b.mean[0] == 7.0
    with pytest.raises(rq.InvalidArgument):
        rq.buckets(db, [s], t0, t0 - timedelta(hours=1), "1h")
    with pytest.raises(rq.InvalidArgument):
        rq.buckets(db, [s], t0, t0 + timedelta(days=3650), "1min")
    with pytest.raises(rq.InvalidArgument):
        rq.raw(db, s, t0.replace(tzinfo=None), t0 + timedelta(hours=1))


def test_sky_statistics_are_rolled_up_too(db: psycopg.Connection[Any]) -> None:
    """Imagery statistics are readings written by store.sky: they must mark their hours as well."""
    sid = farm_with_series(db, "farm-sky", "Asia/Shanghai", metrics=["air_t"])["air_t"]
    t = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    with db.transaction():
        store_sky.upsert_readings(db, [(sid, t, 0.61)])
    assert db.execute("SELECT count(*) FROM rollup_dirty WHERE series_id = %s", (sid,)).fetchone() == (1,)
    rollup.refresh_all(db)
    assert rq.latest(db, series_ids=[sid])[0].value == 0.61


def test_latest_mixes_rolled_up_and_freshly_written_series(db: psycopg.Connection[Any]) -> None:
    """One statement for the rollups, then raw probes only for the marked series, each from its own mark."""
    sids = farm_with_series(db, "farm-m", "UTC", metrics=["air_t", "soil_t", "air_rh"])
    t0 = datetime.fromtimestamp(NOW - 4 * 3600, UTC)
    for i, m in enumerate(("air_t", "soil_t", "air_rh")):
        put(db, sids[m], [(t0 + timedelta(minutes=k), 10.0 * i + k) for k in range(0, 120, 10)])
    rollup.refresh_all(db)
    put(db, sids["soil_t"], [(t0 + timedelta(minutes=200), 77.0)])  # a newer hour, not rolled up yet
    put(db, sids["air_rh"], [(t0 - timedelta(hours=3), -5.0)])  # late data in an older hour: no change
    got = {v.metric: (v.time, v.value) for v in rq.latest(db, farm="farm-m")}
    assert got == {
        "air_t": (t0 + timedelta(minutes=110), 110.0),
        "soil_t": (t0 + timedelta(minutes=200), 77.0),
        "air_rh": (t0 + timedelta(minutes=110), 130.0),
    }
    assert _latest_json(db, "farm-m") == rq.latest(db, farm="farm-m")  # the API's body: the same answer
    rollup.refresh_all(db)
    assert {v.metric: (v.time, v.value) for v in rq.latest(db, farm="farm-m")} == got
    assert _latest_json(db, "farm-m") == rq.latest(db, farm="farm-m")


def _latest_json(db: psycopg.Connection[Any], farm: str) -> list[LatestValue]:
    return TypeAdapter(list[LatestValue]).validate_json(rq.latest_json(db, farm=farm))
