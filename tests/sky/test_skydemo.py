"""The demo's generated imagery imports through the catalog: scenes, fusion flags, a drone flight."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from agri.stack import district
from agri.stack.skydemo import import_demo_imagery
from sky.fusion import farm_fusion
from store import sky as store_sky

pytestmark = pytest.mark.integration


class _Stack:
    def __init__(self, url: str) -> None:
        self.url = url

    def database_url(self) -> str:
        return self.url


def test_demo_imagery(db: psycopg.Connection[tuple[object, ...]], db_url: str, tmp_path: Path) -> None:
    farms = district.FARMS[:1]
    district.seed_farms(db, farms)
    assert import_demo_imagery(_Stack(db_url), tmp_path, farms) == 2
    f = farms[0]
    assert len(store_sky.block_series(db, f.id, "b1", "ndvi_median")) == 2
    assert store_sky.block_series(db, f.id, "b1", "canopy_frac", source="drone")
    flags = {x.block_id: x for x in farm_fusion(db, f.id)}
    assert flags["b2"].z is not None and flags["b2"].z < -2  # the withering block stands out
    assert store_sky.get_overlay(db, f.id, "ndvi", "satellite") is not None
