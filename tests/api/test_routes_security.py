"""Every route: anonymous callers get 401, a token without the route's scope 403, and a token
limited to farm-a never reaches farm-b. The table must name every route the app has."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from store import commissioners
from store.registry import ensure_series, upsert_node
from tests.api.conftest import Tokens

pytestmark = pytest.mark.integration

OPEN = {("GET", "/healthz"), ("GET", "/readyz")}
# The signed acknowledge link: no token, its HMAC-signed query string is the credential
# (tests/api/test_http_alerts.py refuses tampered, expired and unknown links).
SIGNED = {("GET", "/ack/{alert_id}"), ("POST", "/ack/{alert_id}")}
WRONG_SCOPE = {"read": "ingest", "operate": "read", "admin": "operate", "ingest": "read"}
R = {"start": "2026-11-01T00:00", "end": "2026-11-02T00:00"}

# (method, path template) -> (concrete path on farm-b, query params, JSON body); None: no farm in it
ROUTES: dict[tuple[str, str], tuple[str, dict[str, Any], Any]] = {
    ("GET", "/metrics"): ("/metrics", {}, None),
    ("GET", "/farms"): ("/farms", {"kind": "pig_farm"}, None),
    ("GET", "/farms/{farm}"): ("/farms/farm-b", {}, None),
    ("GET", "/nodes"): ("/nodes", {"farm": "farm-b"}, None),
    ("GET", "/farms/{farm}/nodes/{node}"): ("/farms/farm-b/nodes/s-1", {}, None),
    ("GET", "/gateways"): ("/gateways", {"farm": "farm-b"}, None),
    ("GET", "/farms/{farm}/gateways/{gateway}"): ("/farms/farm-b/gateways/gw-1", {}, None),
    ("GET", "/catalog/metrics"): ("/catalog/metrics", {}, None),
    ("POST", "/farms"): ("/farms", {}, {"id": "farm-new", "name": "N", "kind": "pond"}),
    ("PATCH", "/farms/{farm}"): ("/farms/farm-b", {}, {"name": "B"}),
    ("POST", "/farms/{farm}/retire"): ("/farms/farm-b/retire", {}, None),
    ("POST", "/farms/{farm}/nodes"): ("/farms/farm-b/nodes", {}, {"node_id": "s-9"}),
    ("PATCH", "/farms/{farm}/nodes/{node}"): ("/farms/farm-b/nodes/s-1", {}, {"name": "x"}),
    ("POST", "/farms/{farm}/nodes/{node}/retire"): ("/farms/farm-b/nodes/s-1/retire", {}, None),
    ("POST", "/farms/{farm}/gateways"): ("/farms/farm-b/gateways", {}, {"gateway_id": "gw-9"}),
    ("PATCH", "/farms/{farm}/gateways/{gateway}"): ("/farms/farm-b/gateways/gw-1", {}, {"name": "x"}),
    ("POST", "/farms/{farm}/gateways/{gateway}/retire"): ("/farms/farm-b/gateways/gw-1/retire", {}, None),
    ("POST", "/nodes/import"): (
        "/nodes/import",
        {"dry_run": "false"},
        "farm,node,sensors\nfarm-b,s-7,air_t\n",
    ),
    ("GET", "/series"): ("/series", {"farm": "farm-b"}, None),
    ("GET", "/readings/latest"): ("/readings/latest", {"farm": "farm-b"}, None),
    ("GET", "/readings/raw"): ("/readings/raw", {"series_id": "{sid}", **R}, None),
    ("GET", "/readings/buckets"): ("/readings/buckets", {"farm": "farm-b", **R}, None),
    ("GET", "/readings/export"): ("/readings/export", {"farm": "farm-b", **R}, None),
    ("GET", "/rejects"): ("/rejects", {"farm": "farm-b"}, None),
    ("GET", "/completeness"): ("/completeness", {"farm": "farm-b"}, None),
    ("GET", "/analytics/qc"): ("/analytics/qc", {"series_id": "{sid}", **R}, None),
    ("GET", "/analytics/anomaly"): ("/analytics/anomaly", {"series_id": "{sid}", **R}, None),
    ("GET", "/farms/{farm}/indices"): (
        "/farms/farm-b/indices",
        {"first": "2026-11-01", "last": "2026-11-02"},
        None,
    ),
    ("POST", "/ingest/{farm}/{node}/up"): ("/ingest/farm-b/s-1/up", {}, {"v": 1}),
    ("POST", "/ingest/{farm}/gw/{gateway}/batch"): ("/ingest/farm-b/gw/gw-1/batch", {}, None),
    ("GET", "/farms/{farm}/blocks"): ("/farms/farm-b/blocks", {}, None),
    ("GET", "/farms/{farm}/overlay"): ("/farms/farm-b/overlay", {}, None),
    ("POST", "/farms/{farm}/blocks"): (
        "/farms/farm-b/blocks",
        {},
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"name": "b"},
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[13.4, 52.5], [13.401, 52.5], [13.401, 52.501], [13.4, 52.5]]],
                    },
                }
            ],
        },
    ),
    ("GET", "/alerts"): ("/alerts", {"farm": "farm-b"}, None),
    ("GET", "/alerts/{alert_id}"): ("/alerts/{aid}", {}, None),
    ("POST", "/alerts/{alert_id}/ack"): ("/alerts/{aid}/ack", {}, None),
    ("POST", "/alerts/{alert_id}/resolve"): ("/alerts/{aid}/resolve", {}, None),
    ("GET", "/commissioners"): ("/commissioners", {"farm": "farm-b"}, None),
    ("GET", "/commissioners/{commissioner_id}"): ("/commissioners/{cid}", {}, None),
    ("POST", "/commissioners"): (
        "/commissioners",
        {},
        {"name": "x", "channel": "feishu", "url": "http://h/x"},
    ),
    ("PATCH", "/commissioners/{commissioner_id}"): ("/commissioners/{cid}", {}, {"language": "en"}),
    ("POST", "/commissioners/{commissioner_id}/retire"): ("/commissioners/{cid}/retire", {}, None),
    ("PUT", "/farms/{farm}/commissioners/{commissioner_id}"): ("/farms/farm-b/commissioners/{cid}", {}, {}),
    ("DELETE", "/farms/{farm}/commissioners/{commissioner_id}"): (
        "/farms/farm-b/commissioners/{cid}",
        {},
        None,
    ),
    ("GET", "/farms/{farm}/rules"): ("/farms/farm-b/rules", {}, None),
    ("PUT", "/farms/{farm}/rules"): ("/farms/farm-b/rules", {}, {"rules": [{"name": "x", "kind": "silent"}]}),
    ("DELETE", "/farms/{farm}/rules"): ("/farms/farm-b/rules", {}, None),
}
NO_FARM = {("GET", "/metrics"), ("GET", "/catalog/metrics")}


def app_routes(app: FastAPI) -> list[tuple[str, str, str | None]]:
    """(method, path, scope required) of every API route, read from its dependencies."""
    out = []
    routes = list(app.routes)
    while routes:
        r = routes.pop()
        inner = getattr(r, "original_router", None)  # FastAPI >= 0.160 keeps included routers whole
        if inner is not None:
            routes.extend(inner.routes)
            continue
        if not isinstance(r, APIRoute):
            continue
        stack = list(r.dependant.dependencies)
        scope = None
        while stack:
            d = stack.pop()
            name = getattr(d.call, "__name__", "")
            if name.startswith("require_"):
                scope = name.removeprefix("require_")
            stack.extend(d.dependencies)
        for m in r.methods:
            out.append((m, r.path, scope))
    return sorted(out)


@pytest.fixture(scope="module")
def farm_b(db_url: str, tok: Tokens) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        n = upsert_node(conn, "farm-b", "s-1")
        sid = ensure_series(conn, n.pk, "nh3_ppm")
        conn.execute(
            "INSERT INTO gateways (farm_id, gateway_id) VALUES ('farm-b', 'gw-1') ON CONFLICT DO NOTHING"
        )
        row = conn.execute(
            "INSERT INTO alerts (farm_id, rule, severity, message, started_at) VALUES"
            " ('farm-b', 'nh3_high', 'warning', 'NH3', now()) RETURNING id"
        ).fetchone()
        assert row is not None
        cid = commissioners.add(conn, "farm-b-commissioner", "feishu", "http://h/feishu")
        commissioners.assign(conn, cid, ["farm-b"])
    return {"sid": str(sid), "aid": str(row[0]), "cid": str(cid)}


def test_the_table_names_every_route(api_app: FastAPI) -> None:
    have = {(m, p) for m, p, _ in app_routes(api_app)}
    assert have - OPEN - SIGNED == set(ROUTES), "add new routes to ROUTES (and check their security)"
    for m, p, scope in app_routes(api_app):
        assert ((m, p) in OPEN | SIGNED) == (scope is None), f"{m} {p}: scope {scope}"


def _call(
    client: httpx.Client, method: str, key: tuple[str, str], fill: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    path, params, body = ROUTES[key]
    path = path.format(**fill)
    params = {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in params.items()}
    if isinstance(body, str):
        return client.request(
            method, path, params=params, content=body, headers={**headers, "Content-Type": "text/csv"}
        )
    return client.request(method, path, params=params, json=body, headers=headers)


@pytest.mark.parametrize("key", sorted(ROUTES))
def test_route_security(
    key: tuple[str, str], api_app: FastAPI, client: httpx.Client, tok: Tokens, farm_b: dict[str, str]
) -> None:
    method = key[0]
    scope = next(s for m, p, s in app_routes(api_app) if (m, p) == key)
    assert scope is not None
    r = _call(client, method, key, farm_b, {})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    r = _call(client, method, key, farm_b, tok.h(WRONG_SCOPE[scope]))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    if key in NO_FARM or scope in ("admin", "ingest"):
        return
    # farm_a_reader has read + operate on farm-a only
    r = _call(client, method, key, farm_b, tok.h("farm_a_reader"))
    if key == ("POST", "/nodes/import"):
        assert r.status_code == 400 and r.json()["errors"][0]["column"] == "farm"
    elif key in (("GET", "/farms"),):
        assert r.status_code == 200 and r.json()["items"] == []  # farm-b (the pig farm) is invisible
    else:
        assert r.status_code in (403, 404), (r.status_code, r.text)
