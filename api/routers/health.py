"""Liveness, readiness (database reachable, schema current) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import Reader, State
from api.errors import AUTH_RESPONSES
from store.migrate import load_migrations

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: bool
    schema_version: int | None
    schema_expected: int
    detail: str | None = None


@router.get("/healthz", response_model=Health, summary="The process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Database reachable and schema current",
    responses={503: {"model": Ready, "description": "Not ready"}},
)
def readyz(st: State) -> Response:
    expected = max(m.version for m in load_migrations())
    version: int | None = None
    try:
        with st.pool.connection(timeout=5) as conn:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            version = int(row[0]) if row and row[0] is not None else None
    except Exception as exc:
        body = Ready(
            status="unavailable",
            database=False,
            schema_version=None,
            schema_expected=expected,
            detail=str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    if version is None or version < expected:
        body = Ready(
            status="schema_outdated",
            database=True,
            schema_version=version,
            schema_expected=expected,
            detail="run `agri db migrate`",
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(
        Ready(status="ready", database=True, schema_version=version, schema_expected=expected).model_dump()
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **AUTH_RESPONSES},
)
def metrics(request: Request, who: Reader) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
