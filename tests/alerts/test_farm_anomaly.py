"""The default anomaly rules use the farm-level decision (analytics.anomaly.farm): a soil-moisture
jump while it rains on the farm (gauge on another node) is explained and raises no alert; the same
jump of another probe with no rain is a fault and does."""

import time

import numpy as np
import pytest

from tests.alerts.support import drain, q, write_series
from tests.ingest.support import register

pytestmark = pytest.mark.integration
STEP = 300.0


def test_soil_jump_while_raining_is_explained_and_a_fault_alerts(db_url: str) -> None:
    farm = "orchard-ctx"
    register(db_url, farm, ["soil-1", "soil-2", "wx-1"], "orchard")
    n = 5 * 288
    t0 = float(int(time.time()) - 6 * 86400)
    t = t0 + np.arange(n) * STEP
    rng = np.random.default_rng(3)
    soil1 = 22 - 0.002 * np.arange(n) + rng.normal(0, 0.05, n)  # slowly drying
    soil2 = 25 - 0.002 * np.arange(n) + rng.normal(0, 0.05, n)
    rain = np.zeros(n)
    wet = 3 * 288  # day 3: a shower, and probe 1's moisture jumps with it
    rain[wet : wet + 3] = [4.0, 6.0, 2.0]
    soil1[wet + 1 :] += 12.0
    fault = 4 * 288  # a day later, no rain: probe 2 reads 12 points higher at once (a fault)
    soil2[fault:] += 12.0
    write_series(
        db_url,
        farm,
        {
            "soil-1": (t, {"soil_vwc": soil1}),
            "soil-2": (t, {"soil_vwc": soil2}),
            "wx-1": (t, {"rain_mm": rain}),
        },
    )
    drain(db_url, anomaly_floor=0.0)
    scores = dict(
        q(db_url, "SELECT n.node_id || '@' || extract(epoch FROM a.time)::bigint, a.score"
          " FROM anomaly_scores a JOIN series s ON s.id = a.series_id JOIN nodes n ON n.id = s.node_id"
          " WHERE s.metric = 'soil_vwc'")
    )  # fmt: skip
    # the detector alone finds both jumps surprising: the rain's context is what tells them apart
    assert scores[f"soil-1@{int(t[wet + 1])}"] >= 0.38 and scores[f"soil-2@{int(t[fault])}"] >= 0.38
    got = q(
        db_url,
        "SELECT subject, extract(epoch FROM started_at)::float8 FROM alerts WHERE farm_id = %s"
        " AND rule = 'soil-anomaly' ORDER BY started_at",
        farm,
    )
    assert ("soil-2/soil_vwc", float(t[fault])) in got, got
    assert not [s for subj, s in got if subj.startswith("soil-1/") and t[wet] <= s <= t[wet] + 3 * 3600], got
    # the rain gauge is weather: never an anomaly alert of its own
    assert not q(db_url, "SELECT 1 FROM alerts WHERE farm_id = %s AND subject LIKE 'wx-1/%%'", farm)
