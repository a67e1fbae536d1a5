"""Per-farm alert-rule overrides stored in ``farm_rules`` (written through the API, read by the
alert service as the top rule layer). Only rule sets validated by :mod:`kernel.rules` are stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from kernel.rules import RuleSet, parse_rules


@dataclass(frozen=True)
class Override:
    farm: str
    rules: RuleSet
    updated_at: datetime
    updated_by: str


def _parse(farm: str, data: Any) -> RuleSet:
    return parse_rules(json.dumps(data), "json", f"farm {farm} rules")


def get(conn: psycopg.Connection[Any], farm: str) -> Override | None:
    row = conn.execute(
        "SELECT rules, updated_at, updated_by FROM farm_rules WHERE farm_id = %s", (farm,)
    ).fetchone()
    return None if row is None else Override(farm, _parse(farm, row[0]), row[1], row[2])


def put(conn: psycopg.Connection[Any], farm: str, rules: RuleSet, by: str) -> None:
    conn.execute(
        "INSERT INTO farm_rules (farm_id, rules, updated_by) VALUES (%s, %s, %s) ON CONFLICT (farm_id)"
        " DO UPDATE SET rules = EXCLUDED.rules, updated_by = EXCLUDED.updated_by,"
        " updated_at = clock_timestamp()",
        (farm, Jsonb(rules.model_dump(mode="json", exclude_unset=True)), by),
    )


def delete(conn: psycopg.Connection[Any], farm: str) -> bool:
    return conn.execute("DELETE FROM farm_rules WHERE farm_id = %s", (farm,)).rowcount > 0


def version(conn: psycopg.Connection[Any]) -> tuple[int, datetime | None]:
    """Changes whenever an override is put or deleted (puts move max(updated_at) forward)."""
    row = conn.execute("SELECT count(*), max(updated_at) FROM farm_rules").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def load_all(conn: psycopg.Connection[Any]) -> dict[str, RuleSet]:
    """Every stored override; one that no longer validates (a catalog change) is skipped."""
    out = {}
    for farm, data in conn.execute("SELECT farm_id, rules FROM farm_rules").fetchall():
        try:
            out[str(farm)] = _parse(str(farm), data)
        except ValueError:
            continue
    return out
