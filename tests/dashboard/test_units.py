"""The dashboard's pure parts: translation table, state rules, bucket choice, export, map, settings."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from dashboard import data, export, mapview
from dashboard.config import DashboardConfigError, load_config
from dashboard.i18n import TEXT, fmt_age, fmt_time, fmt_value, metric_label, t
from dashboard.state import farm_state, node_state, uplink_state

ROOT = Path(__file__).resolve().parents[2]


def test_every_text_has_both_languages_and_the_same_fields() -> None:
    for key, (zh, en) in TEXT.items():
        assert zh and en, key
        assert set(re.findall(r"{(\w+)}", zh)) == set(re.findall(r"{(\w+)}", en)), key


def test_every_key_the_pages_use_is_in_the_table() -> None:
    used: set[str] = set()
    key = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.]*[a-z0-9_])["']""")
    for path in (ROOT / "dashboard").rglob("*.py"):
        used |= set(key.findall(path.read_text(encoding="utf-8")))
    assert used, "the scan found no t(...) call"
    assert sorted(used - set(TEXT)) == []


def test_formatting_in_the_farm_time_zone_and_catalog_units() -> None:
    t0 = datetime(2026, 5, 1, 6, 3, tzinfo=UTC)
    assert fmt_time(t0, "Asia/Shanghai") == "2026-05-01 14:03"
    assert fmt_time(t0, "Europe/Brussels", short=True) == "05-01 08:03"
    assert fmt_value("h2s_ppm", 1.23456) == "1.23" and fmt_value("co2_ppm", 1234.6) == "1235"
    assert (
        metric_label("air_t", "zh") == "空气温度 (°C)"
        and metric_label("air_t", "en") == "Air temperature (°C)"
    )
    assert fmt_age(7200, "zh") == "2 小时前" and fmt_age(30, "en") == "just now"
    assert t("agro.limit", "en", limit=25, unit="ppm") == "limit 25 ppm"


def test_state_rules() -> None:
    assert node_state(None, offline_after_s=1800) == "offline"
    assert node_state(4000, offline_after_s=1800, critical=1) == "offline"  # silence first
    assert node_state(60, offline_after_s=1800, critical=1) == "alert"
    assert node_state(60, offline_after_s=1800, battery_v=3.3) == "warning"
    assert node_state(60, offline_after_s=1800, battery_v=3.9) == "ok"
    assert farm_state(["ok", "ok"], critical=0, warning=0) == "ok"
    assert farm_state(["ok", "offline"], critical=0, warning=0) == "warning"
    assert farm_state(["offline", "offline"], critical=0, warning=0) == "offline"
    assert farm_state(["offline"], critical=1, warning=0) == "alert"
    assert uplink_state(None, offline_after_s=600) == "never"
    assert uplink_state(601, offline_after_s=600) == "down"


@pytest.mark.parametrize(
    ("span", "bucket"),
    [(timedelta(hours=6), "1min"), (timedelta(days=1), "5min"), (timedelta(days=2), "5min"),
     (timedelta(days=3), "5min"), (timedelta(days=7), "1h"), (timedelta(days=30), "1h"),
     (timedelta(days=60), "1d")],
)  # fmt: skip
def test_bucket_keeps_charts_small_and_long_ranges_on_rollups(span: timedelta, bucket: str) -> None:
    end = datetime(2026, 5, 1, tzinfo=UTC)
    got = data.choose_bucket(end - span, end)
    assert got == bucket
    width = dict(data.BUCKETS)[got]
    assert span.total_seconds() / width <= data.MAX_POINTS or got == "1d"


def test_export_csv_and_excel_keep_local_times_and_chinese() -> None:
    frame = pd.DataFrame(
        {
            "节点": ["n-1", "n-1"],
            "time": pd.DatetimeIndex(["2026-05-01T06:00Z", "2026-05-01T07:00Z"]).tz_convert("Asia/Shanghai"),
            "air_t": [21.5, None],
        }
    )
    csv = export.to_csv(frame)
    assert csv.startswith("\ufeff".encode()) and "节点" in csv.decode("utf-8-sig")
    assert "2026-05-01 14:00:00" in csv.decode("utf-8-sig")
    wb = openpyxl.load_workbook(io.BytesIO(export.to_xlsx(frame)))
    rows = list(wb.active.iter_rows(values_only=True))
    assert rows[0] == ("节点", "time", "air_t")
    assert rows[1][1] == datetime(2026, 5, 1, 14, 0) and rows[1][2] == 21.5 and rows[2][2] is None


def test_map_draws_boundaries_and_tiles_only_when_configured() -> None:
    farms = pd.DataFrame({"id": ["f"], "name": ["农场"], "lat": [30.8], "lon": [108.4], "state": ["ok"]})
    nodes = pd.DataFrame(
        {"farm_id": ["f", "f"], "node_id": ["a", "b"], "lat": [30.8, None], "lon": [108.41, None],
         "state": ["alert", "offline"]}
    )  # fmt: skip
    gws = pd.DataFrame(columns=["gateway_id", "lat", "lon", "uplink"])
    ring = [[108.3, 30.7], [108.5, 30.7], [108.5, 30.9], [108.3, 30.7]]
    fig = mapview.overview_map(
        farms, nodes, gws, "zh", boundaries={"f": {"type": "Polygon", "coordinates": [ring]}}
    )
    spec = fig.to_plotly_json()
    assert spec["layout"]["map"]["style"] == "white-bg" and spec["layout"]["map"]["layers"] == []
    kinds = [(tr["mode"], tr.get("name")) for tr in spec["data"]]
    assert kinds[0] == ("lines", "f")  # the boundary under everything
    assert ("markers", "节点: 告警") in kinds and ("markers", "节点: 离线") not in kinds  # no position
    fig = mapview.overview_map(farms, nodes, gws, "en", tile_url="https://t/{z}/{x}/{y}.png")
    assert fig.to_plotly_json()["layout"]["map"]["layers"][0]["source"] == ["https://t/{z}/{x}/{y}.png"]


def test_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGRI_DASHBOARD_TILE_URL", "https://tiles.example/{z}/{x}.png")
    with pytest.raises(DashboardConfigError, match="AGRI_DASHBOARD_TILE_URL: must contain"):
        load_config()
    monkeypatch.setenv("AGRI_DASHBOARD_TILE_URL", "https://tiles.example/{z}/{x}/{y}.png")
    monkeypatch.setenv("AGRI_DASHBOARD_CACHE_S", "-1")
    with pytest.raises(DashboardConfigError, match="AGRI_DASHBOARD_CACHE_S"):
        load_config()
