"""Database connection for the `agri block` / `agri sky` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from agri.cli.common import fail, settings
from agri.stack.manager import Stack


@contextmanager
def connect() -> Iterator[psycopg.Connection[Any]]:
    dsn = Stack(settings()).database_url()
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"database not reachable ({first}): start the stack with `agri up` or set AGRI_DATABASE_URL")
    with conn:
        yield conn
