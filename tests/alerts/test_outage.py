"""A gateway outage: one gateway alert (its nodes' silence attached, no message each), and its backlog
recorded with true start/end and told in ONE summary; an ongoing condition still alerts normally."""

import json
import secrets
import time

import psycopg
import pytest

from kernel.mqtt import make_client
from kernel.protocol import encode_batch, encode_up
from tests.alerts.support import book, q, service_thread, setup_farm
from tests.fixtures.mqtt import BrokerHandle
from tests.fixtures.receiver import Receiver
from tests.fixtures.wait import wait_until
from tests.ingest.support import worker_thread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
[[rules]]
name = "barn-heat"
metric = "air_t"
above = 32
clear = 30
cooldown_s = 0
[[rules]]
name = "node-silent"
kind = "silent"
intervals = 3
interval_s = 1
severity = "warning"
[[rules]]
name = "gateway-down"
kind = "gateway"
intervals = 3
interval_s = 10
"""


class Gateway:
    """Publishes what a farm gateway would on the central broker: batches and retained health."""

    def __init__(self, url: str, farm: str) -> None:
        self.farm, self.seq, self.n = farm, {"n-1": 0, "n-2": 0}, 0
        self.c, kw = make_client(url, f"gw-{secrets.token_hex(3)}")
        self.c.connect(**kw)
        self.c.loop_start()

    def health(self, state: str, **extra: object) -> None:
        body = {"v": 1, "farm": self.farm, "gw": "gw-1", "ts": time.time(), "state": state, "depth": 0}
        body |= extra
        topic = f"agri/v1/{self.farm}/gw/gw-1/health"
        self.c.publish(topic, json.dumps(body), qos=1, retain=True).wait_for_publish(10)

    def batch(self, samples: dict[str, list[tuple[float, dict[str, float]]]]) -> None:
        inner = []
        for node, ss in samples.items():
            for s in ss:
                inner.append((node, encode_up(node, self.seq[node], [s])))
                self.seq[node] += 1
        self.n += 1
        payload = encode_batch("gw-1", self.farm, f"gw-1:{self.n}", inner)
        self.c.publish(f"agri/v1/{self.farm}/gw/gw-1/batch", payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.publish(f"agri/v1/{self.farm}/gw/gw-1/health", b"", qos=1, retain=True).wait_for_publish(10)
        self.c.disconnect()
        self.c.loop_stop()


def go_offline(db_url: str, farm: str, gw: Gateway) -> float:
    """The gateway online with a first reading per node (evaluated), then its Last Will: uplink lost,
    until the gateway alert is open. Returns the first readings' time."""
    gw.health("online")
    now = float(int(time.time()))
    gw.batch({n: [(now, {"air_t": 25.0})] for n in ("n-1", "n-2")})
    evaluated = "SELECT count(*) FROM series WHERE alert_watermark IS NOT NULL"
    wait_until(lambda: q(db_url, evaluated)[0][0] >= 2, 20, "first readings evaluated")
    gw.health("offline")
    gw_alert = "SELECT id FROM alerts WHERE farm_id = %s AND rule = 'gateway-down'"
    wait_until(lambda: len(q(db_url, gw_alert, farm)) == 1, 20, "gateway alert")
    return now


def test_gateway_outage_one_alert_and_backlog_one_summary(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str, receiver: Receiver
) -> None:
    farm = f"og-{secrets.token_hex(2)}"
    setup_farm(db_url, farm, receiver.url, ["n-1", "n-2"])
    ingest_url, monitor_url = mqtt_broker.account("ingest"), mqtt_broker.account("monitor")
    gw = Gateway(mqtt_admin_url, farm)
    deliveries = (
        "SELECT d.event, c.name FROM webhook_deliveries d JOIN commissioners c ON c.id = d.commissioner_id"
    )
    try:
        with (
            worker_thread(db_url, ingest_url, f"w-{farm}", group=f"g{farm}", session_expiry_s=60),
            service_thread(
                db_url,
                rules=book(RULES),
                mqtt_url=monitor_url,
                late_after_s=2.0,
                summary_quiet_s=1.0,
                escalate_after_s=3600,
            ),  # fmt: skip
        ):
            now = go_offline(db_url, farm, gw)
            gw_alert = "SELECT id FROM alerts WHERE farm_id = %s AND rule = 'gateway-down'"
            silent = "SELECT parent_id, escalate_at FROM alerts WHERE farm_id = %s AND rule = 'node-silent'"
            wait_until(lambda: len(q(db_url, silent, farm)) == 2, 20, "both nodes silent")
            (gid,) = q(db_url, gw_alert, farm)[0]
            assert q(db_url, silent, farm) == [(gid, None), (gid, None)]  # attached, never escalated
            # the gateway returns with its backlog: a heat episode inside the outage, then fresh data
            wait_until(lambda: time.time() > now + 9, 15, "an outage of some seconds")
            gw.health("online")
            t0 = now
            backlog = {
                "n-1": [(t0 + i, {"air_t": v}) for i, v in enumerate([26, 34, 35, 33, 29, 27], start=1)],
                "n-2": [(t0 + i, {"air_t": 26.0}) for i in range(1, 7)],
            }
            gw.batch(backlog)
            gw.batch({n: [(time.time(), {"air_t": 26.0})] for n in ("n-1", "n-2")})
            summary = f"{deliveries} WHERE d.farm_id = %s AND d.event = 'outage.summary'"
            wait_until(lambda: len(q(db_url, summary, farm)) == 3, 30, "one summary per commissioner")
            wait_until(lambda: len(receiver.got(f"/generic/{farm}")) == 3, 20, "generic deliveries")
            time.sleep(1.5)  # any wrong extra message would arrive now
    finally:
        gw.close()
    heat_q = "SELECT late, status, started_at, ended_at FROM alerts WHERE farm_id = %s AND rule = 'barn-heat'"
    heat = q(db_url, heat_q, farm)
    assert len(heat) == 1 and heat[0][0] is True and heat[0][1] == "resolved"
    assert heat[0][2].timestamp() == t0 + 2  # true start and end from the backlog
    assert heat[0][3].timestamp() == t0 + 5
    assert q(db_url, "SELECT status FROM alerts WHERE id = %s", gid) == [("resolved",)]
    events = sorted(e for e, c in q(db_url, f"{deliveries} WHERE d.farm_id = %s", farm) if c == f"{farm}-gen")
    assert events == ["alert.opened", "alert.resolved", "outage.summary"]  # gateway open + resolve + summary
    gen = [r.json() for r in receiver.got(f"/generic/{farm}")]
    (summ,) = [g for g in gen if g["type"] == "outage.summary"]
    assert "barn-heat n-1 began" in summ["data"]["text"] and "barn-heat n-1 ended" in summ["data"]["text"]
    assert "gateway gw-1 out of touch" in summ["data"]["text"] and "from 2 nodes" in summ["data"]["text"]
    assert not q(db_url, f"{deliveries} WHERE d.farm_id = %s AND d.event = 'alert.escalated'", farm)


def test_a_short_outage_inside_the_late_window_still_gives_one_summary(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str, receiver: Receiver
) -> None:
    """The backlog of an outage shorter than the late-data window alerts normally (it is still
    news), and the gateway's return gives one summary of the outage with what was stored from it."""
    farm = f"os-{secrets.token_hex(2)}"
    setup_farm(db_url, farm, receiver.url, ["n-1", "n-2"])
    ingest_url, monitor_url = mqtt_broker.account("ingest"), mqtt_broker.account("monitor")
    gw = Gateway(mqtt_admin_url, farm)
    summary = (
        "SELECT d.payload FROM webhook_deliveries d JOIN commissioners c ON c.id = d.commissioner_id"
        " WHERE d.farm_id = %s AND d.event = 'outage.summary'"
    )
    try:
        with (
            worker_thread(db_url, ingest_url, f"w-{farm}", group=f"g{farm}", session_expiry_s=60),
            service_thread(
                db_url, rules=book(RULES), mqtt_url=monitor_url, summary_quiet_s=1.0, escalate_after_s=3600
            ),  # fmt: skip
        ):
            now = go_offline(db_url, farm, gw)
            wait_until(lambda: time.time() > now + 5, 15, "an outage of some seconds")
            gw.health("online")
            gw.batch({"n-1": [(now + i, {"air_t": v}) for i, v in enumerate([26, 34, 35], start=1)],
                      "n-2": [(now + i, {"air_t": 26.0}) for i in range(1, 4)]})  # fmt: skip
            wait_until(lambda: len(q(db_url, summary, farm)) == 3, 30, "one summary per order-0 commissioner")
            time.sleep(1.5)  # any wrong extra summary would be queued now
        assert len(q(db_url, summary, farm)) == 3
    finally:
        gw.close()
    (lines,) = {tuple(p["lines"]) for (p,) in q(db_url, summary, farm)}
    assert len(lines) == 1 and lines[0].startswith("gateway gw-1 out of touch") and "from 2 nodes" in lines[0]
    # the heat in the backlog is minutes old, not stale: an ordinary alert, told as such
    heat = q(db_url, "SELECT late FROM alerts WHERE farm_id = %s AND rule = 'barn-heat'", farm)
    assert heat == [(False,)]


def test_gateway_health_is_kept_in_the_registry_for_the_dashboard(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str
) -> None:
    """The alert service records each registered gateway's last health (spool depth, drops, uplink)
    and last-seen time; an offline Last Will keeps last seen; an unknown gateway creates nothing."""
    farm, other = f"gh-{secrets.token_hex(2)}", f"gh-{secrets.token_hex(2)}"
    setup_farm(db_url, farm, "http://127.0.0.1:9", ["n-1"])
    setup_farm(db_url, other, "http://127.0.0.1:9", ["n-1"])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO gateways (farm_id, gateway_id) VALUES (%s, 'gw-1')", (farm,))
    row = "SELECT last_seen, meta->'health' FROM gateways WHERE farm_id = %s AND gateway_id = 'gw-1'"
    gw, stray = Gateway(mqtt_admin_url, farm), Gateway(mqtt_admin_url, other)
    try:
        with service_thread(db_url, rules=book(RULES), mqtt_url=mqtt_broker.account("monitor")):
            gw.health("online", depth=42, drops=3, uplink="up", secret={"big": "x" * 1000})
            stray.health("online", depth=7)
            wait_until(lambda: (q(db_url, row, farm) or [(None, None)])[0][1] is not None, 20, "health kept")
            seen, health = q(db_url, row, farm)[0]
            assert seen is not None and health == {"state": "online", "uplink": "up", "depth": 42, "drops": 3}
            gw.health("offline")
            wait_until(lambda: q(db_url, row, farm)[0][1]["state"] == "offline", 20, "last will kept")
            assert q(db_url, row, farm)[0][0] == seen  # an offline gateway was not seen
            assert q(db_url, "SELECT count(*) FROM gateways WHERE farm_id = %s", other) == [(0,)]
    finally:
        gw.close()
        stray.close()
