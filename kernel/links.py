"""Signed, expiring acknowledge links: ``{base}/ack/{id}?by=..&exp=..&sig=..``.

A commissioner taps the link in a WeCom / DingTalk / Feishu message. ``base`` is the API's public
address; the API's ``/ack/{id}`` route shows a confirmation page on GET (chat apps fetch links for
previews, so a GET must never change anything) and acknowledges on POST after :func:`verify_ack`.

``sig`` = base64url(HMAC-SHA256(key, "ack.{id}.{by}.{exp}")) without padding, where ``key`` is
:func:`derive_key` of the deployment's secret key, so the alert service that writes links and the
API that checks them agree without sharing anything but ``AGRI_SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote, urlsplit

DEFAULT_TTL_S = 7 * 86400
DEV_SECRET = "development-only-link-key"


class LinkError(ValueError):
    """The link is forged, altered or expired; ``str()`` says which."""


def derive_key(secret: str | None) -> bytes:
    """The link key of a deployment secret (the development key when none is configured)."""
    return hashlib.sha256(b"agri-ack-link:" + (secret or DEV_SECRET).encode()).digest()


def _sig(key: bytes, alert_id: int, by: str, exp: int) -> str:
    mac = hmac.new(key, f"ack.{alert_id}.{by}.{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def ack_link(
    base_url: str, key: bytes, alert_id: int, by: str, now: float, ttl_s: int = DEFAULT_TTL_S
) -> str:
    exp = int(now) + ttl_s
    sig = _sig(key, alert_id, by, exp)
    return f"{base_url.rstrip('/')}/ack/{alert_id}?by={quote(by, safe='')}&exp={exp}&sig={sig}"


def verify(alert_id: int, by: str, exp: int, sig: str, key: bytes, now: float) -> None:
    """Raise :class:`LinkError` unless ``sig`` signs (alert_id, by, exp) and ``exp`` has not passed."""
    if not hmac.compare_digest(sig.encode(), _sig(key, alert_id, by, exp).encode()):
        raise LinkError("bad signature")
    if now > exp:
        raise LinkError("link expired")


def verify_ack(url: str, key: bytes, now: float) -> tuple[int, str]:
    """(alert id, who) of a valid link; :class:`LinkError` otherwise."""
    parts = urlsplit(url)
    segs = parts.path.rstrip("/").split("/")
    if len(segs) < 2 or segs[-2] != "ack" or not segs[-1].isdigit():
        raise LinkError("not an acknowledge link")
    alert_id = int(segs[-1])
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    try:
        by, exp, sig = q["by"], int(q["exp"]), q["sig"]
    except (KeyError, ValueError):
        raise LinkError("link lacks by, exp or sig") from None
    verify(alert_id, by, exp, sig, key, now)
    return alert_id, by
