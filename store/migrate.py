"""Versioned SQL migrations (``migrations/NNNN_name.sql``) applied in one transaction.

``schema_migrations`` records version, name and checksum; a file edited after it was applied is
an error, not a silent skip. An advisory lock serialises concurrent runs (several workers may
start at once). The metric catalog is upserted into ``metrics`` on every run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from kernel.catalog import CATALOG

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x61677269  # "agri"


class MigrationError(RuntimeError):
    """Migrations cannot run against this database; the message says why and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def load_migrations() -> list[Migration]:
    out = []
    for entry in resources.files("store").joinpath("migrations").iterdir():
        m = _NAME_RE.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return out


TIMESCALE_HINT = (
    "install TimescaleDB on the database server (deploy/install.sh builds it from Debian's source "
    "package), set shared_preload_libraries = 'timescaledb' in postgresql.conf and restart PostgreSQL"
)


def check_timescaledb(conn: psycopg.Connection[Any]) -> str | None:
    """Raise :class:`MigrationError` unless TimescaleDB can be used; return its installed version."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    db = conn.info.dbname
    if row is None:
        raise MigrationError(f"database {db!r} has no TimescaleDB extension available: {TIMESCALE_HINT}")
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if preload is None or "timescaledb" not in str(preload[0]):
        raise MigrationError(
            f"TimescaleDB is installed but not preloaded on the server of {db!r}: {TIMESCALE_HINT}"
        )
    return str(row[1]) if row[1] else None


def migrate(dsn: str) -> list[int]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    migrations = load_migrations()
    try:
        conn = psycopg.connect(dsn, autocommit=False, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise MigrationError(f"cannot connect to the database: {str(exc).strip().splitlines()[0]}") from None
    applied: list[int] = []
    with conn:
        check_timescaledb(conn)
        conn.rollback()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                int(v): str(c)
                for v, c in conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            }
            for m in migrations:
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MigrationError(
                            f"migration {m.version:04d}_{m.name} was changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                conn.execute(m.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
                applied.append(m.version)
            _seed_metrics(conn)
    return applied


def _seed_metrics(conn: psycopg.Connection[Any]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO metrics (name, unit, lo, hi, kind, label_zh, label_en, decimals, aggregate)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET unit = EXCLUDED.unit, lo = EXCLUDED.lo, hi = EXCLUDED.hi,"
            " kind = EXCLUDED.kind, label_zh = EXCLUDED.label_zh, label_en = EXCLUDED.label_en,"
            " decimals = EXCLUDED.decimals, aggregate = EXCLUDED.aggregate",
            [
                (m.name, m.unit, m.lo, m.hi, m.kind, m.label_zh, m.label_en, m.decimals, m.aggregate)
                for m in CATALOG.values()
            ],
        )


def current_version(dsn: str) -> int | None:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else None
