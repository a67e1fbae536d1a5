"""The FastAPI application: pool, rollup refresher, middleware, routers.

``create_app(ApiConfig(...))`` builds it; ``agri api`` serves it with uvicorn. OpenAPI at
``/openapi.json``, interactive docs at ``/docs``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge
from psycopg_pool import ConnectionPool

from api import errors
from api.deps import ApiConfig, AppState
from api.middleware import BodyLimit, Metrics
from api.routers import (
    acklink,
    alerts,
    analytics,
    blocks,
    commissioners,
    export,
    health,
    ingest,
    manage,
    readings,
    registry,
)
from kernel.log import event, get_logger
from store import rollup

log = get_logger("api")

DESCRIPTION = """Farms, nodes, readings, analytics, alerts and HTTP ingest of the agri platform.

Authenticate with `Authorization: Bearer <token>` (`agri token create`). Scopes: `read` (GET),
`operate` (registry changes, alert acknowledgement), `admin` (tokens, commissioners, rules),
`ingest` (HTTP ingest). A token may be limited to some farms. Only `/healthz` and `/readyz` are open.
"""


class Refresher:
    """Background thread keeping the rollups current (several API processes may run one each)."""

    def __init__(self, dsn: str, interval_s: float, pending: Gauge) -> None:
        self.dsn = dsn
        self.interval_s = interval_s
        self.pending = pending
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="rollup-refresher", daemon=True)
        self.failing = False

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, application_name="agri-api-rollup")
                res = rollup.refresh(conn)
                self.pending.set(rollup.pending(conn))
                if self.failing:
                    event(log, "rollup_refresh_recovered")
                    self.failing = False
                if res.hours:
                    continue  # more may be waiting: no pause
            except psycopg.Error as exc:
                if not self.failing:
                    event(log, "rollup_refresh_failed", logging.WARNING, error=str(exc).strip()[:200])
                    self.failing = True
                if conn is not None:
                    conn.close()
                conn = None
            self.stop.wait(self.interval_s)
        if conn is not None:
            conn.close()


def create_app(config: ApiConfig) -> FastAPI:
    registry_ = CollectorRegistry()
    pending = Gauge(
        "agri_rollup_dirty_hours", "(series, hour) marks waiting for the refresher", registry=registry_
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            config.database_url,
            min_size=1,
            max_size=config.pool_size,
            kwargs={"autocommit": True, "application_name": "agri-api"},
            open=False,
            timeout=10,
        )
        pool.open(wait=False)
        app.state.agri = AppState(config=config, pool=pool)
        ref = (
            Refresher(config.database_url, config.refresh_interval_s, pending)
            if config.refresh_interval_s
            else None
        )
        if ref:
            ref.thread.start()
        event(log, "api_started", pool=config.pool_size)
        try:
            yield
        finally:
            if ref:
                ref.stop.set()
                ref.thread.join(timeout=10)
            for w in app.state.agri.writers:
                w.close()
            pool.close()

    app = FastAPI(
        title="agri platform API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.metrics_registry = registry_
    errors.install(app)
    for r in (
        health.router,
        registry.router,
        manage.router,
        readings.router,
        export.router,
        analytics.router,
        ingest.router,
        alerts.router,
        commissioners.router,
        acklink.router,
        blocks.router,
    ):
        app.include_router(r)
    app.add_middleware(Metrics, registry=registry_)
    app.add_middleware(
        BodyLimit,
        default=config.max_body_bytes,
        overrides={"/nodes/import": config.import_max_bytes},
    )
    return app
