"""`agri bench gateway` completes and reports every number (tiny run; the numbers are in docs)."""

import json
import subprocess
import sys

import pytest

from agri.bench import wire

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


def test_wire_bench_batches_like_the_gateway_and_orders_the_scenarios() -> None:
    msgs = wire.farm_messages(nodes=60, minutes=3, kind="orchard", seed=3)
    assert len(msgs) == 180 and len({p for _, _, p in msgs}) == 180  # no two messages alike
    batches = wire.cut_batches(msgs, 0.5, 500)
    assert sum(len(b) for b in batches) == 180
    arrival = {p: t for t, _, p in msgs}
    for b in batches:  # every message of a batch arrived within the linger of its first
        assert arrival[b[-1][1]] - arrival[b[0][1]] <= 0.5
    live, backlog, same = wire.run(nodes=60, minutes=3, linger_s=0.5, seed=3)
    assert live.messages == backlog.messages == same.messages == 180
    assert live.mqtt_bytes_per_message > backlog.mqtt_bytes_per_message > same.mqtt_bytes_per_message
    assert live.envelope_bytes_per_message < live.payload_bytes_per_message  # zlib still pays off
