"""API bearer tokens: created (shown once), stored as a SHA-256 hash, listed, revoked, verified.

Scopes: ``read`` (every GET), ``operate`` (registry changes, alert acknowledgement; implies read),
``admin`` (tokens, commissioners, rules; implies operate and read), ``ingest`` (HTTP ingest only).
A token may be limited to some farms (a commissioner's): it then sees and changes only those.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors

from api.queries.errors import Conflict, InvalidArgument, NotFound
from kernel.protocol import valid_id

SCOPES = ("read", "operate", "admin", "ingest")
IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "operate": frozenset({"read", "operate"}),
    "admin": frozenset({"read", "operate", "admin"}),
    "ingest": frozenset({"ingest"}),
}
PREFIX = "agri_"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    scopes: tuple[str, ...]
    farms: tuple[str, ...] | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name, its effective scopes and the farms it is limited to."""

    name: str
    scopes: frozenset[str]
    farms: frozenset[str] | None  # None: every farm
    token_id: int | None = None

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def sees(self, farm: str) -> bool:
        return self.farms is None or farm in self.farms

    def farm_list(self) -> list[str] | None:
        return sorted(self.farms) if self.farms is not None else None


def effective(scopes: Sequence[str]) -> frozenset[str]:
    out: set[str] = set()
    for s in scopes:
        out |= IMPLIED[s]
    return frozenset(out)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_scopes(scopes: Sequence[str]) -> list[str]:
    if not scopes:
        raise InvalidArgument("give at least one scope", field="scopes")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise InvalidArgument(f"unknown scope {bad[0]!r}; scopes: {', '.join(SCOPES)}", field="scopes")
    return sorted(set(scopes), key=SCOPES.index)


def create(
    conn: psycopg.Connection[Any], name: str, scopes: Sequence[str], farms: Sequence[str] | None = None
) -> tuple[str, TokenInfo]:
    """A new token (the secret is returned here only) and what is stored about it."""
    name = name.strip()
    if not 0 < len(name) <= 100:
        raise InvalidArgument("name must be 1..100 characters", field="name")
    sc = check_scopes(scopes)
    fl: list[str] | None = None
    if farms is not None:
        fl = sorted(set(farms))
        if not fl:
            raise InvalidArgument("a farm-limited token needs at least one farm", field="farms")
        for f in fl:
            if not valid_id(f):
                raise InvalidArgument(f"farm id {f!r} must match [a-z0-9-]{{1,32}}", field="farms")
        known = {r[0] for r in conn.execute("SELECT id FROM farms WHERE id = ANY(%s)", (fl,)).fetchall()}
        missing = [f for f in fl if f not in known]
        if missing:
            raise NotFound(f"farm {missing[0]!r} is not registered", field="farms")
    secret = PREFIX + secrets.token_urlsafe(32)
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO api_tokens (name, token_hash, scopes, farms) VALUES (%s, %s, %s, %s)"
                " RETURNING id, name, scopes, farms, created_at, last_used_at, revoked_at",
                (name, hash_token(secret), sc, fl),
            ).fetchone()
    except errors.UniqueViolation:
        raise Conflict(f"a token named {name!r} exists already", field="name") from None
    assert row is not None
    return secret, _info(row)


def _info(row: Sequence[Any]) -> TokenInfo:
    return TokenInfo(
        int(row[0]),
        row[1],
        tuple(row[2]),
        tuple(row[3]) if row[3] is not None else None,
        row[4],
        row[5],
        row[6],
    )


def list_tokens(conn: psycopg.Connection[Any], *, include_revoked: bool = False) -> list[TokenInfo]:
    rows = conn.execute(
        "SELECT id, name, scopes, farms, created_at, last_used_at, revoked_at FROM api_tokens"
        " WHERE %s OR revoked_at IS NULL ORDER BY id",
        (include_revoked,),
    ).fetchall()
    return [_info(r) for r in rows]


def revoke(conn: psycopg.Connection[Any], name_or_id: str) -> TokenInfo:
    ident = int(name_or_id) if name_or_id.isdigit() else None
    row = conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())"
        " WHERE name = %s OR id = %s RETURNING id, name, scopes, farms, created_at, last_used_at, revoked_at",
        (name_or_id, ident),
    ).fetchone()
    if row is None:
        raise NotFound(f"no token named {name_or_id!r}", field="name")
    return _info(row)


def verify(conn: psycopg.Connection[Any], token: str) -> Principal | None:
    """The principal of a valid, unrevoked token; None otherwise."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = conn.execute(
        "SELECT id, name, scopes, farms FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(token),),
    ).fetchone()
    if row is None:
        return None
    return Principal(
        name=row[1],
        scopes=effective(row[2]),
        farms=frozenset(row[3]) if row[3] is not None else None,
        token_id=int(row[0]),
    )


def touch(conn: psycopg.Connection[Any], token_id: int) -> None:
    conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", (token_id,))
