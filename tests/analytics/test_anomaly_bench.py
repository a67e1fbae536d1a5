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
    assert out["state_bytes_per_series"] < 5000  # 4,537 B (state version 4)
    assert os.sched_getaffinity(0) == before  # the pin to one CPU is undone


def test_rolling_zscore_baseline_matches_a_slow_loop() -> None:
    """The z-score baseline is what it claims (blocks of series, chunk boundaries included)."""
    import numpy as np

    from agri.cli import bench_anomaly

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 50)).astype(np.float32)
    w = 8
    prev = np.zeros((300, 0), dtype=np.float32)
    got = np.concatenate(
        [
            bench_anomaly._rolling_z(x[:, :20], prev, w),
            bench_anomaly._rolling_z(x[:, 20:], x[:, 20 - w : 20], w),
        ],
        axis=1,
    )
    want = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            past = x[i, max(0, j - w) : j].astype(np.float64)
            mean, var = (past.mean(), past.var()) if len(past) else (0.0, 0.0)  # no history yet
            want[i, j] = abs(x[i, j] - mean) / np.sqrt(max(var, 1e-12))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_bench_anomaly_csv_reports_groups_against_one_by_one() -> None:
    res = CliRunner().invoke(
        app,
        [
            *("bench", "anomaly-csv", "--files", "6", "--rows-min", "150", "--rows-max", "400"),
            *("--baseline-files", "2", "--json"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["files"] == 6 and 6 * 150 <= out["rows"] <= 6 * 400
    assert out["one_by_one_files"] == 2 and 2 * 150 <= out["one_by_one_rows"] <= 2 * 400
    assert out["grouped_rows_per_s"] > 0 and out["one_by_one_rows_per_s"] > 0 and out["ratio"] > 0
    assert out["same_output"] is True


def test_bench_anomaly_csv_refuses_an_empty_row_range() -> None:
    res = CliRunner().invoke(app, ["bench", "anomaly-csv", "--rows-min", "500", "--rows-max", "100"])
    assert res.exit_code != 0
    assert "--rows-max (100) is below --rows-min (500)" in res.output
