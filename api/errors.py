"""HTTP errors: the one place where failures become status codes and JSON bodies.

Every error body is ``{"error": {"code": ..., "message": ..., "field": ...}}``; 401 also carries
``WWW-Authenticate: Bearer``. Query-layer errors map by kind: not found 404, invalid 400,
conflict 409 (422 stays FastAPI's own answer to a request that does not parse).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.queries.errors import Conflict, InvalidArgument, NotFound, QueryError
from kernel.log import event, get_logger

log = get_logger("api")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field)).model_dump()
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Documented on every protected route (OpenAPI), so clients and Schemathesis know the bodies.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("Missing, invalid or revoked token"),
    403: _doc("Token lacks the scope or the farm"),
    413: _doc("Request body too large"),
    503: _doc("Database unavailable"),
}
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: _doc("Not found")}
CONFLICT: Responses = {409: _doc("Conflicts with what is stored")}
INVALID: Responses = {400: _doc("Invalid argument")}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return error_response(404, "not_found", str(exc), exc.field)
        if isinstance(exc, Conflict):
            return error_response(409, "conflict", str(exc), exc.field)
        if isinstance(exc, InvalidArgument):
            return error_response(400, "invalid", str(exc), exc.field)
        return error_response(400, "invalid", str(exc), exc.field)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        event(log, "request_failed", logging.ERROR, path=request.url.path, error=repr(exc)[:300])
        return error_response(500, "internal", "internal error; see the API log")
