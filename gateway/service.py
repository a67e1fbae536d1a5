"""The farm gateway service (`agri gateway`): wires the spool, both MQTT sides, rules and health.

Threads: paho's network thread for the farm broker and the spooler (:mod:`gateway.inbound`), the
uplink thread (:mod:`gateway.uplink`), the webhook notifier (:mod:`gateway.webhook`) and a
housekeeping thread here that publishes health and re-checks local rules once a second. Each runs
inside the exception boundary of :mod:`gateway.loop`; :meth:`GatewayService.run` is the watchdog: a
loop that is no longer running ends the gateway with health ``state: "failed"`` and exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable

from gateway import health
from gateway.config import GatewaySettings
from gateway.inbound import Inbound
from gateway.loop import Loop
from gateway.rules import Notification, RuleEngine, RuleSet, load_rules
from gateway.spool import Spool
from gateway.uplink import Uplink
from gateway.webhook import Notifier
from kernel.log import event, get_logger
from kernel.protocol import Limits, Reading, health_topic

log = get_logger("gateway")


class GatewayService:
    def __init__(
        self,
        cfg: GatewaySettings,
        *,
        clock_skew_s: float = 300.0,
        retention_days: int = 730,
        rules: RuleSet | None = None,
        after_spool: Callable[[int], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._skew = clock_skew_s
        self._max_age = retention_days * 86400.0
        if rules is None and cfg.rules_file is not None:
            rules = load_rules(cfg.rules_file)
        self.spool = Spool(
            cfg.spool_path,
            max_bytes=cfg.spool_max_bytes,
            sync=cfg.spool_sync,
            dead_letter_max_rows=cfg.dead_letter_max_rows,
        )
        self.engine = RuleEngine(rules) if rules is not None else None
        self._rules_lock = threading.Lock()
        self.notifier: Notifier | None = None
        if cfg.webhook_url is not None and cfg.webhook_secret is not None:
            self.notifier = Notifier(
                self.spool,
                cfg.webhook_url,
                cfg.webhook_secret.get_secret_value().encode(),
                max_attempts=cfg.webhook_max_attempts,
            )
        self.uplink = Uplink(cfg, self.spool, on_state=self._uplink_changed)
        self.inbound = Inbound(
            cfg,
            self.spool,
            self._limits,
            on_readings=self._readings,
            on_spooled=self.uplink.wake.set,
            after_spool=after_spool,
        )
        self.rules_fired = 0
        self._stop = threading.Event()
        self._housekeeper = Loop("gateway-health", self._housekeeping)
        self.failure: str | None = None  # why the gateway failed (a loop died); None while healthy

    def _limits(self, now: float) -> Limits:
        return Limits(now=now, skew_s=self._skew, max_age_s=self._max_age)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        st = self.spool.stats()
        event(
            log, "gateway_start", farm=self.cfg.farm, gateway=self.cfg.id, spool=str(self.cfg.spool_path),
            depth=st.depth, drops=st.drops, sync=self.cfg.spool_sync,
            rules=len(self.engine.ruleset.rules) if self.engine else 0,
        )  # fmt: skip
        if self.notifier is not None:
            self.notifier.start()
        self.uplink.start()
        self.inbound.start()
        self._housekeeper.start()

    def stop(self) -> None:
        """Clean stop: un-acked node messages stay with the farm broker, spooled ones on disk.

        After a failure the last health says ``failed`` with the reason instead of ``stopped``.
        """
        self._stop.set()
        self._housekeeper.join(timeout=10)
        state = "stopped" if self.failure is None else "failed"
        payload = self.health_payload(state=state)
        if self.inbound.connected:
            info = self.inbound.client.publish(
                health_topic(self.cfg.farm, self.cfg.id), payload, qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2)
        self.inbound.stop()
        self.uplink.post_health(payload)
        self.uplink.stop()
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier.join(timeout=15)
        st = self.spool.stats()
        event(log, "gateway_stopped", depth=st.depth, drops=st.drops, last_ack=st.last_ack)
        self.spool.close()

    def run(self, stop: threading.Event, watch_s: float = 1.0) -> int:
        """Run until ``stop`` is set or a loop dies (the watchdog); the process exit status."""
        self.start()
        try:
            while not stop.wait(watch_s):
                dead = self.dead_loop()
                if dead is not None:
                    self.failure = dead
                    event(log, "gateway_failed", logging.ERROR, reason=dead)
                    return 1
            return 0
        finally:
            self.stop()

    def dead_loop(self) -> str | None:
        """The first started loop that is no longer running, with why (None: all alive)."""
        loops: list[Loop] = [self.inbound.spooler, self.uplink, self._housekeeper]
        if self.notifier is not None:
            loops.append(self.notifier)
        for loop in loops:
            why = loop.failure()
            if why is not None:
                return why
        if not self.inbound.network_alive():
            return "farm broker network thread (paho) ended"
        return None

    # --- health -------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        c = dict(self.inbound.counters)
        c.update(self.uplink.counters)
        c["rules_fired"] = self.rules_fired
        if self.notifier is not None:
            c["webhooks_delivered"] = self.notifier.delivered
            c["webhooks_failed"] = self.notifier.failed
        return c

    def health(self, state: str = "online") -> dict[str, object]:
        return health.build(
            self.cfg.farm,
            self.cfg.id,
            stats=self.spool.stats(),
            uplink=self.uplink.snapshot(),
            counters=self.counters(),
            interval_s=self.cfg.health_interval_s,
            now=time.time(),
            state=state,
            error=self.failure,
            spool_error=self.inbound.spool_error,
        )

    def health_payload(self, state: str = "online") -> bytes:
        return json.dumps(self.health(state), separators=(",", ":")).encode()

    def _publish_health(self) -> None:
        h = self.health()
        payload = json.dumps(h, separators=(",", ":")).encode()
        self.inbound.client.publish(health_topic(self.cfg.farm, self.cfg.id), payload, qos=0, retain=True)
        self.uplink.post_health(payload)
        event(
            log, "health", uplink=h["uplink"], depth=h["depth"], oldest_age_s=h["oldest_age_s"],
            last_ack_age_s=h["last_ack_age_s"], drops=h["drops"], dead_letters=h["dead_letters"],
            forwarded=h["forwarded"],
        )  # fmt: skip

    def _housekeeping(self) -> None:
        next_health = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_health:
                try:
                    self._publish_health()
                except Exception as exc:  # health must never take the gateway down
                    event(log, "health_failed", logging.ERROR, error=repr(exc)[:300])
                next_health = time.monotonic() + self.cfg.health_interval_s
            if self.engine is not None:
                with self._rules_lock:
                    notes = self.engine.poll(self.uplink.connected, time.time())
                self._notify(notes)
            self._stop.wait(min(1.0, self.cfg.health_interval_s))

    # --- local rules --------------------------------------------------------------------------

    def _readings(self, readings: list[Reading]) -> None:
        if self.engine is None:
            return
        with self._rules_lock:
            notes = self.engine.observe(readings, self.uplink.connected, time.time())
        self._notify(notes)

    def _uplink_changed(self, up: bool) -> None:
        # Runs on the uplink thread. Fresh health at once: the first one a central subscriber sees
        # after a reconnect must not be a snapshot taken while the uplink was down.
        if self._stop.is_set():
            return  # our own clean stop is not an uplink outage: no health, no local alerts
        try:
            self._publish_health()
        except Exception as exc:
            event(log, "health_failed", logging.ERROR, error=repr(exc)[:300])
        if self.engine is not None and not up:
            with self._rules_lock:
                notes = self.engine.poll(False, time.time())
            self._notify(notes)

    def _notify(self, notes: list[Notification]) -> None:
        if not notes:
            return
        now = time.time()
        uplink = "up" if self.uplink.connected else "down"
        for n in notes:
            body = json.dumps(n.body(self.cfg.farm, self.cfg.id, now, uplink), ensure_ascii=False)
            alert_id = self.spool.add_alert(now, n.rule.name, n.node, body)
            self.rules_fired += 1
            event(
                log, "rule_fired", logging.WARNING, alert=alert_id, rule=n.rule.name, node=n.node,
                metric=n.rule.metric, value=n.value, op=n.rule.op, threshold=n.rule.threshold, uplink=uplink,
            )  # fmt: skip
        if self.notifier is not None:
            self.notifier.wake.set()
