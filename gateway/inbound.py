"""Farm side: subscribe to the node uplinks, spool each message durably, then ack it.

paho runs with ``manual_ack=True`` and a persistent session (fixed client id, ``clean_start``
false, session expiry): the farm broker keeps every message the gateway has not acked, and
redelivers it after a gateway crash or restart. The network thread only queues messages; the
spooler thread takes whatever is queued (group commit: one transaction and one fsync for many
messages under load, one per message when idle), appends it to the spool, and acks each message
-- in arrival order -- only after the commit returned. A message acked on an earlier connection
is not acked again: the broker redelivers it and the spool keeps a duplicate (same node and seq,
which central storage deduplicates).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from gateway.classify import classify
from gateway.config import GatewaySettings
from gateway.health import offline_payload
from gateway.loop import Loop, describe
from gateway.spool import Spool, SpoolError
from kernel.backoff import Backoff
from kernel.log import event, get_logger
from kernel.mqtt import make_client
from kernel.protocol import Limits, Reading, health_topic, up_topic
from kernel.settings import MqttUrl

log = get_logger("gateway")

MAX_GROUP = 2000  # messages per spool transaction


@dataclass(frozen=True, slots=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float
    generation: int


class Inbound:
    def __init__(
        self,
        cfg: GatewaySettings,
        spool: Spool,
        limits: Callable[[float], Limits],
        *,
        on_readings: Callable[[list[Reading]], None],
        on_spooled: Callable[[], None],
        after_spool: Callable[[int], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.spool = spool
        self._limits = limits
        self._on_readings = on_readings
        self._on_spooled = on_spooled
        self._after_spool = after_spool  # test seam: runs after the commit, before the acks
        self._q: queue.SimpleQueue[_Inbound] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._generation = 0
        self.connected = False
        self.subscribed = False
        self.counters = {"received": 0, "spooled": 0, "invalid": 0, "dropped": 0}
        self.client, self._connect_kwargs = make_client(
            cfg.local_url,
            cfg.client_id,
            manual_ack=True,
            clean_start=False,
            session_expiry_s=cfg.local_session_expiry_s,
        )
        self.client.reconnect_delay_set(1, 30)
        self.client.will_set(
            health_topic(cfg.farm, cfg.id), offline_payload(cfg.farm, cfg.id), qos=1, retain=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_connect_fail = self._on_connect_fail
        self._unreachable_logged = False
        self._failing_since = 0.0
        self.spool_error: str | None = None  # set while spool writes fail (health reports it)
        self.spooler = Loop("gateway-spooler", self._spooler)

    # --- MQTT network thread ------------------------------------------------------------------

    def _on_connect(self, c: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            event(
                log, "local_refused", logging.ERROR, reason=str(rc), url=MqttUrl(self.cfg.local_url).public()
            )
            return
        self._generation += 1
        self.connected = True
        self._unreachable_logged = False
        c.subscribe(up_topic(self.cfg.farm, "+"), qos=1)
        event(
            log, "local_connected", url=MqttUrl(self.cfg.local_url).public(),
            session_present=bool(flags.session_present),
        )  # fmt: skip

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        if not self._unreachable_logged:  # paho retries (1 s .. 30 s); log the outage once
            self._unreachable_logged = True
            event(log, "local_unreachable", logging.WARNING, url=MqttUrl(self.cfg.local_url).public())

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[Any], _p: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            event(log, "local_subscribe_refused", logging.ERROR, reasons=[str(rc) for rc in rcs])
            return
        self.subscribed = True
        event(log, "local_subscribed", topic=up_topic(self.cfg.farm, "+"))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if self.connected:
            event(log, "local_disconnected", logging.WARNING, reason=str(rc))
        self.connected = self.subscribed = False

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        self._q.put(_Inbound(topic, bytes(msg.payload), msg.mid, msg.qos, time.time(), self._generation))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.spooler.start()
        self.client.connect_async(**self._connect_kwargs)
        self.client.loop_start()

    def stop(self) -> None:
        """Stop receiving, finish the current group (commit + ack), then disconnect."""
        self._stop.set()
        self.spooler.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    # --- spooler thread -----------------------------------------------------------------------

    def _spooler(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._q.get_nowait())
                except queue.Empty:
                    break
            self._store(group)

    def _write_failed(self, exc: Exception, messages: int) -> None:
        """Log a failing spool once, when it starts; health shows it until a write succeeds."""
        if self.spool_error is None:
            self.spool_error = describe(exc)
            self._failing_since = time.monotonic()
            event(log, "spool_write_failed", logging.ERROR, error=self.spool_error, messages=messages)

    def network_alive(self) -> bool:
        """Whether paho's network thread (``loop_start``) is running; it has no public accessor."""
        t = self.client._thread
        return t is not None and t.is_alive()

    def _store(self, group: list[_Inbound]) -> None:
        now = time.time()
        limits = self._limits(now)
        classified = [classify(self.cfg.farm, m.topic, m.payload, m.received, limits) for m in group]
        entries = [c.entry for c in classified]
        dead = [c.dead for c in classified if c.dead is not None]
        retry = Backoff(0.5, 10.0)
        while True:
            try:
                dropped = self.spool.append(entries, dead)
                break
            except (
                SpoolError,
                sqlite3.Error,
                OSError,
            ) as exc:  # disk full, I/O error: never ack unsaved data
                self._write_failed(exc, len(group))
                if self._stop.wait(retry.next_delay()):
                    return  # not acked: the broker redelivers these after restart
        if self.spool_error is not None:
            event(
                log, "spool_write_recovered", failed_s=round(time.monotonic() - self._failing_since, 1),
                attempts=retry.failures + 1, messages=len(group),
            )  # fmt: skip
            self.spool_error = None
        if self._after_spool is not None:
            self._after_spool(len(group))
        gen = self._generation
        for m in group:
            if m.generation == gen and m.qos > 0:
                self.client.ack(m.mid, m.qos)
        self.counters["received"] += len(group)
        self.counters["spooled"] += len(entries)
        self.counters["invalid"] += len(dead)
        for c in classified:
            if c.dead is not None:
                event(
                    log, "dead_letter", logging.WARNING, node=c.dead.node, reason=c.dead.reason,
                    detail=c.dead.detail[:200], whole=c.dead.whole,
                )  # fmt: skip
        if dropped.rows:
            self.counters["dropped"] += dropped.rows
            event(
                log, "spool_dropped", logging.WARNING, rows=dropped.rows, bytes=dropped.bytes,
                oldest_age_s=round(now - (dropped.oldest_received or now), 1), max_bytes=self.spool.max_bytes,
            )  # fmt: skip
        self._on_spooled()
        readings = [r for c in classified for r in c.readings]
        if readings:
            self._on_readings(readings)
