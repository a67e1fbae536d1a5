"""Fixtures for running the real firmware under the MicroPython unix port against real Mosquitto."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
import pytest

from agri.node.config import Broker, NodeConfig, profile
from agri.node.emulate import Emulator, NodeProcess
from agri.node.runtime import RuntimeMissing, micropython_binary
from agri.node.stage import build
from kernel.mqtt import make_client
from kernel.protocol import Limits, NodeMessage, decode_up
from kernel.settings import MqttUrl
from tests.fixtures.mqtt import BrokerHandle, private_broker


@pytest.fixture(scope="session")
def firmware_build() -> None:
    try:
        micropython_binary()
        build()
    except RuntimeMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture
def own_broker() -> Iterator[BrokerHandle]:
    """A broker for this test alone (tests that stop and restart it)."""
    with private_broker("agri-test-fw-mqtt-") as handle:
        yield handle


def node_config(url: str | None, farm: str, node: str, kind: str = "orchard", **over: Any) -> NodeConfig:
    """A node config for a broker URL from ``BrokerHandle.node_account`` (None: nothing listens)."""
    if url is None:
        broker = Broker(host="127.0.0.1", port=1, backoff_cap=2)
    else:
        u = MqttUrl(url)
        broker = Broker(host=u.host, port=u.port, user=u.username, password=u.password, backoff_cap=2)
    _, sensors = profile(kind)
    base: dict[str, Any] = {
        "farm": farm,
        "node": node,
        "broker": broker,
        "interval": 1,
        "ack_timeout": 5,
        "sensors": sensors,
    }
    base.update(over)
    return NodeConfig.model_validate(base)


@pytest.fixture
def start_node(firmware_build: None, tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def start(
        cfg: NodeConfig | str,
        sim: dict[str, Any] | None = None,
        root: Path | None = None,
        heap: str = "64K",
        code: Literal["rom", "ram"] = "rom",
        bits: int = 64,
    ) -> NodeProcess:
        emu = Emulator(cfg, root or tmp_path / "node", heap=heap, sim=sim or {}, code=code, bits=bits)
        p = NodeProcess(emu)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.kill()


class Subscriber:
    """QoS 1 subscriber with a persistent session, so the broker keeps its messages across a
    restart (Mosquitto persistence) and while it reconnects."""

    def __init__(self, handle: BrokerHandle, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        url = handle.account("admin", f"sub-{secrets.token_hex(3)}")
        self.client, kwargs = make_client(
            url, f"sub-{secrets.token_hex(4)}", clean_start=False, session_expiry_s=3600
        )
        self.client.reconnect_delay_set(0.2, 1)
        subscribed = threading.Event()

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe([(t, 1) for t in topics])

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            with self._cond:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = on_message
        self.client.connect(**kwargs)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("subscriber did not subscribe")

    def wait(self, pred: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(list(self.messages)), timeout):
                raise TimeoutError(f"condition not met within {timeout}s; {len(self.messages)} messages")

    def ups(self) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t.endswith("/up")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[[BrokerHandle, list[str]], Subscriber]]:
    subs: list[Subscriber] = []

    def make(handle: BrokerHandle, topics: list[str]) -> Subscriber:
        s = Subscriber(handle, topics)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


class Delivery:
    """What arrived from one node, checked against the wire contract and the spool's promises."""

    def __init__(self, farm: str, node: str, payloads: list[bytes]) -> None:
        self.by_seq: dict[int, bytes] = {}
        self.decoded: dict[int, NodeMessage] = {}
        self.duplicates = 0
        for p in payloads:
            m = decode_up(farm, node, p, Limits(now=time.time()))
            assert not m.rejected, f"rejected readings: {m.rejected}"
            if m.seq in self.by_seq:
                # A resend after a lost PUBACK: allowed, but byte-identical (same seq, same data).
                assert self.by_seq[m.seq] == p, f"seq {m.seq} arrived twice with different content"
                self.duplicates += 1
                continue
            self.by_seq[m.seq] = p
            self.decoded[m.seq] = m

    @property
    def seqs(self) -> list[int]:
        return sorted(self.by_seq)

    def samples(self) -> list[dict[str, Any]]:
        out = []
        for p in self.by_seq.values():
            out += json.loads(p)["s"]
        return out

    def sample_times(self) -> list[int]:
        return sorted(s["t"] for s in self.samples())

    def dropped(self) -> int:
        return sum(m.dropped for m in self.decoded.values())

    def assert_complete(self, first_seq: int = 0) -> None:
        """No seq gap and no reading delivered in two different messages."""
        seqs = self.seqs
        assert seqs == list(range(first_seq, first_seq + len(seqs))), f"seq gaps: {seqs}"
        times = self.sample_times()
        assert len(times) == len(set(times)), "a reading arrived in two different messages"
