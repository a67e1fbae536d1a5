"""`agri anomaly score` on a CSV file and a folder, including malformed input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agri.anomaly_io import SeriesFileError, parse_timestamp, read_series_csv
from agri.cli.main import app

runner = CliRunner()


def _write(path: Path, n: int = 600, spike: int | None = 500) -> None:
    rng = np.random.default_rng(0)
    x = 20 + rng.normal(0, 0.5, n)
    if spike is not None:
        x[spike] += 25
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fh.write("timestamp,value\n")
        for i in range(n):
            mins = i * 5
            fh.write(
                f"2024-06-{1 + mins // 1440:02d} {mins % 1440 // 60:02d}:{mins % 60:02d}:00,{x[i]:.3f}\n"
            )


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_score_one_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src)
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(dst)])
    assert res.exit_code == 0, res.output
    rows = _read(dst)
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 600
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert np.all((scores >= 0) & (scores <= 1))
    assert int(np.argmax(scores)) == 500
    assert rows[3]["timestamp"] == "2024-06-01 00:15:00"


def test_score_folder_is_mirrored(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    _write(src / "a.csv")
    _write(src / "farm1" / "b.csv", n=300, spike=None)
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(dst)])
    assert res.exit_code == 0, res.output
    assert len(_read(dst / "a.csv")) == 600
    assert len(_read(dst / "farm1" / "b.csv")) == 300
    assert "2 files" in res.output


def test_missing_values_keep_rows_with_empty_score(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("timestamp,value\n1717200000,1.5\n1717200060,\n1717200120,1.6\n")
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(dst)])
    assert res.exit_code == 0, res.output
    rows = _read(dst)
    assert [r["anomaly_score"] == "" for r in rows] == [False, True, False]


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("time,val\n2024-01-01,1\n", 1, "header must have columns"),
        ("timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:05,abc\n", 3, "'abc' is not a number"),
        ("timestamp,value\n2024-01-01 00:00,1\nyesterday,2\n", 3, "neither ISO 8601 nor Unix seconds"),
        ("timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:05,2,3\n", 3, "expected 2 columns, got 3"),
        ("timestamp,value\n2024-01-01 00:10,1\n2024-01-01 00:05,2\n", 3, "earlier than the previous"),
        ("timestamp,value\n2024-01-01 00:00,inf\n", 2, "not finite"),
        ("timestamp,value\n,1\n", 2, "empty timestamp"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path: Path, body: str, line: int, reason: str) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(body)
    with pytest.raises(SeriesFileError) as err:
        read_series_csv(src)
    assert err.value.line == line
    assert reason in str(err.value)
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 1
    assert f"bad.csv, line {line}" in res.output
    assert not (tmp_path / "o.csv").exists()


def test_bad_file_in_folder_is_named(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write(src / "good.csv", n=50, spike=None)
    (src / "sub").mkdir()
    (src / "sub" / "broken.csv").write_text("timestamp,value\n2024-01-01 00:00,x\n")
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "broken.csv, line 2" in res.output


def test_empty_and_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("timestamp,value\n")
    for name, msg in (("empty.csv", "empty file"), ("header_only.csv", "no data rows")):
        res = runner.invoke(app, ["anomaly", "score", str(tmp_path / name), "--out", str(tmp_path / "o.csv")])
        assert res.exit_code == 1 and msg in res.output
    res = runner.invoke(app, ["anomaly", "score", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no such file" in res.output
    (tmp_path / "emptydir").mkdir()
    res = runner.invoke(app, ["anomaly", "score", str(tmp_path / "emptydir"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no .csv files" in res.output


def test_timestamp_forms() -> None:
    assert parse_timestamp("1717200000") == 1717200000.0
    assert parse_timestamp("2024-06-01T00:00:00Z") == 1717200000.0
    assert parse_timestamp("2024-06-01 08:00:00+08:00") == 1717200000.0
    assert parse_timestamp("2024-06-01 00:00:00") == 1717200000.0


def test_synthetic_command_reports_precision_recall() -> None:
    res = runner.invoke(
        app, ["anomaly", "synthetic", "--farms", "2", "--days", "8", "--threshold", "0.25", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["series"] == 10
    (row,) = out["results"]
    assert row["threshold"] == 0.25 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
