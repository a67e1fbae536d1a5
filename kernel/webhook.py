"""Webhook channel facts shared by the alert service (which formats and signs messages) and the
commissioner registry (which validates what is stored): the channel names and the Standard
Webhooks secret format. Pure."""

from __future__ import annotations

import base64
from typing import Literal

Channel = Literal["generic", "wecom", "dingtalk", "feishu"]
CHANNELS: tuple[Channel, ...] = ("generic", "wecom", "dingtalk", "feishu")


def generic_secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret ``whsec_<base64>`` (``ValueError`` otherwise)."""
    if not secret.startswith("whsec_"):
        raise ValueError("must start with 'whsec_' followed by base64 (Standard Webhooks)")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError("the part after 'whsec_' is not valid base64") from None
    if len(key) < 16:
        raise ValueError("the key must be at least 16 bytes (24+ base64 characters)")
    return key
