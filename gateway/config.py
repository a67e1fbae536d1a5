"""Gateway settings: one validated object read from ``AGRI_GATEWAY_*`` environment variables.

A wrong value raises :class:`GatewayConfigError` whose message is one line naming the variable, e.g.
``AGRI_GATEWAY_FARM: farm id 'Farm 1' must match [a-z0-9-]{1,32} ...``. The rules file named by
``AGRI_GATEWAY_RULES_FILE`` is parsed here too, so a bad rule stops the gateway at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.protocol import FarmId, GatewayId
from kernel.settings import MIN_SECRET_LEN, PLACEHOLDER_SECRETS, MqttUrl, default_home, env_error_line

ENV_PREFIX = "AGRI_GATEWAY_"
MIB = 1024 * 1024


class GatewayConfigError(ValueError):
    """A gateway setting or the rules file is wrong; ``str()`` is one line naming the variable."""


def _mqtt_url(v: str) -> str:
    MqttUrl(v)
    return v


class GatewaySettings(BaseSettings):
    """Settings of one farm gateway. Field ``x`` is read from ``AGRI_GATEWAY_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    farm: FarmId
    id: GatewayId
    # The farm's own broker (nodes publish there) and the central broker (batches go there).
    local_url: str
    upstream_url: str

    spool_path: Path = Field(default_factory=lambda: default_home() / "gateway" / "spool.db")
    # Payload bytes the spool may hold; beyond it the oldest messages are dropped and counted.
    spool_max_bytes: int = Field(256 * MIB, ge=4096)
    # FULL: a message acked to the node survives power loss. NORMAL: survives a process crash only.
    spool_sync: Literal["full", "normal"] = "full"
    dead_letter_max_rows: int = Field(10_000, ge=10)

    batch_max_messages: int = Field(500, ge=1, le=50_000)
    batch_max_bytes: int = Field(512 * 1024, ge=1024, le=2 * MIB)  # node payload bytes per envelope
    linger_s: float = Field(0.5, ge=0, le=60)  # how long a partial batch waits for more messages
    max_inflight_batches: int = Field(8, ge=1, le=100)

    backoff_min_s: float = Field(1.0, gt=0, le=60)
    backoff_max_s: float = Field(60.0, gt=0, le=3600)
    upstream_keepalive_s: int = Field(30, ge=5, le=3600)
    local_session_expiry_s: int = Field(7 * 86400, ge=60)
    health_interval_s: float = Field(30.0, ge=0.2, le=3600)

    rules_file: Path | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_max_attempts: int = Field(10, ge=1, le=1000)

    @field_validator("local_url", "upstream_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _mqtt_url(v)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("rules_file")
    @classmethod
    def _rules_file(cls, v: Path | None) -> Path | None:
        if v is None or str(v) == "":
            return None
        if not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError(f"{ENV_PREFIX}BACKOFF_MAX_S must be >= {ENV_PREFIX}BACKOFF_MIN_S")
        if self.webhook_url is not None:
            raw = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < MIN_SECRET_LEN:
                raise ValueError(
                    f"{ENV_PREFIX}WEBHOOK_SECRET: a webhook needs a signing secret of at least "
                    f"{MIN_SECRET_LEN} characters (generate one: openssl rand -hex 32)"
                )
        if self.rules_file is not None and self.webhook_url is None:
            raise ValueError(f"{ENV_PREFIX}WEBHOOK_URL: local rules need a webhook to fire through")
        return self

    @property
    def client_id(self) -> str:
        """Stable MQTT client id: the farm broker keeps un-acked messages for this session."""
        return f"agri-gw-{self.farm}-{self.id}"


def load_gateway_settings(**overrides: object) -> GatewaySettings:
    """Read gateway settings from the environment; raise :class:`GatewayConfigError` (one line)."""
    try:
        return GatewaySettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise GatewayConfigError(env_error_line(exc, GatewaySettings, ENV_PREFIX)) from None
