"""API test fixtures: the real app served by uvicorn on a free port (in a thread) on the module's
private database, an httpx client, one token per scope and a farm-limited operator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from agri.stack.proc import free_port
from api.app import create_app
from api.deps import ApiConfig
from api.queries import tokens
from store.registry import upsert_farm

ADMIN_SECRET = "test-admin-token-0123456789abcdef"


@dataclass
class Tokens:
    read: str
    operate: str
    admin: str
    ingest: str
    farm_a_reader: str  # read + operate, limited to farm-a

    def h(self, which: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, which)}"}


@pytest.fixture(scope="module")
def api_app(db_url: str) -> FastAPI:
    return create_app(
        ApiConfig(database_url=db_url, admin_token=ADMIN_SECRET, pool_size=4, refresh_interval_s=0)
    )


@pytest.fixture(scope="module")
def base_url(api_app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            api_app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def tok(db_url: str) -> Tokens:
    with psycopg.connect(db_url, autocommit=True) as conn:
        upsert_farm(conn, "farm-a", "Farm A", "orchard", tz="Asia/Shanghai", lat=30.8, lon=108.4)
        upsert_farm(conn, "farm-b", "Farm B", "pig_farm", tz="Europe/Berlin", lat=52.5, lon=13.4)
        made = {s: tokens.create(conn, f"t-{s}", [s])[0] for s in ("read", "operate", "admin", "ingest")}
        limited = tokens.create(conn, "t-farm-a", ["operate"], ["farm-a"])[0]
    return Tokens(**made, farm_a_reader=limited)
