"""Central side: forward spooled messages as batches, delete them only after the PUBACK.

One thread owns the upstream paho client and drives its network loop itself, so reconnects
follow our capped, jittered backoff (paho's own reconnect has no jitter). While connected it keeps
up to ``max_inflight_batches`` batches in flight: each is recorded in the spool (id and row range)
before its first publish, published with QoS 1, and its rows are deleted when the PUBACK for that
message id arrives. After a reconnect paho re-sends un-acked publishes itself (DUP flag); after a
restart the recorded batches are re-sent first, with the same ids. A PUBACK with an error reason
code, or "no matching subscribers" (the message reached nobody, e.g. no ingest session exists),
keeps the rows and retries that batch later.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from gateway import batching
from gateway.config import GatewaySettings
from gateway.health import UplinkSnapshot, offline_payload
from gateway.loop import Loop
from gateway.spool import BatchRange, Spool
from kernel.backoff import Backoff
from kernel.log import event, get_logger
from kernel.mqtt import make_client
from kernel.protocol import batch_topic, health_topic
from kernel.settings import MqttUrl

log = get_logger("gateway")

NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(slots=True)
class _Sent:
    batch: BatchRange
    messages: int
    first_sent: float


class Uplink(Loop):
    def __init__(
        self,
        cfg: GatewaySettings,
        spool: Spool,
        *,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__("gateway-uplink")
        self.cfg = cfg
        self.spool = spool
        self._on_state = on_state
        self.url = MqttUrl(cfg.upstream_url)
        self.topic = batch_topic(cfg.farm, cfg.id)
        self.client, self._kwargs = make_client(cfg.upstream_url, cfg.client_id, clean_start=True)
        self._kwargs["keepalive"] = cfg.upstream_keepalive_s
        self.client.max_inflight_messages_set(cfg.max_inflight_batches + 1)
        self.client.will_set(
            health_topic(cfg.farm, cfg.id), offline_payload(cfg.farm, cfg.id), qos=1, retain=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.backoff = Backoff(cfg.backoff_min_s, cfg.backoff_max_s)
        # A batch that reached nobody (no ingest session yet) is retried after 5-10 s, jittered.
        self._batch_retry = Backoff(min(cfg.backoff_max_s, max(cfg.backoff_min_s, 5.0)), cfg.backoff_max_s)
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._ever_connected = False
        self._down_logged = False
        self._open = False  # a socket exists (connecting or connected)
        self.connected = False
        self._since = time.time()
        self._error: str | None = None
        self._next_attempt = 0.0
        self._inflight: dict[int, _Sent] = {}
        self._resend: collections.deque[BatchRange] = collections.deque(spool.pending_batches())
        self._retry_at: list[tuple[float, BatchRange]] = []
        self._batched_upto = max((b.last_id for b in self._resend), default=0)
        self._health: bytes | None = None
        self._lock = threading.Lock()
        self.counters = {"batches_sent": 0, "batches_acked": 0, "forwarded": 0, "batch_retries": 0}
        if self._resend:
            event(log, "resend_pending", batches=len(self._resend), first=self._resend[0].batch_id)

    # --- public (any thread) ------------------------------------------------------------------

    def snapshot(self) -> UplinkSnapshot:
        with self._lock:
            return UplinkSnapshot(self.connected, self._since, self._error, len(self._inflight))

    def post_health(self, payload: bytes) -> None:
        self._health = payload
        self.wake.set()

    def stop(self, drain_s: float = 2.0) -> None:
        """Give in-flight batches ``drain_s`` to be acked, then disconnect cleanly."""
        deadline = time.monotonic() + drain_s
        while self._inflight and self.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopping.set()
        self.wake.set()
        self.join(timeout=10)

    # --- paho callbacks (run inside client.loop, i.e. on this thread) ------------------------

    def _set_state(self, up: bool, error: str | None) -> None:
        with self._lock:
            changed = up != self.connected
            self.connected = up
            self._error = error
            if changed:
                self._since = time.time()
        if changed and self._on_state is not None:
            self._on_state(up)

    def _on_connect(self, _c: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:  # bad credentials or ACL: the broker closes; we retry with backoff
            self._error = f"refused: {rc}"
            if not self._down_logged:
                self._down_logged = True
                event(log, "uplink_refused", logging.ERROR, reason=str(rc), url=self.url.public())
            return
        self.backoff.reset()
        self._ever_connected = True
        self._down_logged = False
        self._error = None
        self._set_state(True, None)
        event(
            log, "uplink_up", url=self.url.public(), inflight=len(self._inflight),
            spool_depth=self.spool.stats().depth,
        )  # fmt: skip

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._open = False
        self._set_state(False, self._error if self._error and self._error.startswith("refused") else str(rc))
        if not self._down_logged:
            self._down_logged = True
            event(log, "uplink_down", logging.WARNING, reason=str(rc), inflight=len(self._inflight))
        self._schedule_attempt()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        sent = self._inflight.pop(mid, None)
        if sent is None:
            return  # a health message
        if rc.is_failure or rc.value == NO_MATCHING_SUBSCRIBERS:
            delay = self._batch_retry.delay(0)
            self._retry_at.append((time.monotonic() + delay, sent.batch))
            self.counters["batch_retries"] += 1
            event(
                log, "batch_not_delivered", logging.WARNING, batch=sent.batch.batch_id, reason=str(rc),
                retry_in_s=round(delay, 2),
            )  # fmt: skip
            return
        now = time.time()
        deleted = self.spool.ack_batch(sent.batch, now)
        self.counters["batches_acked"] += 1
        self.counters["forwarded"] += deleted
        event(
            log, "batch_acked", logging.DEBUG, batch=sent.batch.batch_id, messages=deleted,
            ms=round((now - sent.first_sent) * 1000, 1),
        )  # fmt: skip
        self.wake.set()

    # --- the thread -----------------------------------------------------------------------------

    def _schedule_attempt(self) -> None:
        delay = self.backoff.next_delay()
        self._next_attempt = time.monotonic() + delay

    def _attempt(self) -> None:
        try:
            if self._ever_connected or self._open:
                self.client.reconnect()
            else:
                self.client.connect(**self._kwargs)
            self._open = True
        except (OSError, ValueError) as exc:
            self._set_state(False, f"{type(exc).__name__}: {exc}"[:200])
            self._schedule_attempt()
            if not self._down_logged:  # logged once per outage, not per attempt
                self._down_logged = True
                event(log, "uplink_unreachable", logging.WARNING, url=self.url.public(), error=self._error)

    def loop(self) -> None:
        while not self._stopping.is_set():
            if not self._open and time.monotonic() >= self._next_attempt:
                self._attempt()
            if self._open:
                self.client.loop(timeout=0.05)
            else:
                self.wake.wait(max(0.0, min(0.2, self._next_attempt - time.monotonic())))
                self.wake.clear()
            if self.connected:
                self._send_health()
                self._pump()
        self._shutdown()

    def _shutdown(self) -> None:
        if self.connected and self._health is not None:
            self._send_health()
        if self._open:
            self.client.disconnect()
            for _ in range(20):  # flush the DISCONNECT (and a final health) before closing
                if self.client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                    break

    def _send_health(self) -> None:
        payload, self._health = self._health, None
        if payload is not None:
            self.client.publish(health_topic(self.cfg.farm, self.cfg.id), payload, qos=0, retain=True)

    def _next_batch(self) -> tuple[BatchRange, bytes, int] | None:
        now_mono = time.monotonic()
        if self._retry_at:
            self._retry_at.sort(key=lambda x: x[0])
            if self._retry_at[0][0] <= now_mono:
                self._resend.appendleft(self._retry_at.pop(0)[1])
        while self._resend:
            br = self._resend.popleft()
            rows = self.spool.rows_between(br.first_id, br.last_id)
            if not rows:
                self.spool.forget_batch(br)  # all its rows were dropped by the size bound
                continue
            return br, batching.envelope(self.cfg.id, self.cfg.farm, br.batch_id, rows), len(rows)
        head = self.spool.head_after(self._batched_upto, self.cfg.batch_max_messages + 1)
        span = batching.plan(
            head,
            max_messages=self.cfg.batch_max_messages,
            max_bytes=self.cfg.batch_max_bytes,
            linger_s=self.cfg.linger_s,
            now=time.time(),
        )
        if span is None:
            return None
        rows = self.spool.rows_between(*span)
        if not rows:  # dropped between planning and reading
            self._batched_upto = span[1]
            return None
        br, data, covered = batching.build(self.cfg.id, self.cfg.farm, self.spool.epoch, rows)
        self.spool.record_batch(br)
        self._batched_upto = br.last_id
        return br, data, len(covered)

    def _pump(self) -> None:
        while self.connected and len(self._inflight) < self.cfg.max_inflight_batches:
            nxt = self._next_batch()
            if nxt is None:
                return
            br, data, n = nxt
            info = self.client.publish(self.topic, data, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                self._resend.appendleft(br)
                return
            # MQTT_ERR_NO_CONN: paho keeps the message and sends it after the reconnect.
            self._inflight[info.mid] = _Sent(br, n, time.time())
            self.counters["batches_sent"] += 1
