"""Read endpoints over HTTP: health, registry, readings, errors as JSON bodies."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pyarrow.parquet as pq
import pytest

from store import rollup
from store.registry import ensure_series, upsert_node
from tests.api.conftest import Tokens
from tests.api.support import put

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data(db_url: str, tok: Tokens) -> dict[str, int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        n = upsert_node(conn, "farm-a", "n-1", metrics=["air_t", "rain_mm", "bat_v"])
        sids = {m: ensure_series(conn, n.pk, m) for m in ("air_t", "rain_mm", "bat_v")}
        put(conn, sids["air_t"], [(T0 + timedelta(minutes=10 * i), 10.0 + i) for i in range(6 * 48)])
        put(conn, sids["rain_mm"], [(T0 + timedelta(hours=i), 0.5) for i in range(48)])
        put(conn, sids["bat_v"], [(T0 + timedelta(hours=47), 3.9)])
        nb = upsert_node(conn, "farm-b", "n-9", metrics=["nh3_ppm"])
        sids["nh3_ppm"] = ensure_series(conn, nb.pk, "nh3_ppm")
        put(conn, sids["nh3_ppm"], [(T0, 5.0)])
    return sids


def test_health_is_open_and_everything_else_needs_a_token(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    r = client.get("/farms")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"
    r = client.get("/farms", headers={"Authorization": "Bearer agri_nope"})
    assert r.status_code == 401 and "invalid" in r.json()["error"]["message"]


def test_farms_nodes_and_farm_limited_tokens(client: httpx.Client, tok: Tokens, data: dict[str, int]) -> None:
    r = client.get("/farms", headers=tok.h("read"))
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["items"]] == ["farm-a", "farm-b"]
    r = client.get("/farms", headers=tok.h("farm_a_reader"))
    assert [f["id"] for f in r.json()["items"]] == ["farm-a"]
    assert client.get("/farms/farm-b", headers=tok.h("farm_a_reader")).status_code == 403
    assert client.get("/farms/nope", headers=tok.h("read")).json()["error"]["code"] == "not_found"
    # pagination is stable: two pages of one
    p1 = client.get("/farms", params={"limit": 1}, headers=tok.h("read")).json()
    p2 = client.get("/farms", params={"limit": 1, "cursor": p1["next_cursor"]}, headers=tok.h("read")).json()
    assert [p1["items"][0]["id"], p2["items"][0]["id"]] == ["farm-a", "farm-b"] and p2["next_cursor"] is None
    r = client.get("/farms", params={"cursor": "garbage!"}, headers=tok.h("read"))
    assert r.status_code == 400 and r.json()["error"]["field"] == "cursor"
    node = client.get("/farms/farm-a/nodes/n-1", headers=tok.h("read")).json()
    assert node["battery_v"] == 3.9 and node["metrics"] == ["air_t", "bat_v", "rain_mm"]
    r = client.get("/nodes", headers=tok.h("farm_a_reader"))
    assert [n["node_id"] for n in r.json()["items"]] == ["n-1"]
    # a farm-limited token cannot reach another farm's series by id either
    r = client.get("/series", params={"series_id": data["nh3_ppm"]}, headers=tok.h("farm_a_reader"))
    assert r.json() == []


def test_latest_buckets_raw(
    client: httpx.Client, tok: Tokens, data: dict[str, int], db: psycopg.Connection[Any]
) -> None:
    r = client.get("/readings/latest", params={"farm": "farm-a", "metric": "air_t"}, headers=tok.h("read"))
    assert r.status_code == 200
    (lv,) = r.json()
    assert lv["value"] == 10.0 + 6 * 48 - 1
    params = {
        "farm": "farm-a",
        "metric": "rain_mm",
        "start": "2026-11-01T00:00",
        "end": "2026-11-03T00:00",
        "bucket": "1d",
    }
    r = client.get("/readings/buckets", params=params, headers=tok.h("read"))
    assert r.status_code == 200, r.text
    (b,) = r.json()
    # naive times are farm-local (Asia/Shanghai): local days start 16:00 UTC the day before
    assert b["start"][0] == "2026-11-01T00:00:00+08:00"
    assert b["sum"] == [8.0, 12.0] and b["count"] == [16, 24]
    rollup.refresh_all(db)
    assert client.get("/readings/buckets", params=params, headers=tok.h("read")).json() == [b]
    r = client.get(
        "/readings/raw",
        params={
            "series_id": data["air_t"],
            "start": "2026-11-01T00:00Z",
            "end": "2026-11-01T01:00Z",
            "limit": 4,
        },
        headers=tok.h("read"),
    )
    page = r.json()
    assert page["value"] == [10.0, 11.0, 12.0, 13.0] and page["next_cursor"]
    r = client.get(
        "/readings/raw",
        params={"series_id": data["nh3_ppm"], "start": "2026-11-01T00:00Z", "end": "2026-11-02T00:00Z"},
        headers=tok.h("farm_a_reader"),
    )
    assert r.status_code == 404
    r = client.get("/readings/buckets", params={**params, "end": "2026-10-01T00:00"}, headers=tok.h("read"))
    assert r.status_code == 400 and r.json()["error"]["field"] == "end"
    r = client.get("/readings/buckets", params={**params, "bucket": "2h"}, headers=tok.h("read"))
    assert r.status_code == 422


def test_metrics_endpoint(client: httpx.Client, tok: Tokens) -> None:
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers=tok.h("read"))
    assert r.status_code == 200 and "agri_api_requests_total" in r.text
    assert 'route="/farms/{farm}"' in r.text  # label by route template, not by concrete path


def test_export_csv_and_parquet(client: httpx.Client, tok: Tokens, data: dict[str, int]) -> None:
    params = {"farm": "farm-a", "metric": "air_t", "start": "2026-11-01T08:00", "end": "2026-11-01T10:00"}
    with client.stream("GET", "/readings/export", params=params, headers=tok.h("read")) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        body = b"".join(r.iter_bytes()).decode()
    lines = body.splitlines()
    assert lines[0] == "time,farm,node,metric,value"
    assert lines[1] == "2026-11-01 08:00:00+08,farm-a,n-1,air_t,10"  # 00:00Z in the farm's zone
    assert len(lines) == 1 + 12
    r = client.get("/readings/export", params={**params, "format": "parquet"}, headers=tok.h("read"))
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names == ["time", "farm", "node", "metric", "value"]
    assert table.num_rows == 12 and table.column("value").to_pylist()[:2] == [10.0, 11.0]
    assert str(table.schema.field("time").type) == "timestamp[us, tz=Asia/Shanghai]"
    assert table.column("time")[0].as_py() == datetime(2026, 11, 1, tzinfo=UTC)
    r = client.get("/readings/export", params={**params, "farm": "farm-b"}, headers=tok.h("farm_a_reader"))
    assert r.status_code == 403
