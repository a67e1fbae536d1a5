"""Opaque, stable pagination cursors (the sort key of the last row returned, base64 JSON), the
filters the listings are built from, and the newest-first page by id they share."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel

from api.queries.errors import InvalidArgument
from api.queries.models import Page

M = TypeVar("M", bound=BaseModel)


def encode(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, n: int) -> list[Any] | None:
    """The key list of ``cursor`` (``n`` parts) or None; :class:`InvalidArgument` if it is not ours."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("cursor is not a cursor this API returned", field="cursor") from None
    if not isinstance(key, list) or len(key) != n:
        raise InvalidArgument("cursor is not a cursor this API returned", field="cursor")
    return key


class Recent(TypedDict, total=False):
    """A newest-first listing: of one farm and node, in [since, until), one page
    (``farms``: those a token is limited to)."""

    farms: Sequence[str] | None
    farm: str | None
    node: str | None
    since: datetime | None
    until: datetime | None
    limit: int
    cursor: str | None


def where(*conditions: tuple[str, Any]) -> tuple[sql.Composable, list[Any]]:
    """The AND of the ``(condition, parameter)`` pairs whose parameter is given (not None), and
    those parameters; ``true`` when none is."""
    given = [(sql.SQL(c), v) for c, v in conditions if v is not None]
    if not given:
        return sql.SQL("true"), []
    return sql.SQL(" AND ").join(c for c, _ in given), [v for _, v in given]


def newest_first(
    conn: psycopg.Connection[Any],
    select: sql.Composable,
    conditions: tuple[sql.Composable, list[Any]],
    id_column: str,
    model: type[M],
    recent: Recent,
) -> Page[M]:
    """One page of ``select`` rows by descending integer id (``id_column``), resuming below the
    id in the listing's cursor; ``limit`` 1..1000."""
    limit, cursor = recent.get("limit", 100), recent.get("cursor")
    if not 1 <= limit <= 1000:
        raise InvalidArgument("limit must be 1..1000", field="limit")
    cond, params = conditions
    after = decode(cursor, 1)
    if after is not None:
        if not isinstance(after[0], int):
            raise InvalidArgument("cursor is not a cursor this API returned", field="cursor")
        cond = sql.SQL("{} AND {} < %s").format(cond, sql.SQL(id_column))
        params = [*params, after[0]]
    q = sql.SQL("{} WHERE {} ORDER BY {} DESC LIMIT %s").format(select, cond, sql.SQL(id_column))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(q, [*params, limit + 1]).fetchall()
    nxt = encode(rows[limit - 1]["id"]) if len(rows) > limit else None
    return Page[model](items=[model(**r) for r in rows[:limit]], next_cursor=nxt)  # type: ignore[valid-type]
