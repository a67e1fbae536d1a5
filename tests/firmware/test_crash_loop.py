"""Never a crash loop: failures while sending degrade the batch; repeated crashes at boot end in a
safe mode that only spools and reports its status (real firmware, unix port, real Mosquitto)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agri.node.emulate import NodeProcess
from kernel.protocol import status_topic
from tests.firmware.conftest import Delivery, Subscriber, node_config
from tests.fixtures.mqtt import BrokerHandle

pytestmark = [pytest.mark.firmware, pytest.mark.integration]

StartNode = Callable[..., NodeProcess]


def test_memory_error_while_sending_halves_the_batch_and_loses_nothing(
    own_broker: BrokerHandle, start_node: StartNode, subscribe: Callable[..., Subscriber], tmp_path: Path
) -> None:
    farm, node = "fw-degrade", "n-1"
    url = own_broker.node_account(farm, node)
    sub = subscribe(own_broker, [f"agri/v1/{farm}/{node}/up"])
    root = tmp_path / "fs"
    cfg = node_config(url, farm, node, "pond", interval=60, batch=12, inflight=2, drain=10)
    own_broker.broker.stop()
    n = start_node(cfg, sim={"clock": "fast", "cycles": 100, "start": -20_000}, root=root)
    assert n.wait(60) == 0
    own_broker.broker.start()
    # The first three messages fail to build with a MemoryError (as an allocation would).
    die = {"file": ".msg", "step": 0, "n": 1, "raise": 3}
    n = start_node(cfg, sim={"clock": "fast", "cycles": 40, "die": die}, root=root)
    assert n.wait(60) == 0
    degraded = list(n.events("send_degraded"))
    assert len(degraded) == 1 and "MemoryError" in degraded[0]["err"]  # logged once
    assert "crash" not in n.output
    stopped = next(n.events("stopped"))
    assert stopped["spooled"] == "0" and stopped["pending"] == "0"
    sub.wait(lambda _m: len(Delivery(farm, node, sub.ups()).by_seq) == int(stopped["seq"]), 20)
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    assert len(d.sample_times()) == 140 and d.dropped() == 0
    sizes = [len(json.loads(d.by_seq[q])["s"]) for q in d.seqs]
    assert sizes[:20] == [1] * 20  # 12 -> 6 -> 3 -> 1 after three failures, then 20 good ones
    assert 1 < max(sizes) <= 12  # and it grows back


def test_three_crashes_in_a_row_boot_into_safe_mode(
    mqtt_broker: BrokerHandle, start_node: StartNode, subscribe: Callable[..., Subscriber], tmp_path: Path
) -> None:
    farm, node = "fw-safe", "n-1"
    url = mqtt_broker.node_account(farm, node)
    sub = subscribe(mqtt_broker, [f"agri/v1/{farm}/{node}/#"])
    root = tmp_path / "fs"
    cfg = node_config(url, farm, node, "tea_garden", interval=60)
    sim = {"clock": "fast", "cycles": 3, "crash": "rssi"}  # a bug on the normal path, every cycle
    for i in (1, 2, 3):
        n = start_node(cfg, sim=sim, root=root)
        assert n.wait(30) == 1
        assert next(n.events("crash"))["count"] == str(i)
        assert not list(n.events("safe_mode"))
    n = start_node(cfg, sim=sim, root=root)
    assert n.wait(30) == 0
    safe = next(n.events("safe_mode"))
    assert safe["crashes"] == "3" and "injected fault" in safe["last"]
    stopped = next(n.events("stopped"))
    assert stopped["cycles"] == "3" and stopped["spooled"] == "3"  # sampled into the spool
    st = status_topic(farm, node)

    def safe_status(m: list[tuple[str, bytes, bool]]) -> list[dict[str, str]]:
        return [
            s for s in (json.loads(p) for t, p, _ in m if t == st and p.startswith(b"{")) if s["s"] == "safe"
        ]

    sub.wait(lambda m: bool(safe_status(m)), 20)
    status = safe_status(sub.messages)[0]
    assert "injected fault" in status["why"] and status["v"] == "0.1.0"
    assert not sub.ups()  # safe mode sends no readings
    # Still safe at the next boot (no cycle completed normally): the count is not reset.
    n = start_node(cfg, sim=sim, root=root)
    assert n.wait(30) == 0
    assert next(n.events("safe_mode"))["crashes"] == "3"
