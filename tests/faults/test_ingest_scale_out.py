"""Scale-out (issue 4, item 5): two ingest worker processes on one shared subscription store the
same stream with no duplicates and no loss, and both do part of the work."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.fixtures.mqtt import BrokerHandle
from tests.ingest.support import Fleet, WorkerProcess, assert_exactly_once, drop_session, register

pytestmark = [pytest.mark.integration]


def test_two_workers_share_one_subscription(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    farm = f"fs-{tag}"
    nodes = [f"n-{i:02d}" for i in range(30)]
    register(db_url, farm, nodes)
    ingest_url = mqtt_broker.account("ingest", f"ingest-s-{tag}")
    workers = [
        WorkerProcess(db_url, ingest_url, f"ingest-s{i}-{tag}", tmp_path, "--group", f"s{tag}")
        for i in (1, 2)
    ]
    fleet = Fleet(mqtt_admin_url, farm, nodes, bad_every=4, client_id=f"fleet-{tag}")
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_log("mqtt_connected")
        fleet.publish(60, rate=600)  # 1800 messages
        fleet.wait_acked()
        assert_exactly_once(db_url, fleet)
    finally:
        codes = [w.stop() for w in workers]
        fleet.close()
        for w in workers:
            drop_session(ingest_url, w.argv[w.argv.index("--client-id") + 1])
    assert codes == [0, 0]
    shares = [int(re.findall(r"event=ingest_stopped stored=(\d+)", w.log.read_text())[-1]) for w in workers]
    assert all(s > 0 for s in shares), shares  # the broker spread the stream over both


def test_removing_a_worker_slot_loses_nothing(
    db_url: str, mqtt_broker: BrokerHandle, mqtt_admin_url: str, tmp_path: Path
) -> None:
    """Mosquitto keeps handing an offline member of a shared subscription its share. A worker that is
    removed for good must therefore drain its session and end it: `agri ingest --retire`."""
    tag = secrets.token_hex(3)
    farm = f"fr-{tag}"
    nodes = [f"n-{i:02d}" for i in range(10)]
    register(db_url, farm, nodes)
    ingest_url = mqtt_broker.account("ingest", f"ingest-r-{tag}")
    group = ["--group", f"r{tag}"]
    keep = WorkerProcess(db_url, ingest_url, f"ingest-r1-{tag}", tmp_path, *group)
    gone = WorkerProcess(db_url, ingest_url, f"ingest-r2-{tag}", tmp_path, *group)
    fleet = Fleet(mqtt_admin_url, farm, nodes, client_id=f"fleet-{tag}")
    try:
        for w in (keep, gone):
            w.start()
            w.wait_log("mqtt_connected")
        fleet.publish(5)
        assert gone.stop() == 0  # scaled down: its session still gets half of what follows
        fleet.publish(10)
        fleet.wait_acked()
        retire = WorkerProcess(db_url, ingest_url, f"ingest-r2-{tag}", tmp_path, *group, "--retire")
        retire.start()
        assert retire.proc is not None
        try:
            assert retire.proc.wait(60) == 0
        finally:
            retire.stop()
        assert "event=session_retired" in retire.log.read_text()
        fleet.publish(10)  # only the remaining worker is subscribed now: nothing waits for r2
        fleet.wait_acked()
        assert_exactly_once(db_url, fleet, timeout=30)
    finally:
        for w in (keep, gone):
            w.stop()
        fleet.close()
        drop_session(ingest_url, f"ingest-r1-{tag}")
