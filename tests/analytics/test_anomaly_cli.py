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
    assert "scoring in.csv" in res.output and "600/600" in res.output  # its progress, by rows


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
    # the file before it (sorted order) is scored and written, as when files were scored one by one
    assert len(_read(tmp_path / "out" / "good.csv")) == 50
    assert not (tmp_path / "out" / "sub" / "broken.csv").exists()


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
    assert out["series"] == 14  # 2 farms x 7 kinds
    (row,) = out["results"]
    assert row["threshold"] == 0.25 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1


def _local_rows(
    n: int, back_at: int | None = None, repeat_at: tuple[int, ...] = ()
) -> list[tuple[str, float]]:
    """5-minute local-time rows of a diurnal series; the clock steps back one hour before row
    ``back_at`` (daylight saving ends); rows in ``repeat_at`` repeat the previous timestamp."""
    import datetime as dt

    rng = np.random.default_rng(3)
    start = dt.datetime(2024, 10, 20, 0, 0)
    rows = []
    shift = dt.timedelta(0)
    for i in range(n):
        if i == back_at:
            shift = dt.timedelta(hours=1)
        true = start + dt.timedelta(minutes=5 * i)
        hour = true.hour + true.minute / 60
        value = 12 + 6 * np.sin(2 * np.pi * (hour - 9) / 24) + rng.normal(0, 0.2)
        stamp = (true - shift).strftime("%Y-%m-%d %H:%M:%S")
        if i in repeat_at:
            stamp = rows[-1][0]
        rows.append((stamp, round(float(value), 2)))
    return rows


def _write_rows(path: Path, rows: list[tuple[str, float]]) -> None:
    path.write_text("timestamp,value\n" + "".join(f"{s},{v}\n" for s, v in rows))


def test_dst_step_back_and_repeats_are_scored_in_file_order_with_one_warning(tmp_path: Path) -> None:
    rows = _local_rows(3000, back_at=2400, repeat_at=(1000, 1500))
    src, dst = tmp_path / "logger.csv", tmp_path / "out.csv"
    _write_rows(src, rows)
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(dst)])
    assert res.exit_code == 0, res.output
    # data rows start at line 2: row i is on line i + 2
    assert res.output.count("warning:") == 1
    assert (
        "logger.csv: timestamp earlier than the previous row's (a daylight-saving step back?) at "
        "line 2402; timestamp repeated at lines 1002, 1502; every row scored in file order"
    ) in " ".join(res.output.split())
    out = _read(dst)
    assert [(r["timestamp"], float(r["value"])) for r in out] == rows  # every row, file order
    scores = np.array([float(r["anomaly_score"]) for r in out])
    assert np.all((scores >= 0) & (scores <= 1))
    # the clock change and the repeats are bookkeeping, not anomalies: around them the scores
    # are those of the same readings with a clock that never stepped back (a noise reading 40
    # rows after the step scores 0.135 either way) and far below the alert level
    plain, plain_out = tmp_path / "plain.csv", tmp_path / "plain_out.csv"
    _write_rows(plain, _local_rows(3000, repeat_at=(1000, 1500)))
    assert runner.invoke(app, ["anomaly", "score", str(plain), "--out", str(plain_out)]).exit_code == 0
    ref = np.array([float(r["anomaly_score"]) for r in _read(plain_out)])
    for a, b in ((2390, 2450), (995, 1010)):
        assert scores[a:b].max() <= ref[a:b].max() + 0.02, (a, scores[a:b].max(), ref[a:b].max())
        assert scores[a:b].max() < 0.2


def test_strict_refuses_a_step_back_with_its_line(tmp_path: Path) -> None:
    src = tmp_path / "logger.csv"
    _write_rows(src, _local_rows(400, back_at=300))
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(tmp_path / "o.csv"), "--strict"])
    assert res.exit_code == 1
    assert "logger.csv, line 302" in res.output and "earlier than the previous" in res.output
    assert not (tmp_path / "o.csv").exists()
    with pytest.raises(SeriesFileError, match="line 302"):
        read_series_csv(src, strict=True)


def test_time_axis_after_a_step_back_keeps_the_file_spacing(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("timestamp,value\n1000,1\n1300,2\n1600,3\n1600,4\n900,5\n1200,6\n1290,7\n")
    data = read_series_csv(src)
    assert data.steps_back == [6] and data.repeats == [5]
    # the step back becomes one median positive interval (300 s); later rows keep their spacing
    assert data.times.tolist() == [1000, 1300, 1600, 1600, 1900, 2200, 2290]


def test_gaps_and_irregular_sampling_score_without_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    t = 1_717_200_000 + np.cumsum(rng.uniform(60, 900, 2000))
    t[1200:] += 2 * 86_400  # a two-day outage
    x = 5 + rng.normal(0, 0.3, len(t))
    src, dst = tmp_path / "irregular.csv", tmp_path / "out.csv"
    src.write_text("timestamp,value\n" + "".join(f"{a:.0f},{b:.3f}\n" for a, b in zip(t, x, strict=True)))
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(dst)])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    assert len(_read(dst)) == 2000


def test_malformed_value_still_stops_a_file_with_a_step_back(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("timestamp,value\n2024-01-01 00:10,1\n2024-01-01 00:05,2\n2024-01-01 00:15,x\n")
    res = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 1
    assert "bad.csv, line 4" in res.output and "'x' is not a number" in res.output


def _ragged_folder(src: Path) -> list[Path]:
    """Files of different lengths, one with missing values, one stepping back an hour."""
    rng = np.random.default_rng(5)
    paths = []
    for i, n in enumerate((700, 5, 260, 701, 130)):
        path = src / ("deep" if i % 2 else "") / f"s{i}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        x = 10 + np.sin(np.arange(n) / 20.0) + rng.normal(0, 0.3, n)
        lines = ["timestamp,value"]
        for j in range(n):
            t = 1_717_200_000 + 300 * j - (3600 if i == 3 and j >= 400 else 0)
            v = "" if i == 2 and j % 50 == 7 else f"{x[j]:.3f}"
            lines.append(f"{t},{v}")
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def test_score_together_equals_each_series_alone() -> None:
    """Several series advanced together (longest first, NaN-padded, fed in chunks) score exactly
    as each alone, whatever the chunk; chunk boundaries fall inside and at the ends of series."""
    import tempfile

    from agri.anomaly_io import score_together
    from analytics import score_series

    with tempfile.TemporaryDirectory() as tmp:
        datas = [read_series_csv(p) for p in _ragged_folder(Path(tmp))]
    alone = [score_series(d.times, d.values) for d in datas]
    assert any(np.isnan(a).any() for a in alone) and any(np.nanmax(a) > 0 for a in alone)
    for chunk in (1, 37, 260, 4096):
        got = score_together(datas, chunk=chunk)
        assert [len(g) for g in got] == [len(d.values) for d in datas]
        for g, a in zip(got, alone, strict=True):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g, a)
    assert score_together([]) == []
    done: list[int] = []
    score_together(datas, chunk=300, progress=done.append)
    assert done == [300, 600, 701]  # time steps of the longest series, after each chunk
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        score_together(datas, chunk=0)


def test_score_folder_in_groups_writes_what_each_file_alone_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder is scored in groups of files advanced together, a single file chunk by chunk:
    the output of every file is the one its scores alone (`score_series`) give, byte for byte,
    with groups of two files or of all, and from the single-file command."""
    import agri.cli.anomaly as cli
    from agri.anomaly_io import write_scores_csv
    from analytics import score_series

    paths = _ragged_folder(tmp_path / "in")
    for p in paths:
        rel = p.relative_to(tmp_path / "in")
        data = read_series_csv(p)
        (tmp_path / "alone" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_scores_csv(
            tmp_path / "alone" / rel, data.stamps, data.raw_values, score_series(data.times, data.values)
        )
        res = runner.invoke(app, ["anomaly", "score", str(p), "--out", str(tmp_path / "one" / rel)])
        assert res.exit_code == 0, res.output
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "alone" / rel).read_bytes(), rel
    for files, name in ((2, "g2"), (256, "all")):
        monkeypatch.setattr(cli, "GROUP_FILES", files)
        res = runner.invoke(app, ["anomaly", "score", str(tmp_path / "in"), "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert "1796 points in 5 files" in res.output
        assert res.output.count("earlier than the previous") == 1  # the step-back warning, once
        for p in paths:
            rel = p.relative_to(tmp_path / "in")
            assert (tmp_path / name / rel).read_bytes() == (tmp_path / "alone" / rel).read_bytes(), rel
