"""Registry changes and bulk node import over HTTP, and `agri node import`."""

from __future__ import annotations

import io
from typing import Any

import httpx
import openpyxl
import psycopg
import pytest

from store.credentials import verify_password
from tests.api.conftest import Tokens

pytestmark = pytest.mark.integration

POLY = {"type": "Polygon", "coordinates": [[[108.4, 30.8], [108.5, 30.8], [108.5, 30.9], [108.4, 30.8]]]}


def test_farm_node_gateway_lifecycle(client: httpx.Client, tok: Tokens, db: psycopg.Connection[Any]) -> None:
    h = tok.h("operate")
    body = {"id": "farm-m", "name": "M", "kind": "tea_garden", "tz": "Asia/Shanghai", "boundary": POLY}
    r = client.post("/farms", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["boundary"] == POLY
    assert client.post("/farms", json=body, headers=h).status_code == 409
    assert client.post("/farms", json=body, headers=tok.h("read")).status_code == 403
    assert (
        client.post("/farms", json={**body, "id": "farm-n"}, headers=tok.h("farm_a_reader")).status_code
        == 403
    )
    bad = {**body, "id": "farm-x", "boundary": {"type": "Polygon", "coordinates": [[[1, 2], [3, 4]]]}}
    r = client.post("/farms", json=bad, headers=h)
    assert r.status_code == 400 and r.json()["error"]["field"] == "boundary"
    r = client.post("/farms", json={**body, "id": "farm-x", "tz": "Mars/Olympus"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["field"] == "tz"
    r = client.patch("/farms/farm-m", json={"tz": "Europe/Berlin", "name": "M2"}, headers=h)
    assert r.status_code == 200 and r.json()["tz"] == "Europe/Berlin" and r.json()["name"] == "M2"
    node = {"node_id": "n-7", "metrics": ["air_t", "leaf_wet"], "lat": 30.81, "lon": 108.41}
    r = client.post("/farms/farm-m/nodes", json=node, headers=h)
    assert r.status_code == 201 and r.json()["metrics"] == ["air_t", "leaf_wet"]
    r = client.post("/farms/farm-m/nodes", json={**node, "node_id": "n-8", "metrics": ["nope"]}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["field"] == "metrics"
    r = client.patch(
        "/farms/farm-m/nodes/n-7", json={"firmware_version": "0.2.0", "metrics": ["soil_t"]}, headers=h
    )
    assert r.json()["firmware_version"] == "0.2.0" and "soil_t" in r.json()["metrics"]
    assert client.patch("/farms/farm-m/nodes/n-404", json={"name": "x"}, headers=h).status_code == 404
    r = client.post("/farms/farm-m/gateways", json={"gateway_id": "gw-1", "name": "shed"}, headers=h)
    assert r.status_code == 201
    assert client.patch("/farms/farm-m/gateways/gw-1", json={"lat": 30.8}, headers=h).json()["lat"] == 30.8
    assert [
        g["gateway_id"] for g in client.get("/gateways", params={"farm": "farm-m"}, headers=h).json()["items"]
    ] == ["gw-1"]
    assert client.post("/farms/farm-m/gateways/gw-1/retire", headers=h).json()["retired_at"]
    assert client.post("/farms/farm-m/nodes/n-7/retire", headers=h).json()["retired_at"]
    assert client.get("/nodes", params={"farm": "farm-m"}, headers=h).json()["items"] == []
    r = client.post("/farms/farm-m/retire", headers=h)
    assert r.json()["retired_at"]
    r = client.post("/farms/farm-m/nodes", json={**node, "node_id": "n-9"}, headers=h)
    assert r.status_code == 409  # retired farm
    r = client.post("/farms", content=b"{", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422


SHEET = (
    "farm,node,kind,name,lat,lon,sensors,interval\n"
    "farm-a,imp-1,orchard,Row 1,30.1,108.2,air_t;air_rh,300\n"
    "farm-a,imp-2,,,,,soil_vwc soil_t,\n"
)


def test_import_dry_run_reports_every_bad_row_and_apply_is_all_or_nothing(
    client: httpx.Client, tok: Tokens, db: psycopg.Connection[Any]
) -> None:
    h = {**tok.h("operate"), "Content-Type": "text/csv"}
    bad = SHEET + "farm-a,imp-1,orchard,,,,air_t,\nfarm-zz,imp-3,barn,,95,,air_t;foo,0\n"
    r = client.post("/nodes/import", content=bad, headers=h)
    assert r.status_code == 200
    rep = r.json()
    assert not rep["valid"]
    got = {(e["line"], e["column"]) for e in rep["errors"]}
    assert got == {(4, "node"), (5, "kind"), (5, "lat"), (5, "sensors"), (5, "interval")}
    r = client.post("/nodes/import", params={"dry_run": "false"}, content=bad, headers=h)
    assert r.status_code == 400 and r.json()["applied"] is False
    assert db.execute("SELECT count(*) FROM nodes WHERE node_id LIKE 'imp-%'").fetchone() == (0,)
    # an unknown farm is found by the database check, and still nothing is applied
    r = client.post(
        "/nodes/import", params={"dry_run": "false"}, content=SHEET + "farm-zz,imp-3,,,,,air_t,\n", headers=h
    )
    assert r.status_code == 400 and [(e["line"], e["column"]) for e in r.json()["errors"]] == [(4, "farm")]
    assert db.execute("SELECT count(*) FROM nodes WHERE node_id LIKE 'imp-%'").fetchone() == (0,)
    r = client.post("/nodes/import", params={"dry_run": "false"}, content=SHEET, headers=h)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["applied"] and [c["node"] for c in rep["credentials"]] == ["imp-1", "imp-2"]
    c1 = rep["credentials"][0]
    (pw_hash,) = db.execute(
        "SELECT pw_hash FROM node_credentials WHERE username = %s", (c1["username"],)
    ).fetchone()
    assert verify_password(c1["password"], pw_hash) and c1["password"] not in pw_hash
    metrics = db.execute(
        "SELECT array_agg(s.metric ORDER BY s.metric) FROM series s JOIN nodes n ON n.id = s.node_id"
        " WHERE n.node_id = 'imp-1'"
    ).fetchone()
    assert metrics == (["air_rh", "air_t", "bat_v", "rssi_dbm"],)
    # a second apply of the same sheet is refused as a whole (the nodes exist now)
    r = client.post("/nodes/import", params={"dry_run": "false"}, content=SHEET, headers=h)
    assert r.status_code == 400 and {e["line"] for e in r.json()["errors"]} == {2, 3}
    # a farm-limited token may import only into its farm
    r = client.post(
        "/nodes/import",
        content="farm,node,sensors\nfarm-b,x-1,air_t\n",
        headers={**tok.h("farm_a_reader"), "Content-Type": "text/csv"},
    )
    assert r.json()["errors"][0]["column"] == "farm"


def test_import_excel_sheet(client: httpx.Client, tok: Tokens) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Farm", "Node", "Sensors", "Lat", "Interval"])
    ws.append(["farm-a", "xl-1", "air_t", 30.5, 60])
    ws.append(["farm-a", "xl-2", "air_t", "north", 60])
    buf = io.BytesIO()
    wb.save(buf)
    r = client.post(
        "/nodes/import", params={"filename": "nodes.xlsx"}, content=buf.getvalue(), headers=tok.h("operate")
    )
    rep = r.json()
    assert rep["rows"] == 1 and [(e["line"], e["column"]) for e in rep["errors"]] == [(3, "lat")]


def test_body_size_limit(client: httpx.Client, tok: Tokens) -> None:
    r = client.post(
        "/farms",
        content=b"x" * (2 * 1024 * 1024),
        headers={**tok.h("operate"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"y" * 65536

    r = client.post(
        "/farms", content=chunks(), headers={**tok.h("operate"), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
