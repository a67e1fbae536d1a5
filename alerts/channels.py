"""How each channel wants a message: URL, headers, body, signature, and what counts as delivered.

Pure functions (the clock is passed in). Formats, as each platform documents them:

- ``generic``: JSON signed per the Standard Webhooks specification: headers ``webhook-id`` (the
  stable delivery id), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` =
  ``v1,`` + base64(HMAC-SHA256(key, "id.timestamp.body")); the secret is ``whsec_`` + base64(key).
  Delivered on any 2xx.
- ``wecom`` (企业微信 group robot): the key is in the URL, no signature; body
  ``{"msgtype": "markdown", "markdown": {"content": ...}}``; answers ``{"errcode": 0, ...}``.
- ``dingtalk`` (钉钉 custom robot, 加签): query parameters ``timestamp`` (ms) and ``sign`` =
  urlencode(base64(HMAC-SHA256(key=secret, msg="timestamp\\nsecret"))); body
  ``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}``; answers ``{"errcode": 0}``.
- ``feishu`` (飞书 custom bot, 签名校验): ``timestamp`` (s) and ``sign`` =
  base64(HMAC-SHA256(key="timestamp\\nsecret", msg="")) in the JSON body next to
  ``{"msg_type": "text", "content": {"text": ...}}``; answers ``{"code": 0, ...}``.

The robots answer HTTP 200 even when they refuse (bad signature, rate limit): only code 0 counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

from kernel.webhook import CHANNELS, generic_secret_key

# Messages per minute each robot accepts (WeCom and DingTalk document about 20; Feishu 100/min, 5/s).
RATE_PER_MIN: dict[str, int] = {"generic": 600, "wecom": 20, "dingtalk": 20, "feishu": 100}


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool  # worth retrying (rate limit, server error, network) vs never (bad URL, bad secret)
    code: str | None  # errcode/code from the body, or None


def sign_generic(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = generic_secret_key(secret)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign_dingtalk(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value, already URL-encoded as DingTalk's example does."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(mac).decode())


def sign_feishu(secret: str, timestamp_s: int) -> str:
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _with_query(url: str, extra: str) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + extra
    return urlunsplit(parts._replace(query=query))


def build(
    channel: str, url: str, secret: str | None, msg_id: str, payload: dict[str, Any], text: str, title: str,
    now: float,
) -> Request:  # fmt: skip
    """The HTTP request delivering one message on ``channel``."""
    ts = int(now)
    if channel == "generic":
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts)}
        if secret:
            headers["webhook-signature"] = sign_generic(secret, msg_id, ts, body)
        return Request(url, headers, body)
    headers = {"content-type": "application/json; charset=utf-8", "x-agri-delivery": msg_id}
    if channel == "wecom":
        obj: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": text}}
        return Request(url, headers, _dumps(obj))
    if channel == "dingtalk":
        obj = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        if secret:
            ms = int(now * 1000)
            url = _with_query(url, f"timestamp={ms}&sign={sign_dingtalk(secret, ms)}")
        return Request(url, headers, _dumps(obj))
    if channel == "feishu":
        obj = {"msg_type": "text", "content": {"text": text}}
        if secret:
            obj = {"timestamp": str(ts), "sign": sign_feishu(secret, ts), **obj}
        return Request(url, headers, _dumps(obj))
    raise ValueError(f"unknown channel {channel!r}")


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def outcome(channel: str, status: int, body: bytes) -> Outcome:
    """Did the receiver take the message? Robots say so in the body, not the status."""
    if channel == "generic":
        ok = 200 <= status < 300
        return Outcome(ok, not ok and (status >= 500 or status in (408, 409, 425, 429)), None)
    if not 200 <= status < 300:
        return Outcome(False, status >= 500 or status == 429, None)
    try:
        obj = json.loads(body)
        raw = obj.get("errcode", obj.get("code", obj.get("StatusCode"))) if isinstance(obj, dict) else None
    except ValueError:
        raw = None
    if raw is None:
        return Outcome(False, True, "no-code")
    code = str(raw)
    # Every refusal is retried (capped backoff): a wrong secret fixed by the operator then delivers.
    return Outcome(code == "0", code != "0", code)


def parse_query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


__all__ = [
    "CHANNELS",
    "RATE_PER_MIN",
    "Outcome",
    "Request",
    "build",
    "generic_secret_key",
    "outcome",
    "parse_query",
    "sign_dingtalk",
    "sign_feishu",
    "sign_generic",
]
