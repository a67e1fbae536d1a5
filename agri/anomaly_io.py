"""CSV in and out for anomaly scoring: ``timestamp,value`` in, ``timestamp,value,anomaly_score`` out.

Input is validated row by row; the first problem raises :class:`SeriesFileError` naming the file
and the line. Timestamps are ISO 8601 (``2024-05-01 06:00:00``, ``2024-05-01T06:00:00+08:00``;
naive means UTC) or Unix seconds; they must not decrease. An empty value (or ``nan``) is a
missing reading: it is kept in the output with an empty score.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_UTC = dt.UTC
_MISSING = {"", "nan", "NaN", "NAN", "null", "NULL", "NA"}


class SeriesFileError(ValueError):
    """A CSV file that cannot be scored; the message names the file and, if known, the line."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass
class SeriesData:
    times: np.ndarray  # float64 Unix seconds
    values: np.ndarray  # float64, NaN where missing
    stamps: list[str]  # timestamps as written
    raw_values: list[str]  # values as written


def parse_timestamp(text: str) -> float:
    """Unix seconds from an ISO 8601 timestamp (naive = UTC) or a plain number of seconds."""
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        secs = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(secs):
            raise ValueError(f"timestamp {text!r} is not a finite number of seconds")
        return secs
    try:
        when = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor Unix seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    return when.timestamp()


def read_series_csv(path: Path | str) -> SeriesData:
    """Read and validate one ``timestamp,value`` CSV file."""
    p = Path(path)
    try:
        fh = p.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SeriesFileError(p, None, f"cannot open: {exc.strerror or exc}") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise SeriesFileError(p, None, "empty file (expected a 'timestamp,value' header)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SeriesFileError(p, 1, f"unreadable header: {exc}") from None
        names = [h.strip().lower() for h in header]
        if "timestamp" not in names or "value" not in names:
            raise SeriesFileError(p, 1, f"header must have columns 'timestamp' and 'value', got {header}")
        it, iv = names.index("timestamp"), names.index("value")
        width = len(header)
        times: list[float] = []
        values: list[float] = []
        stamps: list[str] = []
        raws: list[str] = []
        line = 1
        try:
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    raise SeriesFileError(p, line, f"expected {width} columns, got {len(row)}")
                try:
                    t = parse_timestamp(row[it])
                except ValueError as exc:
                    raise SeriesFileError(p, line, str(exc)) from None
                if times and t < times[-1]:
                    raise SeriesFileError(
                        p, line, f"timestamp {row[it].strip()!r} is earlier than the previous row's"
                    )
                raw = row[iv].strip()
                if raw in _MISSING:
                    v = math.nan
                else:
                    try:
                        v = float(raw)
                    except ValueError:
                        raise SeriesFileError(p, line, f"value {row[iv]!r} is not a number") from None
                    if not math.isfinite(v):
                        raise SeriesFileError(p, line, f"value {row[iv]!r} is not finite")
                times.append(t)
                values.append(v)
                stamps.append(row[it].strip())
                raws.append(raw)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SeriesFileError(p, line + 1, f"unreadable row: {exc}") from None
    if not times:
        raise SeriesFileError(p, None, "no data rows after the header")
    return SeriesData(np.array(times), np.array(values), stamps, raws)


def write_scores_csv(
    path: Path | str, stamps: Sequence[str], values: Sequence[str] | np.ndarray, scores: np.ndarray
) -> None:
    """Write ``timestamp,value,anomaly_score``; a NaN score (missing value) is left empty."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, value, score in zip(stamps, values, scores.tolist(), strict=True):
            w.writerow([stamp, value, "" if math.isnan(score) else f"{score:.6f}"])
