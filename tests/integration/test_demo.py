"""The README's first command runs `agri demo`: stack + emulated farms; readings land; Ctrl-C cleans up."""

import json
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.fixtures.pg import make_tmp_root
from tests.fixtures.stack import private_stack_env

pytestmark = pytest.mark.integration


def test_demo_stores_readings_from_emulated_farms_and_stops_cleanly() -> None:
    home = make_tmp_root("agri-test-demo-")
    env = private_stack_env(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agri.cli.main", "demo"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        farms: set[str] = set()
        while time.monotonic() < deadline and len(farms) < 4:
            time.sleep(2)
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            secrets = home / "secrets.json"
            if not secrets.exists():
                continue
            pw = json.loads(secrets.read_text())["pg_password"]
            try:
                with psycopg.connect(
                    f"postgresql://agri:{pw}@127.0.0.1:{env['AGRI_PG_PORT']}/agri", connect_timeout=2
                ) as conn:
                    rows = conn.execute(
                        "SELECT DISTINCT n.farm_id FROM readings r JOIN series s ON s.id = r.series_id"
                        " JOIN nodes n ON n.id = s.node_id"
                    ).fetchall()
                    farms = {r[0] for r in rows}
            except psycopg.Error:
                continue
        assert farms == {"longju-citrus", "ganning-pigs", "taibai-tea", "xiaozhou-pond"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    assert "stopping" in out and "database: stopped" in out
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(home) not in ps
