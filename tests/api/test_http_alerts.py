"""Alerts over HTTP: list and filter, detail with history, acknowledge, resolve."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.api.conftest import Tokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alert_ids(db_url: str, tok: Tokens) -> list[int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        c = conn.execute(
            "INSERT INTO commissioners (name, channel, webhook_url) VALUES ('Li', 'generic', 'http://127.0.0.1:9/h')"
            " RETURNING id"
        ).fetchone()
        assert c is not None
        conn.execute(
            "INSERT INTO farm_commissioners (farm_id, commissioner_id) VALUES ('farm-a', %s)", (c[0],)
        )
        ids = []
        for farm, rule, sev in (
            ("farm-a", "frost", "critical"),
            ("farm-a", "do_low", "warning"),
            ("farm-b", "nh3_high", "warning"),
        ):
            row = conn.execute(
                "INSERT INTO alerts (farm_id, rule, severity, message, started_at, subject)"
                " VALUES (%s, %s, %s, %s, now(), %s) RETURNING id",
                (farm, rule, sev, f"{rule} on {farm}", rule),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
            conn.execute(
                "INSERT INTO alert_events (alert_id, kind, by_whom) VALUES (%s, 'opened', 'rules')", (row[0],)
            )
            conn.execute(
                "INSERT INTO webhook_deliveries (alert_id, commissioner_id, event, payload, farm_id)"
                " VALUES (%s, %s, 'alert.opened', '{}', %s)",
                (row[0], c[0], farm),
            )
    return ids


def test_list_detail_ack_resolve(
    client: httpx.Client, tok: Tokens, alert_ids: list[int], db: psycopg.Connection[Any]
) -> None:
    frost, do_low, nh3 = alert_ids
    r = client.get("/alerts", params={"farm": "farm-a", "severity": "critical"}, headers=tok.h("read"))
    assert [a["id"] for a in r.json()["items"]] == [frost]
    r = client.get("/alerts", headers=tok.h("farm_a_reader"))
    assert {a["id"] for a in r.json()["items"]} == {frost, do_low}
    assert client.get(f"/alerts/{nh3}", headers=tok.h("farm_a_reader")).status_code == 404
    assert client.post(f"/alerts/{frost}/ack", headers=tok.h("read")).status_code == 403
    r = client.post(f"/alerts/{frost}/ack", headers=tok.h("farm_a_reader"))
    assert (
        r.status_code == 200
        and r.json()["status"] == "acknowledged"
        and r.json()["acked_by"] == "api:t-farm-a"
    )
    assert [e["kind"] for e in r.json()["events"]] == ["opened", "acknowledged"]
    assert client.post(f"/alerts/{frost}/ack", headers=tok.h("operate")).status_code == 409
    r = client.post(f"/alerts/{frost}/resolve", headers=tok.h("operate"))
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["ended_at"]
    # the commissioner who was told about it gets one resolve message through the outbox
    assert db.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE alert_id = %s AND event = 'alert.resolved'", (frost,)
    ).fetchone() == (1,)
    assert client.post(f"/alerts/{frost}/resolve", headers=tok.h("operate")).status_code == 409
    assert client.post("/alerts/999999/ack", headers=tok.h("operate")).status_code == 404
    r = client.get("/alerts", params={"status": "open", "limit": 1}, headers=tok.h("read")).json()
    r2 = client.get(
        "/alerts", params={"status": "open", "limit": 1, "cursor": r["next_cursor"]}, headers=tok.h("read")
    ).json()
    assert [r["items"][0]["id"], r2["items"][0]["id"]] == [nh3, do_low]
