"""Bulk node provisioning from a CSV or Excel sheet: parse, check every row, apply all or nothing.

One row per node; a header row names the columns (any order, any case):
``farm``, ``node``, ``kind`` (sensor profile, default the farm's kind), ``name``, ``lat``, ``lon``,
``sensors`` (catalog metrics separated by ``;``, ``,`` or spaces), ``interval`` (seconds),
``firmware``. A dry run reports every bad row by line and column; applying writes nothing unless
every row is good, then registers the nodes and their series in one transaction and returns each
node's broker password once (only its hash is stored, in ``node_credentials``).
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

import openpyxl
import psycopg
from pydantic import BaseModel

from api.queries.errors import InvalidArgument
from kernel.catalog import CATALOG, FARM_KINDS
from kernel.protocol import valid_id
from store import credentials

Conn = psycopg.Connection[Any]

COLUMNS = ("farm", "node", "kind", "name", "lat", "lon", "sensors", "interval", "firmware")
REQUIRED = ("farm", "node", "sensors")
EXTRA_METRICS = ("bat_v", "rssi_dbm")  # every node reports them with each message
MAX_ROWS = 5000


class RowError(BaseModel):
    line: int
    column: str | None
    message: str


class NodeRow(BaseModel):
    line: int
    farm: str
    node: str
    kind: str | None = None
    name: str | None = None
    lat: float | None = None
    lon: float | None = None
    sensors: list[str] = []
    interval: int | None = None
    firmware: str | None = None


class Credential(BaseModel):
    farm: str
    node: str
    username: str
    password: str
    metrics: list[str]
    interval: int | None = None


class ImportReport(BaseModel):
    valid: bool
    applied: bool
    rows: int
    errors: list[RowError]
    nodes: list[NodeRow]
    credentials: list[Credential] | None = None


class ImportRejected(InvalidArgument):
    """Applying was refused: the report lists every bad row."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{len(report.errors)} problem(s) in the sheet; nothing was applied", field="file")
        self.report = report


def _cells(filename: str, data: bytes) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells as text) of every row of a CSV or .xlsx file."""
    if filename.lower().endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        yield from _xlsx(data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{filename}: not UTF-8 text at byte {exc.start}", field="file") from None
    try:
        for i, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            yield i, [c.strip() for c in row]
    except csv.Error as exc:
        raise InvalidArgument(f"{filename}: bad CSV: {exc}", field="file") from None


def _text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _xlsx(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InvalidArgument(f"not a readable Excel file: {exc}", field="file") from None
    try:
        ws = wb.worksheets[0]
        for i, row in enumerate(ws.iter_rows(values_only=True), start=1):
            yield i, [_text(v) for v in row]
    finally:
        wb.close()


def parse(filename: str, data: bytes) -> tuple[list[NodeRow], list[RowError]]:
    """Rows and the problems found without the database (ids, numbers, catalog, duplicates)."""
    rows: list[NodeRow] = []
    errs: list[RowError] = []
    header: dict[str, int] | None = None
    seen: dict[tuple[str, str], int] = {}
    for line, cells in _cells(filename, data):
        if not any(cells):
            continue
        if header is None:
            header = {}
            for j, name in enumerate(cells):
                col = name.strip().lower()
                if col not in COLUMNS:
                    errs.append(
                        RowError(
                            line=line, column=name, message=f"unknown column; known: {', '.join(COLUMNS)}"
                        )
                    )
                elif col in header:
                    errs.append(RowError(line=line, column=name, message="column given twice"))
                else:
                    header[col] = j
            for req in REQUIRED:
                if req not in header:
                    errs.append(RowError(line=line, column=req, message="required column missing"))
            if errs:
                return [], errs
            continue
        if len(rows) >= MAX_ROWS:
            errs.append(RowError(line=line, column=None, message=f"more than {MAX_ROWS} rows"))
            break
        row = _row(line, cells, header, errs)
        if row is None:
            continue
        key = (row.farm, row.node)
        if key in seen:
            errs.append(
                RowError(
                    line=line, column="node", message=f"node {row.farm}/{row.node} also on line {seen[key]}"
                )
            )
            continue
        seen[key] = line
        rows.append(row)
    if header is None:
        errs.append(RowError(line=1, column=None, message="empty file: a header row and one row per node"))
    return rows, errs


def _row(line: int, cells: list[str], header: dict[str, int], errs: list[RowError]) -> NodeRow | None:
    def get(col: str) -> str:
        j = header.get(col)
        return cells[j].strip() if j is not None and j < len(cells) else ""

    n_before = len(errs)

    def bad(col: str, msg: str) -> None:
        errs.append(RowError(line=line, column=col, message=msg))

    farm, node = get("farm"), get("node")
    if not valid_id(farm):
        bad("farm", f"farm id {farm!r} must match [a-z0-9-]{{1,32}}")
    if not valid_id(node) or node == "gw":
        bad("node", f"node id {node!r} must match [a-z0-9-]{{1,32}} and not be 'gw'")
    kind = get("kind") or None
    if kind is not None and kind not in FARM_KINDS:
        bad("kind", f"{kind!r} must be one of {', '.join(FARM_KINDS)}")
    coords: dict[str, float | None] = {}
    for col, lim in (("lat", 90.0), ("lon", 180.0)):
        raw = get(col)
        coords[col] = None
        if raw:
            try:
                v = float(raw)
            except ValueError:
                bad(col, f"{raw!r} is not a number")
                continue
            if not math.isfinite(v) or abs(v) > lim:
                bad(col, f"{v} outside [-{lim:g}, {lim:g}]")
            else:
                coords[col] = v
    sensors = [s for s in get("sensors").replace(";", " ").replace(",", " ").split() if s]
    if not sensors:
        bad("sensors", "list at least one metric, e.g. air_t;air_rh")
    for s in sensors:
        if s not in CATALOG:
            bad("sensors", f"unknown metric {s!r}")
    interval: int | None = None
    raw_i = get("interval")
    if raw_i:
        try:
            interval = int(float(raw_i))
            if not 1 <= interval <= 86400 or float(raw_i) != interval:
                raise ValueError
        except ValueError:
            bad("interval", f"{raw_i!r} must be whole seconds 1..86400")
            interval = None
    name = get("name") or None
    if name is not None and len(name) > 200:
        bad("name", "longer than 200 characters")
    firmware = get("firmware") or None
    if firmware is not None and len(firmware) > 64:
        bad("firmware", "longer than 64 characters")
    if len(errs) > n_before:
        return None
    return NodeRow(
        line=line,
        farm=farm,
        node=node,
        kind=kind,
        name=name,
        lat=coords["lat"],
        lon=coords["lon"],
        sensors=sorted(set(sensors)),
        interval=interval,
        firmware=firmware,
    )


def check_against_db(
    conn: Conn, rows: Sequence[NodeRow], farms: Sequence[str] | None = None
) -> list[RowError]:
    """Problems only the database can tell: unknown or retired farm, node already registered."""
    errs: list[RowError] = []
    farm_ids = sorted({r.farm for r in rows})
    known = {
        str(f): (retired is not None)
        for f, retired in conn.execute(
            "SELECT id, retired_at FROM farms WHERE id = ANY(%s)", (farm_ids,)
        ).fetchall()
    }
    existing = {
        (str(f), str(n))
        for f, n in conn.execute(
            "SELECT farm_id, node_id FROM nodes WHERE (farm_id, node_id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([r.farm for r in rows], [r.node for r in rows]),
        ).fetchall()
    }
    for r in rows:
        if farms is not None and r.farm not in farms:
            errs.append(
                RowError(line=r.line, column="farm", message=f"this token may not change farm {r.farm!r}")
            )
        elif r.farm not in known:
            errs.append(RowError(line=r.line, column="farm", message=f"farm {r.farm!r} is not registered"))
        elif known[r.farm]:
            errs.append(RowError(line=r.line, column="farm", message=f"farm {r.farm!r} is retired"))
        elif (r.farm, r.node) in existing:
            errs.append(
                RowError(line=r.line, column="node", message=f"node {r.farm}/{r.node} is already registered")
            )
    return errs


def run(
    conn: Conn,
    filename: str,
    data: bytes,
    *,
    apply: bool,
    farms: Sequence[str] | None = None,
) -> ImportReport:
    """Dry run (``apply=False``) or apply; raises :class:`ImportRejected` when applying a bad sheet."""
    rows, errs = parse(filename, data)
    if rows:
        errs += check_against_db(conn, rows, farms)
    errs.sort(key=lambda e: (e.line, e.column or ""))
    report = ImportReport(
        valid=not errs and bool(rows), applied=False, rows=len(rows), errors=errs, nodes=rows
    )
    if not rows and not errs:
        report.errors.append(RowError(line=1, column=None, message="no node rows"))
    if not apply:
        return report
    if report.errors:
        raise ImportRejected(report)
    creds: list[Credential] = []
    with conn.transaction():
        # lock the farms so a concurrent retire or import cannot slip in between check and write
        conn.execute(
            "SELECT id FROM farms WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (sorted({r.farm for r in rows}),),
        )
        late = check_against_db(conn, rows, farms)
        if late:
            raise ImportRejected(report.model_copy(update={"errors": late, "valid": False}))
        kinds = dict(
            conn.execute(
                "SELECT id, kind FROM farms WHERE id = ANY(%s)", (sorted({r.farm for r in rows}),)
            ).fetchall()
        )
        hashes: list[tuple[str, str, str]] = []
        for r in rows:
            pk = conn.execute(
                "INSERT INTO nodes (farm_id, node_id, name, profile, lat, lon, firmware_version)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (r.farm, r.node, r.name, r.kind or kinds[r.farm], r.lat, r.lon, r.firmware),
            ).fetchone()
            assert pk is not None
            metrics = sorted(set(r.sensors) | set(EXTRA_METRICS))
            conn.execute(
                "INSERT INTO series (node_id, metric) SELECT %s, m FROM unnest(%s::text[]) AS m ORDER BY m",
                (pk[0], metrics),
            )
            password = credentials.new_password()
            hashes.append((r.farm, r.node, credentials.hash_password(password)))
            creds.append(
                Credential(
                    farm=r.farm,
                    node=r.node,
                    username=credentials.node_username(r.farm, r.node),
                    password=password,
                    metrics=r.sensors,
                    interval=r.interval,
                )
            )
        credentials.store_hashes(conn, hashes)
    return report.model_copy(update={"applied": True, "credentials": creds})
