"""The README's first command, shortened: `agri demo --fast` end to end, with counts that match exactly.

Firmware (MicroPython unix port) and simulated nodes publish -> farm broker -> `agri gateway` ->
central broker -> ingest -> TimescaleDB -> alert rules -> outbox -> the demo's webhook receiver,
which verifies every signature; the same alerts are read back through the API and on the dashboard
(AppTest); Ctrl-C leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from agri.stack import district
from agri.stack.proc import port_open
from tests.fixtures.pg import make_tmp_root
from tests.fixtures.stack import private_stack_env
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _get(url: str, token: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _page(url: str, method: str = "GET") -> str:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as resp:
        return resp.read().decode()


ACK_LINK = re.compile(r"\((http://[^)\s]+/ack/(\d+)\?[^)\s]+)\)")


def _text(at: AppTest) -> str:
    parts = [e.value for e in at.title] + [e.value for e in at.subheader] + [e.value for e in at.markdown]
    parts += [e.value for e in at.caption] + [e.proto.label for e in at.get("page_link")]
    parts += [v for d in at.dataframe for v in d.value.astype(str).to_numpy().ravel()]  # the farm table
    return "\n".join(str(p) for p in parts)


def _status(home: Path) -> dict[str, Any] | None:
    p = home / "demo" / "status.json"
    try:
        return json.loads(p.read_text()) if p.exists() else None
    except ValueError:
        return None


def _processes_of(home: Path) -> list[str]:
    """Pids of the processes started with this home: services (their argv does not name it, their
    environment does) and the database and brokers (whose argv names a file under it)."""
    mark = f"AGRI_HOME={home}".encode()
    found = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            env = (proc_dir / "environ").read_bytes().split(b"\0")
            argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in env or any(str(home).encode() in a for a in argv):
            found.append(proc_dir.name)
    return found


def test_demo_end_to_end_counts_match_and_stops_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    home = make_tmp_root("agri-test-demo-")
    env = private_stack_env(home)
    out_path = home / "demo-out.txt"
    out = open(out_path, "w")  # noqa: SIM115 - closed in finally
    # Started with SIGINT ignored, as a background job of a shell script (a CI runner) starts it:
    # the Ctrl-C below must stop it all the same (it did nothing before the demo set its handler).
    proc = subprocess.Popen(
        [sys.executable, "-m", "agri.cli.main", "demo", "--fast", "--scale", "0.1",
         "--history-days", "1.3", "--quiesce"],
        env=env, text=True, stdout=out, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip

    def log() -> str:
        return out_path.read_text()

    try:
        wait_until(lambda: proc.poll() is not None or (_status(home) or {}).get("quiet"), 240,
                   "the demo to play its scenarios and stop its publishers")  # fmt: skip
        assert proc.poll() is None, log()
        status = _status(home)
        assert status is not None
        pw = json.loads((home / "secrets.json").read_text())["pg_password"]
        dsn = f"postgresql://agri:{pw}@127.0.0.1:{env['AGRI_PG_PORT']}/agri"
        played = [s for s in status["scenarios"] if s["state"] in ("done", "on")]
        assert {s["name"] for s in played} >= {
            "barn-heat",
            "dawn-oxygen",
            "frost-night",
            "uplink-outage",
            "ndvi-drop",
        }, log()

        with psycopg.connect(dsn, autocommit=True) as conn:

            def sim_counts() -> tuple[int, int]:
                stored = conn.execute(
                    "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                    " JOIN nodes n ON n.id = s.node_id WHERE n.node_id ~ '^s-[0-9]{3}$'"
                ).fetchone()
                rejected = conn.execute(
                    "SELECT count(*) FROM rejects WHERE node_id ~ '^s-[0-9]{3}$'"
                ).fetchone()
                assert stored is not None and rejected is not None
                return int(stored[0]), int(rejected[0])

            # Every reading a simulated node published (PUBACK from its broker) is stored or rejected:
            # through the gateways' spools, the cut uplink, ingest and the unique key.
            wait_until(lambda: sum(sim_counts()) == status["published"], 60,
                       f"stored + rejected == {status['published']} published")  # fmt: skip
            stored, rejected = sim_counts()
            assert stored + rejected == status["published"] and status["published"] > 0

            # The real firmware's readings came through its farm's gateway.
            fw = conn.execute(
                "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id JOIN nodes n"
                " ON n.id = s.node_id WHERE n.farm_id = 'ganning-pigs' AND n.node_id = 'n-01'"
            ).fetchone()
            assert fw is not None and fw[0] > 0

            # One alert per scenario (its rule on its subject), each told once to the farm's commissioner.
            def scenario_alerts() -> dict[str, list[Any]]:
                got: dict[str, list[Any]] = {}
                for s in played:
                    rows = conn.execute(
                        "SELECT a.id, c.name FROM alerts a LEFT JOIN nodes n ON n.id = a.node_id"
                        " JOIN farm_commissioners fc ON fc.farm_id = a.farm_id"
                        " JOIN commissioners c ON c.id = fc.commissioner_id"
                        " WHERE a.farm_id = %s AND a.rule = %s AND (n.node_id = %s OR a.subject = %s)",
                        (s["farm"], s["rule"], s["node"], f"gw/{s['node']}"),
                    ).fetchall()
                    got[s["name"]] = rows
                return got

            alerts = scenario_alerts()
            assert {k: len(v) for k, v in alerts.items()} == {s["name"]: 1 for s in played}

            def opened_messages() -> list[dict[str, Any]]:
                return [m for m in _get(status["receiver"] + "/messages.json") if "解除" not in m["event"]
                        and m["event"] != "alert.resolved"]  # fmt: skip

            # Each scenario's alert reached its commissioner exactly once as "opened", signature verified.
            ids = {rows[0][0]: rows[0][1] for rows in alerts.values()}
            wait_until(
                lambda: conn.execute(
                    "SELECT count(*) FROM webhook_deliveries WHERE alert_id = ANY(%s)"
                    " AND event = 'alert.opened' AND status = 'sent'", (list(ids),),
                ).fetchone() == (len(ids),), 30, "every scenario alert delivered",
            )  # fmt: skip
            deliveries = conn.execute(
                "SELECT d.id, d.alert_id, c.name FROM webhook_deliveries d JOIN commissioners c"
                " ON c.id = d.commissioner_id WHERE d.alert_id = ANY(%s) AND d.event = 'alert.opened'",
                (list(ids),),
            ).fetchall()
            assert sorted((a, c) for _, a, c in deliveries) == sorted(ids.items())
            # At the receiver: exactly one message per delivery (its stable id), every signature verified.
            received = _get(status["receiver"] + "/messages.json")
            assert received and all(m["verified"] for m in received), received
            msgs = opened_messages()
            for did, aid, who in deliveries:
                mine = [m for m in msgs if m["delivery_id"] == f"dlv_{did}"]
                assert len(mine) == 1 and mine[0]["commissioner"] == who, (did, aid, who, msgs)
                assert mine[0]["alert_id"] in (None, aid)
            channels = {m["channel"] for m in msgs}
            assert {"generic", "wecom", "feishu"} <= channels, channels
            # The uplink outage (shorter than the late-data window) ends with ONE summary of it.
            if any(sc["name"] == "uplink-outage" for sc in played):
                wait_until(lambda: [m for m in _get(status["receiver"] + "/messages.json")
                                    if "gateway gw-1 out of touch" in m["text"]], 60,
                           "the outage summary at the receiver")  # fmt: skip
                outage = [m for m in _get(status["receiver"] + "/messages.json")
                          if "gateway gw-1 out of touch" in m["text"]]  # fmt: skip
                assert len(outage) == 1 and "ganning-pigs" in outage[0]["text"], outage

        # The API shows the same data with the demo's read token.
        api, token = status["api"], status["token"]
        farms = _get(f"{api}/farms", token)
        assert {f["id"] for f in farms["items"]} >= {"ganning-pigs", "taolong-citrus", "fenshui-pigs"}
        alert_ids = set(ids)
        if "/alerts" in _get(f"{api}/openapi.json")["paths"]:
            listed = _get(f"{api}/alerts?limit=500", token)
            assert alert_ids <= {a["id"] for a in listed["items"]}

        # And the dashboard (AppTest against the demo's database): the new farms on the overview,
        # each scenario's alert on the alerts page (deep link, as the message links to it).
        monkeypatch.setenv("AGRI_DATABASE_URL", dsn)
        st.cache_data.clear()
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception, at.exception
        shown = {str(v) for df in at.dataframe if "农场" in df.value.columns for v in df.value["农场"]}
        assert {f.name for f in district.FARMS} <= shown, shown
        for aid in ids:
            at = AppTest.from_file(APP, default_timeout=60)
            at.query_params["alert"] = str(aid)
            at.run()
            at.switch_page("screens/alerts.py").run()
            assert not at.exception, at.exception
            assert f"#{aid}" in _text(at), _text(at)[:2000]

        # The commissioner taps the signed acknowledge link in a message: the API shows the alert
        # (a GET changes nothing), the button's POST acknowledges it in the commissioner's name.
        links = [(m, ACK_LINK.search(m["text"])) for m in opened_messages() if m.get("alert_id") in ids]
        m, link = next(
            (m, k)
            for m, k in links
            if k is not None and _get(f"{api}/alerts/{k.group(2)}", token)["status"] == "open"
        )
        url, aid = link.group(1), int(link.group(2))
        assert aid == m["alert_id"] and url.startswith(api + "/ack/"), url
        assert "确认告警" in _page(url)
        assert _get(f"{api}/alerts/{aid}", token)["status"] == "open"
        assert "已确认" in _page(url, "POST")
        acked = _get(f"{api}/alerts/{aid}", token)
        assert acked["status"] == "acknowledged" and acked["acked_by"] == f"link:{m['commissioner']}", acked
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            # a hang on Ctrl-C is the failure: report where the demo waits (its threads' stacks,
            # which `agri` writes on SIGUSR1, and the processes it still runs), then kill them all
            # so that nothing outlives the test
            proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(AssertionError):  # the report goes on without the stacks
                wait_until(lambda: "most recent call first" in log(), 5, "the demo's stack dump")
            running = _processes_of(home)
            tree = subprocess.run(["ps", "-o", "pid,ppid,stat,etime,args", "-p", ",".join(running) or "1"],
                                  capture_output=True, text=True).stdout  # fmt: skip
            for pid in running:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            proc.wait(10)
            out.close()
            raise AssertionError(
                f"the demo did not stop within 120 s of Ctrl-C; still running:\n{tree}\n"
                f"its output (last 6,000 characters):\n{log()[-6000:]}"
            ) from None
        finally:
            out.close()
    text = log()
    assert "stopping" in text and "database: stopped" in text, text[-3000:]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(home) not in ps
    # Nor any process started with this home (by environment or argv, see _processes_of).
    left = _processes_of(home)
    assert not left, f"processes left running: {left}"
    for key in ("AGRI_PG_PORT", "AGRI_MQTT_PORT", "AGRI_API_PORT", "AGRI_DASHBOARD_PORT"):
        assert not port_open("127.0.0.1", int(env[key])), f"{key} {env[key]} still served after Ctrl-C"
