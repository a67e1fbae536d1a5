"""FastAPI dependencies, as ``Annotated`` aliases: database connection, caller, scopes, farm access.

Every route declares what it needs by parameter type: ``conn: Conn``, ``who: Reader`` (scope
``read``), ``Operator``, ``Admin``, ``Ingester``. A farm-limited token reaches only its farms:
:func:`farm_access` refuses others with 403.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from api.errors import ApiError
from api.queries import tokens
from api.queries.tokens import Principal
from kernel import links
from store.writer import Writer

TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per token


@dataclass
class ApiConfig:
    database_url: str
    admin_token: str | None = None
    pool_size: int = 8
    max_body_bytes: int = 1024 * 1024
    import_max_bytes: int = 10 * 1024 * 1024
    refresh_interval_s: float = 5.0  # rollup refresher period (0: off)
    clock_skew_s: float = 300.0
    retention_days: int = 730
    dashboard_url: str = "http://127.0.0.1:8501"  # links in alert messages
    link_key: bytes = field(default_factory=lambda: links.derive_key(None))  # signed acknowledge links


@dataclass
class AppState:
    config: ApiConfig
    pool: ConnectionPool[psycopg.Connection[Any]]
    writers: list[Writer] = field(default_factory=list)
    writers_lock: threading.Lock = field(default_factory=threading.Lock)
    touched: dict[int, float] = field(default_factory=dict)

    def take_writer(self) -> Writer:
        with self.writers_lock:
            if self.writers:
                return self.writers.pop()
        return Writer(self.config.database_url, app_name="agri-api-ingest")

    def give_writer(self, w: Writer) -> None:
        with self.writers_lock:
            self.writers.append(w)


async def state(request: Request) -> AppState:
    st: AppState = request.app.state.agri
    return st


State = Annotated[AppState, Depends(state)]


def connection(st: State) -> Iterator[psycopg.Connection[Any]]:
    try:
        with st.pool.connection() as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise ApiError(
            503, "database_unavailable", f"database unavailable: {str(exc).strip()[:200]}"
        ) from None


Conn = Annotated[psycopg.Connection[Any], Depends(connection)]

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer agri_...`")


def principal(
    st: State, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    token = creds.credentials
    admin = st.config.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Principal(name="admin", scopes=tokens.effective(["admin", "ingest"]), farms=None)
    try:
        with st.pool.connection() as conn:
            who = tokens.verify(conn, token)
            if who is not None and who.token_id is not None:
                now = time.monotonic()
                if now - st.touched.get(who.token_id, -1e9) > TOUCH_EVERY_S:
                    st.touched[who.token_id] = now
                    tokens.touch(conn, who.token_id)
    except psycopg.OperationalError as exc:
        raise ApiError(
            503, "database_unavailable", f"database unavailable: {str(exc).strip()[:200]}"
        ) from None
    if who is None:
        raise ApiError(401, "unauthorized", "invalid or revoked token")
    return who


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.may(scope):
            raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")
        return who

    check.__name__ = f"require_{scope}"
    return check


Reader = Annotated[Principal, Depends(require("read"))]
Operator = Annotated[Principal, Depends(require("operate"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Ingester = Annotated[Principal, Depends(require("ingest"))]


def farm_access(who: Principal, farm: str | None) -> None:
    """403 when a farm-limited token names a farm outside its list."""
    if farm is not None and not who.sees(farm):
        raise ApiError(403, "forbidden", f"this token is not allowed on farm {farm!r}")


# The ``{farm}`` path parameter of a route, refused (403) for a token limited to other farms.
async def read_farm(who: Reader, farm: str) -> str:
    farm_access(who, farm)
    return farm


async def operate_farm(who: Operator, farm: str) -> str:
    farm_access(who, farm)
    return farm


async def admin_farm(who: Admin, farm: str) -> str:
    farm_access(who, farm)
    return farm


ReadFarm = Annotated[str, Depends(read_farm)]
OperateFarm = Annotated[str, Depends(operate_farm)]
AdminFarm = Annotated[str, Depends(admin_farm)]
