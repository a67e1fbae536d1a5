"""Alerts over HTTP: list and filter, detail with history, acknowledge, resolve."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from kernel import links
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


def _new_alert(db: psycopg.Connection[Any], farm: str = "farm-a") -> int:
    row = db.execute(
        "INSERT INTO alerts (farm_id, rule, severity, message, started_at, subject)"
        " VALUES (%s, 'thi_high', 'critical', 'THI 81 <b>barn</b>', now(), %s) RETURNING id",
        (farm, f"ack-link-{time.time_ns()}"),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_signed_ack_link_confirms_on_get_and_acknowledges_on_post(
    client: httpx.Client, db: psycopg.Connection[Any]
) -> None:
    key = links.derive_key(None)  # the test app's key: no AGRI_SECRET_KEY configured
    aid = _new_alert(db)
    url = links.ack_link(str(client.base_url), key, aid, "张三", time.time())
    path = url[len(str(client.base_url).rstrip("/")) :]
    # GET (what a chat app's link preview does) shows the alert and a button, and changes nothing
    r = client.get(path)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "确认告警" in r.text and "THI 81 &lt;b&gt;barn&lt;/b&gt;" in r.text and "<b>barn" not in r.text
    assert '<form method="post">' in r.text
    assert db.execute("SELECT status FROM alerts WHERE id = %s", (aid,)).fetchone() == ("open",)
    # no token needed: the signed query string is the credential
    r = client.post(path)
    assert r.status_code == 200 and "已确认" in r.text
    assert db.execute("SELECT status, acked_by FROM alerts WHERE id = %s", (aid,)).fetchone() == (
        "acknowledged",
        "link:张三",
    )
    kinds = db.execute("SELECT kind, by_whom FROM alert_events WHERE alert_id = %s ORDER BY at", (aid,))
    assert ("acknowledged", "link:张三") in kinds.fetchall()
    # a second tap says who handled it; GET shows the same
    for again in (client.post(path), client.get(path)):
        assert again.status_code == 200 and "已处理" in again.text and "link:张三" in again.text


def test_signed_ack_link_refuses_tampering_expiry_and_unknown_alerts(
    client: httpx.Client, db: psycopg.Connection[Any]
) -> None:
    key = links.derive_key(None)
    aid = _new_alert(db)
    now = time.time()
    good = links.ack_link("", key, aid, "li", now)
    for bad in (
        good.replace("by=li", "by=wang"),  # another name
        good.replace(f"/ack/{aid}?", f"/ack/{aid + 1000}?"),  # another alert
        links.ack_link("", links.derive_key("another deployment"), aid, "li", now),  # another key
    ):
        assert client.post(bad).status_code == 403
        assert client.get(bad).status_code == 403
    expired = links.ack_link("", key, aid, "li", now - 8 * 86400)
    assert client.post(expired).status_code == 410
    assert client.get(f"/ack/{aid}", params={"by": "li"}).status_code == 422  # exp and sig missing
    gone = links.ack_link("", key, 2**40, "li", now)
    assert client.post(gone).status_code == 404
    assert db.execute("SELECT status FROM alerts WHERE id = %s", (aid,)).fetchone() == ("open",)
