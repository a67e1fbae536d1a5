"""Commissioners (科技特派员) and their farm assignments, and farms' alert-rule overrides. No HTTP.

Both go through the store modules the CLI and the alert service use (``store.commissioners``,
``store.farm_rules``), so a commissioner or a rule set is validated by one implementation whichever
way it arrives. Secrets are write-only: a commissioner comes back with ``has_secret`` and its robot
URL's key masked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

import psycopg
from pydantic import BaseModel

from api.queries.errors import Conflict, InvalidArgument, NotFound
from api.queries.registry import get_farm
from kernel.rules import Rule, RulesError, RuleSet, parse_rules
from kernel.rules.layers import effective_rules
from kernel.webhook import Channel
from store import commissioners as store
from store import farm_rules

Conn = psycopg.Connection[Any]
Severity = Literal["info", "warning", "critical"]
Language = Literal["zh", "en"]


class Assignment(BaseModel):
    farm: str
    escalation_order: int
    min_severity: Severity


class Commissioner(BaseModel):
    id: int
    name: str
    channel: Channel
    url: str
    has_secret: bool
    language: Language
    phone: str | None
    active: bool
    farms: list[Assignment]
    created_at: datetime


@contextmanager
def _mapped() -> Iterator[None]:
    """store.commissioners errors as query errors (the key they name becomes the field)."""
    try:
        yield
    except store.UnknownCommissioner as exc:
        raise NotFound(str(exc), field=exc.field) from None
    except store.CommissionerConflict as exc:
        raise Conflict(str(exc), field=exc.field) from None
    except store.CommissionerError as exc:
        raise InvalidArgument(str(exc), field=exc.field) from None


def _model(c: store.Commissioner) -> Commissioner:
    return Commissioner.model_validate(asdict(c))


def list_commissioners(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    farm: str | None = None,
    include_retired: bool = False,
) -> list[Commissioner]:
    """Commissioners (``farm``: only those assigned to it); a farm-limited caller (``farms``) sees
    those assigned to one of its farms, with only those assignments."""
    if farm is not None:
        farms = [farm] if farms is None or farm in farms else []
    found = store.list_commissioners(conn, farms=farms, include_retired=include_retired)
    return [_model(c) for c in found]


def get_commissioner(conn: Conn, cid: int, *, farms: Sequence[str] | None = None) -> Commissioner:
    with _mapped():
        return _model(store.get(conn, cid, farms=farms))


def create_commissioner(
    conn: Conn, name: str, channel: str, url: str, *, secret: str | None = None, language: str = "zh",
    phone: str | None = None,
) -> Commissioner:  # fmt: skip
    with _mapped():
        cid = store.add(conn, name, channel, url, secret, language, phone, replace=False)
        return _model(store.get(conn, cid))


def update_commissioner(conn: Conn, cid: int, changes: Mapping[str, Any]) -> Commissioner:
    with _mapped():
        store.update(conn, cid, changes)
        return _model(store.get(conn, cid))


def retire_commissioner(conn: Conn, cid: int) -> Commissioner:
    """No more messages (its assignments stay, to be seen and restored with ``active: true``)."""
    return update_commissioner(conn, cid, {"active": False})


def assign(
    conn: Conn, cid: int, farm: str, *, min_severity: str = "warning", order: int = 0,
    farms: Sequence[str] | None = None,
) -> Commissioner:  # fmt: skip
    get_farm(conn, farm, farms=farms)
    with _mapped():
        store.assign(conn, cid, [farm], min_severity, order)
        return _model(store.get(conn, cid, farms=farms))


def unassign(conn: Conn, cid: int, farm: str, *, farms: Sequence[str] | None = None) -> Commissioner:
    get_farm(conn, farm, farms=farms)
    with _mapped():
        store.unassign(conn, cid, farm)
        return _model(store.get(conn, cid))


# --- farm rule overrides -------------------------------------------------------------------------


class EffectiveRule(BaseModel):
    origin: Literal["default", "override"]
    rule: Rule


class FarmRules(BaseModel):
    farm: str
    kind: str
    override: RuleSet | None
    updated_at: datetime | None = None
    updated_by: str | None = None
    effective: list[EffectiveRule]


def farm_rules_of(conn: Conn, farm: str) -> FarmRules:
    """The farm's override and its effective rules: the shipped defaults of its kind with the
    override on top (a deployment or farm rule file given to `agri alerts` sits between them)."""
    kind = get_farm(conn, farm).kind
    got = farm_rules.get(conn, farm)
    mine = {r.name for r in got.rules.rules} if got else set()
    rules = effective_rules(kind, got.rules.rules if got else ())
    return FarmRules(
        farm=farm,
        kind=kind,
        override=got.rules if got else None,
        updated_at=got.updated_at if got else None,
        updated_by=got.updated_by if got else None,
        effective=[EffectiveRule(origin="override" if r.name in mine else "default", rule=r) for r in rules],
    )


def put_farm_rules(conn: Conn, farm: str, text: str, fmt: Literal["toml", "json"], by: str) -> FarmRules:
    """Validate a rule set (TOML or JSON, as `agri alerts --check` does a rule file) and store it
    as the farm's override, replacing any earlier one."""
    get_farm(conn, farm)
    try:
        rules = parse_rules(text, fmt, f"farm {farm} rules")
    except RulesError as exc:
        raise InvalidArgument(str(exc), field="rules") from None
    farm_rules.put(conn, farm, rules, by)
    return farm_rules_of(conn, farm)


def delete_farm_rules(conn: Conn, farm: str) -> FarmRules:
    get_farm(conn, farm)
    if not farm_rules.delete(conn, farm):
        raise NotFound(f"farm {farm!r} has no rule override", field="farm")
    return farm_rules_of(conn, farm)
