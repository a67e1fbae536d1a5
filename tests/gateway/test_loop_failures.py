"""Defect 1 of issue 9: a gateway loop that fails must not leave a gateway that looks healthy.

A failing spool write is retried, logged once when it starts and once when it recovers, and
reported in health meanwhile; a loop that dies ends the process with exit status 1, a logged
reason and a retained ``failed`` health message.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import gateway.service
from gateway.health import component, read_health
from gateway.service import GatewayService
from gateway.spool import DeadLetter, Dropped, Entry, Spool
from kernel.protocol import health_topic
from tests.fixtures.process import AgriProcess
from tests.fixtures.wait import wait_until
from tests.gateway.conftest import Rig
from tests.gateway.support import gateway_env, gateway_settings

pytestmark = pytest.mark.integration


class DiskFullSpool(Spool):
    """A spool whose writes fail like a full disk while ``full`` is set."""

    full = threading.Event()
    attempts = 0

    def append(self, entries: list[Entry], dead: list[DeadLetter] = ()) -> Dropped:  # type: ignore[override]
        DiskFullSpool.attempts += 1
        if DiskFullSpool.full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        return super().append(entries, dead)


def test_spool_write_failure_is_logged_once_reported_and_recovered(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agri")
    monkeypatch.setattr(gateway.service, "Spool", DiskFullSpool)
    svc = GatewayService(gateway_settings(rig.farm, rig.gw, rig.local_url, rig.central_url, rig.spool))
    svc.start()
    try:
        wait_until(lambda: svc.uplink.connected and svc.inbound.subscribed, 10, "both connections")
        DiskFullSpool.full.set()
        DiskFullSpool.attempts = 0
        payload = rig.node("n-1").publish(air_t=21.0)
        wait_until(lambda: DiskFullSpool.attempts >= 3, 15, "three failed spool writes")
        events = [r.message for r in caplog.records]
        assert events.count("spool_write_failed") == 1  # once when it starts, not per attempt
        h = svc.health()
        assert h["state"] == "online" and "disk is full" in str(h["spool_error"])
        comp = component(h, time.time())
        assert comp["state"] == "error" and "disk is full" in comp["error"]
        assert svc.dead_loop() is None  # the spooler keeps retrying: nothing died

        DiskFullSpool.full.clear()
        assert rig.collector.wait_messages(1) == [("n-1", payload)]  # nothing lost, nothing acked early
        wait_until(lambda: svc.health()["spool_error"] is None, 10, "health to clear the spool error")
        events = [r.message for r in caplog.records]
        assert events.count("spool_write_failed") == 1 and events.count("spool_write_recovered") == 1
        assert component(svc.health(), time.time())["state"] == "running"
    finally:
        DiskFullSpool.full.clear()
        svc.stop()


def test_a_dead_loop_ends_the_gateway_with_status_1_and_failed_health(rig: Rig, tmp_path: Path) -> None:
    cfg = gateway_settings(rig.farm, rig.gw, rig.local_url, rig.central_url, rig.spool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")} | gateway_env(cfg)
    env |= {"AGRI_HOME": str(tmp_path / "home"), "AGRI_LOG_LEVEL": "info"}
    gw = AgriProcess([], env, tmp_path / "gateway.log", module="tests.gateway.failing_spool_runner")
    gw.start()
    try:
        gw.wait_log("event=local_subscribed")
        rig.node("n-1").publish(air_t=21.0)  # forwarded; its PUBACK makes the spool fail
        assert gw.wait_exit(30) == 1, gw.text()
    finally:
        gw.stop()
    log = gw.text()
    assert gw.count("event=loop_died") == 1 and "loop=gateway-uplink" in log and "disk I/O error" in log
    assert gw.count("event=gateway_failed") == 1
    found = read_health(rig.local_url, topic=health_topic(rig.farm, rig.gw))
    h = found[(rig.farm, rig.gw)]
    assert h["state"] == "failed" and "gateway-uplink" in h["error"] and "disk I/O error" in h["error"]
    comp = component(h, time.time())
    assert comp["state"] == "error" and comp["error"].startswith("gateway failed: gateway-uplink")
