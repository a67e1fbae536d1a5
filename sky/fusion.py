"""Sky and ground together for one farm: the latest NDVI per block against the other blocks, read
with the soil moisture of the probes placed in each block (``analytics.imagery.fuse_blocks``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from analytics.imagery import FusionConfig, fuse_blocks
from sky.errors import InputError
from store import sky as store_sky

SOIL_WINDOW = timedelta(hours=48)  # soil moisture averaged over the two days before the scene


@dataclass(frozen=True)
class BlockFlag:
    block_id: str
    when: datetime
    ndvi: float
    ndvi_prev: float | None
    soil_vwc: float | None
    z: float | None
    flag: str  # none | water_stress | disease_or_damage | ndvi_drop
    reason: str


def farm_fusion(
    conn: psycopg.Connection[Any],
    farm_id: str,
    *,
    metric: str = "ndvi_median",
    ks: dict[str, float] | None = None,
    config: FusionConfig | None = None,
) -> list[BlockFlag]:
    """Flags for every block with a value on the farm's newest imagery date."""
    dates = store_sky.farm_index_dates(conn, farm_id, metric)
    if not dates:
        raise InputError(f"farm {farm_id!r} has no {metric} series yet")
    now = store_sky.farm_index_on(conn, farm_id, metric, dates[0])
    prev = store_sky.farm_index_on(conn, farm_id, metric, dates[1]) if len(dates) > 1 else {}
    soil = store_sky.block_soil_vwc(conn, farm_id, dates[0] - SOIL_WINDOW, dates[0] + timedelta(hours=1))
    blocks = sorted(now)
    nan = float("nan")
    v = np.array([now[b] for b in blocks])
    p = np.array([prev.get(b, nan) for b in blocks]) if prev else None
    vwc = np.array([soil.get(b, nan) for b in blocks])
    k = np.array([(ks or {}).get(b, nan) for b in blocks])
    res = fuse_blocks(v, ndvi_prev=p, soil_vwc=vwc, ks=k, config=config)
    out = []
    for i, b in enumerate(blocks):
        out.append(
            BlockFlag(
                b,
                dates[0],
                float(v[i]),
                prev.get(b),
                soil.get(b),
                float(res.z[i]) if np.isfinite(res.z[i]) else None,
                res.names()[i],
                res.reasons[i],
            )
        )
    return out
