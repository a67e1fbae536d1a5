"""The outbox dispatcher: sends pending ``webhook_deliveries``, at least once, never dropping one.

A delivery is *claimed* with a lease (``next_attempt_at`` moved past the HTTP timeout) in a short
transaction, sent, and its outcome recorded in another: a dispatcher killed mid-send leaves the row
pending, and it is sent again when the lease ends, with the same delivery id (``webhook-id`` /
``x-agri-delivery``) for the receiver to dedup on. Failures retry with capped exponential backoff
and jitter (:class:`kernel.backoff.Backoff`); every attempt is a ``delivery_attempts`` row.

Group robots (WeCom, DingTalk: about 20 messages a minute each) are rate limited per robot URL:
when several messages wait for one robot they are merged into one message (the others are marked
``merged`` into it), and when the robot's minute is used up the rest wait for the next window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from alerts import channels, messages
from kernel import links
from kernel.backoff import Backoff
from kernel.log import event, get_logger

log = get_logger("alerts")


@dataclass
class DispatchOptions:
    database_url: str
    link_key: bytes
    public_url: str  # the dashboard (links in messages)
    ack_url: str = "http://127.0.0.1:8088"  # the API's public address (signed acknowledge links)
    timeout_s: float = 10.0
    lease_s: float = 30.0
    min_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    poll_s: float = 0.2
    batch: int = 50


@dataclass
class _Item:
    id: int
    alert_id: int | None
    event: str
    payload: dict[str, Any]
    attempts: int
    channel: str
    url: str
    secret: str | None
    language: str
    who: str


class Dispatcher:
    def __init__(self, opts: DispatchOptions) -> None:
        self.opts = opts
        self._sent: dict[str, deque[float]] = {}  # robot URL -> send times in the last minute
        self.conn: psycopg.Connection[Any] | None = None
        self._backoff = Backoff(opts.min_backoff_s, opts.max_backoff_s)
        self.delivered = 0
        self.failed = 0

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                self.opts.database_url, autocommit=True, application_name="agri-alerts-dispatch"
            )
        return self.conn

    def claim(self, now: float) -> list[_Item]:
        conn = self._connect()
        with conn.transaction():
            rows = conn.execute(
                "WITH due AS (SELECT id FROM webhook_deliveries WHERE status = 'pending'"
                " AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => %s),"
                " attempts = d.attempts + 1 FROM due, commissioners c WHERE d.id = due.id"
                " AND c.id = d.commissioner_id RETURNING d.id, d.alert_id, d.event, d.payload, d.attempts,"
                " c.channel, c.webhook_url, c.secret, c.language, c.name",
                (self.opts.batch, self.opts.lease_s),
            ).fetchall()
        return sorted((_Item(*r) for r in rows), key=lambda i: i.id)

    def run_once(self, now: float | None = None) -> int:
        """Claim due deliveries and send them; the number handled."""
        now = time.time() if now is None else now
        items = self.claim(now)
        if not items:
            return 0
        groups: dict[tuple[str, str], list[_Item]] = {}
        for it in items:
            key = (it.channel, it.url) if it.channel != "generic" else ("generic", str(it.id))
            groups.setdefault(key, []).append(it)
        with httpx.Client(timeout=self.opts.timeout_s) as http:
            for (channel, _), group in groups.items():
                self._send_group(http, channel, group, now)
        return len(items)

    def _window(self, url: str, now: float) -> deque[float]:
        q = self._sent.setdefault(url, deque())
        while q and q[0] <= now - 60.0:
            q.popleft()
        return q

    def _send_group(self, http: httpx.Client, channel: str, group: list[_Item], now: float) -> None:
        lead = group[0]
        q = self._window(lead.url, now)
        limit = channels.RATE_PER_MIN.get(channel, 600)
        if len(q) >= limit:
            wait = q[0] + 60.0 - now
            self._postpone(group, wait, "rate limit of the robot: waiting for its next minute")
            return
        texts = []
        for it in group:
            view = dict(it.payload)
            if it.alert_id is not None:
                view["ack_link"] = links.ack_link(
                    self.opts.ack_url, self.opts.link_key, it.alert_id, it.who, now
                )
            texts.append(messages.render(view, it.event, lead.language, now))
        msg_id = f"dlv_{lead.id}"
        if len(group) == 1:
            title, text = texts[0]
        else:
            title = texts[0][0] + (f" (+{len(group) - 1})")
            text = "\n\n".join(t for _, t in texts)
        view = dict(lead.payload)
        if lead.alert_id is not None:
            view["ack_link"] = links.ack_link(
                self.opts.ack_url, self.opts.link_key, lead.alert_id, lead.who, now
            )
        body = messages.payload(view, lead.event, msg_id, lead.language, now)
        try:
            req = channels.build(channel, lead.url, lead.secret, msg_id, body, text, title, time.time())
        except ValueError as exc:
            self._record(group, now, None, None, 0.0, f"cannot build the request: {exc}", retry=True)
            return
        t0 = time.perf_counter()
        status: int | None = None
        try:
            resp = http.post(req.url, content=req.body, headers=req.headers)
            status = resp.status_code
            out = channels.outcome(channel, status, resp.content)
            err = None if out.delivered else f"refused: HTTP {status} code {out.code}"
        except httpx.HTTPError as exc:
            out = channels.Outcome(False, True, None)
            err = f"{type(exc).__name__}: {str(exc)[:200]}"
        latency = (time.perf_counter() - t0) * 1000
        if out.delivered:
            q.append(now)
        self._record(group, now, status, out.code, latency, err, retry=not out.delivered)

    def _postpone(self, group: list[_Item], wait_s: float, why: str) -> None:
        conn = self._connect()
        with conn.transaction():
            conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => %s),"
                " attempts = attempts - 1, last_error = %s WHERE id = ANY(%s)",
                (max(wait_s, 0.5), why, [it.id for it in group]),
            )

    def _record(
        self, group: list[_Item], now: float, status: int | None, code: str | None, latency: float,
        err: str | None, *, retry: bool,
    ) -> None:  # fmt: skip
        lead = group[0]
        conn = self._connect()
        with conn.transaction():
            conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, ok, response_code, error_code, latency_ms,"
                " error) VALUES (%s, %s, %s, %s, %s, %s)",
                (lead.id, err is None, status, code, latency, err),
            )
            if err is None:
                conn.execute(
                    "UPDATE webhook_deliveries SET status = 'sent', sent_at = now(), response_code = %s,"
                    " last_error = NULL WHERE id = %s",
                    (status, lead.id),
                )
                if len(group) > 1:
                    conn.execute(
                        "UPDATE webhook_deliveries SET status = 'merged', merged_into = %s, sent_at = now()"
                        " WHERE id = ANY(%s)",
                        (lead.id, [it.id for it in group[1:]]),
                    )
                self.delivered += len(group)
                event(log, "delivered", delivery=lead.id, channel=lead.channel, merged=len(group) - 1,
                      ms=round(latency, 1))  # fmt: skip
                return
            delay = self._backoff.delay(max(0, lead.attempts - 1))
            conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => %s),"
                " last_error = %s, response_code = %s WHERE id = ANY(%s)",
                (delay, err, status, [it.id for it in group]),
            )
            self.failed += 1
            if lead.attempts == 1:
                event(log, "delivery_failed", logging.WARNING, delivery=lead.id, channel=lead.channel,
                      error=err, retry_in_s=round(delay, 1))  # fmt: skip

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                n = self.run_once()
            except psycopg.Error as exc:
                event(log, "dispatch_db_error", logging.WARNING, error=str(exc).splitlines()[0][:200])
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                stop.wait(1.0)
                continue
            if n == 0:
                stop.wait(self.opts.poll_s)
