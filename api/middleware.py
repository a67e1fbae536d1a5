"""ASGI middleware: request body size limits and Prometheus request metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from api.errors import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over ``default`` bytes (``overrides``: path prefix -> limit) with 413.

    Checks ``Content-Length`` up front and counts the bytes of chunked bodies as they arrive.
    """

    def __init__(self, app: ASGIApp, default: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.overrides = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n > limit or n < 0:
                    await _too_large(scope, receive, send, limit)
                    return
        seen = 0
        started = False
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit and not refused:
                    refused = True
                    if not started:
                        await _too_large(scope, receive, send, limit)
                    raise _TooLarge
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if refused:  # the 413 went out already; whatever the app answers is dropped
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted, guarded_send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    resp = error_response(413, "too_large", f"request body larger than {limit} bytes")
    await resp(scope, receive, send)


class Metrics:
    """Requests and their durations per route template, method and status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "agri_api_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.duration = Histogram(
            "agri_api_request_seconds",
            "HTTP request duration until the response starts",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
        )

    def route_of(self, scope: Scope) -> str:
        """The matched route's path template (bounded label values), set by the router."""
        route = scope.get("route")
        path = getattr(route, "path", None)
        return str(path) if path else "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def wrapped(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
                self.duration.labels(scope["method"], self.route_of(scope)).observe(time.perf_counter() - t0)
            await send(msg)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            self.requests.labels(scope["method"], self.route_of(scope), str(status)).inc()
