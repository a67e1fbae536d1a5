"""Each page through streamlit.testing.v1.AppTest against a real, seeded TimescaleDB."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from agri.bench.dashseed import Seeded
from agri.stack.proc import free_port
from api.queries import tokens
from dashboard import alertsdata
from dashboard.i18n import t
from store import rollup
from tests.dashboard.conftest import APP

needs_alerts = pytest.mark.skipif(
    not alertsdata.CONFIGURED, reason="the API's alert queries (api/queries/alerts.py) are not installed"
)


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def _page(page: str, **query: str) -> AppTest:
    at = _app(**query).run()
    if page != "overview":
        at.switch_page(f"screens/{page}.py").run()
    _no_crash(at)
    return at


def _no_crash(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _text(at: AppTest) -> str:
    parts = [e.value for e in at.title] + [e.value for e in at.subheader] + [e.value for e in at.markdown]
    parts += [e.value for e in at.info] + [e.value for e in at.warning] + [e.value for e in at.error]
    parts += [e.value for e in at.success] + [e.value for e in at.caption]
    parts += [str(m.label) for m in at.metric] + [str(m.value) for m in at.metric]
    parts += [e.proto.label for e in at.get("page_link")]
    return "\n".join(str(p) for p in parts)


def _table(at: AppTest, i: int = 0) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = at.dataframe[i].value.to_dict("records")
    return rows


# --- overview -----------------------------------------------------------------------------------------


def test_overview_in_chinese_with_states_alerts_and_gateways(dash_env: Seeded) -> None:
    at = _page("overview")
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "农场总览"
    text = _text(at)
    farms = {r["农场"]: r for r in _table(at, 2 if alertsdata.CONFIGURED else 1)}
    assert sorted(farms) == ["太白茶园", "小周镇生态渔场", "甘宁镇生态猪场", "龙驹镇柑橘园"]
    assert farms["龙驹镇柑橘园"]["状态"] == "注意" and farms["龙驹镇柑橘园"]["在线"] == "2/3"
    assert farms["太白茶园"]["状态"] == "正常"
    assert farms["甘宁镇生态猪场"]["link"] == "farm?farm=ganning-pigs"
    if alertsdata.CONFIGURED:
        assert farms["甘宁镇生态猪场"]["状态"] == "告警"  # its open critical alert
    assert "11 / 12" in text  # one node of the orchard went silent
    gateways = _table(at, 1 if alertsdata.CONFIGURED else 0)
    uplinks = {r["网关"]: (r["上行"], r["缓存积压"]) for r in gateways}
    assert uplinks["小周镇生态渔场 网关"] == ("中断", "1,440")  # its spool holds 6 h of readings
    assert uplinks["甘宁镇生态猪场 网关"] == ("正常", "0")
    if alertsdata.CONFIGURED:
        severities = {r["级别"]: r["未解决告警"] for r in _table(at, 0)}
        assert severities == {"严重": 1, "警告": 1, "提示": 0}
    assert len(at.get("plotly_chart")) == 1  # the map


def test_language_switches_to_english_and_back(dash_env: Seeded) -> None:
    at = _page("overview")
    at.sidebar.button(key="lang_toggle").click().run()
    _no_crash(at)
    assert at.title[0].value == "All farms"
    assert at.query_params.get("lang") == "en"
    assert "Orchard" in [r["Kind"] for r in _table(at, 2 if alertsdata.CONFIGURED else 1)]
    at.sidebar.button(key="lang_toggle").click().run()
    assert at.title[0].value == "农场总览"


def test_english_from_the_link(dash_env: Seeded) -> None:
    at = _page("overview", lang="en")
    assert at.title[0].value == "All farms"


def test_old_farm_links_land_on_the_farm_page(dash_env: Seeded) -> None:
    at = _page("overview", farm="taibai-tea")
    assert at.title[0].value == "太白茶园"


# --- farm page -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("farm", "title", "expect"),
    [
        ("longju-orchard", "龙驹镇柑橘园", "积温 GDD"),
        ("taibai-tea", "太白茶园", "霜冻风险小时（≤ -2.0 °C）"),
        ("ganning-pigs", "甘宁镇生态猪场", "有害气体与限值"),
        ("xiaozhou-pond", "小周镇生态渔场", "预测黎明溶解氧"),
    ],
)
def test_farm_page_per_kind(dash_env: Seeded, farm: str, title: str, expect: str) -> None:
    at = _page("farm", farm=farm)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == title
    assert expect in _text(at)
    latest = _table(at, 0)
    assert [r["节点"] for r in latest] == ["n-0001", "n-0002", "n-0003"]
    assert len(at.get("plotly_chart")) >= 3  # series, agronomy, health trends
    # node health names the farm's gateway with its spool backlog (kept from its health messages)
    backlog = "1440" if farm == "xiaozhou-pond" else "0"
    assert f"网关 {title} 网关：最后在线" in _text(at) and f"缓存积压 {backlog} 条" in _text(at)


def test_sky_panel_shows_block_index_beside_soil_moisture(dash_env: Seeded) -> None:
    at = _page("farm", farm="longju-orchard")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    sky = [
        c
        for c in charts
        if c["layout"].get("title", {}).get("text") == "地块影像指数（左）与土壤含水量（右）"
    ]
    assert len(sky) == 1
    names = [tr["name"] for tr in sky[0]["data"]]
    assert names[:2] == ["NDVI 均值 · sat-b1", "NDVI 均值 · sat-b2"]
    assert names[2] == "土壤含水量 (%)"
    # the other farms have no imagery: the panel says so
    at = _page("farm", farm="ganning-pigs")
    assert "尚无卫星或无人机影像" in _text(at)


def test_farm_map_shows_the_ndvi_overlay_and_blocks_coloured_by_ndvi(dash_env: Seeded) -> None:
    at = _page("farm", farm="longju-orchard")
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    maps = [c for c in charts.values() if c["layout"].get("map", {}).get("layers")]
    assert len(maps) == 1
    fig = maps[0]
    (layer,) = [lay for lay in fig["layout"]["map"]["layers"] if lay["sourcetype"] == "image"]
    png = base64.b64decode(layer["source"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (w, n), (e, _), (_, s), _ = layer["coordinates"]
    assert w < e and s < n
    names = [tr.get("name", "") for tr in fig["data"]]
    assert any(nm.startswith("一号地块 · NDVI 0.") for nm in names), names
    assert any(nm.startswith("二号地块 · NDVI 0.") for nm in names), names
    bars = [tr for tr in fig["data"] if tr.get("marker", {}).get("showscale")]
    assert bars and bars[0]["marker"]["colorbar"]["title"]["text"] == "NDVI"
    assert "最新NDVI影像，获取时间" in _text(at) and "（卫星）" in _text(at)
    at = _page("farm", farm="longju-orchard", lang="en")
    assert "Overlay: latest NDVI image, acquired" in _text(at) and "(satellite)" in _text(at)
    # a farm without blocks or imagery has no farm map, only the sky panel's message
    at = _page("farm", farm="ganning-pigs")
    charts2 = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert not [c for c in charts2 if c["layout"].get("map")]


def test_overview_map_draws_every_farms_blocks_with_their_ndvi(dash_env: Seeded) -> None:
    at = _page("overview")
    (fig,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "overview_map" in c.proto.id]
    names = [tr.get("name", "") for tr in fig["data"]]
    assert any(nm.startswith("一号地块 · NDVI 0.") for nm in names), names
    assert not [lay for lay in fig["layout"]["map"].get("layers", []) if lay["sourcetype"] == "image"]


def test_farm_page_latest_values_units_and_stale_node(dash_env: Seeded) -> None:
    at = _page("farm", farm="longju-orchard")
    rows = {r["节点"]: r for r in _table(at, 0)}
    assert "空气温度 (°C)" in rows["n-0001"]
    silent = dash_env.offline[1]
    assert str(rows[silent]["空气温度 (°C)"]).endswith("※")
    assert not str(rows["n-0001"]["空气温度 (°C)"]).endswith("※")


def test_farm_page_range_and_metric_filters(dash_env: Seeded) -> None:
    at = _page("farm", farm="ganning-pigs")
    assert "聚合间隔：1h" in _text(at)  # 7 days: the hourly rollups
    at.segmented_control(key="range").set_value("24h").run()
    _no_crash(at)
    assert "聚合间隔：5min" in _text(at)  # a day: 5-minute buckets from the raw rows
    at.selectbox(key="metric").set_value("nh3_ppm").run()
    _no_crash(at)
    at.multiselect(key="nodes_nh3_ppm").set_value(["n-0002"]).run()
    _no_crash(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {tr["name"] for tr in spec["data"] if tr.get("name")} == {"n-0002"}
    assert spec["layout"]["title"]["text"] == "氨气浓度 (ppm)"


def test_anomalous_reading_is_marked_on_a_short_range(dash_env: Seeded, seeded: tuple[str, Seeded]) -> None:
    sid = dash_env.series[("ganning-pigs", "n-0002", "air_t")]
    spike = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2, minutes=7)
    with psycopg.connect(seeded[0], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO readings (time, series_id, value) VALUES (%s, %s, 45.0)"
            " ON CONFLICT (series_id, time) DO UPDATE SET value = 45.0",
            (spike, sid),
        )
        rollup.mark_range(conn, [sid], spike, spike + timedelta(seconds=1))
    at = _page("farm", farm="ganning-pigs", range="24h")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = [tr for tr in spec["data"] if tr.get("name") == "异常"]
    assert len(marks) == 1
    local = spike.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")
    assert [str(x)[:16] for x in marks[0]["x"]] == [local]
    y = marks[0]["y"]
    assert np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist() == [45.0]


def test_farm_page_unknown_farm_and_gap_data(dash_env: Seeded) -> None:
    at = _page("farm", farm="no-such-farm")
    assert "找不到农场 no-such-farm" in _text(at)


def test_farm_page_in_english(dash_env: Seeded) -> None:
    at = _page("farm", farm="xiaozhou-pond", lang="en")
    text = _text(at)
    assert "Latest values per node" in text and "Forecast dawn DO" in text
    assert "Dissolved oxygen (mg/L)" in _table(at, 0)[0]


# --- alerts -------------------------------------------------------------------------------------------


@needs_alerts
def test_alerts_feed_filters(dash_env: Seeded) -> None:
    at = _page("alerts")
    assert at.title[0].value == "告警"
    feed = _table(at, 0)
    assert {r["ID"] for r in feed} == {dash_env.alerts["nh3_high"], dash_env.alerts["node_silent"]}
    at.multiselect(key="al_sev").set_value(["critical"]).run()
    assert [r["ID"] for r in _table(at, 0)] == [dash_env.alerts["nh3_high"]]
    at.multiselect(key="al_status").set_value(["resolved"]).run()
    assert "没有符合条件的告警。" in _text(at)
    at.multiselect(key="al_sev").set_value(["critical", "warning", "info"]).run()
    assert [r["ID"] for r in _table(at, 0)] == [dash_env.alerts["do_low"]]


@needs_alerts
def test_alert_deep_link_detail_history_and_acknowledge(dash_env: Seeded, seeded: tuple[str, Seeded]) -> None:
    alert_id = dash_env.alerts["nh3_high"]
    with psycopg.connect(seeded[0], autocommit=True) as conn:
        reader, _ = tokens.create(conn, "viewer-1", ["read"])
        operator, _ = tokens.create(conn, "王特派员", ["operate"], farms=["ganning-pigs"])
    at = _page("alerts", alert=str(alert_id))
    text = _text(at)
    assert f"告警详情 #{alert_id}" in text and "氨气浓度 31.5 ppm" in text
    assert f"/alerts?alert={alert_id}" in text
    history = _table(at, 0)
    assert [r["状态"] for r in history] == ["开启"]
    # no token, a bad token, a read-only token: refused with a message, nothing changes
    at.button(key="al_ack").click().run()
    assert "请先输入令牌。" in _text(at)
    at.text_input(key="al_token").input("agri_not-a-token").run()
    at.button(key="al_ack").click().run()
    assert "令牌无效或已撤销。" in _text(at)
    at.text_input(key="al_token").input(reader).run()
    at.button(key="al_ack").click().run()
    assert "令牌缺少所需权限（operate）。" in _text(at)
    with psycopg.connect(seeded[0]) as conn:
        assert conn.execute("SELECT status FROM alerts WHERE id = %s", (alert_id,)).fetchone() == ("open",)
    # the commissioner's token acknowledges it
    at.text_input(key="al_token").input(operator).run()
    at.button(key="al_ack").click().run()
    _no_crash(at)
    assert f"已确认告警 #{alert_id}" in _text(at)
    with psycopg.connect(seeded[0]) as conn:
        row = conn.execute("SELECT status, acked_by FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    assert row == ("acknowledged", "王特派员")
    assert [r["状态"] for r in _table(at, 0)] == ["开启", "确认"]


@needs_alerts
def test_alert_deep_link_to_unknown_alert(dash_env: Seeded) -> None:
    at = _page("alerts", alert="999999")
    assert "找不到告警 #999999。" in _text(at)


# --- failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["overview", "farm", "alerts"])
def test_database_down_shows_a_message(dash_env: Seeded, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("AGRI_DATABASE_URL", f"postgresql://agri:x@127.0.0.1:{free_port()}/agri")
    at = _page(page, farm="ganning-pigs")
    assert [e.value for e in at.error] == [t("err.db_down", "zh")]


def test_no_database_configured(dash_env: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGRI_DATABASE_URL")
    at = _page("overview")
    assert "尚未配置数据库（AGRI_DATABASE_URL）。" in _text(at)


def test_bad_tile_url_is_named(dash_env: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGRI_DASHBOARD_TILE_URL", "ftp://tiles")
    at = _page("overview")
    assert "AGRI_DASHBOARD_TILE_URL" in "\n".join(e.value for e in at.error)


def test_tile_url_goes_under_the_map(dash_env: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    monkeypatch.setenv("AGRI_DASHBOARD_TILE_URL", url)
    at = _page("overview")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["map"]["layers"][0]["source"] == [url]
