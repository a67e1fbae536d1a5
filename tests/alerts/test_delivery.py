"""The outbox dispatcher against a real local receiver: retries, robot refusals, rate limits, kill -9."""

import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts.dispatcher import Dispatcher, DispatchOptions
from store import commissioners as comm
from tests.alerts.support import q
from tests.fixtures.receiver import Receiver
from tests.fixtures.wait import wait_until
from tests.ingest.support import register

pytestmark = pytest.mark.integration
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def outbox(db_url: str, channel: str, url: str, n: int, secret: str | None = None) -> tuple[str, list[int]]:
    """A farm with one commissioner on ``channel`` and ``n`` open alerts, each with a pending delivery."""
    farm = f"f-{secrets.token_hex(3)}"
    register(db_url, farm, ["n-1"])
    ids = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        cid = comm.add(conn, f"c-{farm}", channel, url, secret)
        for i in range(n):
            view = {"alert_id": 0, "farm": farm, "node": "n-1", "metric": "air_t", "rule": f"r{i}",
                    "severity": "warning", "value": 30.0 + i, "threshold": 30.0, "op": "above",
                    "since": time.time() - 60, "ended": None, "message": "", "status": "open",
                    "dashboard": "x"}  # fmt: skip
            (aid,) = conn.execute(  # type: ignore[misc]
                "INSERT INTO alerts (farm_id, rule, severity, message, started_at)"
                " VALUES (%s, %s, 'warning', '', %s) RETURNING id",
                (farm, f"r{i}", datetime.now(UTC)),
            ).fetchone()
            view["alert_id"] = aid
            (did,) = conn.execute(  # type: ignore[misc]
                "INSERT INTO webhook_deliveries (alert_id, commissioner_id, event, payload, farm_id)"
                " VALUES (%s, %s, 'alert.opened', %s, %s) RETURNING id",
                (aid, cid, Jsonb(view), farm),
            ).fetchone()
            ids.append(int(did))
    return farm, ids


def opts(db_url: str, **kw: float) -> DispatchOptions:
    return DispatchOptions(db_url, b"k" * 32, "http://dash", min_backoff_s=0.05, max_backoff_s=0.3, **kw)


def statuses(db_url: str, ids: list[int]) -> list[str]:
    return [
        s for (s,) in q(db_url, "SELECT status FROM webhook_deliveries WHERE id = ANY(%s) ORDER BY id", ids)
    ]


def test_receiver_down_then_back_delivers_everything_once_each(db_url: str, receiver: Receiver) -> None:
    _, ids = outbox(db_url, "generic", f"{receiver.url}/hook", 5, SECRET)
    receiver.mode = "http500"
    d = Dispatcher(opts(db_url))
    try:
        for _ in range(4):
            d.run_once()
            time.sleep(0.1)
        assert statuses(db_url, ids) == ["pending"] * 5
        receiver.mode = "ok"
        wait_until(lambda: (d.run_once() or True) and statuses(db_url, ids) == ["sent"] * 5, 20, "all sent")
    finally:
        d.close()
    got = sorted(r.headers["webhook-id"] for r in receiver.got("/hook"))
    assert got == sorted(f"dlv_{i}" for i in ids)  # each once, with its stable id
    failed = q(db_url, "SELECT count(*) FROM delivery_attempts WHERE NOT ok AND response_code = 500"
                       " AND delivery_id = ANY(%s)", ids)[0][0]  # fmt: skip
    assert failed >= 5  # every failed attempt is recorded


def test_robot_refusal_with_http_200_is_retried_until_code_zero(db_url: str, receiver: Receiver) -> None:
    _, ids = outbox(db_url, "dingtalk", f"{receiver.url}/ding?access_token=t", 1, "SECx")
    receiver.mode = "errcode"
    d = Dispatcher(opts(db_url))
    try:
        d.run_once()
        row = q(
            db_url,
            "SELECT ok, response_code, error_code FROM delivery_attempts WHERE delivery_id = %s",
            ids[0],
        )
        assert row == [(False, 200, "45009")] and statuses(db_url, ids) == ["pending"]
        receiver.mode = "ok"
        wait_until(lambda: (d.run_once() or True) and statuses(db_url, ids) == ["sent"], 20, "sent")
    finally:
        d.close()


def test_robot_rate_limit_merges_and_never_drops(db_url: str, receiver: Receiver) -> None:
    _, ids = outbox(db_url, "wecom", f"{receiver.url}/wecom?key=k", 45)
    d = Dispatcher(opts(db_url, batch=10))
    try:
        wait_until(
            lambda: (d.run_once() or True) and "pending" not in statuses(db_url, ids), 60, "all handled"
        )
    finally:
        d.close()
    st = statuses(db_url, ids)
    assert set(st) <= {"sent", "merged"} and st.count("sent") <= 20
    msgs = receiver.got("/wecom")
    assert len(msgs) == st.count("sent") <= 20
    text = "".join(r.json()["markdown"]["content"] for r in msgs)
    assert all(f"r{i}" in text for i in range(45))  # every alert is in some message


@pytest.mark.slow
def test_dispatcher_kill_9_mid_send_loses_nothing(db_url: str, receiver: Receiver, tmp_path: Path) -> None:
    _, ids = outbox(db_url, "generic", f"{receiver.url}/k9", 3, SECRET)
    receiver.mode = "hang"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= {"AGRI_DATABASE_URL": db_url, "AGRI_HOME": str(tmp_path)}
    argv = [
        sys.executable,
        "-m",
        "agri.cli.main",
        "alerts",
        "dispatch",
        "--lease",
        "2",
        "--min-backoff",
        "0.1",
    ]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(receiver.got("/k9")) >= 1, 120, "a send in flight")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
    receiver.mode = "ok"
    receiver.release.set()
    assert "sent" not in statuses(db_url, ids)[:1]
    p2 = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: statuses(db_url, ids) == ["sent"] * 3, 120, "all sent after the restart")
    finally:
        p2.send_signal(signal.SIGTERM)
        p2.wait(20)
    got = {r.headers["webhook-id"] for r in receiver.got("/k9")}
    assert got == {f"dlv_{i}" for i in ids}  # duplicates (the one in flight) carry the same id
