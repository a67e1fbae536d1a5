"""Analytics on demand over HTTP: QC flags, anomaly scores, farm indices per local day."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from analytics.agro import gdd_daily, thi_nrc1971
from store.registry import ensure_series, upsert_farm, upsert_node
from tests.api.conftest import Tokens
from tests.api.support import put

pytestmark = pytest.mark.integration

DAY0 = datetime(2026, 1, 10, tzinfo=UTC) - timedelta(hours=8)  # local midnight, Asia/Shanghai


@pytest.fixture(scope="module")
def farm(db_url: str, tok: Tokens) -> dict[str, int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        upsert_farm(
            conn, "farm-ix", "Ix", "orchard", tz="Asia/Shanghai", lat=30.8, lon=108.4, elevation_m=200
        )
        n = upsert_node(conn, "farm-ix", "w-1")
        sids = {
            m: ensure_series(conn, n.pk, m) for m in ("air_t", "air_rh", "rain_mm", "leaf_wet", "wind_ms")
        }
        hours = [DAY0 + timedelta(minutes=15 * i) for i in range(4 * 24 * 3)]
        temp = [8.0 + 6.0 * math.sin(2 * math.pi * (i / 96 - 0.375)) for i in range(len(hours))]
        temp[10] = -4.0  # a frosty quarter hour on day 1
        put(conn, sids["air_t"], list(zip(hours, temp, strict=True)))
        put(conn, sids["air_rh"], [(t, 95.0 if i % 96 < 40 else 60.0) for i, t in enumerate(hours)])
        put(conn, sids["leaf_wet"], [(t, 80.0 if i % 96 < 48 else 10.0) for i, t in enumerate(hours)])
        put(conn, sids["wind_ms"], [(t, 2.0) for t in hours])
        put(conn, sids["rain_mm"], [(t, 0.2) for t in hours[:10]])
    return sids


def test_indices_per_local_day(client: httpx.Client, tok: Tokens, farm: dict[str, int]) -> None:
    r = client.get(
        "/farms/farm-ix/indices", params={"first": "2026-01-10", "last": "2026-01-12"}, headers=tok.h("read")
    )
    assert r.status_code == 200, r.text
    ix = r.json()
    assert ix["day"] == ["2026-01-10", "2026-01-11", "2026-01-12"] and ix["crop"] == "citrus_70"
    assert ix["tmin_c"][0] == -4.0 and ix["rain_mm"][0] == pytest.approx(2.0)
    assert all(0 < e < 3 for e in ix["et0_mm"])  # a cold January day in Wanzhou
    assert ix["gdd"] == [round(float(x), 3) for x in gdd_daily(ix["tmax_c"], ix["tmin_c"], base=13.0)]
    assert ix["frost_hours"][0] > 0 and ix["frost_hours"][1] == 0
    assert ix["chill_hours"][1] > 0
    assert float(thi_nrc1971(8.0, 60.0)) < ix["thi_max"][0] < float(thi_nrc1971(14.5, 95.0))
    assert ix["thi_band"][0] == "normal"
    assert ix["wet_hours"][0] >= 11 and ix["disease_risk"][0] == 0  # wet, but too cold for infection
    r = client.get(
        "/farms/farm-ix/indices", params={"first": "2026-01-12", "last": "2026-01-10"}, headers=tok.h("read")
    )
    assert r.status_code == 400
    r = client.get(
        "/farms/farm-ix/indices",
        params={"first": "2026-01-10", "last": "2026-01-10"},
        headers=tok.h("farm_a_reader"),
    )
    assert r.status_code == 403


def test_qc_and_anomaly_of_a_series(client: httpx.Client, tok: Tokens, farm: dict[str, int]) -> None:
    params = {"series_id": farm["air_t"], "start": "2026-01-10T00:00", "end": "2026-01-13T00:00"}
    r = client.get("/analytics/qc", params=params, headers=tok.h("read"))
    assert r.status_code == 200, r.text
    q = r.json()
    assert len(q["flag"]) == len(q["value"]) == 288
    assert q["flag_names"]["1"] == "pass"
    assert q["tests"]["gross_range"][10] == 1 and q["flag"][10] in (3, 4)  # the -4 °C dip is a spike
    r = client.get("/analytics/anomaly", params=params, headers=tok.h("read"))
    a = r.json()
    assert len(a["score"]) == 288 and all(s is None or 0 <= s <= 1 for s in a["score"])
    assert (
        client.get("/analytics/qc", params={**params, "series_id": 999999}, headers=tok.h("read")).status_code
        == 404
    )


def test_anomaly_request_is_bounded(
    client: httpx.Client, tok: Tokens, farm: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring runs at a few thousand readings per second, so a request counts the readings of
    its range and warm-up first and refuses more than ANOMALY_MAX_POINTS with a clear reason
    (QC, which is far cheaper, keeps the general limit)."""
    from api.queries import analytics

    params = {"series_id": farm["air_t"], "start": "2026-01-11T00:00", "end": "2026-01-12T00:00"}
    # 96 readings in the day, 96 more in the warm-up (the data start the day before)
    monkeypatch.setattr(analytics, "ANOMALY_MAX_POINTS", 191)
    r = client.get("/analytics/anomaly", params=params, headers=tok.h("read"))
    assert r.status_code == 400, r.text
    detail = r.text
    assert "192 readings in the range and its 7-day warm-up" in detail and "at most 191" in detail, detail
    assert "ask for a shorter range" in detail
    assert client.get("/analytics/qc", params=params, headers=tok.h("read")).status_code == 200
    monkeypatch.setattr(analytics, "ANOMALY_MAX_POINTS", 192)
    r = client.get("/analytics/anomaly", params=params, headers=tok.h("read"))
    assert r.status_code == 200, r.text
    assert len(r.json()["score"]) == 96
