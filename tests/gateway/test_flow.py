"""The gateway between a real farm broker and a real central broker (in-process service)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from gateway.health import component, read_health
from gateway.service import GatewayService
from kernel.mqtt import make_client
from kernel.protocol import encode_up, health_topic
from tests.fixtures.mqtt import Collector
from tests.fixtures.wait import wait_until
from tests.gateway.conftest import Rig
from tests.gateway.support import gateway_env, gateway_settings, spool_batches, spool_depth

pytestmark = pytest.mark.integration


@pytest.fixture
def started() -> Iterator[list[GatewayService]]:
    """Services a test starts; stopped at teardown."""
    services: list[GatewayService] = []
    yield services
    for s in services:
        if s._housekeeper.is_alive():
            s.stop()


def start(rig: Rig, started: list[GatewayService], **over: object) -> GatewayService:
    svc = GatewayService(
        gateway_settings(rig.farm, rig.gw, rig.local_url, rig.central_url, rig.spool, **over)
    )
    svc.start()
    started.append(svc)
    return svc


def test_messages_in_batches_out_exactly(rig: Rig, started: list[GatewayService]) -> None:
    svc = start(rig, started, batch_max_messages=16)
    wait_until(lambda: svc.uplink.connected and svc.inbound.subscribed, 10, "both connections")
    sent: dict[str, list[bytes]] = {}
    for i in range(40):
        for name in ("n-1", "n-2", "n-3"):
            p = rig.node(name).publish(air_t=20 + i / 10, air_rh=60.0, nh3_ppm=float(i % 7))
            sent.setdefault(name, []).append(p)
    got = rig.collector.wait_messages(120)
    assert len(got) == 120  # no loss, no duplicate
    for name, payloads in sent.items():
        assert [p for n, p in got if n == name] == payloads  # verbatim, in order per node
    ids = [b.batch_id for b in rig.collector.batches]
    assert len(set(ids)) == len(ids)
    assert all(b.startswith(f"gw-1-{svc.spool.epoch}-") for b in ids)
    assert all(len(b.messages) <= 16 for b in rig.collector.batches)
    wait_until(lambda: svc.spool.stats().depth == 0, 10, "spool emptied by PUBACKs")
    h = svc.health()
    assert (h["depth"], h["drops"], h["uplink"], h["forwarded"], h["received"]) == (0, 0, "up", 120, 120)
    assert isinstance(h["last_ack"], float) and h["oldest_age_s"] is None


def test_invalid_messages_are_dead_lettered_and_forwarded(
    rig: Rig, started: list[GatewayService], mqtt_admin_url: str
) -> None:
    svc = start(rig, started)
    wait_until(lambda: svc.uplink.connected and svc.inbound.subscribed, 10, "both connections")
    node = rig.node("n-1")
    bad_json = node.publish(b'{"v":1,"node":"n-1","seq":')
    bad_version = node.publish(b'{"v":9,"node":"n-1","seq":2}')
    partly = node.publish(encode_up("n-1", 3, [(time.time(), {"air_t": 99.0, "air_rh": 40.0})]))
    not_utf8 = node.publish(b'{"v":1,"node":"n-1","seq":4,"s":[],"x":"\xff"}')
    admin, kw = make_client(mqtt_admin_url, "spoofer")
    admin.connect(**kw)
    admin.loop_start()
    admin.publish(f"agri/v1/{rig.farm}/Bad_Id/up", b'{"v":1}', qos=1).wait_for_publish(5)
    admin.disconnect()
    admin.loop_stop()
    good = node.publish(air_t=21.0)

    def arrived() -> bool:
        invalid = sum(len(b.invalid) for b in rig.collector.batches)
        return len(rig.collector.messages()) == 4 and invalid == 2

    wait_until(arrived, 20, "4 verbatim messages and 2 invalid entries")
    assert sorted(p for _, p in rig.collector.messages()) == sorted([bad_json, bad_version, partly, good])
    invalid = [e for b in rig.collector.batches for e in b.invalid]
    assert sorted(e.reason for e in invalid) == ["bad_encoding", "bad_topic"]
    enc = next(e for e in invalid if e.reason == "bad_encoding")
    assert enc.raw == not_utf8 and enc.node == "n-1"

    dead = {d.reason: d for d in svc.spool.dead_letter_rows()}
    assert set(dead) == {"bad_json", "bad_version", "out_of_range", "bad_encoding", "bad_topic"}
    assert dead["bad_json"].payload == bad_json and dead["bad_json"].whole
    assert not dead["out_of_range"].whole and "1 of 2 readings rejected" in dead["out_of_range"].detail
    assert dead["bad_encoding"].payload == not_utf8
    assert svc.health()["dead_letters"] == 5


def _same_size_payload(node: str, seq: int) -> bytes:
    return encode_up(node, seq, [(1_764_201_600 + seq, {"air_t": 21.5})])


def test_spool_is_bounded_and_counts_drops_while_uplink_is_down(
    rig: Rig, started: list[GatewayService], mqtt_admin_url: str
) -> None:
    rig.proxy.cut()
    size = len(_same_size_payload("n-1", 10))
    assert all(len(_same_size_payload("n-1", s)) == size for s in range(10, 70))
    svc = start(rig, started, spool_max_bytes=4096)
    local_health = Collector(mqtt_admin_url, [health_topic(rig.farm, rig.gw)])
    try:
        wait_until(lambda: svc.inbound.subscribed, 10, "farm broker connection")
        node = rig.node("n-1")
        node.seq = 9
        for _ in range(60):
            node.publish(_same_size_payload("n-1", node.seq + 1))
        wait_until(lambda: svc.inbound.counters["received"] == 60, 10, "60 messages received")
        kept = 4096 // size
        st = svc.spool.stats()
        assert (st.depth, st.drops) == (kept, 60 - kept)
        assert st.bytes <= 4096

        def last_health() -> dict[str, object]:
            return json.loads(local_health.messages[-1][1]) if local_health.messages else {}

        wait_until(lambda: last_health().get("drops") == 60 - kept, 5, "health drops")
        last = last_health()
        assert last["uplink"] == "down" and last["depth"] == kept and isinstance(last["oldest_age_s"], float)
    finally:
        local_health.close()
    rig.proxy.restore()
    rig.collector.wait_messages(kept)
    time.sleep(0.5)
    assert [s for _, s in rig.collector.seqs()] == list(range(70 - kept, 70))  # the newest survived
    assert svc.health()["drops"] == 60 - kept


def test_batch_ids_are_stable_across_a_restart(rig: Rig, started: list[GatewayService]) -> None:
    svc = start(rig, started, batch_max_messages=5)
    wait_until(lambda: svc.uplink.connected and svc.inbound.subscribed, 10, "both connections")
    rig.proxy.freeze()  # still connected, but nothing gets through: batches go out, no PUBACK returns
    node = rig.node("n-1")
    for i in range(23):
        node.publish(air_t=20.0 + i)
    wait_until(lambda: sum(b[2] - b[1] + 1 for b in spool_batches(rig.spool)) == 23, 15, "all rows batched")
    before = spool_batches(rig.spool)
    assert len(before) == 5
    svc.stop()
    assert rig.collector.batches == []
    rig.proxy.restore()

    svc2 = start(rig, started, batch_max_messages=5)
    rig.collector.wait_messages(23)
    wait_until(lambda: svc2.spool.stats().depth == 0, 10, "spool emptied")
    got = {b.batch_id: [json.loads(p)["seq"] for _, p in b.messages] for b in rig.collector.batches}
    assert got == {bid: list(range(first, last + 1)) for bid, first, last in before}


def test_kill_after_spool_write_before_ack_loses_nothing(rig: Rig, started: list[GatewayService]) -> None:
    rig.proxy.cut()
    cfg = gateway_settings(rig.farm, rig.gw, rig.local_url, rig.central_url, rig.spool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")} | gateway_env(cfg)
    log = rig.spool.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.gateway.crash_runner"], env=env, stderr=out)
    try:
        node = rig.node("n-1")
        wait_until(lambda: "event=local_subscribed" in log.read_text(), 20, "the gateway's subscription")
        first = node.publish(air_t=25.0)  # the farm broker PUBACKs the node; the gateway spools, dies
        assert proc.wait(20) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert spool_depth(rig.spool) == 1  # on disk, but never acked
    rig.proxy.restore()
    svc = start(rig, started)
    second = node.publish(air_t=26.0)
    rig.collector.wait_messages(3)
    time.sleep(0.5)
    counts = Counter(rig.collector.messages())
    # The farm broker redelivered the un-acked message: a duplicate with the same (node, seq).
    assert counts == {("n-1", first): 2, ("n-1", second): 1}
    wait_until(lambda: svc.spool.stats().depth == 0, 10, "spool emptied")


def test_health_is_retained_upstream_and_read_by_status(rig: Rig, started: list[GatewayService]) -> None:
    svc = start(rig, started)
    wait_until(lambda: (rig.farm, rig.gw) in read_health(rig.admin_central, quiet_s=0.2), 10, "health")
    h = read_health(rig.admin_central)[(rig.farm, rig.gw)]
    assert h["uplink"] == "up" and h["depth"] == 0 and h["state"] == "online"
    comp = component(h, time.time())
    assert comp["state"] == "running" and comp["uplink"] == "up" and comp["drops"] == 0
    svc.stop()
    h = read_health(rig.admin_central)[(rig.farm, rig.gw)]
    assert h["state"] == "stopped"
    assert component(h, time.time())["state"] == "error"
    assert component({"state": "online", "ts": time.time() - 100, "interval_s": 0.5}, time.time())[
        "error"
    ].startswith("last health")


def test_spool_survives_restart_with_data_still_queued(rig: Rig, started: list[GatewayService]) -> None:
    rig.proxy.cut()
    svc = start(rig, started)
    wait_until(lambda: svc.inbound.subscribed, 10, "farm broker subscription")
    node = rig.node("n-1")
    for i in range(10):
        node.publish(air_t=float(i))
    wait_until(lambda: svc.spool.stats().depth == 10, 10, "10 spooled")
    svc.stop()
    with sqlite3.connect(rig.spool) as db:
        assert db.execute("SELECT count(*) FROM spool").fetchone()[0] == 10
    rig.proxy.restore()
    start(rig, started)
    got = rig.collector.wait_messages(10)
    assert sorted(json.loads(p)["seq"] for _, p in got) == list(range(1, 11))


def test_status_lists_gateways_by_their_health(
    rig: Rig, started: list[GatewayService], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.status import status_components

    key = f"gateway {rig.farm}/{rig.gw}"
    monkeypatch.delenv("AGRI_GATEWAY_FARM", raising=False)
    monkeypatch.delenv("AGRI_GATEWAY_ID", raising=False)
    assert key not in status_components(rig.admin_central)  # no gateway: nothing to show
    svc = start(rig, started)
    wait_until(lambda: key in status_components(rig.admin_central), 10, "gateway in status")
    comp = status_components(rig.admin_central)[key]
    assert comp["state"] == "running" and comp["uplink"] == "up"

    # On the farm machine (AGRI_GATEWAY_* set) status reads the farm broker: works with the uplink cut.
    for k, v in gateway_env(svc.cfg).items():
        monkeypatch.setenv(k, v)
    rig.proxy.cut()
    wait_until(lambda: status_components(None)[key].get("uplink") == "down", 10, "uplink down in status")
    local = status_components(None)[key]
    assert local["state"] == "running" and local["address"].startswith("mqtt://gw-")
    monkeypatch.setenv("AGRI_GATEWAY_ID", "Bad")
    assert status_components(None)["gateway"]["state"] == "error"


def test_refused_uplink_is_reported_once_and_keeps_spooling(
    rig: Rig, started: list[GatewayService], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = rig.central_url.replace("@", "x@", 1)  # wrong password
    svc = GatewayService(gateway_settings(rig.farm, rig.gw, rig.local_url, wrong, rig.spool))
    svc.start()
    started.append(svc)
    wait_until(lambda: svc.inbound.subscribed, 10, "farm broker subscription")
    rig.node("n-1").publish(air_t=20.0)
    wait_until(lambda: svc.uplink.backoff.failures >= 3, 15, "three refused attempts")
    wait_until(lambda: svc.spool.stats().depth == 1, 10, "the message spooled")
    h = svc.health()
    assert h["uplink"] == "down" and str(h["uplink_error"]).startswith("refused")
    assert [r.message for r in caplog.records].count("uplink_refused") == 1
