"""Dashboard fixtures: a seeded TimescaleDB database and a fresh Streamlit cache per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import streamlit as st

from agri.bench.dashseed import Seeded, seed, seed_alerts, seed_sky

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def seeded(db_url: str) -> tuple[str, Seeded]:
    """Four farms (one of each kind) x 3 nodes, 8 days every 15 min, three alerts, NDVI of the
    orchard's two blocks every 5 days.

    The noise is seeded: on unseeded noise the detector marks about one point in 30,000 of these
    smooth curves as anomalous (score >= 0.2), which made the anomaly-marker test fail about once
    in a hundred runs. With this seed the highest score of the pig farm's air temperature in the
    last 24 h, outside the test's injected spike, was 0.109 at every start time tried (40 starts,
    37 min apart, covering a day).
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        s = seed(conn, nodes_per_farm=3, days=8, interval_s=900, now=datetime.now(UTC), noise_seed=0.1)
        alerts = seed_alerts(conn, s)
        seed_sky(conn, "longju-orchard", days=8)
    return db_url, replace(s, alerts=alerts)


@pytest.fixture
def dash_env(seeded: tuple[str, Seeded], monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """AGRI_DATABASE_URL pointing at the seeded database; caches cleared before and after."""
    for k in ("AGRI_DASHBOARD_TILE_URL", "AGRI_DASHBOARD_LANG", "AGRI_DASHBOARD_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AGRI_DATABASE_URL", seeded[0])
    st.cache_data.clear()
    st.cache_resource.clear()
    yield seeded[1]
    st.cache_data.clear()
    st.cache_resource.clear()
