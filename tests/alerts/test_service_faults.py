"""The alert service killed with SIGKILL mid-stream: no reading skipped, no alert doubled."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.decode import decode_message
from kernel.protocol import Limits, encode_up, up_topic
from store.writer import Writer
from tests.alerts.support import q
from tests.fixtures.wait import wait_until
from tests.ingest.support import register

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOGGLE = """
[[rules]]
name = "toggle"
metric = "air_t"
above = 30
cooldown_s = 0
"""


def start(db_url: str, home: Path, rules: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= {"AGRI_DATABASE_URL": db_url, "AGRI_HOME": str(home)}
    argv = [sys.executable, "-m", "agri.cli.main", "alerts", "--rules", str(rules), "--no-dispatch"]
    with open(home / "alerts.log", "ab") as log:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)


def test_kill_9_mid_stream_skips_no_reading_and_doubles_no_alert(db_url: str, tmp_path: Path) -> None:
    farm, nodes = "kill-a", ["n-1", "n-2", "n-3"]
    register(db_url, farm, nodes)
    rules = tmp_path / "rules.toml"
    rules.write_text(TOGGLE)
    w = Writer(db_url)
    t0 = float(int(time.time()) - 600)
    seq = 0
    highs = 0
    proc = start(db_url, tmp_path, rules)
    try:
        for k in range(3):
            for _ in range(40):
                v = 35.0 if seq % 2 else 25.0
                highs += len(nodes) if v > 30 else 0
                batch = [
                    decode_message(
                        up_topic(farm, n),
                        encode_up(n, seq, [(t0 + seq, {"air_t": v})]),
                        Limits(now=time.time()),
                    )
                    for n in nodes
                ]
                assert w.write(batch).stored == len(nodes)
                seq += 1
            if k < 2:  # kill once the service has worked through part of what is there
                wait_until(
                    lambda: q(db_url, "SELECT count(*) FROM alerts WHERE rule = 'toggle'")[0][0] > 0,
                    30,
                    "work",
                )
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                proc = start(db_url, tmp_path, rules)
        last = q(db_url, "SELECT max(id) FROM alert_feed")[0][0]
        wait_until(
            lambda: q(db_url, "SELECT max(last_id) FROM alert_cursors")[0][0] == last,
            240,
            "the feed consumed",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        w.close()
    per_node = q(
        db_url,
        "SELECT n.node_id, count(*), count(*) FILTER (WHERE a.ended_at IS NULL) FROM alerts a"
        " JOIN nodes n ON n.id = a.node_id WHERE a.rule = 'toggle' GROUP BY 1 ORDER BY 1",
    )
    # one alert per high reading (each opens, the next low one resolves it): none skipped, none doubled
    assert per_node == [(n, highs // len(nodes), 0 if seq % 2 else 1) for n in nodes] or per_node == [
        (n, highs // len(nodes), 1) for n in nodes
    ]
    evaluated = q(
        db_url,
        "SELECT count(*) FROM series s JOIN nodes n ON n.id = s.node_id"
        " WHERE n.farm_id = %s AND s.alert_watermark = %s",
        farm,
        t0 + seq - 1,
    )[0][0]
    assert evaluated == len(nodes)
