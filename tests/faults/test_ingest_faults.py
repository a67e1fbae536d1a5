"""Fault tests for ingest (issue 4, item 4 a-c), with real processes and readings flowing:
(a) kill -9 the ingest worker in the middle of a batch, (b) restart Mosquitto gracefully,
(c) stop PostgreSQL for 20 s. After each, every reading the broker acknowledged is stored exactly
once (compared by node, metric and time) or is in `rejects` with its reason.

Each test that restarts a component gets its own instance of it, never the session fixtures.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agri.stack.postgres import PgCluster
from agri.stack.proc import free_port
from store.migrate import migrate
from tests.fixtures.mqtt import BrokerHandle, start_broker
from tests.fixtures.pg import make_tmp_root
from tests.fixtures.wait import wait_until
from tests.ingest.support import Fleet, WorkerProcess, assert_exactly_once, drop_session, register, stored

pytestmark = [pytest.mark.integration]

NODES = [f"n-{i:02d}" for i in range(20)]


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def in_transaction(db_url: str, client_id: str) -> bool:
    """True while the worker's database session has a transaction open (it is mid-batch)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL"
            " AND state IN ('active', 'idle in transaction')",
            (f"agri-ingest:{client_id}",),
        ).fetchone()
    return bool(row and row[0])


def test_a_kill9_worker_mid_batch_then_restart(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str, tmp: Path
) -> None:
    tag = secrets.token_hex(3)
    farm, cid = f"fa-{tag}", f"ingest-a-{tag}"
    register(db_url, farm, NODES)
    ingest_url = mqtt_broker.account("ingest", f"ingest-a-{tag}")
    worker = WorkerProcess(db_url, ingest_url, cid, tmp, "--group", f"a{tag}")
    fleet = Fleet(mqtt_admin_url, farm, NODES, bad_every=7, client_id=f"fleet-{tag}")
    try:
        worker.start()
        worker.wait_log("mqtt_connected")
        fleet.start(n_per_node=150, rate=400)  # 3000 messages, 24k readings, ~7.5 s
        wait_until(lambda: len(stored(db_url, farm)) > 2000, 30, "readings flowing")
        # Poll the worker's session until a batch transaction is open, then kill it there.
        wait_until(lambda: in_transaction(db_url, cid), 30, "an open batch transaction", interval=0.002)
        worker.kill9()
        time.sleep(1.0)  # readings keep arriving and queue in the worker's session
        worker.start()
        fleet.join()
        fleet.wait_acked()
        assert_exactly_once(db_url, fleet)
        assert worker.stop() == 0
        log = worker.log.read_text()
        assert log.count("event=ingest_started") == 2 and "session_present=true" in log
    finally:
        worker.stop()
        fleet.close()
        drop_session(ingest_url, cid)


@pytest.mark.parametrize("mode", ["exclusive", "shared"])
def test_b_mosquitto_graceful_restart_with_persistence(db_url: str, tmp: Path, mode: str) -> None:
    """exclusive: one worker on a plain subscription, which Mosquitto persists -- what `agri up` runs.
    shared: Mosquitto does not bring a shared subscription back until its worker re-subscribes and
    PUBACKs messages published before that with "No matching subscribers" (0x10): an MQTT 5
    publisher (the gateway) that republishes those loses nothing either (docs/delivery.md)."""
    tag = secrets.token_hex(3)
    farm, cid = f"fb-{tag}", f"ingest-b-{tag}"
    register(db_url, farm, NODES)
    broker = start_broker("agri-fault-mqtt-")
    handle = BrokerHandle(broker)
    args = ["--exclusive"] if mode == "exclusive" else []
    worker = WorkerProcess(db_url, handle.account("ingest", "ingest-b"), cid, tmp, *args)
    fleet = Fleet(
        handle.account("admin", "admin-b"),
        farm,
        NODES,
        bad_every=5,
        client_id=f"fleet-{tag}",
        retry_unrouted=mode == "shared",
    )
    try:
        worker.start()
        worker.wait_log("mqtt_connected")
        fleet.start(n_per_node=100, rate=300)  # ~6.7 s of traffic
        wait_until(lambda: len(stored(db_url, farm)) > 1000, 30, "readings flowing")
        broker.stop()  # SIGTERM: Mosquitto writes its persistence file and exits
        time.sleep(1.0)
        broker.start()
        fleet.join()
        fleet.wait_acked()
        assert_exactly_once(db_url, fleet)
        log = worker.log.read_text()
        assert "event=mqtt_disconnected" in log and "event=mqtt_recovered" in log
    finally:
        worker.stop()
        fleet.close()
        broker.stop()
        shutil.rmtree(broker.root.parent, ignore_errors=True)


@pytest.fixture
def own_pg() -> Iterator[PgCluster]:
    """A private cluster with production durability (fsync, synchronous_commit on)."""
    root = make_tmp_root("agri-fault-pg-")
    cluster = PgCluster(root=root / "pg", port=free_port(), password=secrets.token_urlsafe(16))
    cluster.start()
    cluster.create_database()
    migrate(cluster.dsn())
    yield cluster
    cluster.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_c_postgres_down_for_20s(
    own_pg: PgCluster, mqtt_broker: BrokerHandle, mqtt_admin_url: str, tmp: Path
) -> None:
    tag = secrets.token_hex(3)
    farm, cid = f"fc-{tag}", f"ingest-c-{tag}"
    db = own_pg.dsn()
    register(db, farm, NODES)
    ingest_url = mqtt_broker.account("ingest", f"ingest-c-{tag}")
    worker = WorkerProcess(db, ingest_url, cid, tmp, "--group", f"c{tag}")
    fleet = Fleet(mqtt_admin_url, farm, NODES, bad_every=6, client_id=f"fleet-{tag}")
    try:
        worker.start()
        worker.wait_log("mqtt_connected")
        fleet.start(n_per_node=150, rate=120)  # 3000 messages over 25 s: before, during and after
        wait_until(lambda: len(stored(db, farm)) > 500, 30, "readings flowing")
        own_pg.stop(mode="fast")
        time.sleep(20)
        own_pg.start()
        fleet.join()
        fleet.wait_acked()
        assert_exactly_once(db, fleet)
        log = worker.log.read_text()
        # An outage is one state: logged once when it starts and once when it ends.
        assert log.count("event=db_unavailable") == 1 and log.count("event=db_recovered") == 1
        assert worker.proc is not None and worker.proc.poll() is None  # it never crashed
    finally:
        worker.stop()
        fleet.close()
        drop_session(ingest_url, cid)
