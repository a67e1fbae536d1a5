"""`agri bench ingest` completes end to end and its counts add up (tiny run; the numbers are in docs)."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_ingest_json_counts_add_up() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "agri.cli.main", "bench", "ingest", "--rate", "4000", "--duration", "2",
         "--nodes", "40", "--farms", "4", "--json"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["published"] > 0
    assert out["stored"] == out["published"] and out["lost"] == 0 and out["duplicates"] == 0
    # The yardstick copied exactly the rows ingest stored, and both rates are reported.
    assert out["copy_rows"] == out["stored"] == out["copy_first_rows"]
    assert out["copy_rows_per_s"] > 0 and out["readings_per_s"] > 0
    assert out["ratio_to_copy"] == pytest.approx(out["readings_per_s"] / out["copy_rows_per_s"], abs=0.002)
    assert 0 <= out["p50_latency_s"] <= out["p99_latency_s"] <= out["max_latency_s"]
