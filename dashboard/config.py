"""The dashboard's settings, read from ``AGRI_*`` environment variables (one validated object)."""

from __future__ import annotations

import functools
import os
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.settings import env_error_line


class DashboardConfigError(ValueError):
    """A dashboard setting is wrong; ``str()`` is one line naming the variable."""


class DashboardConfig(BaseSettings):
    """``AGRI_DATABASE_URL`` is shared with every service; the rest is ``AGRI_DASHBOARD_*``."""

    model_config = SettingsConfigDict(env_prefix="AGRI_", extra="ignore")

    database_url: str | None = None
    #: XYZ raster tiles for the map background, e.g. Tianditu or an in-house server:
    #: ``https://t0.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=KEY``. Unset: no tiles
    #: (the map draws farm boundaries and field blocks on a blank background, fully offline).
    dashboard_tile_url: str | None = None
    dashboard_tile_attribution: str = ""
    #: Public base URL of the dashboard, used in alert links: ``<url>/alerts?alert=<id>``.
    dashboard_url: str | None = None
    dashboard_lang: Literal["zh", "en"] = "zh"
    #: Seconds a query result is reused across page views (st.cache_data ttl).
    dashboard_cache_s: float = Field(30.0, ge=0, le=3600)
    #: A node whose last message is older than this is "offline".
    dashboard_offline_after_s: float = Field(1800.0, gt=0)

    @field_validator("dashboard_tile_url")
    @classmethod
    def _tile_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        if not all(k in v for k in ("{x}", "{y}", "{z}")):
            raise ValueError("must contain {x}, {y} and {z} (an XYZ tile URL)")
        return v


def load_config() -> DashboardConfig:
    """The settings for the current environment (parsed once per distinct set of AGRI_* values)."""
    return _load(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AGRI_"))))


@functools.lru_cache(maxsize=8)
def _load(env: tuple[tuple[str, str], ...]) -> DashboardConfig:
    try:
        return DashboardConfig()  # type: ignore[call-arg]
    except ValidationError as exc:
        raise DashboardConfigError(env_error_line(exc, DashboardConfig, "AGRI_")) from None
