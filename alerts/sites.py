"""Where and in which time zone each farm is (``farms.lat``, ``lon``, ``tz``), read once per farm.

Used by farm context (a daily counter's rollover at local midnight) and by the day-scale derived
indices (the dawn DO forecast's night, from sunset to sunrise at the farm).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg


@dataclass(frozen=True, slots=True)
class Site:
    lat: float | None = None
    lon: float | None = None
    utc_offset_s: float = 0.0


@dataclass
class Sites:
    known: dict[str, Site] = field(default_factory=dict)

    def load(self, conn: psycopg.Connection[Any], farms: Iterable[str]) -> None:
        """Read the farms not known yet (an unknown farm gets a site at UTC with no place)."""
        new = sorted({f for f in farms if f not in self.known})
        if not new:
            return
        now = datetime.now(UTC)
        for f in new:
            self.known[f] = Site()
        for f, lat, lon, tz in conn.execute(
            "SELECT id, lat, lon, tz FROM farms WHERE id = ANY(%s)", (new,)
        ).fetchall():
            try:
                off = ZoneInfo(str(tz)).utcoffset(now)
            except (ZoneInfoNotFoundError, ValueError):
                off = None
            self.known[str(f)] = Site(
                None if lat is None else float(lat),
                None if lon is None else float(lon),
                off.total_seconds() if off is not None else 0.0,
            )

    def __getitem__(self, farm: str) -> Site:
        return self.known.get(farm, Site())
