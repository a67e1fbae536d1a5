"""Fixtures for gateway tests: a second (central) Mosquitto next to the session's farm broker."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.mqtt import BrokerHandle, private_broker
from tests.gateway.support import BatchCollector, Node, TcpProxy


@pytest.fixture(scope="session")
def central_broker() -> Iterator[BrokerHandle]:
    with private_broker("agri-test-central-") as handle:
        yield handle


@dataclass
class Rig:
    """One farm: its gateway's accounts on both brokers, an uplink proxy, a central collector."""

    farm: str
    gw: str
    farm_broker: BrokerHandle
    central: BrokerHandle
    local_url: str
    central_url: str  # the gateway's account, through the proxy
    admin_central: str
    proxy: TcpProxy
    collector: BatchCollector
    spool: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            url = self.farm_broker.node_account(self.farm, name)
            self.nodes[name] = Node(url, self.farm, name)
        return self.nodes[name]


@pytest.fixture
def rig(mqtt_broker: BrokerHandle, central_broker: BrokerHandle, tmp_path: Path) -> Iterator[Rig]:
    farm = f"farm-{secrets.token_hex(3)}"
    gw = "gw-1"
    local = mqtt_broker.account("gateway", f"gw-{farm}", farm=farm, node=gw)
    upstream = central_broker.account("gateway", f"gw-{farm}", farm=farm, node=gw)
    admin = central_broker.account("admin", "central-admin")
    proxy = TcpProxy(central_broker.port)
    collector = BatchCollector(admin, farm, gw)
    r = Rig(farm, gw, mqtt_broker, central_broker, local, proxy.url(upstream), admin, proxy, collector,
            tmp_path / "spool.db")  # fmt: skip
    yield r
    for n in r.nodes.values():
        n.close()
    collector.close()
    proxy.close()
