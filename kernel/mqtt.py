"""Thin helpers around paho-mqtt 2.x shared by the services, the CLI and the tests."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kernel.settings import MqttUrl


def make_client(
    url: str | MqttUrl,
    client_id: str = "",
    *,
    manual_ack: bool = False,
    clean_start: bool = True,
    session_expiry_s: int = 0,
    v5: bool = True,
    client_class: type[mqtt.Client] = mqtt.Client,
) -> tuple[mqtt.Client, dict[str, Any]]:
    """A configured (not yet connected) client plus the kwargs for ``client.connect``.

    MQTT 5 by default: shared subscriptions and session expiry are MQTT 5 features.
    ``client_class`` may be a subclass of paho's Client (ingest uses one with cheaper I/O).
    """
    u = url if isinstance(url, MqttUrl) else MqttUrl(url)
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean_start,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        manual_ack=manual_ack,
    )
    if u.username:
        client.username_pw_set(u.username, u.password)
    if u.tls:
        client.tls_set()
    kwargs: dict[str, Any] = {"host": u.host, "port": u.port, "keepalive": 30}
    if v5:
        kwargs["clean_start"] = clean_start
        if session_expiry_s:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = session_expiry_s
            kwargs["properties"] = props
    return client, kwargs


def probe(url: str | MqttUrl, timeout: float = 3.0, client_id: str = "") -> tuple[bool, str]:
    """Try to connect; return (accepted, reason). Used by status checks and tests."""
    client, kwargs = make_client(url, client_id)
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        result["rc"] = rc
        done.set()

    def on_disconnect(c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        result.setdefault("rc", rc)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(**kwargs)
    except OSError as exc:
        return False, f"connection failed: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return False, "no CONNACK within timeout"
    finally:
        client.disconnect()
        client.loop_stop()
    rc = result["rc"]
    return (not rc.is_failure), str(rc)
