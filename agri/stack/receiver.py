"""The demo's webhook receiver: a local HTTP server standing in for commissioners' endpoints.

Each commissioner of the demo district posts to ``/hook/<name>``; the receiver knows that path's
channel (generic Standard Webhooks, WeCom, DingTalk, Feishu) and secret, checks the signature with
the alerts package's own signing functions (recomputed, compared in constant time), answers as the
real platform would (robots: ``{"errcode":0}`` / ``{"code":0}``), and records every message. ``GET /``
shows them as a page (refreshing itself), ``GET /messages.json`` as JSON; each one is also one log line.
"""

from __future__ import annotations

import hmac
import html
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from alerts.channels import sign_dingtalk, sign_feishu, sign_generic

MAX_BODY = 1024 * 1024
TOLERANCE_S = 300  # Standard Webhooks: refuse timestamps further than this from now


@dataclass(frozen=True)
class Endpoint:
    name: str  # commissioner name
    channel: str  # generic | wecom | dingtalk | feishu
    secret: str | None  # whsec_... (generic), robot secret (dingtalk, feishu), robot key (wecom)


@dataclass
class Message:
    n: int
    at: float
    commissioner: str
    channel: str
    verified: bool
    check: str  # what was checked, or why it failed
    event: str  # alert.opened / alert.resolved / ... (generic), or the title line (robots)
    alert_id: int | None
    delivery_id: str | None
    title: str
    text: str


def verify(ep: Endpoint, path: str, headers: dict[str, str], body: bytes, now: float) -> tuple[bool, str]:
    """Did this request come from someone holding the endpoint's secret? (ok, what was checked)."""
    query = dict(parse_qsl(urlsplit(path).query))
    if ep.channel == "generic":
        mid, ts, sigs = (
            headers.get("webhook-id"),
            headers.get("webhook-timestamp"),
            headers.get("webhook-signature"),
        )
        if not (mid and ts and sigs and ep.secret):
            return False, "missing webhook-id/-timestamp/-signature"
        try:
            t = int(ts)
        except ValueError:
            return False, f"webhook-timestamp {ts!r} is not an integer"
        if abs(now - t) > TOLERANCE_S:
            return False, f"webhook-timestamp {t} is {now - t:+.0f} s from now"
        want = sign_generic(ep.secret, mid, t, body)
        ok = any(hmac.compare_digest(s.strip(), want) for s in sigs.split(" ") if s.startswith("v1,"))
        return ok, "Standard Webhooks v1 HMAC-SHA256" if ok else "webhook-signature does not match"
    if ep.channel == "wecom":
        ok = ep.secret is not None and hmac.compare_digest(query.get("key", ""), ep.secret)
        return ok, "robot key in the URL" if ok else "wrong or missing robot key"
    if ep.channel == "dingtalk":
        ts_raw, sign = query.get("timestamp", ""), query.get("sign", "")
        if not (ts_raw.isdigit() and sign and ep.secret):
            return False, "missing timestamp/sign query parameters"
        if abs(now * 1000 - int(ts_raw)) > TOLERANCE_S * 1000:
            return False, "timestamp out of the allowed window"
        want = unquote_plus(sign_dingtalk(ep.secret, int(ts_raw)))
        ok = hmac.compare_digest(sign, want)
        return ok, "DingTalk 加签 HMAC-SHA256" if ok else "sign does not match"
    if ep.channel == "feishu":
        try:
            obj = json.loads(body)
            ts_raw, sign = str(obj.get("timestamp", "")), str(obj.get("sign", ""))
        except (ValueError, AttributeError):
            return False, "body is not a JSON object"
        if not (ts_raw.isdigit() and sign and ep.secret):
            return False, "missing timestamp/sign in the body"
        if abs(now - int(ts_raw)) > TOLERANCE_S:
            return False, "timestamp out of the allowed window"
        ok = hmac.compare_digest(sign, sign_feishu(ep.secret, int(ts_raw)))
        return ok, "Feishu 签名校验 HMAC-SHA256" if ok else "sign does not match"
    return False, f"unknown channel {ep.channel!r}"


def _summary(
    channel: str, headers: dict[str, str], body: bytes
) -> tuple[str, int | None, str | None, str, str]:
    """(event, alert id, delivery id, title, text) of a message in the channel's format."""
    try:
        obj: Any = json.loads(body)
    except ValueError:
        return "?", None, None, "(not JSON)", body[:200].decode("utf-8", "replace")
    if not isinstance(obj, dict):
        return "?", None, None, "(not an object)", ""
    if channel == "generic":
        data: dict[str, Any] = obj["data"] if isinstance(obj.get("data"), dict) else {}
        aid = data.get("alert_id")
        return (
            str(obj.get("type", "?")),
            int(aid) if isinstance(aid, int) else None,
            headers.get("webhook-id"),
            str(data.get("title", "")),
            str(data.get("text", "")),
        )
    if channel in ("wecom", "dingtalk"):
        md: dict[str, Any] = obj["markdown"] if isinstance(obj.get("markdown"), dict) else {}
        text = str(md.get("content") or md.get("text") or "")
    else:
        content: dict[str, Any] = obj["content"] if isinstance(obj.get("content"), dict) else {}
        text = str(content.get("text", ""))
    title = text.strip().splitlines()[0].lstrip("#* ").strip() if text.strip() else ""
    return title, None, headers.get("x-agri-delivery"), title, text


class DemoReceiver:
    """Receive, verify and record webhook messages on 127.0.0.1 (port 0: any free port)."""

    def __init__(self, port: int = 0, log: Callable[[Message], None] | None = None) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.log = log
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer._post(self)

            def do_GET(self) -> None:
                outer._get(self)

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, ep: Endpoint) -> str:
        """Register an endpoint; return the URL its commissioner's webhook should point at."""
        self.endpoints[ep.name] = ep
        base = f"{self.url}/hook/{ep.name}"
        if ep.channel == "wecom":
            return f"{base}?key={ep.secret}"
        if ep.channel == "dingtalk":
            return f"{base}?access_token={ep.name}"
        return base

    def snapshot(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- HTTP ---------------------------------------------------------------------------------

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        name = path.removeprefix("/hook/") if path.startswith("/hook/") else None
        ep = self.endpoints.get(name or "")
        n = int(h.headers.get("content-length") or 0)
        if ep is None or not 0 <= n <= MAX_BODY:
            self._reply(h, 404 if ep is None else 413, b'{"errcode":404}', "application/json")
            return
        body = h.rfile.read(n)
        headers = {k.lower(): v for k, v in h.headers.items()}
        now = time.time()
        ok, check = verify(ep, h.path, headers, body, now)
        event, aid, did, title, text = _summary(ep.channel, headers, body)
        with self.lock:
            msg = Message(
                len(self.messages) + 1, now, ep.name, ep.channel, ok, check, event, aid, did, title, text
            )
            self.messages.append(msg)
        if self.log is not None:
            self.log(msg)
        if ep.channel == "generic":
            self._reply(h, 204 if ok else 401, b"", "text/plain")
        else:  # the robots answer 200 with a code in the body
            reply = b'{"errcode":0,"errmsg":"ok","code":0}' if ok else b'{"errcode":310000,"code":19021}'
            self._reply(h, 200, reply, "application/json")

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        msgs = self.snapshot()
        if path == "/messages.json":
            self._reply(
                h, 200, json.dumps([asdict(m) for m in msgs], ensure_ascii=False).encode(), "application/json"
            )
        elif path == "/":
            self._reply(h, 200, render_page(msgs).encode(), "text/html; charset=utf-8")
        else:
            self._reply(h, 404, b"not found", "text/plain")


def render_page(msgs: list[Message]) -> str:
    rows = []
    for m in reversed(msgs):
        ok = "✔ verified" if m.verified else "✘ NOT verified"
        color = "#176b2c" if m.verified else "#a31515"
        rows.append(
            f"<tr><td>{m.n}</td><td>{time.strftime('%H:%M:%S', time.localtime(m.at))}</td>"
            f"<td>{html.escape(m.commissioner)}</td><td>{html.escape(m.channel)}</td>"
            f"<td style='color:{color}'>{ok}<br><small>{html.escape(m.check)}</small></td>"
            f"<td>{html.escape(m.event)}</td>"
            f"<td><pre>{html.escape(m.text[:600])}</pre></td></tr>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='5'>"
        "<title>agri demo: webhook receiver</title><style>body{font-family:sans-serif;margin:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "pre{white-space:pre-wrap;margin:0;max-width:60em}</style></head><body>"
        f"<h2>Webhook receiver: {len(msgs)} message(s), "
        f"{sum(m.verified for m in msgs)} with a verified signature</h2>"
        "<p>What each commissioner (科技特派员) of the demo district was sent, newest first. "
        "Also as JSON: <a href='/messages.json'>/messages.json</a></p>"
        "<table><tr><th>#</th><th>time</th><th>commissioner</th><th>channel</th><th>signature</th>"
        "<th>event</th><th>message</th></tr>" + "".join(rows) + "</table></body></html>"
    )
