"""One validated settings object, read from ``AGRI_*`` environment variables.

Every service and the CLI call :func:`load_settings`; a wrong value raises :class:`SettingsError`
whose message is one line naming the variable. Outside development mode, secrets must be set
explicitly and must not be the documented placeholders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AGRI_"
# Placeholder values that appear in docs and examples; never acceptable in production.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "changethis", "secret", "password", "agri"})
MIN_SECRET_LEN = 16


class SettingsError(ValueError):
    """A setting has a wrong value; ``str()`` is one line naming the environment variable."""


def default_home() -> Path:
    """Data directory of the embedded stack.

    As root the embedded PostgreSQL runs as the ``postgres`` user, which cannot enter ``/root``,
    so root gets ``/var/lib/agri``; other users get ``$XDG_DATA_HOME/agri``.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/agri")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "agri"


class MqttUrl:
    """Parsed ``mqtt://user:password@host:port`` (``mqtts://`` for TLS)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError("missing host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        self.tls = parts.scheme in ("mqtts", "ssl")
        self.host: str = parts.hostname
        self.port: int = port or (8883 if self.tls else 1883)
        self.username: str | None = unquote(parts.username) if parts.username else None
        self.password: str | None = unquote(parts.password) if parts.password else None

    def public(self) -> str:
        """The URL without its password (safe to print and log)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def redact_dsn(dsn: str) -> str:
    """A PostgreSQL URL with the password removed."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + "@"
    return parts._replace(netloc=user + netloc[-1]).geturl()


class Settings(BaseSettings):
    """All configuration of the platform. Field ``x`` is read from ``AGRI_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    mode: Literal["development", "production", "test"] = "development"
    home: Path = Field(default_factory=default_home)

    # External services; when unset, `agri up` runs embedded ones under `home`.
    database_url: str | None = None
    mqtt_url: str | None = None

    # Embedded stack ports (loopback only). Chosen away from the machine-wide defaults.
    pg_port: int = Field(55432, ge=1, le=65535)
    mqtt_port: int = Field(11883, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8088, ge=1, le=65535)
    dashboard_port: int = Field(8501, ge=1, le=65535)
    # Public addresses written into alert messages (what a commissioner's phone can reach); default:
    # the embedded stack's loopback addresses.
    public_api_url: str | None = None
    public_dashboard_url: str | None = None

    # Secrets: generated and stored under `home` in development; required in production.
    secret_key: SecretStr | None = None
    admin_token: SecretStr | None = None

    # Ingest validation limits.
    clock_skew_s: float = Field(300.0, gt=0)
    retention_days: int = Field(730, ge=1)

    # Sky (imagery): STAC API searched by `agri sky fetch`, its collection, and the valid-pixel
    # fraction below which a block-date is skipped.
    sky_stac_url: str = "https://earth-search.aws.element84.com/v1"
    sky_collection: str = "sentinel-2-l2a"
    sky_min_valid: float = Field(0.5, ge=0.0, le=1.0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["logfmt", "json"] = "logfmt"

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"must be a postgresql:// URL, got scheme {parts.scheme or 'none'!r}")
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("missing host")
        return v

    @field_validator("public_api_url", "public_dashboard_url")
    @classmethod
    def _check_public_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// URL with a host")
        return v.rstrip("/")

    @property
    def api_url(self) -> str:
        """The API's address as others reach it (acknowledge links in alert messages)."""
        return self.public_api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address as others reach it (links in alert messages)."""
        return self.public_dashboard_url or f"http://{self.api_host}:{self.dashboard_port}"

    @field_validator("sky_stac_url")
    @classmethod
    def _check_stac_url(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("must be an http(s):// URL of a STAC API")
        return v.rstrip("/")

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        MqttUrl(v)
        return v

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.mode != "production":
            return self
        for name in ("secret_key", "admin_token"):
            value: SecretStr | None = getattr(self, name)
            raw = value.get_secret_value() if value is not None else ""
            if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < MIN_SECRET_LEN:
                raise ValueError(
                    f"{ENV_PREFIX}{name.upper()}: production mode needs a non-default secret of at "
                    f"least {MIN_SECRET_LEN} characters (generate one: openssl rand -hex 32)"
                )
        return self

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @property
    def embedded_mqtt(self) -> bool:
        return self.mqtt_url is None

    def mqtt(self) -> MqttUrl | None:
        return MqttUrl(self.mqtt_url) if self.mqtt_url else None


Loc = tuple[int | str, ...]
_SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*):\S*@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|key)=[^&\s]*")


def redact(text: str) -> str:
    """``text`` with URL passwords (``scheme://user:pw@``) and ``password=...`` pairs masked."""
    return _KV_PASSWORD.sub(r"\1=***", _URL_PASSWORD.sub(r"\1:***@", text))


def secret_name(name: str) -> bool:
    """Whether a setting's or field's name says it holds a secret (its value is never shown)."""
    return any(w in name.upper() for w in _SECRET_WORDS)


def _dotted(loc: Loc) -> str:
    return ".".join(str(x) for x in loc)


def error_line(
    exc: ValidationError,
    *,
    where: Callable[[Loc], str] = _dotted,
    got: Callable[[Loc], str | None] = lambda _loc: None,
    secrets: Sequence[str] = (),
) -> str:
    """One line for every error of a pydantic ``ValidationError``: ``where: what (got 'value')``.

    The one place that turns validation errors into messages for people (settings, config files,
    rules). ``where`` names a location, ``got`` gives the raw input to quote. No secret leaks: a
    value is quoted only if its name is not secret-like, URL passwords are masked in values and
    messages, and every string in ``secrets`` is masked wherever it appears.
    """
    scrub = sorted((x for x in secrets if len(x) >= 4), key=len, reverse=True)
    msgs = []
    for err in exc.errors():
        loc: Loc = tuple(err.get("loc") or ())
        if err.get("type") == "missing":
            msg = "required (not set)"
        else:
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        name = where(loc) if loc else ""
        value = got(loc) if loc else None
        if value is not None and not secret_name(name):
            msg += f" (got {redact(value)!r})"
        msg = redact(msg)
        for x in scrub:
            msg = msg.replace(x, "***")
        msgs.append(f"{name}: {msg}" if name else msg)
    return "; ".join(msgs)


def env_error_line(exc: ValidationError, model: type[BaseSettings], prefix: str) -> str:
    """:func:`error_line` for settings read from ``prefix``-ed environment variables."""
    secret_fields = {
        n for n, f in model.model_fields.items() if "Secret" in str(f.annotation) or secret_name(n)
    }

    def var(loc: Loc) -> str:
        return prefix + str(loc[0]).upper()

    def got(loc: Loc) -> str | None:
        return None if loc[0] in secret_fields else os.environ.get(var(loc))

    secrets = [os.environ.get(prefix + n.upper(), "") for n in secret_fields]
    return error_line(exc, where=var, got=got, secrets=secrets)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`SettingsError` with a one-line message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(env_error_line(exc, Settings, ENV_PREFIX)) from None
