"""`agri bench anomaly` runs end to end at a tiny size and reports every figure (no timing asserted)."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from agri.cli.main import app


def test_bench_json_has_all_figures() -> None:
    before = os.sched_getaffinity(0)
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "anomaly",
            "--series",
            "20",
            "--points",
            "300",
            "--chunk",
            "128",
            "--ticks",
            "3",
            "--river-points",
            "200",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["series"] == 20 and out["points_per_series"] == 300
    assert out["batch_points_per_s"] > 0 and out["tick_ms"] > 0
    assert out["baselines"]["rolling_zscore_points_per_s"] > 0
    assert out["baselines"]["river_hst_points_per_s"] > 0
    assert out["ratios"]["detector_vs_rolling_zscore"] > 0
    assert out["state_bytes_per_series"] < 4096
    assert os.sched_getaffinity(0) == before  # the pin to one CPU is undone
