"""Signed, expiring acknowledge links: ``{base}/alerts/{id}/ack?by=..&exp=..&sig=..``.

``sig`` = base64url(HMAC-SHA256(secret_key, "ack.{id}.{by}.{exp}")) without padding. The API serves
the route; it calls :func:`verify_ack` (pure) and then acknowledges like ``agri alerts ack``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote, urlsplit

DEFAULT_TTL_S = 7 * 86400


class LinkError(ValueError):
    """The link is forged, altered or expired; ``str()`` says which."""


def _sig(key: bytes, alert_id: int, by: str, exp: int) -> str:
    mac = hmac.new(key, f"ack.{alert_id}.{by}.{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def ack_link(
    base_url: str, key: bytes, alert_id: int, by: str, now: float, ttl_s: int = DEFAULT_TTL_S
) -> str:
    exp = int(now) + ttl_s
    sig = _sig(key, alert_id, by, exp)
    return f"{base_url.rstrip('/')}/alerts/{alert_id}/ack?by={quote(by, safe='')}&exp={exp}&sig={sig}"


def verify_ack(url: str, key: bytes, now: float) -> tuple[int, str]:
    """(alert id, who) of a valid link; :class:`LinkError` otherwise."""
    parts = urlsplit(url)
    segs = parts.path.rstrip("/").split("/")
    if len(segs) < 3 or segs[-1] != "ack" or segs[-3] != "alerts" or not segs[-2].isdigit():
        raise LinkError("not an acknowledge link")
    alert_id = int(segs[-2])
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    try:
        by, exp, sig = q["by"], int(q["exp"]), q["sig"]
    except (KeyError, ValueError):
        raise LinkError("link lacks by, exp or sig") from None
    if not hmac.compare_digest(sig, _sig(key, alert_id, by, exp)):
        raise LinkError("bad signature")
    if now > exp:
        raise LinkError("link expired")
    return alert_id, by
