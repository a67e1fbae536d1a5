"""HTTP ingest: the MQTT contract's payloads through the same decoder and writer."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from kernel.protocol import encode_batch, encode_up
from tests.api.conftest import Tokens
from tests.ingest.support import register

pytestmark = pytest.mark.integration

NOW = float(int(time.time()) - 120)


def test_node_up_is_stored_once_and_rejects_become_dead_letters(
    client: httpx.Client, tok: Tokens, db_url: str, db: psycopg.Connection[Any]
) -> None:
    register(db_url, "farm-a", ["h-1", "h-2"])
    payload = encode_up("h-1", 5, [(NOW, {"air_t": 21.5, "air_rh": 150.0})], boot=2, bat=3.9, rssi=-70)
    h = {**tok.h("ingest"), "Content-Type": "application/json"}
    r = client.post("/ingest/farm-a/h-1/up", content=payload, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"messages": 1, "stored": 3, "duplicates": 0, "rejected": {"out_of_range": 1}}
    again = client.post("/ingest/farm-a/h-1/up", content=payload, headers=h).json()
    assert (again["stored"], again["duplicates"]) == (0, 3)  # a resend is stored once
    assert db.execute(
        "SELECT count(*) FROM rejects WHERE node_id = 'h-1' AND reason = 'out_of_range'"
        " AND source LIKE 'http:%'"
    ).fetchone() == (1,)
    row = db.execute("SELECT last_seq, last_boot FROM nodes WHERE node_id = 'h-1'").fetchone()
    assert row == (5, 2)
    assert db.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0] >= 1  # marked for the rollups
    # the payload must match its topic, as over MQTT
    r = client.post("/ingest/farm-a/h-2/up", content=payload, headers=h)
    assert r.status_code == 400 and r.json()["stored"] == 0 and r.json()["rejected"]
    r = client.post("/ingest/farm-a/h-1/up", content=b"{not json", headers=h)
    assert r.status_code == 400 and list(r.json()["rejected"]) == ["bad_json"]
    # scopes and farms
    assert client.post("/ingest/farm-a/h-1/up", content=payload, headers=tok.h("admin")).status_code == 403
    assert client.post("/ingest/farm-b/h-1/up", content=payload, headers=tok.h("read")).status_code == 403


def test_gateway_batch(client: httpx.Client, tok: Tokens, db_url: str, db: psycopg.Connection[Any]) -> None:
    register(db_url, "farm-a", ["g-1", "g-2"])
    msgs = [(n, encode_up(n, 1, [(NOW, {"soil_t": 11.0})], boot=1)) for n in ("g-1", "g-2")]
    body = encode_batch("gw-1", "farm-a", "b-0001", msgs)
    h = {**tok.h("ingest"), "Content-Type": "application/octet-stream"}
    r = client.post("/ingest/farm-a/gw/gw-1/batch", content=body, headers=h)
    assert r.status_code == 200 and r.json()["stored"] == 2 and r.json()["messages"] == 2
    r = client.post("/ingest/farm-a/gw/gw-1/batch", content=body, headers=h)
    assert r.json()["duplicates"] == 2
    r = client.post("/ingest/farm-a/gw/gw-1/batch", content=b"\x00garbage", headers=h)
    assert r.status_code == 400
