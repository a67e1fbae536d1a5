"""Local webhook: signed HTTP POSTs of local rule notifications, retried with backoff.

Signature (the receiver checks it): ``X-Agri-Timestamp: <unix seconds>`` and
``X-Agri-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``. The timestamp is
inside the MAC, so a captured request cannot be replayed later with a fresh timestamp; receivers
should refuse timestamps more than a few minutes off (:func:`verify` does).

Notifications are queued in the spool (``local_alerts``) before delivery, so a gateway restart
does not lose one; every attempt is logged (``webhook_delivered`` / ``webhook_failed``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time

import httpx

from gateway.loop import Loop
from gateway.spool import Alert, Spool
from kernel.backoff import Backoff
from kernel.log import event, get_logger

log = get_logger("gateway")

TIMESTAMP_HEADER = "X-Agri-Timestamp"
SIGNATURE_HEADER = "X-Agri-Signature"
RETRY_MIN_S = 1.0
RETRY_MAX_S = 300.0


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes, timestamp: str, signature: str, body: bytes, now: float, tolerance_s: float = 300.0
) -> bool:
    """Receiver side: a valid signature over a timestamp within ``tolerance_s`` of ``now``."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


class Notifier(Loop):
    """Delivers pending local alerts from the spool; one thread, one HTTP client."""

    def __init__(
        self,
        spool: Spool,
        url: str,
        secret: bytes,
        *,
        max_attempts: int = 10,
        timeout_s: float = 10.0,
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        super().__init__("gateway-webhook")
        self.spool = spool
        self.url = url
        self.secret = secret
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._retry = Backoff(retry_min_s, retry_max_s)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.delivered = 0
        self.failed = 0

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as http:
            while not self.stopping.is_set():
                now = time.time()
                for alert in self.spool.due_alerts(now):
                    if self.stopping.is_set():
                        break
                    self._deliver(http, alert)
                nxt = self.spool.next_alert_due()
                wait = 5.0 if nxt is None else min(5.0, max(0.0, nxt - time.time()))
                if wait > 0:
                    self.wake.wait(wait)
                self.wake.clear()

    def _deliver(self, http: httpx.Client, alert: Alert) -> None:
        body = alert.body.encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self.secret, ts, body),
            "X-Agri-Event": "local_alert",
            "X-Agri-Delivery": str(alert.id),
        }
        attempt = alert.attempts + 1
        t0 = time.monotonic()
        error: str | None
        try:
            resp = http.post(self.url, content=body, headers=headers)
            error = None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        ms = round((time.monotonic() - t0) * 1000, 1)
        if error is None:
            self.spool.alert_delivered(alert.id, time.time())
            self.delivered += 1
            event(
                log,
                "webhook_delivered",
                alert=alert.id,
                rule=alert.rule,
                node=alert.node,
                attempt=attempt,
                ms=ms,
            )
            return
        if attempt >= self.max_attempts:
            self.spool.alert_failed(alert.id, error, None)
            self.failed += 1
            event(
                log, "webhook_gave_up", logging.ERROR, alert=alert.id, rule=alert.rule, node=alert.node,
                attempts=attempt, error=error,
            )  # fmt: skip
            return
        delay = self._retry.delay(attempt - 1)
        self.spool.alert_failed(alert.id, error, time.time() + delay)
        event(
            log, "webhook_failed", logging.WARNING, alert=alert.id, rule=alert.rule, node=alert.node,
            attempt=attempt, error=error, retry_in_s=round(delay, 2),
        )  # fmt: skip
