"""The ingest worker end to end: real Mosquitto, real TimescaleDB, paho manual acks."""

import json
import secrets
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernel.protocol import encode_batch, encode_up
from tests.fixtures.mqtt import BrokerHandle
from tests.fixtures.wait import wait_until
from tests.ingest.support import Fleet, assert_exactly_once, drop_session, register, stored, worker_thread

pytestmark = pytest.mark.integration


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """A farm and a shared-subscription group of its own, so tests never share a queue."""
    tag = secrets.token_hex(3)
    yield {"farm": f"farm-{tag}", "group": f"g{tag}", "cid": f"w-{tag}"}


@pytest.fixture(scope="module")
def ingest_url(mqtt_broker: BrokerHandle) -> str:
    return mqtt_broker.account("ingest", "svc-ingest")


def test_node_and_gateway_messages_are_stored_exactly_once(
    db_url: str, mqtt_admin_url: str, ingest_url: str, names: dict[str, str]
) -> None:
    farm = names["farm"]
    nodes = [f"n-{i}" for i in range(5)]
    register(db_url, farm, [*nodes, "n-gw1", "n-gw2"])
    fleet = Fleet(mqtt_admin_url, farm, nodes, bad_every=3, client_id=f"fleet-{farm}")
    try:
        with worker_thread(db_url, ingest_url, names["cid"], group=names["group"], session_expiry_s=60) as w:
            fleet.publish(4)
            t = float(int(time.time()) - 120)
            inner = [(n, encode_up(n, 0, [(t, {"do_mgl": 6.5, "ph": 7.1})])) for n in ("n-gw1", "n-gw2")]
            info = fleet.client.publish(
                f"agri/v1/{farm}/gw/gw-1/batch", encode_batch("gw-1", farm, "gw-1:0", inner), qos=1
            )
            info.wait_for_publish(10)
            fleet.wait_acked()
            assert_exactly_once(db_url, fleet)
            got = stored(db_url, farm)
            assert got[("n-gw1", "do_mgl", t)] == 1 and got[("n-gw2", "ph", t)] == 1
            wait_until(lambda: w.metrics.received == 21, 10, "metrics")
            assert w.metrics.stored == len(fleet.expected()[0]) + 4
            assert w.metrics.rejected["out_of_range"] == 10
    finally:
        fleet.close()
        drop_session(ingest_url, names["cid"])


def test_messages_are_acked_only_after_commit(
    db_url: str, mqtt_admin_url: str, ingest_url: str, names: dict[str, str]
) -> None:
    """A worker whose database is down holds its messages un-acked; when it stops, the broker still
    has them and gives them to the next worker of the same session, which stores them."""
    farm = names["farm"]
    register(db_url, farm, ["n-1", "n-2"])
    fleet = Fleet(mqtt_admin_url, farm, ["n-1", "n-2"], client_id=f"fleet-{farm}")
    dead_db = "postgresql://agri:x@127.0.0.1:1/agri"
    try:
        kw = {"group": names["group"], "session_expiry_s": 60, "receive_maximum": 10}
        with worker_thread(dead_db, ingest_url, names["cid"], **kw) as w:
            fleet.publish(25)
            fleet.wait_acked()
            # Flow control: the broker never sends more than Receive Maximum un-acked messages.
            wait_until(lambda: w.metrics.backlog()[0] == 10, 10, "worker holding 10 messages")
            # Two failed commits later (>= one backoff delay) the broker still sent no more.
            retries = w.metrics.db_retries
            wait_until(lambda: w.metrics.db_retries >= retries + 2, 10, "two more commit attempts")
            assert w.metrics.backlog()[0] == 10
            assert not w.metrics.health()[0]
        with worker_thread(db_url, ingest_url, names["cid"], **kw) as w:
            assert_exactly_once(db_url, fleet)
    finally:
        fleet.close()
        drop_session(ingest_url, names["cid"])


def test_messages_queue_in_the_session_while_the_worker_is_down(
    db_url: str, mqtt_admin_url: str, ingest_url: str, names: dict[str, str]
) -> None:
    farm = names["farm"]
    register(db_url, farm, ["n-1"])
    kw = {"group": names["group"], "session_expiry_s": 60}
    with worker_thread(db_url, ingest_url, names["cid"], **kw):
        pass  # subscribed; now down
    fleet = Fleet(mqtt_admin_url, farm, ["n-1"], client_id=f"fleet-{farm}")
    try:
        fleet.publish(20)
        fleet.wait_acked()  # the broker has them all while no worker is connected
        with worker_thread(db_url, ingest_url, names["cid"], **kw) as w:
            assert_exactly_once(db_url, fleet)
            assert w.metrics.received == 20  # delivered from the session, each once
    finally:
        fleet.close()
        drop_session(ingest_url, names["cid"])


def test_metrics_endpoint_speaks_prometheus_text(
    db_url: str, mqtt_admin_url: str, ingest_url: str, names: dict[str, str]
) -> None:
    farm = names["farm"]
    register(db_url, farm, ["n-1"])
    fleet = Fleet(mqtt_admin_url, farm, ["n-1"], client_id=f"fleet-{farm}", bad_every=1)
    try:
        with worker_thread(db_url, ingest_url, names["cid"], group=names["group"], session_expiry_s=60) as w:
            fleet.publish(3)
            fleet.client.publish(f"agri/v1/{farm}/n-1/up", b"not json", qos=1).wait_for_publish(5)
            wait_until(lambda: w.metrics.received == 4 and w.metrics.batches > 0, 10, "messages committed")
            wait_until(lambda: w.metrics.backlog()[0] == 0, 10, "acks")
            assert w.server is not None
            base = f"http://127.0.0.1:{w.server.port}"
            text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
            health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
    finally:
        fleet.close()
        drop_session(ingest_url, names["cid"])
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("agri_ingest_messages_received_total", ())] == 4
    assert samples[("agri_ingest_readings_stored_total", ())] == 3 * 2 * 4 - 3
    assert samples[("agri_ingest_rejected_total", (("reason", "out_of_range"),))] == 3
    assert samples[("agri_ingest_rejected_total", (("reason", "bad_json"),))] == 1
    assert samples[("agri_ingest_commit_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("agri_ingest_unacked_messages", ())] == 0
    assert health["mqtt"] == "connected" and health["database"] == "ok"


def test_a_taken_metrics_port_does_not_stop_ingest(
    db_url: str, mqtt_admin_url: str, ingest_url: str, names: dict[str, str]
) -> None:
    farm = names["farm"]
    register(db_url, farm, ["n-1"])
    fleet = Fleet(mqtt_admin_url, farm, ["n-1"], client_id=f"fleet-{farm}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            kw = {"group": names["group"], "session_expiry_s": 60, "metrics_port": port}
            with worker_thread(db_url, ingest_url, names["cid"], **kw) as w:
                assert w.server is None
                fleet.publish(2)
                fleet.wait_acked()
                assert_exactly_once(db_url, fleet)
        finally:
            fleet.close()
            drop_session(ingest_url, names["cid"])
