"""Node broker credentials: Mosquitto ``$7$`` password hashes and the ``node_credentials`` table.

Nodes registered through the HTTP API (bulk import) get their password here; only its hash is
stored, and the app layer (``agri node sync-accounts``, ``agri node import``) writes pending
hashes into the broker's account registry. The hash format is what ``mosquitto_passwd`` writes
(PBKDF2-HMAC-SHA512), so the broker verifies the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

import psycopg

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd uses for $7$


def hash_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        _, alg, it, salt, digest = encoded.split("$")
    except ValueError:
        return False
    if alg != "7":
        return False
    calc = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(it))
    return hmac.compare_digest(base64.b64encode(calc).decode(), digest)


def new_password() -> str:
    return secrets.token_urlsafe(18)


def node_username(farm: str, node: str) -> str:
    """Broker username of a node: unique across farms (``.`` cannot appear in ids)."""
    return f"{farm}.{node}"


def store_hashes(conn: psycopg.Connection[Any], rows: Sequence[tuple[str, str, str]]) -> None:
    """Record (farm, node, pw_hash) as pending broker accounts (replacing an older hash)."""
    if not rows:
        return
    conn.execute(
        "INSERT INTO node_credentials (farm_id, node_id, username, pw_hash)"
        " SELECT f, n, f || '.' || n, h FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(f, n, h)"
        " ON CONFLICT (username) DO UPDATE SET pw_hash = EXCLUDED.pw_hash, created_at = now(),"
        " applied_at = NULL",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    )


def pending(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    """(farm, node, username, pw_hash) of credentials not yet applied to the broker."""
    rows = conn.execute(
        "SELECT farm_id, node_id, username, pw_hash FROM node_credentials WHERE applied_at IS NULL"
        " ORDER BY username"
    ).fetchall()
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def mark_applied(conn: psycopg.Connection[Any], usernames: Sequence[str]) -> None:
    conn.execute(
        "UPDATE node_credentials SET applied_at = now() WHERE username = ANY(%s)", (list(usernames),)
    )
