import time

import paho.mqtt.client as mqtt
import pytest

from kernel.mqtt import make_client, probe
from kernel.protocol import config_topic, up_topic
from tests.fixtures.mqtt import BrokerHandle, Collector

pytestmark = pytest.mark.integration


def test_anonymous_client_is_refused(mqtt_broker: BrokerHandle) -> None:
    ok, reason = probe(f"mqtt://127.0.0.1:{mqtt_broker.port}")
    assert not ok
    assert "authorized" in reason.lower()


def test_wrong_password_is_refused_and_right_one_accepted(mqtt_broker: BrokerHandle) -> None:
    url = mqtt_broker.account("admin", "auth-check")
    assert probe(url) == (True, "Success")
    bad = url.replace("@", "x@", 1).replace("auth-check:", "auth-check:wrong", 1)
    ok, reason = probe(bad)
    assert not ok and ("authorized" in reason.lower() or "bad user name or password" in reason.lower())


def test_new_node_credentials_work_without_broker_restart(mqtt_broker: BrokerHandle) -> None:
    pid_before = mqtt_broker.broker.pid()
    url = mqtt_broker.node_account("farm-a", "fresh-node")
    deadline = time.monotonic() + 5
    while not probe(url)[0] and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGHUP is asynchronous
    assert probe(url)[0]
    assert mqtt_broker.broker.pid() == pid_before


def _publish(url: str, topic: str, payload: bytes) -> None:
    client, kwargs = make_client(url, "")
    client.connect(**kwargs)
    client.loop_start()
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_node_can_publish_only_under_its_own_topic(mqtt_broker: BrokerHandle, mqtt_admin_url: str) -> None:
    node_url = mqtt_broker.node_account("farm-a", "n-7")
    time.sleep(0.2)
    # Only this test's farm: other tests leave retained messages (gateway health) on the session broker.
    spy = Collector(mqtt_admin_url, ["agri/v1/farm-a/#"])
    try:
        _publish(node_url, up_topic("farm-a", "n-8"), b"spoofed")  # another node's topic
        _publish(node_url, config_topic("farm-a", "n-7"), b"self-config")  # configs are read-only
        _publish(node_url, up_topic("farm-a", "n-7"), b"mine")
        got = spy.wait(1, timeout=5)
        time.sleep(0.5)
        assert [t for t, _ in spy.messages] == [up_topic("farm-a", "n-7")]
        assert got[0][1] == b"mine"
    finally:
        spy.close()


def test_node_reads_only_its_own_config(mqtt_broker: BrokerHandle, mqtt_admin_url: str) -> None:
    node_url = mqtt_broker.node_account("farm-a", "n-9")
    time.sleep(0.2)
    _publish(mqtt_admin_url, config_topic("farm-a", "n-9"), b"")
    admin, kw = make_client(mqtt_admin_url)
    admin.connect(**kw)
    admin.loop_start()
    admin.publish(config_topic("farm-a", "n-9"), b'{"interval": 60}', qos=1, retain=True).wait_for_publish(5)
    admin.publish(config_topic("farm-a", "n-10"), b'{"interval": 5}', qos=1, retain=True).wait_for_publish(5)
    admin.disconnect()
    admin.loop_stop()
    node = Collector(node_url, ["agri/v1/farm-a/+/config"])
    try:
        time.sleep(1.0)
        assert node.messages == [(config_topic("farm-a", "n-9"), b'{"interval": 60}')]
    finally:
        node.close()
    assert isinstance(mqtt.MQTT_ERR_SUCCESS, int)
