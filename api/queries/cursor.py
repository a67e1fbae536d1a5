"""Opaque, stable pagination cursors: the sort key of the last row returned, base64 JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from api.queries.errors import InvalidArgument


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
