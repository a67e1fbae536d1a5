import secrets

import pytest

from agri.stack.mqtt_auth import node_username
from kernel.mqtt import make_client, probe
from kernel.protocol import config_topic, up_topic
from tests.fixtures.mqtt import BrokerHandle, Collector
from tests.fixtures.wait import wait_until

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
    broker = mqtt_broker.broker
    pid_before = broker.pid()
    user, password = node_username("farm-a", "fresh-node"), secrets.token_urlsafe(12)
    url = broker.url(user, password)
    assert not probe(url)[0]
    auth = broker.auth
    auth.set(user, password, "node", "farm-a", "fresh-node")
    auth.save()
    broker.reload()
    wait_until(lambda: probe(url)[0], 10, "the new account to work after SIGHUP")  # reload is asynchronous
    assert broker.pid() == pid_before


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
    # Only this test's farm: other tests leave retained messages (gateway health) on the session broker.
    spy = Collector(mqtt_admin_url, ["agri/v1/farm-a/#"])
    try:
        _publish(node_url, up_topic("farm-a", "n-8"), b"spoofed")  # another node's topic
        _publish(node_url, config_topic("farm-a", "n-7"), b"self-config")  # configs are read-only
        _publish(node_url, up_topic("farm-a", "n-7"), b"mine")
        # Mosquitto handles publishes in order and each _publish waited for its PUBACK, so had a
        # refused message been forwarded it would have reached the spy before "mine".
        got = spy.wait(1, timeout=5)
        assert got == [(up_topic("farm-a", "n-7"), b"mine")]
    finally:
        spy.close()


def test_node_reads_only_its_own_config(mqtt_broker: BrokerHandle, mqtt_admin_url: str) -> None:
    node_url = mqtt_broker.node_account("farm-a", "n-9")
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
        # Retained messages come right after the SUBACK, before anything published later: once
        # this marker arrives, every retained config the node may read has arrived.
        _publish(mqtt_admin_url, config_topic("farm-a", "n-9"), b"marker")
        got = node.wait(2, timeout=10)
        assert got == [
            (config_topic("farm-a", "n-9"), b'{"interval": 60}'),
            (config_topic("farm-a", "n-9"), b"marker"),
        ]
    finally:
        node.close()
