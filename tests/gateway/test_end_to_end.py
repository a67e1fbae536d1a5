"""Through the gateway into TimescaleDB: good readings stored, every kind of bad message in rejects."""

from __future__ import annotations

import secrets
import time

import psycopg
import pytest

from gateway.service import GatewayService
from kernel.protocol import encode_up
from tests.fixtures.wait import wait_until
from tests.gateway.conftest import Rig
from tests.gateway.support import gateway_settings
from tests.ingest.support import register, stored, worker_thread

pytestmark = pytest.mark.integration


def rejects(db_url: str, farm: str) -> list[tuple[str | None, str, str, bytes]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT node_id, reason, detail, raw FROM rejects WHERE farm_id = %s ORDER BY id", (farm,)
        ).fetchall()
    return [(n, str(r), str(d), bytes(raw)) for n, r, d, raw in rows]


def test_invalid_messages_reach_central_rejects(rig: Rig, db_url: str) -> None:
    register(db_url, rig.farm, ["n-1"])
    ingest_url = rig.central.account("ingest", f"ingest-{rig.farm}")
    svc = GatewayService(gateway_settings(rig.farm, rig.gw, rig.local_url, rig.central_url, rig.spool))
    svc.start()
    try:
        with worker_thread(db_url, ingest_url, f"w-{secrets.token_hex(3)}", group=f"g{secrets.token_hex(3)}"):
            wait_until(lambda: svc.inbound.subscribed and svc.uplink.connected, 10, "gateway connected")
            node = rig.node("n-1")
            t = float(int(time.time()) - 60)
            node.publish(encode_up("n-1", 1, [(t, {"air_t": 21.5, "air_rh": 99.0})]))
            node.publish(encode_up("n-1", 2, [(t + 30, {"air_t": 99.0, "air_rh": 60.0})]))
            node.publish(b'{"v":1,"node":"n-1","seq":')
            not_utf8 = node.publish(b'{"v":1,"node":"n-1","seq":4,"s":[],"x":"\xff"}')
            wait_until(lambda: len(rejects(db_url, rig.farm)) >= 3, 20, "3 rejects in the database")
            wait_until(lambda: len(stored(db_url, rig.farm)) >= 3, 20, "3 readings stored")
    finally:
        svc.stop()
    assert set(stored(db_url, rig.farm)) == {
        ("n-1", "air_t", t),
        ("n-1", "air_rh", t),
        ("n-1", "air_rh", t + 30),
    }
    got = rejects(db_url, rig.farm)
    assert sorted(r for _, r, _, _ in got) == ["bad_encoding", "bad_json", "out_of_range"]
    # The entry the gateway could not forward verbatim is stored as the gateway classified it:
    # its node, the gateway's reason and detail, and the bytes the node sent.
    (entry,) = [row for row in got if row[1] == "bad_encoding"]
    assert entry == ("n-1", "bad_encoding", "not UTF-8 at byte 40", not_utf8)
