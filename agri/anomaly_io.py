"""CSV in and out for anomaly scoring: ``timestamp,value`` in, ``timestamp,value,anomaly_score`` out.

Input is validated row by row; a malformed row raises :class:`SeriesFileError` naming the file
and the line. Timestamps are ISO 8601 (``2024-05-01 06:00:00``, ``2024-05-01T06:00:00+08:00``;
naive means UTC) or Unix seconds. An empty value (or ``nan``) is a missing reading: it is kept in
the output with an empty score.

Real exports are not tidy: a logger on local time steps back an hour when daylight saving ends,
and rows repeat. Every row is still scored, in file order (:attr:`SeriesData.times` is the time
axis the detector sees): a row whose timestamp is earlier than the previous one continues the
series one typical interval later (the rest of the file keeps its own spacing, shifted), a
repeated timestamp is kept as a zero-length step. The lines of both are recorded for one
warning per file (:meth:`SeriesData.warning`). With ``strict=True`` a step back is refused, as
before.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.anomaly import AnomalyState, update
from analytics.anomaly.config import DEFAULT_CONFIG, DetectorConfig

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
    times: np.ndarray  # float64 Unix seconds, non-decreasing (the time axis the detector sees)
    values: np.ndarray  # float64, NaN where missing
    stamps: list[str]  # timestamps as written
    raw_values: list[str]  # values as written
    path: str = ""
    steps_back: list[int] = field(default_factory=list)  # lines whose timestamp steps back
    repeats: list[int] = field(default_factory=list)  # lines repeating the previous timestamp

    def warning(self, most: int = 10) -> str | None:
        """One line naming the rows with a step back or a repeated timestamp (None if none)."""
        parts = []
        for lines, what in (
            (self.steps_back, "timestamp earlier than the previous row's (a daylight-saving step back?)"),
            (self.repeats, "timestamp repeated"),
        ):
            if lines:
                shown = ", ".join(str(n) for n in lines[:most])
                more = f" and {len(lines) - most} more" if len(lines) > most else ""
                word = "line" if len(lines) == 1 else "lines"
                parts.append(f"{what} at {word} {shown}{more}")
        if not parts:
            return None
        return f"{self.path}: " + "; ".join(parts) + "; every row scored in file order"


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


def read_series_csv(path: Path | str, strict: bool = False) -> SeriesData:
    """Read and validate one ``timestamp,value`` CSV file (``strict``: refuse a step back)."""
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
        lines: list[int] = []
        back: list[int] = []
        repeats: list[int] = []
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
                    if strict:
                        raise SeriesFileError(
                            p, line, f"timestamp {row[it].strip()!r} is earlier than the previous row's"
                        )
                    back.append(line)
                elif times and t == times[-1]:
                    repeats.append(line)
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
                lines.append(line)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SeriesFileError(p, line + 1, f"unreadable row: {exc}") from None
    if not times:
        raise SeriesFileError(p, None, "no data rows after the header")
    return SeriesData(_time_axis(np.array(times)), np.array(values), stamps, raws, str(p), back, repeats)


def _time_axis(t: np.ndarray) -> np.ndarray:
    """Non-decreasing times keeping the file's own spacing: a step back becomes one median
    positive interval (so the rows after a daylight-saving step back continue the series, an
    hour later than written); repeats stay zero-length steps."""
    if len(t) < 2:
        return t
    d = np.diff(t)
    bad = d < 0
    if not bad.any():
        return t
    pos = d[d > 0]
    typical = float(np.median(pos)) if len(pos) else 1.0
    d = np.where(bad, typical, d)
    out: np.ndarray = t[0] + np.concatenate([[0.0], np.cumsum(d)])
    return out


def write_scores_csv(
    path: Path | str, stamps: Sequence[str], values: Sequence[str] | np.ndarray, scores: np.ndarray
) -> None:
    """Write ``timestamp,value,anomaly_score``; a NaN score (missing value) is left empty."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, value, score in zip(stamps, values, scores.tolist(), strict=True):
            w.writerow([stamp, value, "" if math.isnan(score) else f"{score:.6f}"])


#: time steps per call when several series are scored together (bounds the padded matrices:
#: 256 series x 4,096 steps of times, values and scores are 21 MB)
SCORE_CHUNK = 4096


def score_together(
    series: Sequence[SeriesData],
    cfg: DetectorConfig = DEFAULT_CONFIG,
    chunk: int = SCORE_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Anomaly scores (float32, NaN where a value is missing) of several series, in their order.

    The series advance together as one batch (the detector is vectorised over series, not over
    time: one series alone runs some 300 numpy calls per point), longest first and NaN-padded
    after their end, fed ``chunk`` time steps at a time with only the series still running; each
    result equals the series scored alone (:func:`analytics.score_series`), bit for bit.
    ``progress`` is called after each chunk with the time steps done (of the longest series).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    order = sorted(range(len(series)), key=lambda i: -len(series[i].values))
    lengths = [len(series[i].values) for i in order]
    out = [np.empty(len(s.values), dtype=np.float32) for s in series]
    if not order:
        return out
    st = AnomalyState.new(len(order), cfg)
    for j0 in range(0, lengths[0], chunk):
        live = sum(1 for n in lengths if n > j0)  # a prefix: longest first
        j1 = min(j0 + chunk, lengths[0])
        t = np.empty((live, j1 - j0))
        x = np.full((live, j1 - j0), np.nan)
        for r in range(live):
            s = series[order[r]]
            m = min(j1, lengths[r]) - j0
            t[r, :m] = s.times[j0 : j0 + m]
            t[r, m:] = s.times[j0 + m - 1]
            x[r, :m] = s.values[j0 : j0 + m]
        if live < st.n_series:  # the series that ended are done with
            st = st.select(slice(0, live))
        scores = update(st, t, x)
        for r in range(live):
            m = min(j1, lengths[r]) - j0
            out[order[r]][j0 : j0 + m] = scores[r, :m]
        if progress is not None:
            progress(j1)
    return out
