"""Each channel's request as its platform documents it, signatures checked by the documented algorithm."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import unquote_plus

import pytest
from standardwebhooks.webhooks import Webhook

from alerts import channels, messages
from alerts.channels import build, outcome
from kernel import links

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef" * 2).decode()
NOW = 1_764_201_600.5
VIEW = {"alert_id": 7, "farm": "pig-1", "node": "barn-1", "metric": "air_t", "rule": "heat",
        "severity": "critical", "value": 33.456, "threshold": 32.0, "op": "above", "since": NOW - 1200,
        "ended": None, "message": "",
        "status": "open", "dashboard": "http://d/?farm=pig-1"}  # fmt: skip


def test_generic_is_verified_by_the_standard_webhooks_reference_library() -> None:
    body = messages.payload(VIEW, "alert.opened", "dlv_1", "zh", NOW)
    req = build("generic", "http://x/hook", SECRET, "dlv_1", body, "t", "t", NOW)
    # the reference verifier checks the timestamp against its clock: sign "now" for it
    now = datetime.now(UTC).timestamp()
    req = build("generic", "http://x/hook", SECRET, "dlv_1", body, "t", "t", now)
    got = Webhook(SECRET).verify(req.body, req.headers)
    assert got["data"]["farm"] == "pig-1" and got["type"] == "alert.opened"
    assert req.headers["webhook-id"] == "dlv_1"
    tampered = dict(req.headers, **{"webhook-id": "dlv_2"})
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(SECRET).verify(req.body, tampered)


def test_dingtalk_sign_is_hmac_of_timestamp_newline_secret_in_the_query() -> None:
    req = build(
        "dingtalk", "http://x/robot/send?access_token=abc", "SECabc", "dlv_1", {}, "text", "title", NOW
    )
    q = channels.parse_query(req.url)
    ts = q["timestamp"]
    assert ts == str(int(NOW * 1000)) and q["access_token"] == "abc"
    want = base64.b64encode(hmac.new(b"SECabc", f"{ts}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert q["sign"] == want  # parse_qsl undoes the URL encoding once
    assert unquote_plus(req.url.split("sign=")[1]) == want
    body = json.loads(req.body)
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == "title"


def test_feishu_sign_is_hmac_keyed_by_timestamp_newline_secret_over_nothing() -> None:
    req = build("feishu", "http://x/hook/abc", "fsecret", "dlv_1", {}, "hello", "t", NOW)
    body = json.loads(req.body)
    ts = body["timestamp"]
    assert ts == str(int(NOW))
    want = base64.b64encode(hmac.new(f"{ts}\nfsecret".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == want and body["msg_type"] == "text" and body["content"]["text"] == "hello"


def test_wecom_markdown_without_signature() -> None:
    req = build("wecom", "http://x/cgi-bin/webhook/send?key=k", None, "dlv_1", {}, "**hi**", "t", NOW)
    assert json.loads(req.body) == {"msgtype": "markdown", "markdown": {"content": "**hi**"}}
    assert req.url.endswith("key=k")


def test_robots_deliver_only_on_code_zero() -> None:
    assert outcome("wecom", 200, b'{"errcode":0,"errmsg":"ok"}').delivered
    refused = outcome("dingtalk", 200, b'{"errcode":130101,"errmsg":"send too fast"}')
    assert not refused.delivered and refused.retry and refused.code == "130101"
    assert not outcome("feishu", 200, b'{"code":19021,"msg":"sign match fail"}').delivered
    assert outcome("feishu", 200, b'{"code":0,"msg":"success"}').delivered
    assert not outcome("wecom", 200, b"not json").delivered
    assert outcome("generic", 204, b"").delivered and not outcome("generic", 503, b"").delivered


def test_message_in_chinese_by_default_and_english_per_recipient() -> None:
    title, text = messages.render(VIEW, "alert.opened", "zh", NOW)
    assert "农场" in text and "33.46" in text and "20分钟" in text and "严重" in title
    _, text_en = messages.render(VIEW, "alert.opened", "en", NOW)
    assert "Farm: pig-1" in text_en and "above 32" in text_en and "20 min" in text_en


def test_ack_link_verifies_and_refuses_tampering_and_expiry() -> None:
    key = b"k" * 32
    url = links.ack_link("https://farm.example", key, 42, "张三", NOW, ttl_s=60)
    assert url.startswith("https://farm.example/ack/42?by=%E5%BC%A0%E4%B8%89&exp=")
    assert links.verify_ack(url, key, NOW + 59) == (42, "张三")
    with pytest.raises(links.LinkError, match="expired"):
        links.verify_ack(url, key, NOW + 61)
    with pytest.raises(links.LinkError, match="signature"):
        links.verify_ack(url.replace("/ack/42?", "/ack/43?"), key, NOW)
