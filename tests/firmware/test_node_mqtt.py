"""The real firmware under the MicroPython unix port (64K heap) against a real Mosquitto."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agri.node.config import profile
from agri.node.emulate import NodeProcess
from kernel.protocol import config_topic, status_topic
from tests.firmware.conftest import Delivery, Subscriber, node_config
from tests.fixtures.mqtt import BrokerHandle

pytestmark = [pytest.mark.firmware, pytest.mark.integration]

StartNode = Callable[..., NodeProcess]
Subscribe = Callable[[BrokerHandle, list[str]], Subscriber]


def _enough(n: int) -> Callable[[list[tuple[str, bytes, bool]]], bool]:
    return lambda msgs: sum(t.endswith("/up") for t, _, _ in msgs) >= n


@pytest.mark.parametrize("kind", ["orchard", "pig_farm", "tea_garden", "pond"])
def test_readings_arrive_in_contract_format(
    kind: str, mqtt_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe
) -> None:
    farm, node = f"fw-{kind.replace('_', '-')}", "n-0001"
    sub = subscribe(mqtt_broker, [f"agri/v1/{farm}/{node}/#"])
    n = start_node(node_config(mqtt_broker.node_account(farm, node), farm, node, kind))
    sub.wait(_enough(3), 30)
    assert n.stop() == 0
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    _, sensors = profile(kind)
    expected = {m for s in sensors for m in s.outputs()} | {"rssi_dbm"}
    got = {r.metric for m in d.decoded.values() for r in m.readings}
    assert got == expected  # every profile sensor read through its real driver, bat_v in the envelope
    assert next(n.events("boot"))["config_errors"] == "0"  # host and device schemas agree
    first = d.decoded[0]
    assert first.boot == 1 and first.dropped == 0
    st = status_topic(farm, node)
    sub.wait(lambda m: [p for t, p, _ in m if t == st][-1:] == [b"offline"], 10)  # said on a clean stop
    online = json.loads(next(p for t, p, _ in sub.messages if t == st))
    assert online["s"] == "online" and online["v"] == "0.1.0"  # the version it runs


def test_last_will_says_offline_when_the_node_dies(
    mqtt_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe
) -> None:
    farm, node = "fw-will", "n-1"
    sub = subscribe(mqtt_broker, [status_topic(farm, node)])
    n = start_node(node_config(mqtt_broker.node_account(farm, node), farm, node))
    sub.wait(lambda m: len(m) == 1 and json.loads(m[0][1])["s"] == "online", 20)
    n.kill()  # no DISCONNECT: the broker publishes the Last Will
    sub.wait(lambda m: [p for _, p, _ in m][-1:] == [b"offline"], 20)
    # Retained: a client subscribing later sees the node is offline.
    late = subscribe(mqtt_broker, [status_topic(farm, node)])
    late.wait(lambda m: len(m) >= 1, 10)
    assert late.messages[0][1:] == (b"offline", True)


@pytest.mark.slow
def test_broker_outage_loses_nothing_and_duplicates_nothing(
    own_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe
) -> None:
    farm, node = "fw-outage", "n-1"
    sub = subscribe(own_broker, [f"agri/v1/{farm}/{node}/up"])
    n = start_node(node_config(own_broker.node_account(farm, node), farm, node, "tea_garden"))
    sub.wait(_enough(3), 30)
    own_broker.broker.stop()
    n.wait_event("disconnected", 10)
    time.sleep(20)  # an outage of tens of seconds: ~20 samples go to the spool
    own_broker.broker.start()
    back = time.time()
    n.wait_event("connected", 30, count=2)
    # The spool drains oldest first: once a sample taken after the broker came back has arrived,
    # the whole backlog has.
    sub.wait(lambda _m: max(Delivery(farm, node, sub.ups()).sample_times(), default=0) >= back + 1, 30)
    assert n.stop() == 0
    stopped = next(n.events("stopped"))
    assert stopped["spooled"] == "0" and stopped["pending"] == "0", stopped
    sub.wait(lambda _m: len(Delivery(farm, node, sub.ups()).by_seq) == int(stopped["seq"]), 20)
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    # Every sampling cycle's reading arrived exactly once.
    assert len(d.sample_times()) == int(stopped["cycles"])
    assert d.dropped() == 0
    spooled = max(len(json.loads(p)["s"]) for p in d.by_seq.values())
    assert spooled > 1  # the backlog really was spooled and sent in batches
    print(
        f"outage: {len(d.seqs)} messages (seq 0..{d.seqs[-1]}, no gap), {len(d.sample_times())} readings "
        f"for {stopped['cycles']} cycles, largest backlog message {spooled} samples, "
        f"{d.duplicates} byte-identical resends"
    )


def test_killed_mid_backlog_then_restarted_delivers_the_spool(
    own_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe, tmp_path: Path
) -> None:
    farm, node = "fw-kill", "n-1"
    url = own_broker.node_account(farm, node)
    sub = subscribe(own_broker, [f"agri/v1/{farm}/{node}/up"])
    root = tmp_path / "fs"
    # Fast simulated clock, broker down: 1,000 samples go to the spool in a few seconds (ending
    # 1,000 minutes ago: boot 2's fast clock goes on from the newest spooled sample).
    own_broker.broker.stop()
    cfg = node_config(url, farm, node, "pond", interval=60, batch=2, inflight=1, drain=0)
    n = start_node(cfg, sim={"clock": "fast", "cycles": 1000, "start": -120_000}, root=root)
    assert n.wait(60) == 0
    assert next(n.events("stopped"))["spooled"] == "1000"
    # Broker back; the node drains one small message at a time and is killed (SIGKILL, as a power
    # cut) at a point the node reaches, not one the test observes: after writing its 40th spool
    # state, before renaming it into place. (Killing when a subscriber had seen 5 messages once
    # landed after the whole backlog was sent, the subscriber lagging on a loaded machine; the
    # wait for ">= 1002 readings" then passed on boot 2's messages alone, before boot 3's arrived.)
    own_broker.broker.start()
    die = {"file": "state", "step": 1, "n": 40}
    n = start_node(cfg, sim={"clock": "fast", "cycles": 0, "die": die}, root=root)
    assert n.wait(60) == -9
    # Restart: the boot counter moved on (neither lost nor repeated), the backlog is still there.
    n = start_node(cfg, sim={"clock": "real"}, root=root)
    boot = n.wait_event("boot", 20)
    assert boot["boot"] == "3"
    left = int(boot["spooled"])
    assert 900 < left < 1000  # it really was killed mid-backlog

    def drained(_m: list[tuple[str, bytes, bool]]) -> bool:
        # Boot 3's messages carry what was left in the spool plus its fresh sample.
        d = Delivery(farm, node, sub.ups())
        return sum(len(json.loads(p)["s"]) for q, p in d.by_seq.items() if d.decoded[q].boot == 3) > left

    sub.wait(drained, 60)
    assert n.stop() == 0
    stopped = next(n.events("stopped"))
    sub.wait(lambda _m: len(Delivery(farm, node, sub.ups()).by_seq) == int(stopped["seq"]), 20)
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    assert d.dropped() == 0
    assert {m.boot for m in d.decoded.values()} == {2, 3}
    print(
        f"kill -9 mid-backlog: {left} samples still spooled at boot 3, {len(d.seqs)} messages in all "
        f"(no gap), {len(d.sample_times())} readings, {d.duplicates} byte-identical resends"
    )


def test_full_spool_drops_oldest_and_reports_the_count(
    own_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe, tmp_path: Path
) -> None:
    farm, node = "fw-full", "n-1"
    url = own_broker.node_account(farm, node)
    root = tmp_path / "fs"
    own_broker.broker.stop()
    cfg = node_config(url, farm, node, "orchard", interval=60, spool={"max_samples": 10}, batch=50)
    t_start = time.time()  # the fast clock runs 25 cycles of 60 s ending about now
    n = start_node(cfg, sim={"clock": "fast", "cycles": 25}, root=root)
    assert n.wait(60) == 0
    assert next(n.events("stopped"))["spooled"] == "10"
    own_broker.broker.start()
    sub = subscribe(own_broker, [f"agri/v1/{farm}/{node}/up"])
    n = start_node(cfg, sim={"clock": "fast", "cycles": 1}, root=root)
    assert n.wait(60) == 0
    sub.wait(_enough(1), 20)
    d = Delivery(farm, node, sub.ups())
    assert d.dropped() == 15  # 25 sampled into a ring of 10
    times = d.sample_times()
    assert len(times) == 11  # the 10 newest spooled + the fresh one
    kept = times[:10]
    assert [b - a for a, b in itertools.pairwise(kept)] == [60] * 9
    # The oldest 15 were dropped: the first kept is cycle 15 of 25 (cycle 0 at t_start - 25 min).
    assert abs(kept[0] - (t_start - 10 * 60)) < 30


def test_bad_config_gives_an_error_line_and_a_safe_default(
    mqtt_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe, tmp_path: Path
) -> None:
    farm, node = "fw-badcfg", "n-1"
    good = node_config(mqtt_broker.node_account(farm, node), farm, node, "tea_garden")
    sim = {"clock": "fast", "cycles": 2}
    # Broken JSON on flash and no earlier good config: an error line, then sampling to the spool
    # with defaults; the loop keeps running (no crash, no reset loop).
    n = start_node('{"farm": "fw-badcfg", "node": ', sim=sim, root=tmp_path / "a")
    assert n.wait(30) == 0
    err = next(n.events("config_invalid"))
    assert err["file"] == "node.json" and "not valid JSON" in err["reason"]
    assert next(n.events("config_fallback"))["using"].startswith("defaults")
    assert next(n.events("offline_mode"))
    assert "crash" not in n.output and "Traceback" not in n.output
    assert next(n.events("stopped"))["cycles"] == "2"

    # After one good boot the node keeps a copy; a later broken file falls back to it.
    sub = subscribe(mqtt_broker, [f"agri/v1/{farm}/{node}/up"])
    root = tmp_path / "b"
    assert start_node(good, sim=sim, root=root).wait(30) == 0
    n = start_node("{ not json", sim=sim, root=root)
    assert n.wait(30) == 0
    assert next(n.events("config_fallback"))["using"] == "node.good.json"
    sub.wait(_enough(4), 20)
    Delivery(farm, node, sub.ups()).assert_complete()

    # Field errors: each is reported with its field; that field gets its default, the rest works.
    raw = json.loads(good.to_json())
    raw["interval"] = "abc"
    raw["sensors"].insert(0, {"type": "bogus"})
    raw["sensors"].append({"type": "soil"})  # no pin
    n = start_node(json.dumps(raw), sim=sim, root=tmp_path / "c")
    assert n.wait(30) == 0
    fields = {e["field"]: e for e in n.events("config_invalid")}
    assert set(fields) == {"interval", "sensors[0].type", "sensors[5].pin"}
    assert fields["interval"]["using"] == "300"
    assert next(n.events("boot"))["config_errors"] == "3"
    sub.wait(_enough(6), 20)
    last = [json.loads(p) for p in sub.ups()[-2:]]
    assert last[1]["s"][0]["t"] - last[0]["s"][0]["t"] == 300  # the default interval
    assert set(last[1]["s"][0]["m"]) == {"air_t", "air_rh", "soil_vwc", "leaf_wet"}


def test_retained_config_changes_interval_sensors_and_calibration(
    mqtt_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe
) -> None:
    farm, node = "fw-remote", "n-1"
    sub = subscribe(mqtt_broker, [f"agri/v1/{farm}/{node}/up"])
    admin = Subscriber(mqtt_broker, ["agri/v1/none"])  # a client of the platform's to publish with
    try:
        n = start_node(node_config(mqtt_broker.node_account(farm, node), farm, node, "tea_garden"))
        sub.wait(_enough(2), 20)
        before = [json.loads(p)["s"][0]["m"] for p in sub.ups()]
        assert {"air_t", "soil_vwc", "leaf_wet"} <= set(before[-1])
        # Same probe, new calibration: saturation at 90 % VWC instead of 45 % doubles the reading.
        cal = {"cal": {"soil_vwc": {"dry": 2.6, "wet": 1.2, "sat": 90.0}}}
        admin.client.publish(config_topic(farm, node), json.dumps(cal), qos=1, retain=True).wait_for_publish(
            5
        )
        n.wait_event("config_applied", 20)
        k = len(sub.ups())
        sub.wait(_enough(k + 2), 20)
        soil_after = json.loads(sub.ups()[-1])["s"][0]["m"]["soil_vwc"]
        assert 1.6 < soil_after / before[-1]["soil_vwc"] < 2.4
        # Interval and sensors, without reflashing: picked up at the next wake.
        new = {"interval": 2, "sensors": [{"type": "sht3x", "i2c": {"id": 0, "scl": 22, "sda": 21}}]}
        admin.client.publish(config_topic(farm, node), json.dumps(new), qos=1, retain=True).wait_for_publish(
            5
        )
        applied = n.wait_event("config_applied", 20, count=2)
        assert applied["interval"] == "2" and applied["sensors"] == "1"
        k = len(sub.ups())
        sub.wait(_enough(k + 3), 30)
        tail = [json.loads(p)["s"][0] for p in sub.ups()[-2:]]
        assert set(tail[-1]["m"]) == {"air_t", "air_rh"}
        assert tail[1]["t"] - tail[0]["t"] == 2
        assert n.stop() == 0
        # A bad config message is refused with an error line and changes nothing.
        n = start_node(node_config(mqtt_broker.node_account(farm, node), farm, node, "tea_garden"))
        n.wait_event("connected", 20)
        admin.client.publish(
            config_topic(farm, node), b'{"interval": -5}', qos=1, retain=True
        ).wait_for_publish(5)
        bad = n.wait_event("config_invalid", 20)
        assert bad["field"] == "interval" and bad["file"] == "config message"
        assert n.stop() == 0
        assert not list(n.events("config_applied"))
    finally:
        admin.client.publish(config_topic(farm, node), b"", qos=1, retain=True).wait_for_publish(5)
        admin.close()


@pytest.mark.slow
def test_10000_cycles_at_64k_heap_without_leaking(
    mqtt_broker: BrokerHandle, start_node: StartNode, subscribe: Subscribe
) -> None:
    farm, node = "fw-memory", "n-1"
    sub = subscribe(mqtt_broker, [f"agri/v1/{farm}/{node}/up"])
    cfg = node_config(mqtt_broker.node_account(farm, node), farm, node, "orchard", interval=60)
    n = start_node(cfg, sim={"clock": "fast", "cycles": 10_000, "heap_every": 500})
    assert n.wait(300) == 0
    heap = [(int(e["cycle"]), int(e["free"])) for e in n.events("heap")]
    assert len(heap) == 20 and heap[-1][0] == 10_000
    steady = [free for cycle, free in heap if cycle >= 1000]
    print(f"gc.mem_free() after collect, every 500 cycles: {[f for _, f in heap]}")
    # Not trending down: the last half never dips below the first half's minimum (a leak of even
    # 1 byte per cycle would cost 5 KB over the last 5000 cycles).
    assert min(steady[len(steady) // 2 :]) >= min(steady[: len(steady) // 2]) - 256
    assert min(steady) > 8 * 1024  # headroom left in the 64K heap
    stopped = next(n.events("stopped"))
    assert stopped["spooled"] == "0" and stopped["pending"] == "0"
    sub.wait(lambda _m: len(sub.ups()) >= 10_000, 60)
    d = Delivery(farm, node, sub.ups())
    d.assert_complete()
    assert len(d.sample_times()) == 10_000
