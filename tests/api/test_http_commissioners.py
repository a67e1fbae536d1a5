"""Commissioners and farm rule overrides over HTTP: create / update / retire, assign / unassign,
secrets never returned, the key named on bad input, farm-limited tokens restricted; rule
overrides validated as rule files are, shown as effective rules, and picked up by the alert
service's rule book."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from alerts.service import AlertOptions, AlertService
from api.queries import tokens
from tests.api.conftest import Tokens

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key-123"


@pytest.fixture(scope="module")
def farm_admin(db_url: str, tok: Tokens) -> dict[str, str]:
    """An admin token limited to farm-a."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        t = tokens.create(conn, "t-farm-a-admin", ["admin"], ["farm-a"])[0]
    return {"Authorization": f"Bearer {t}"}


def test_create_update_retire_and_secrets_stay_secret(client: httpx.Client, tok: Tokens) -> None:
    body = {"name": "张工", "channel": "generic", "url": "https://hooks.example/agri", "secret": SECRET}
    r = client.post("/commissioners", json=body, headers=tok.h("admin"))
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["has_secret"] is True and "secret" not in c and SECRET not in r.text
    assert c["language"] == "zh" and c["active"] is True and c["farms"] == []
    cid = c["id"]
    r = client.post("/commissioners", json=body, headers=tok.h("admin"))
    assert r.status_code == 409 and r.json()["error"]["field"] == "name"

    # switching to WeCom: the stored whsec_ secret no longer fits, and the error names the key
    r = client.patch(f"/commissioners/{cid}", json={"channel": "wecom", "url": WECOM}, headers=tok.h("admin"))
    assert r.status_code == 400 and r.json()["error"]["field"] == "secret", r.text
    r = client.patch(
        f"/commissioners/{cid}",
        json={"channel": "wecom", "url": WECOM, "secret": None, "language": "en"},
        headers=tok.h("admin"),
    )
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["has_secret"] is False and c["channel"] == "wecom" and c["language"] == "en"
    assert "robot-key-123" not in r.text and c["url"].endswith("?…")

    r = client.post(f"/commissioners/{cid}/retire", headers=tok.h("admin"))
    assert r.status_code == 200 and r.json()["active"] is False
    listed = client.get("/commissioners", headers=tok.h("read")).json()
    assert cid not in [x["id"] for x in listed]
    listed = client.get("/commissioners", params={"include_retired": True}, headers=tok.h("read")).json()
    assert cid in [x["id"] for x in listed]
    r = client.patch(f"/commissioners/{cid}", json={"active": True}, headers=tok.h("admin"))
    assert r.status_code == 200 and r.json()["active"] is True
    assert client.get(f"/commissioners/{cid}", headers=tok.h("read")).json()["name"] == "张工"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a", "channel": "generic", "url": "https://h/x"}, "secret"),
        ({"name": "a", "channel": "generic", "url": "https://h/x", "secret": "whsec_short"}, "secret"),
        ({"name": "a", "channel": "wecom", "url": "https://h/x"}, "url"),
        ({"name": "a", "channel": "dingtalk", "url": "ftp://h/x?access_token=t"}, "url"),
        ({"name": " ", "channel": "feishu", "url": "https://h/x"}, "name"),
        ({"name": "a", "channel": "feishu", "url": "https://h/x", "phone": "call me"}, "phone"),
    ],
)
def test_bad_input_names_the_key(client: httpx.Client, tok: Tokens, body: dict[str, str], field: str) -> None:
    r = client.post("/commissioners", json=body, headers=tok.h("admin"))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["message"].startswith(f"{field}:")
    assert not [x for x in client.get("/commissioners", headers=tok.h("read")).json() if x["name"] == "a"]


def test_unknown_channel_is_refused_by_the_schema(client: httpx.Client, tok: Tokens) -> None:
    r = client.post(
        "/commissioners", json={"name": "a", "channel": "sms", "url": "https://h/x"}, headers=tok.h("admin")
    )
    assert r.status_code == 422


def test_assign_and_unassign(client: httpx.Client, tok: Tokens, farm_admin: dict[str, str]) -> None:
    body = {
        "name": "王工",
        "channel": "dingtalk",
        "url": "https://oapi.dingtalk.com/robot/send?access_token=t",
    }
    cid = client.post("/commissioners", json={**body, "secret": "SECx"}, headers=tok.h("admin")).json()["id"]
    r = client.put(
        f"/farms/farm-b/commissioners/{cid}",
        json={"min_severity": "critical", "escalation_order": 1},
        headers=tok.h("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["farms"] == [{"farm": "farm-b", "escalation_order": 1, "min_severity": "critical"}]
    farm = client.get("/farms/farm-b", headers=tok.h("read")).json()
    assert {"id": cid, "name": "王工", "min_severity": "critical"} in farm["commissioners"]
    listed = client.get("/commissioners", params={"farm": "farm-b"}, headers=tok.h("read")).json()
    assert [x["id"] for x in listed] == [cid]

    # farm-limited admin: neither sees nor assigns on farm-b, cannot create or change commissioners
    assert client.get(f"/commissioners/{cid}", headers=farm_admin).status_code == 404
    assert client.get("/commissioners", headers=farm_admin).json() == []
    r = client.put(f"/farms/farm-b/commissioners/{cid}", json={}, headers=farm_admin)
    assert r.status_code == 403
    r = client.patch(f"/commissioners/{cid}", json={"language": "en"}, headers=farm_admin)
    assert r.status_code == 403
    r = client.post("/commissioners", json={**body, "name": "x"}, headers=farm_admin)
    assert r.status_code == 403
    r = client.put(f"/farms/farm-a/commissioners/{cid}", json={}, headers=farm_admin)
    assert r.status_code == 200
    assert [a["farm"] for a in r.json()["farms"]] == ["farm-a"]  # only its own farm is shown

    r = client.put(f"/farms/no-such-farm/commissioners/{cid}", json={}, headers=tok.h("admin"))
    assert r.status_code == 404 and r.json()["error"]["field"] == "farm"
    r = client.put("/farms/farm-b/commissioners/999999", json={}, headers=tok.h("admin"))
    assert r.status_code == 404
    too_late = {"escalation_order": 10}
    r = client.put(f"/farms/farm-b/commissioners/{cid}", json=too_late, headers=tok.h("admin"))
    assert r.status_code == 422

    r = client.delete(f"/farms/farm-b/commissioners/{cid}", headers=tok.h("admin"))
    assert r.status_code == 200 and [a["farm"] for a in r.json()["farms"]] == ["farm-a"]
    r = client.delete(f"/farms/farm-b/commissioners/{cid}", headers=tok.h("admin"))
    assert r.status_code == 404


def test_rule_override_validated_effective_and_seen_by_the_alert_service(
    client: httpx.Client, tok: Tokens, farm_admin: dict[str, str], db_url: str
) -> None:
    r = client.get("/farms/farm-a/rules", headers=tok.h("read"))
    assert r.status_code == 200, r.text
    before = r.json()
    assert before["override"] is None and before["kind"] == "orchard"
    assert before["effective"] and {e["origin"] for e in before["effective"]} == {"default"}
    default_names = [e["rule"]["name"] for e in before["effective"]]

    bad = {"rules": [{"name": "frost-early", "metric": "air_t", "below": -300}]}
    r = client.put("/farms/farm-a/rules", json=bad, headers=tok.h("admin"))
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "rules[0] ('frost-early')" in msg and "threshold -300 is outside" in msg, msg
    r = client.put(
        "/farms/farm-a/rules",
        content=b'[[rules]]\nname = "x"\nmetric = "nope"\nabove = 1\n',
        headers={**tok.h("admin"), "Content-Type": "application/toml"},
    )
    assert r.status_code == 400 and "unknown metric 'nope'" in r.json()["error"]["message"]
    r = client.put("/farms/farm-a/rules", content=b"{not json", headers=tok.h("admin"))
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]

    toml = (
        f'[[rules]]\nname = "{default_names[0]}"\nenabled = false\nkind = "silent"\n\n'
        '[[rules]]\nname = "frost-early"\nmetric = "air_t"\nbelow = 1.5\nfor_s = 600\nseverity = "warning"\n'
    )
    r = client.put(
        "/farms/farm-a/rules",
        content=toml.encode(),
        headers={**farm_admin, "Content-Type": "application/toml"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["updated_by"] == "api:t-farm-a-admin" and len(got["override"]["rules"]) == 2
    names = {e["rule"]["name"]: e["origin"] for e in got["effective"]}
    assert names["frost-early"] == "override" and default_names[0] not in names
    assert client.put("/farms/farm-b/rules", json=bad, headers=farm_admin).status_code == 403

    # the alert service puts the stored override on top, and drops it at its next tick once deleted
    svc = AlertService(AlertOptions(database_url=db_url, dispatch=False))
    try:
        svc.tick()
        served = {r.name for r in svc.opts.rules.rules("farm-a", "orchard")}
        assert "frost-early" in served and default_names[0] not in served

        r = client.delete("/farms/farm-a/rules", headers=tok.h("admin"))
        assert r.status_code == 200 and r.json()["override"] is None
        assert [e["rule"]["name"] for e in r.json()["effective"]] == default_names
        svc.tick()
        assert [r.name for r in svc.opts.rules.rules("farm-a", "orchard")] == default_names
    finally:
        svc.close()
    assert client.delete("/farms/farm-a/rules", headers=tok.h("admin")).status_code == 404
    assert client.get("/farms/no-such-farm/rules", headers=tok.h("read")).status_code == 404


def test_robot_keys_are_masked_in_every_answer(client: httpx.Client, tok: Tokens) -> None:
    hook = "https://open.feishu.cn/open-apis/bot/v2/hook/f1e2d3c4-feishu-token"
    body = {"name": "飞书群", "channel": "feishu", "url": hook, "secret": "feishu-signing-secret"}
    r = client.post("/commissioners", json=body, headers=tok.h("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["url"] == "https://open.feishu.cn/open-apis/bot/v2/hook/…"
    listed = client.get("/commissioners", params={"include_retired": True}, headers=tok.h("read")).text
    for secret in ("f1e2d3c4-feishu-token", "feishu-signing-secret", "robot-key-123", "access_token=t"):
        assert secret not in listed
