"""Sky and ground together for one farm: the latest NDVI per block against the other blocks, read
with the soil moisture of the probes placed in each block (``analytics.imagery.fuse_blocks``).

The query and fusion live in :func:`store.sky.farm_fusion` (the alert service's imagery rule uses
the same); this adds the sky layer's error type.
"""

from __future__ import annotations

from typing import Any

import psycopg

from analytics.imagery import FusionConfig
from sky.errors import InputError
from store import sky as store_sky
from store.sky import SOIL_WINDOW as SOIL_WINDOW
from store.sky import BlockFlag as BlockFlag


def farm_fusion(
    conn: psycopg.Connection[Any],
    farm_id: str,
    *,
    metric: str = "ndvi_median",
    ks: dict[str, float] | None = None,
    config: FusionConfig | None = None,
) -> list[BlockFlag]:
    """Flags for every block with a value on the farm's newest imagery date."""
    try:
        return store_sky.farm_fusion(conn, farm_id, metric=metric, ks=ks, config=config)
    except LookupError as exc:
        raise InputError(str(exc)) from None
