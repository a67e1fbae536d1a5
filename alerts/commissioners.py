"""Commissioners (科技特派员) and their farm assignments: validated input, all-or-nothing writes.

A mistake raises :class:`CommissionerError` naming the key (``url: ...``, ``secret: ...``) and
writes nothing; secrets are stored but never returned by :func:`list_commissioners`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg

from alerts.channels import CHANNELS, generic_secret_key
from kernel.protocol import check_id

SEVERITIES = ("info", "warning", "critical")


class CommissionerError(ValueError):
    """Bad commissioner input; ``str()`` starts with the offending key."""


@dataclass(frozen=True)
class Commissioner:
    id: int
    name: str
    channel: str
    url: str  # with any robot key masked
    has_secret: bool
    language: str
    active: bool
    farms: list[str]


def _mask(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query="…" if parts.query else "").geturl()


def validate(name: str, channel: str, url: str, secret: str | None, language: str) -> None:
    if not name.strip() or len(name) > 64:
        raise CommissionerError("name: must be 1-64 characters")
    if channel not in CHANNELS:
        raise CommissionerError(f"channel: {channel!r} must be one of {', '.join(CHANNELS)}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommissionerError(f"url: must be an http(s) URL with a host, got {url[:80]!r}")
    if channel == "wecom" and "key=" not in parts.query:
        raise CommissionerError("url: a WeCom robot URL carries its key (…/webhook/send?key=...)")
    if channel == "dingtalk" and "access_token=" not in parts.query:
        raise CommissionerError("url: a DingTalk robot URL carries access_token=...")
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
    if language not in ("zh", "en"):
        raise CommissionerError(f"language: {language!r} must be zh or en")


def add(
    conn: psycopg.Connection[Any], name: str, channel: str, url: str, secret: str | None = None,
    language: str = "zh", phone: str | None = None,
) -> int:  # fmt: skip
    validate(name, channel, url, secret, language)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO commissioners (name, phone, channel, webhook_url, secret, language) VALUES"
            " (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET phone = EXCLUDED.phone,"
            " channel = EXCLUDED.channel, webhook_url = EXCLUDED.webhook_url, secret = EXCLUDED.secret,"
            " language = EXCLUDED.language, active = true RETURNING id",
            (name, phone, channel, url, secret, language),
        ).fetchone()
    assert row is not None
    return int(row[0])


def assign(
    conn: psycopg.Connection[Any], name: str, farms: list[str], min_severity: str = "warning", order: int = 0
) -> None:
    """Assign a commissioner to farms (all or none)."""
    if min_severity not in SEVERITIES:
        raise CommissionerError(f"min_severity: {min_severity!r} must be one of {', '.join(SEVERITIES)}")
    if not 0 <= order <= 9:
        raise CommissionerError(f"order: {order} must be 0 (told at once) .. 9")
    if not farms:
        raise CommissionerError("farms: name at least one farm")
    for f in farms:
        try:
            check_id("farm", f)
        except ValueError as exc:
            raise CommissionerError(f"farms: {exc}") from None
    with conn.transaction():
        row = conn.execute("SELECT id FROM commissioners WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise CommissionerError(f"name: no commissioner {name!r} (add one first)")
        known = {r[0] for r in conn.execute("SELECT id FROM farms WHERE id = ANY(%s)", (farms,)).fetchall()}
        missing = [f for f in farms if f not in known]
        if missing:
            raise CommissionerError(f"farms: unknown farm(s) {', '.join(missing)}")
        for f in farms:
            conn.execute(
                "INSERT INTO farm_commissioners (farm_id, commissioner_id, min_severity, escalation_order)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (farm_id, commissioner_id) DO UPDATE SET"
                " min_severity = EXCLUDED.min_severity, escalation_order = EXCLUDED.escalation_order",
                (f, row[0], min_severity, order),
            )


def list_commissioners(conn: psycopg.Connection[Any]) -> list[Commissioner]:
    rows = conn.execute(
        "SELECT c.id, c.name, c.channel, c.webhook_url, c.secret IS NOT NULL, c.language, c.active,"
        " coalesce(array_agg(fc.farm_id || ':' || fc.escalation_order || ':' || fc.min_severity"
        " ORDER BY fc.farm_id) FILTER (WHERE fc.farm_id IS NOT NULL), '{}')"
        " FROM commissioners c LEFT JOIN farm_commissioners fc ON fc.commissioner_id = c.id"
        " GROUP BY c.id ORDER BY c.id"
    ).fetchall()
    return [Commissioner(i, n, ch, _mask(u), s, lang, a, list(f)) for i, n, ch, u, s, lang, a, f in rows]
