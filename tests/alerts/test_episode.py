"""A barn heat episode through the whole chain: MQTT -> ingest -> feed -> rules -> outbox -> receiver."""

import secrets
import time

import pytest
from standardwebhooks.webhooks import Webhook

from kernel.mqtt import make_client
from kernel.protocol import encode_up, up_topic
from tests.alerts.support import q, service_thread, setup_farm
from tests.fixtures.mqtt import BrokerHandle
from tests.fixtures.receiver import Receiver
from tests.fixtures.wait import wait_until
from tests.ingest.support import worker_thread

pytestmark = pytest.mark.integration


def publish(url: str, farm: str, node: str, samples: list[tuple[float, dict[str, float]]], seq0: int) -> int:
    c, kw = make_client(url, f"pub-{secrets.token_hex(3)}")
    c.connect(**kw)
    c.loop_start()
    try:
        for i, s in enumerate(samples):
            c.publish(up_topic(farm, node), encode_up(node, seq0 + i, [s]), qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()
    return seq0 + len(samples)


def test_barn_heat_one_alert_one_delivery_each_escalation_and_one_resolve(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str, receiver: Receiver
) -> None:
    farm = f"pig-{secrets.token_hex(2)}"
    setup_farm(db_url, farm, receiver.url, ["barn-1"])
    ingest_url = mqtt_broker.account("ingest")
    t0 = float(int(time.time()) - 600)
    with (
        worker_thread(db_url, ingest_url, f"w-{farm}", group=f"g{farm}", session_expiry_s=60),
        service_thread(db_url, escalate_after_s=4.0),
    ):
        heat = [(t0 + i * 30, {"air_t": v, "air_rh": 70.0}) for i, v in enumerate([29, 33, 34, 35, 34.5, 33])]
        seq = publish(mqtt_admin_url, farm, "barn-1", heat, 0)
        first = lambda: {r.path.split("/")[1] for r in receiver.got() if "/" + farm in r.path}  # noqa: E731
        wait_until(lambda: first() >= {"generic", "wecom", "feishu"}, 30, "three opening deliveries")
        # unacknowledged: escalates to the order-1 commissioner (DingTalk)
        wait_until(lambda: "dingtalk" in first(), 30, "escalation to DingTalk")
        # inside the hysteresis band (30 < 31 < 32): not resolved
        seq = publish(mqtt_admin_url, farm, "barn-1", [(t0 + 200, {"air_t": 31.0, "air_rh": 70.0})], seq)
        wait_until(lambda: q(db_url, "SELECT max(alert_watermark) FROM series")[0][0] >= t0 + 200, 20, "eval")
        assert q(db_url, "SELECT status FROM alerts WHERE farm_id = %s", farm) == [("open",)]
        publish(mqtt_admin_url, farm, "barn-1", [(t0 + 230, {"air_t": 29.5, "air_rh": 70.0})], seq)
        wait_until(lambda: len(receiver.got()) >= 8, 30, "four resolve messages")
        time.sleep(1.5)  # let any (wrong) extra delivery arrive before counting
    got = [r for r in receiver.got() if "/" + farm in r.path]
    by_channel: dict[str, int] = {}
    for r in got:
        ch = r.path.split("/")[1]
        by_channel[ch] = by_channel.get(ch, 0) + 1
    assert by_channel == {"generic": 2, "wecom": 2, "feishu": 2, "dingtalk": 2}
    alerts = q(db_url, "SELECT id, status, rule, started_at, ended_at FROM alerts WHERE farm_id = %s", farm)
    assert len(alerts) == 1 and alerts[0][1] == "resolved" and alerts[0][2] == "barn-heat"
    assert alerts[0][3].timestamp() == t0 + 30  # the episode's true start (first reading above 32)
    kinds = [
        k for (k,) in q(db_url, "SELECT kind FROM alert_events WHERE alert_id = %s ORDER BY id", alerts[0][0])
    ]
    assert kinds == ["opened", "escalated", "resolved"]
    # the generic webhook verifies with the Standard Webhooks reference library
    secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    gen = [r for r in got if r.path.startswith("/generic")]
    bodies = [Webhook(secret).verify(r.body, r.headers) for r in gen]
    assert [b["type"] for b in bodies] == ["alert.opened", "alert.resolved"]
    # the message links to the dashboard's deep link of this alert
    assert {b["data"]["dashboard"] for b in bodies} == {f"http://127.0.0.1:8501/alerts?alert={alerts[0][0]}"}
    assert len({r.headers["webhook-id"] for r in gen}) == 2
    attempts = q(db_url, "SELECT count(*), bool_and(ok) FROM delivery_attempts")
    assert attempts[0][1] is True
