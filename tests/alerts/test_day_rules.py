"""Day-scale derived rules with the shipped defaults, through the service on real TimescaleDB: the
pond's dawn DO forecast alerts hours before the oxygen is low, leaf wetness in the disease band
alerts a tea garden, a pen drinking less than in the same hours of its previous days alerts; their
look-alikes (a mild night decline, wet leaves in the cold, a pen drinking as usual) do not."""

from __future__ import annotations

import time

import numpy as np
import psycopg
import pytest

from tests.alerts.support import drain, q, write_series
from tests.ingest.support import register

pytestmark = pytest.mark.integration
STEP = 300.0
LOCAL = 8 * 3600.0  # farms are in Asia/Shanghai


def local_midnight(days_ago: int) -> float:
    now = time.time()
    return float((now + LOCAL) // 86400 * 86400 - LOCAL - days_ago * 86400)


def alerts(db_url: str, farm: str, rule: str) -> list[tuple[str, float, float | None, float]]:
    return [
        (str(s), float(a), None if b is None else float(b), float(v))
        for s, a, b, v in q(
            db_url,
            "SELECT subject, extract(epoch FROM started_at)::float8, extract(epoch FROM ended_at)::float8,"
            " value FROM alerts WHERE farm_id = %s AND rule = %s ORDER BY subject, started_at",
            farm,
            rule,
        )
    ]


def test_dawn_oxygen_forecast_alerts_before_the_sag(db_url: str) -> None:
    farm = "pond-dawn"
    register(db_url, farm, ["p-1", "p-2"], "pond")
    with psycopg.connect(db_url, autocommit=True) as conn:  # Wanzhou: sunset and sunrise from the place
        conn.execute("UPDATE farms SET lat = 30.86, lon = 108.49 WHERE id = %s", (farm,))
    m = local_midnight(3)
    t = m + 12 * 3600 + np.arange(int(22 * 3600 / STEP)) * STEP  # noon .. 10:00 next day
    h = (t - m) / 3600.0
    rng = np.random.default_rng(5)
    night = np.clip(h - 17.0, 0.0, None)
    fast = np.where(h < 31.0, 8.0 - 0.5 * night, 8.0) + rng.normal(0, 0.03, len(t))  # 2.0 at 07:00
    mild = np.where(h < 31.0, 8.0 - 0.15 * night, 8.0) + rng.normal(0, 0.03, len(t))  # 6.2 at 07:00
    write_series(db_url, farm, {"p-1": (t, {"do_mgl": fast}), "p-2": (t, {"do_mgl": mild})})
    drain(db_url)
    got = alerts(db_url, farm, "do-dawn")
    assert [s for s, *_ in got] == ["p-1/do_dawn"], got
    _, start, end, value = got[0]
    low = float(t[np.argmax(fast < 3.0)])  # when the measured DO actually drops below 3 (~03:00)
    assert start < low - 4 * 3600, (start, low)  # told hours before
    assert value < 3.0
    assert end is not None and end >= m + 31 * 3600  # resolves once the day's DO is back
    assert [s for s, *_ in alerts(db_url, farm, "do-low")] == ["p-1/do_mgl"]


def test_leaf_wetness_in_the_disease_band_alerts_a_tea_garden(db_url: str) -> None:
    farm = "tea-wet"
    register(db_url, farm, ["t-1", "t-2"], "tea_garden")
    m = local_midnight(3)
    t = m + np.arange(int(2 * 86400 / STEP)) * STEP
    h = (t - m) / 3600.0
    wet_h = (h >= 20.0) & (h < 34.0)  # 14 h of wet leaves, 20:00 .. 10:00
    leaf = np.where(wet_h, 92.0, 20.0)
    warm = np.where(wet_h, 20.0, 24.0)  # inside blister blight's band (level 2: 11 h at 15-25 °C)
    cold = np.where(wet_h, 8.0, 12.0)  # below every band
    write_series(db_url, farm, {"t-1": (t, {"leaf_wet": leaf, "air_t": warm}),
                                "t-2": (t, {"leaf_wet": leaf, "air_t": cold})})  # fmt: skip
    drain(db_url)
    got = alerts(db_url, farm, "leaf-wet-disease")
    assert [s for s, *_ in got] == ["t-1/disease_risk"], got
    _, start, end, value = got[0]
    wet_from = m + 20 * 3600
    assert wet_from + 11 * 3600 <= start <= wet_from + 11 * 3600 + 2 * STEP  # level 2 at 11 wet hours
    assert value == 2.0
    assert end is not None and end > m + 34 * 3600  # the wet period ended (2 h dry)


def test_drinking_water_down_against_the_same_hours_of_previous_days(db_url: str) -> None:
    farm = "pigs-water"
    register(db_url, farm, ["w-1", "w-2"], "pig_farm")
    m = local_midnight(9)
    t = m + np.arange(int(9 * 86400 / STEP)) * STEP
    h = ((t - m) / 3600.0) % 24
    rng = np.random.default_rng(9)
    usual = 4.0 + 1.5 * np.cos(2 * np.pi * (h - 15) / 24)  # litres per 5 min, more by day
    sick = usual + rng.normal(0, 0.2, len(t))
    drop_at = m + 8 * 86400 + 8 * 3600  # day 9, 08:00: the pen drinks half
    sick[t >= drop_at] *= 0.5
    well = usual + rng.normal(0, 0.2, len(t))
    write_series(db_url, farm, {"w-1": (t, {"water_l": np.clip(sick, 0, None)}),
                                "w-2": (t, {"water_l": np.clip(well, 0, None)})})  # fmt: skip
    drain(db_url)
    got = alerts(db_url, farm, "water-drop")
    assert [s for s, *_ in got] == ["w-1/water_drop"], got
    _, start, _, value = got[0]
    # 6 h window, half as much from drop_at: -20 % after 2.4 h (start of the 30-min hold)
    assert drop_at + 2 * 3600 <= start <= drop_at + 3 * 3600, (start - drop_at) / 3600
    assert value <= -0.2
