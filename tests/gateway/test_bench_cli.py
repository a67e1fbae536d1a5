"""`agri bench gateway` completes and reports every number (tiny run; the numbers are in docs)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_gateway_json() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "agri.cli.main", "bench", "gateway", "--messages", "400", "--nodes", "20",
         "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["messages"] == 400 and out["sync"] == "full"
    for k in (
        "spool_in_msgs_per_s",
        "forward_backlog_msgs_per_s",
        "flow_through_msgs_per_s",
        "publisher_msgs_per_s",
    ):
        assert out[k] > 0, k
    assert out["bytes_per_message_upstream"] < out["payload_bytes_per_message"]  # zlib pays off
