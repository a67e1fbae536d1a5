"""`agri bench dashboard`: page times of the overview and a farm page on a large seeded database.

A private TimescaleDB (or AGRI_DATABASE_URL) is filled with ``nodes`` nodes x ``days`` days of
``interval_s`` data (dashseed, generated in the server) and the rollups refreshed. Each page runs in
Streamlit's AppTest (the script's server-side time: queries, computations, figure building; not the
browser's drawing). "Cold" clears Streamlit's caches before the run; "warm" runs again on them.
Baselines measured in the same run: the same data calls without Streamlit (dashboard.data), and the
farm chart's series read as a raw ``time_bucket`` scan of ``readings`` instead of the rollups.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import streamlit as st
from psycopg import sql
from streamlit.testing.v1 import AppTest

from agri.bench.dashseed import seed, seed_alerts
from agri.stack.postgres import PgCluster
from agri.stack.proc import free_port
from api.queries.readings import find_series
from dashboard import alertsdata, data
from store.migrate import migrate

APP = Path(data.__file__).with_name("app.py")


@dataclass(frozen=True)
class DashBenchConfig:
    nodes: int = 200
    days: float = 30.0
    interval_s: int = 60
    metrics_per_node: int = 2
    nodes_per_farm: int = 4
    repeats: int = 3
    database_url: str | None = None


@contextmanager
def _database(cfg: DashBenchConfig) -> Iterator[str]:
    if cfg.database_url:
        yield cfg.database_url
        return
    root = Path(tempfile.mkdtemp(prefix="agri-bench-dash-"))
    os.chmod(root, 0o755)
    pg = PgCluster(root=root / "pg", port=free_port(), password=secrets.token_urlsafe(16), fast_unsafe=True)
    try:
        pg.start()
        pg.create_database("bench")
        dsn = pg.dsn("bench")
        migrate(dsn)
        yield dsn
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


_COMPONENTS: list[Any] = []


def _app(path: Path) -> AppTest:
    """An AppTest sharing one component registry: a new AppTest scans every installed package's
    metadata for Streamlit components (~1 s here), which a server does once at its start."""
    at = AppTest.from_file(str(path), default_timeout=600)
    if _COMPONENTS:
        at._bidi_component_manager = _COMPONENTS[0]
    return at


def _remember_components(at: AppTest) -> None:
    if not _COMPONENTS and at._bidi_component_manager is not None:
        _COMPONENTS.append(at._bidi_component_manager)


def _run_page(page: str, cold: bool, **query: str) -> float:
    """Seconds of one script run of ``page``; ``cold`` clears Streamlit's caches just before it."""
    at = _app(APP)
    if page != "overview":
        at.run()  # registers the pages (st.navigation); not timed
        at.switch_page(f"screens/{page}.py")
    for k, v in query.items():
        at.query_params[k] = v
    if cold:
        _clear()
    dt = _timed(at.run)
    _remember_components(at)
    if at.exception or at.error:
        raise RuntimeError(f"{page} failed: {[e.value for e in at.exception] or [e.value for e in at.error]}")
    return dt


def _clear() -> None:
    """Empty the data caches (the connection pool, a cache_resource, stays: a server keeps it)."""
    st.cache_data.clear()


def run(cfg: DashBenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"config": cfg.__dict__ | {"database_url": bool(cfg.database_url)}}
    with _database(cfg) as dsn:
        os.environ["AGRI_DATABASE_URL"] = dsn
        farms = max(1, cfg.nodes // cfg.nodes_per_farm)
        with psycopg.connect(dsn, autocommit=True) as conn:
            have = conn.execute("SELECT count(*) FROM nodes").fetchone()
            if have is None or have[0] == 0:
                log(
                    f"seeding {farms} farms x {cfg.nodes_per_farm} nodes: "
                    f"{cfg.days} d every {cfg.interval_s} s"
                )
                t0 = time.perf_counter()
                seeded = seed(
                    conn,
                    farms=farms,
                    nodes_per_farm=cfg.nodes_per_farm,
                    days=cfg.days,
                    interval_s=cfg.interval_s,
                    metrics_per_node=cfg.metrics_per_node,
                )
                seed_alerts(conn, seeded)
                out["seed_s"] = round(time.perf_counter() - t0, 1)
                out["rows"] = seeded.rows
                log(f"seeded {seeded.rows:,} readings in {out['seed_s']} s")
            conn.execute("ANALYZE")
            farm = conn.execute("SELECT id FROM farms WHERE kind = 'pig_farm' ORDER BY id LIMIT 1").fetchone()
            assert farm is not None
            farm_id = str(farm[0])
        n = cfg.repeats
        # The first run of the process imports the page modules (pandas, plotly, ...): reported apart.
        out["first_run_after_start_s"] = round(_run_page("overview", cold=True), 3)
        with tempfile.TemporaryDirectory(prefix="agri-bench-dash-") as tmp:
            trivial = Path(tmp) / "trivial.py"
            trivial.write_text("import streamlit as st\n\nst.title('x')\n")
            harness = [_timed(_app(trivial).run) for _ in range(n)]
        out["harness_trivial_script_s"] = round(statistics.median(harness), 3)
        res: dict[str, list[float]] = {
            k: [] for k in ("overview_cold", "overview_warm", "farm_cold", "farm_warm")
        }
        for _ in range(n):
            res["overview_cold"].append(_run_page("overview", cold=True))
            res["overview_warm"].append(_run_page("overview", cold=False))
            res["farm_cold"].append(_run_page("farm", cold=True, farm=farm_id, range="30d"))
            res["farm_warm"].append(_run_page("farm", cold=False, farm=farm_id, range="30d"))
        # Baselines: the data calls alone, and the farm chart's 30 days as a raw time_bucket scan.
        src = data.Source(dsn)
        end = datetime.now(UTC)
        start = end - timedelta(days=30)
        base_ov = [_timed(lambda: alertsdata.overview(src, offline_after_s=1800.0)) for _ in range(n)]
        base_chart = [
            _timed(lambda: data.chart_series(src, farm_id, "air_t", start, end, bucket="1h"))
            for _ in range(n)
        ]
        with src.conn() as conn:
            sids = [s.series_id for s in find_series(conn, farm=farm_id, metric="air_t")]
            q = sql.SQL(
                "SELECT series_id, time_bucket('1 hour', time) AS b, count(*), min(value), avg(value),"
                " max(value) FROM readings WHERE series_id = ANY(%s) AND time >= %s AND time < %s"
                " GROUP BY 1, 2"
            )
            raw = [_timed(lambda: conn.execute(q, (sids, start, end)).fetchall()) for _ in range(n)]
        src.close()
        stats = {
            k: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3)} for k, v in res.items()
        }
        out["pages"] = stats
        out["baseline"] = {
            "overview_data_only_s": round(statistics.median(base_ov), 3),
            "chart_30d_rollup_s": round(statistics.median(base_chart), 3),
            "chart_30d_raw_time_bucket_s": round(statistics.median(raw), 3),
        }
        out["targets"] = {
            "overview_cold_le_2s": stats["overview_cold"]["max_s"] <= 2.0,
            "overview_warm_le_0.5s": stats["overview_warm"]["max_s"] <= 0.5,
            "farm_30d_cold_le_2s": stats["farm_cold"]["max_s"] <= 2.0,
        }
        out["ratios"] = {
            "overview_cold_to_data_only": round(
                stats["overview_cold"]["median_s"] / max(out["baseline"]["overview_data_only_s"], 1e-6), 2
            ),
            "raw_scan_to_rollup_chart": round(
                out["baseline"]["chart_30d_raw_time_bucket_s"]
                / max(out["baseline"]["chart_30d_rollup_s"], 1e-6),
                1,
            ),
        }
    return out
