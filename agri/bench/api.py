"""`agri bench api`: the HTTP API's read paths against baselines measured in the same run.

1. Hourly buckets of 100 series over 30 days of 1-minute data (4.3 M rows): the API (rollups)
   vs the same aggregation as a raw ``time_bucket`` scan of ``readings``.
2. Latest value of 1,000 series (one farm) through the API.
3. CSV export of all readings of the 100 series (``--days`` x 1,440 x 100 rows; 10 M by default)
   through the API vs ``COPY (SELECT ...) TO STDOUT`` of the same rows read by psycopg, with the
   API process's peak RSS after a small export and after the full one.

Everything runs against a private PostgreSQL cluster (or ``--database-url``) and a real
``agri api`` process on a free port; the data is generated server-side (``generate_series``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from agri.stack.postgres import PgCluster
from agri.stack.proc import free_port
from api.queries import export
from store import rollup
from store.migrate import migrate
from store.registry import upsert_farm

FARM = "bench"
TOKEN = "bench-admin-token-" + "0" * 16


@dataclass
class BenchApiConfig:
    series: int = 100
    days: int = 70  # of 1-minute data for the big series (70 days x 1440 x 100 = 10.08 M rows)
    bucket_days: int = 30
    latest_series: int = 1000
    repeats: int = 20
    baseline_repeats: int = 5
    database_url: str | None = None
    keep: bool = False
    log: Callable[[str], None] = print


@dataclass
class BenchApiResult:
    rows: int = 0
    load_s: float = 0.0
    refresh_s: float = 0.0
    buckets: dict[str, Any] = field(default_factory=dict)
    latest: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    return statistics.quantiles(s, n=100, method="inclusive")[int(q) - 1]


def _rss_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _load(conn: psycopg.Connection[Any], cfg: BenchApiConfig, end: datetime) -> tuple[list[int], int]:
    """The farm, its 100 big series (air_t, 1-minute) and 900 small ones (soil_t, the last hour)."""
    upsert_farm(conn, FARM, "Bench orchard", "orchard", tz="Asia/Shanghai", lat=30.8, lon=108.4)
    n_nodes = max(cfg.series, cfg.latest_series)
    conn.execute(
        "INSERT INTO nodes (farm_id, node_id) SELECT %s, 'n-' || lpad(i::text, 4, '0')"
        " FROM generate_series(1, %s) AS i ON CONFLICT DO NOTHING",
        (FARM, n_nodes),
    )
    conn.execute(
        "INSERT INTO series (node_id, metric) SELECT id, CASE WHEN row_number() OVER (ORDER BY id) <= %s"
        " THEN 'air_t' ELSE 'soil_t' END FROM nodes WHERE farm_id = %s ORDER BY id ON CONFLICT DO NOTHING",
        (cfg.series, FARM),
    )
    big = [
        int(r[0])
        for r in conn.execute(
            "SELECT s.id FROM series s JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s"
            " AND s.metric = 'air_t' ORDER BY s.id",
            (FARM,),
        ).fetchall()
    ]
    small = [
        int(r[0])
        for r in conn.execute(
            "SELECT s.id FROM series s JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s"
            " AND s.metric = 'soil_t' ORDER BY s.id",
            (FARM,),
        ).fetchall()
    ]
    start = end - timedelta(days=cfg.days)
    day = start
    while day < end:
        nxt = min(day + timedelta(days=1), end)
        with conn.transaction():
            conn.execute(
                "INSERT INTO readings (time, series_id, value)"
                " SELECT t, s, 20 + 6 * sin(extract(epoch FROM t) / 13751.0) + (s %% 7) * 0.1"
                " FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',"
                " interval '1 minute') t,"
                " unnest(%s::int[]) s ON CONFLICT DO NOTHING",
                (day, nxt, big),
            )
            rollup.mark_range(conn, big, day, nxt)
        day = nxt
    if small:
        with conn.transaction():
            conn.execute(
                "INSERT INTO readings (time, series_id, value)"
                " SELECT t, s, 15 + (s %% 11) * 0.1 FROM generate_series(%s::timestamptz - interval '1 hour',"
                " %s::timestamptz - interval '1 minute', interval '1 minute') t, unnest(%s::int[]) s"
                " ON CONFLICT DO NOTHING",
                (end, end, small),
            )
            rollup.mark_range(conn, small, end - timedelta(hours=2), end)
    conn.execute("ANALYZE readings")
    return big, cfg.days * 1440 * len(big)


class ApiProcess:
    def __init__(self, dsn: str, log: Callable[[str], None]) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
        env |= {"AGRI_DATABASE_URL": dsn, "AGRI_ADMIN_TOKEN": TOKEN, "AGRI_MODE": "development"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agri.cli.main", "api", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"agri api did not become ready: {err}")
            time.sleep(0.2)
        log(f"api: agri api process {self.proc.pid} at {self.url}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run_bench(cfg: BenchApiConfig) -> BenchApiResult:
    log = cfg.log
    res = BenchApiResult()
    root: Path | None = None
    pg: PgCluster | None = None
    api: ApiProcess | None = None
    try:
        if cfg.database_url:
            dsn = cfg.database_url
        else:
            root = Path(tempfile.mkdtemp(prefix="agri-bench-api-"))
            os.chmod(root, 0o755)
            pg = PgCluster(root=root / "pg", port=free_port(), password=secrets.token_urlsafe(16))
            pg.start()
            pg.create_database()
            dsn = pg.dsn()
            log(f"database: private PostgreSQL at port {pg.port}")
            if cfg.keep:
                (root / "dsn").write_text(dsn + "\n")
                log(f"kept: DSN in {root / 'dsn'}")
        migrate(dsn)
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        with psycopg.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            big, res.rows = _load(conn, cfg, end)
            res.load_s = time.perf_counter() - t0
            log(f"loaded {res.rows:,} rows of {len(big)} series in {res.load_s:.0f} s")
            t0 = time.perf_counter()
            rollup.refresh_all(conn, limit=50_000)
            res.refresh_s = time.perf_counter() - t0
            log(f"rollups refreshed in {res.refresh_s:.0f} s")
        api = ApiProcess(dsn, log)
        h = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=api.url, headers=h, timeout=600) as client:
            # 1. hourly buckets over bucket_days
            b_start = end - timedelta(days=cfg.bucket_days)
            params = {
                "farm": FARM,
                "metric": "air_t",
                "start": b_start.isoformat(),
                "end": end.isoformat(),
                "bucket": "1h",
            }

            def get_buckets() -> None:  # request and the whole body, not the client's JSON parsing
                r = client.get("/readings/buckets", params=params)
                r.raise_for_status()

            first = client.get("/readings/buckets", params=params).json()  # warm-up, and a check
            assert len(first) == len(big) and sum(sum(b["count"]) for b in first) > 0
            api_t = _timed(get_buckets, cfg.repeats)
            with psycopg.connect(dsn, autocommit=True) as conn:
                q = (
                    "SELECT series_id, time_bucket('1 hour', time) AS b, min(value), avg(value), max(value),"
                    " count(*) FROM readings WHERE series_id = ANY(%s) AND time >= %s AND time < %s"
                    " GROUP BY series_id, b ORDER BY series_id, b"
                )
                n_in = conn.execute(
                    "SELECT count(*) FROM readings WHERE series_id = ANY(%s) AND time >= %s AND time < %s",
                    (big, b_start, end),
                ).fetchone()
                base_t = _timed(lambda: conn.execute(q, (big, b_start, end)).fetchall(), cfg.baseline_repeats)
            res.buckets = {
                "rows_in_range": int(n_in[0]) if n_in else 0,
                "buckets": len(big) * cfg.bucket_days * 24,
                "api_p50_ms": round(_pct(api_t, 50) * 1000, 1),
                "api_p95_ms": round(_pct(api_t, 95) * 1000, 1),
                "raw_scan_p50_ms": round(_pct(base_t, 50) * 1000, 1),
                "raw_scan_p95_ms": round(_pct(base_t, 95) * 1000, 1),
                "speedup_p50": round(_pct(base_t, 50) / _pct(api_t, 50), 1),
            }
            log(f"hourly buckets: {res.buckets}")

            # 2. latest value of every series of the farm (1,000)
            def get_latest() -> None:
                r = client.get("/readings/latest", params={"farm": FARM})
                r.raise_for_status()

            first = client.get("/readings/latest", params={"farm": FARM}).json()
            assert len(first) == max(cfg.series, cfg.latest_series) and all(
                v["value"] is not None for v in first
            )
            lat_t = _timed(get_latest, cfg.repeats * 2)
            res.latest = {
                "series": max(cfg.series, cfg.latest_series),
                "p50_ms": round(_pct(lat_t, 50) * 1000, 1),
                "p95_ms": round(_pct(lat_t, 95) * 1000, 1),
            }
            log(f"latest values: {res.latest}")

            # 3. CSV export: small one first (RSS reference), then everything
            e_start = end - timedelta(days=cfg.days)

            def get_export(start: datetime) -> tuple[int, int, float]:
                p = {"farm": FARM, "metric": "air_t", "start": start.isoformat(), "end": end.isoformat()}
                t0 = time.perf_counter()
                lines = size = 0
                with client.stream("GET", "/readings/export", params=p) as r:
                    r.raise_for_status()
                    for chunk in r.iter_raw(1 << 20):
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                return lines - 1, size, time.perf_counter() - t0

            small_rows, _, _ = get_export(end - timedelta(days=1))
            rss_small = _rss_kb(api.proc.pid, "VmHWM")
            rows, size, dt = get_export(e_start)
            rss_full = _rss_kb(api.proc.pid, "VmHWM")
            with psycopg.connect(dsn, autocommit=True) as conn:
                stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT CSV)").format(
                    export.export_sql(big, e_start, end)
                )
                t0 = time.perf_counter()
                base_rows = base_size = 0
                with conn.cursor() as cur, cur.copy(stmt) as cp:
                    for row in cp:
                        base_rows += 1
                        base_size += len(row)
                base_dt = time.perf_counter() - t0
            res.export = {
                "rows": rows,
                "bytes": size,
                "api_s": round(dt, 1),
                "api_rows_per_s": round(rows / dt),
                "copy_rows": base_rows,
                "copy_s": round(base_dt, 1),
                "copy_rows_per_s": round(base_rows / base_dt),
                "ratio_to_copy": round((rows / dt) / (base_rows / base_dt), 3),
                "api_peak_rss_mb_after_small_export": round(rss_small / 1024, 1),
                "small_export_rows": small_rows,
                "api_peak_rss_mb_after_full_export": round(rss_full / 1024, 1),
            }
            log(f"export: {res.export}")
    finally:
        if api is not None:
            api.stop()
        if pg is not None and not cfg.keep:
            pg.stop(mode="immediate")
        if root is not None and not cfg.keep:
            shutil.rmtree(root, ignore_errors=True)
    return res
