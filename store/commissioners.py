"""Commissioners (科技特派员) and their farm assignments: the one implementation behind
`agri commissioner`, the alert service's fixtures and the HTTP API.

Input is validated before anything is written; a mistake raises :class:`CommissionerError` whose
``str()`` starts with the offending key (``url: ...``, ``secret: ...``) and whose ``field`` is that
key. Writes are all-or-nothing. Secrets are stored but never returned: a :class:`Commissioner`
says only whether one is set, and robot URLs come back with their key masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors, sql

from kernel.protocol import check_id
from kernel.webhook import CHANNELS, generic_secret_key

SEVERITIES = ("info", "warning", "critical")
LANGUAGES = ("zh", "en")
FIELDS = ("name", "channel", "url", "secret", "language", "phone", "active")
_PHONE_RE = re.compile(r"\+?[0-9][0-9 -]{2,30}\Z")


class CommissionerError(ValueError):
    """Bad commissioner input; ``str()`` starts with the offending key, ``field`` is that key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = message.split(":", 1)[0]


class UnknownCommissioner(CommissionerError):
    """No such commissioner or assignment."""


class CommissionerConflict(CommissionerError):
    """The name is taken by another commissioner."""


@dataclass(frozen=True)
class Assignment:
    farm: str
    escalation_order: int
    min_severity: str

    def __str__(self) -> str:
        return f"{self.farm}:{self.escalation_order}:{self.min_severity}"


@dataclass(frozen=True)
class Commissioner:
    id: int
    name: str
    channel: str
    url: str  # with the robot key masked (:func:`mask`)
    has_secret: bool
    language: str
    phone: str | None
    active: bool
    farms: list[Assignment]
    created_at: datetime


def mask(url: str, channel: str = "") -> str:
    """The URL without its robot key: the query (WeCom ``key=``, DingTalk ``access_token=``) and,
    for Feishu, the hook token that ends the path."""
    parts = urlsplit(url)
    path = parts.path
    if channel == "feishu" and "/" in path.rstrip("/"):
        path = path.rstrip("/").rsplit("/", 1)[0] + "/…"
    return parts._replace(path=path, query="…" if parts.query else "").geturl()


def validate(
    name: str, channel: str, url: str, secret: str | None, language: str, phone: str | None = None
) -> None:
    if not name.strip() or len(name) > 64:
        raise CommissionerError("name: must be 1-64 characters")
    if channel not in CHANNELS:
        raise CommissionerError(f"channel: {channel!r} must be one of {', '.join(CHANNELS)}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise CommissionerError(f"url: must be an http(s) URL with a host, got {url[:80]!r}")
    if channel == "wecom" and "key=" not in parts.query:
        raise CommissionerError("url: a WeCom robot URL carries its key (…/webhook/send?key=...)")
    if channel == "dingtalk" and "access_token=" not in parts.query:
        raise CommissionerError("url: a DingTalk robot URL carries access_token=...")
    if secret is not None and len(secret) > 500:
        raise CommissionerError("secret: longer than 500 characters")
    if channel == "generic":
        if not secret:
            raise CommissionerError(
                "secret: a generic webhook needs a Standard Webhooks secret whsec_<base64>"
            )
        try:
            generic_secret_key(secret)
        except ValueError as exc:
            raise CommissionerError(f"secret: {exc}") from None
    elif channel == "wecom" and secret:
        raise CommissionerError("secret: a WeCom group robot has no signing secret (its key is in the URL)")
    elif channel in ("dingtalk", "feishu") and secret is not None and not secret.strip():
        raise CommissionerError("secret: empty")
    if language not in LANGUAGES:
        raise CommissionerError(f"language: {language!r} must be zh or en")
    if phone is not None and not _PHONE_RE.match(phone):
        raise CommissionerError(f"phone: {phone[:40]!r} is not a phone number (digits, '+', '-', spaces)")


def _check_assignment(min_severity: str, order: int) -> None:
    if min_severity not in SEVERITIES:
        raise CommissionerError(f"min_severity: {min_severity!r} must be one of {', '.join(SEVERITIES)}")
    if not 0 <= order <= 9:
        raise CommissionerError(f"order: {order} must be 0 (told at once) .. 9")


def add(
    conn: psycopg.Connection[Any], name: str, channel: str, url: str, secret: str | None = None,
    language: str = "zh", phone: str | None = None, *, replace: bool = True,
) -> int:  # fmt: skip
    """Store a commissioner; ``replace``: update (and reactivate) one of the same name, else
    :class:`CommissionerConflict`."""
    validate(name, channel, url, secret, language, phone)
    on_conflict = sql.SQL(
        " ON CONFLICT (name) DO UPDATE SET phone = EXCLUDED.phone, channel = EXCLUDED.channel,"
        " webhook_url = EXCLUDED.webhook_url, secret = EXCLUDED.secret, language = EXCLUDED.language,"
        " active = true"
        if replace
        else ""
    )
    try:
        with conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO commissioners (name, phone, channel, webhook_url, secret, language)"
                    " VALUES (%s, %s, %s, %s, %s, %s){} RETURNING id"
                ).format(on_conflict),
                (name, phone, channel, url, secret, language),
            ).fetchone()
    except errors.UniqueViolation:
        raise CommissionerConflict(f"name: a commissioner {name!r} exists already") from None
    assert row is not None
    return int(row[0])


def _stored(conn: psycopg.Connection[Any], who: int | str) -> dict[str, Any]:
    col = "id" if isinstance(who, int) else "name"
    row = conn.execute(
        sql.SQL(
            "SELECT id, name, channel, webhook_url, secret, language, phone, active FROM commissioners"
            " WHERE {} = %s FOR UPDATE"
        ).format(sql.Identifier(col)),
        (who,),
    ).fetchone()
    if row is None:
        what = f"id {who}" if isinstance(who, int) else repr(who)
        raise UnknownCommissioner(f"{col}: no commissioner {what}")
    return dict(zip(("id", *FIELDS[:3], "secret", "language", "phone", "active"), row, strict=True))


def update(conn: psycopg.Connection[Any], cid: int, changes: Mapping[str, Any]) -> None:
    """Change some of :data:`FIELDS`; the merged record is validated as a whole (switching a
    generic webhook to WeCom needs ``secret: None``). A secret left out is kept."""
    bad = sorted(set(changes) - set(FIELDS))
    if bad:
        raise CommissionerError(f"{bad[0]}: not a commissioner field ({', '.join(FIELDS)})")
    try:
        with conn.transaction():
            rec = {**_stored(conn, cid), **changes}
            validate(rec["name"], rec["channel"], rec["url"], rec["secret"], rec["language"], rec["phone"])
            conn.execute(
                "UPDATE commissioners SET name = %s, channel = %s, webhook_url = %s, secret = %s,"
                " language = %s, phone = %s, active = %s WHERE id = %s",
                (*(rec[k] for k in FIELDS), cid),
            )
    except errors.UniqueViolation:
        raise CommissionerConflict(f"name: a commissioner {changes.get('name')!r} exists already") from None


def assign(
    conn: psycopg.Connection[Any], who: int | str, farms: Sequence[str], min_severity: str = "warning",
    order: int = 0,
) -> None:  # fmt: skip
    """Assign a commissioner (by id or name) to farms (all or none); an existing assignment's
    severity and escalation order are replaced."""
    _check_assignment(min_severity, order)
    if not farms:
        raise CommissionerError("farms: name at least one farm")
    for f in farms:
        try:
            check_id("farm", f)
        except ValueError as exc:
            raise CommissionerError(f"farms: {exc}") from None
    with conn.transaction():
        cid = _stored(conn, who)["id"]
        known = {r[0] for r in conn.execute("SELECT id FROM farms WHERE id = ANY(%s)", (list(farms),))}
        missing = [f for f in farms if f not in known]
        if missing:
            raise CommissionerError(f"farms: unknown farm(s) {', '.join(missing)}")
        for f in farms:
            conn.execute(
                "INSERT INTO farm_commissioners (farm_id, commissioner_id, min_severity, escalation_order)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (farm_id, commissioner_id) DO UPDATE SET"
                " min_severity = EXCLUDED.min_severity, escalation_order = EXCLUDED.escalation_order",
                (f, cid, min_severity, order),
            )


def unassign(conn: psycopg.Connection[Any], cid: int, farm: str) -> None:
    with conn.transaction():
        _stored(conn, cid)
        cur = conn.execute(
            "DELETE FROM farm_commissioners WHERE farm_id = %s AND commissioner_id = %s", (farm, cid)
        )
        if cur.rowcount == 0:
            raise UnknownCommissioner(f"farm: commissioner {cid} is not assigned to farm {farm!r}")


def list_commissioners(
    conn: psycopg.Connection[Any],
    *,
    farms: Sequence[str] | None = None,
    cid: int | None = None,
    include_retired: bool = True,
) -> list[Commissioner]:
    """Commissioners by id. ``farms``: only those assigned to one of them, with only those
    assignments shown (a farm-limited caller's view)."""
    rows = conn.execute(
        "SELECT c.id, c.name, c.channel, c.webhook_url, c.secret IS NOT NULL, c.language, c.phone,"
        " c.active, coalesce(array_agg(ARRAY[fc.farm_id, fc.escalation_order::text, fc.min_severity]"
        " ORDER BY fc.farm_id) FILTER (WHERE fc.farm_id IS NOT NULL), '{}'), c.created_at"
        " FROM commissioners c LEFT JOIN farm_commissioners fc ON fc.commissioner_id = c.id"
        " AND (%(farms)s::text[] IS NULL OR fc.farm_id = ANY(%(farms)s))"
        " WHERE (%(cid)s::int IS NULL OR c.id = %(cid)s) AND (%(retired)s OR c.active)"
        " GROUP BY c.id ORDER BY c.id",
        {"farms": None if farms is None else list(farms), "cid": cid, "retired": include_retired},
    ).fetchall()
    out = []
    for i, name, ch, url, has_secret, lang, phone, active, assigned, created in rows:
        if farms is not None and not assigned:
            continue
        links = [Assignment(f, int(o), s) for f, o, s in assigned]
        out.append(Commissioner(i, name, ch, mask(url, ch), has_secret, lang, phone, active, links, created))
    return out


def get(conn: psycopg.Connection[Any], cid: int, *, farms: Sequence[str] | None = None) -> Commissioner:
    found = list_commissioners(conn, farms=farms, cid=cid)
    if not found:
        raise UnknownCommissioner(f"id: no commissioner {cid}")
    return found[0]
