"""Every text the dashboard shows, in one table: Chinese (default) and English.

``t("key", lang, **fields)`` formats the entry with ``str.format``. Metric labels and units come
from the metric catalog (kernel.catalog), farm kinds from this table. Times are shown in the farm's
own time zone by :func:`fmt_time`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from kernel.catalog import CATALOG

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

TEXT: dict[str, tuple[str, str]] = {
    # app chrome
    "app.title": ("天空地一体化农业物联网监测", "Sky-air-ground farm monitoring"),
    "nav.overview": ("总览", "Overview"),
    "nav.farm": ("农场", "Farm"),
    "nav.alerts": ("告警", "Alerts"),
    "lang.toggle": ("English", "中文"),
    "lang.label": ("语言", "Language"),
    "refresh": ("刷新", "Refresh"),
    "loading": ("正在加载…", "Loading…"),
    "updated": ("更新于 {time}", "Updated {time}"),
    # errors and empty states
    "err.db_down": (
        "无法连接数据库，数据暂时不可用。请稍后刷新；如持续出现，请联系运维人员。",
        "The database cannot be reached, so no data can be shown. Refresh in a moment; if this "
        "persists, contact the operator.",
    ),
    "err.not_configured_db": (
        "尚未配置数据库（AGRI_DATABASE_URL）。",
        "No database is configured (AGRI_DATABASE_URL).",
    ),
    "err.config": ("仪表盘配置有误：{detail}", "The dashboard is misconfigured: {detail}"),
    "err.query": ("查询失败：{detail}", "The query failed: {detail}"),
    "err.scope": (
        "令牌缺少所需权限（{scope}）。",
        "The token lacks the required scope ({scope}).",
    ),
    "err.token_invalid": ("令牌无效或已撤销。", "The token is invalid or revoked."),
    "err.internal": (
        "页面出错（已记录，编号 {ref}）。请刷新重试。",
        "Something went wrong on this page (logged as {ref}). Refresh to try again.",
    ),
    "empty.range": ("所选时间范围内没有数据。", "There is no data in the chosen range."),
    "empty.farms": ("还没有登记任何农场。", "No farm is registered yet."),
    "empty.nodes": ("该农场还没有节点。", "This farm has no nodes yet."),
    "not_configured": ("尚未配置", "Not configured yet"),
    "not_configured.alerts": (
        "告警服务尚未配置：这里将显示各农场的告警。",
        "The alert service is not configured yet: alerts will show here.",
    ),
    "not_configured.sky": (
        "尚无卫星或无人机影像：导入后将在此显示地块指数。",
        "No satellite or drone imagery yet: block indices will show here once imported.",
    ),
    "not_found.farm": ("找不到农场 {farm}。", "Farm {farm} not found."),
    # states
    "state.ok": ("正常", "OK"),
    "state.warning": ("注意", "Warning"),
    "state.alert": ("告警", "Alert"),
    "state.offline": ("离线", "Offline"),
    "severity.info": ("提示", "Info"),
    "severity.warning": ("警告", "Warning"),
    "severity.critical": ("严重", "Critical"),
    # overview
    "ov.header": ("农场总览", "All farms"),
    "ov.map": ("农场与节点分布", "Farms and nodes"),
    "ov.farms": ("农场", "Farms"),
    "ov.nodes": ("节点", "Nodes"),
    "ov.online": ("在线节点", "Nodes online"),
    "ov.open_alerts": ("未解决告警", "Open alerts"),
    "ov.completeness": ("今日数据完整率", "Data completeness today"),
    "ov.gateways": ("网关与上行链路", "Gateways and uplinks"),
    "ov.no_gateways": ("没有登记网关（节点直连中心）。", "No gateways registered (nodes connect directly)."),
    "ov.alerts_by_severity": ("按严重程度的未解决告警", "Open alerts by severity"),
    "ov.farm_table": ("各农场状态", "State of each farm"),
    "ov.open_farm": ("打开农场页面", "Open the farm page"),
    "ov.tiles_off": ("离线底图（未配置瓦片服务）", "Offline background (no tile server configured)"),
    # table columns
    "col.farm": ("农场", "Farm"),
    "col.kind": ("类型", "Kind"),
    "col.state": ("状态", "State"),
    "col.nodes": ("节点数", "Nodes"),
    "col.online": ("在线", "Online"),
    "col.alerts": ("告警", "Alerts"),
    "col.completeness": ("完整率", "Completeness"),
    "col.node": ("节点", "Node"),
    "col.gateway": ("网关", "Gateway"),
    "col.last_seen": ("最后在线", "Last seen"),
    "col.uplink": ("上行", "Uplink"),
    "col.backlog": ("缓存积压", "Spool backlog"),
    "farm.gateway_health": (
        "网关 {name}：最后在线 {age} · 缓存积压 {backlog} 条 · 丢弃 {drops} 条",
        "Gateway {name}: last seen {age} · spool backlog {backlog} · dropped {drops}",
    ),
    "col.battery": ("电池 (V)", "Battery (V)"),
    "col.rssi": ("信号 (dBm)", "RSSI (dBm)"),
    "col.metric": ("指标", "Metric"),
    "col.value": ("数值", "Value"),
    "col.unit": ("单位", "Unit"),
    "col.time": ("时间", "Time"),
    "col.qc": ("质控", "QC"),
    "col.msgs": ("消息数", "Messages"),
    "col.missing": ("缺失消息", "Missing"),
    "col.dropped": ("节点丢弃", "Dropped"),
    "col.firmware": ("固件", "Firmware"),
    "col.severity": ("级别", "Severity"),
    "col.rule": ("规则", "Rule"),
    "col.message": ("内容", "Message"),
    "col.started": ("开始", "Started"),
    "col.ended": ("结束", "Ended"),
    "col.status": ("状态", "Status"),
    "col.acked_by": ("确认人", "Acknowledged by"),
    "uplink.up": ("正常", "Up"),
    "uplink.down": ("中断", "Down"),
    "uplink.never": ("从未连接", "Never seen"),
    # farm page
    "farm.choose": ("选择农场", "Choose a farm"),
    "farm.latest": ("各节点最新数据", "Latest values per node"),
    "farm.charts": ("时间序列", "Time series"),
    "farm.metric": ("指标", "Metric"),
    "farm.nodes": ("节点", "Nodes"),
    "farm.range": ("时间范围", "Range"),
    "farm.bucket": ("聚合间隔：{bucket}", "Bucket: {bucket}"),
    "farm.health": ("节点健康", "Node health"),
    "farm.battery_trend": ("电池电压趋势", "Battery trend"),
    "farm.rssi_trend": ("信号强度趋势", "Signal strength trend"),
    "farm.sky": ("天空地一体化：影像指数与土壤墒情", "Sky and ground: imagery index beside soil moisture"),
    "farm.agro": ("农学指标", "Agronomic indicators"),
    "farm.sky_chart": (
        "地块影像指数（左）与土壤含水量（右）",
        "Block imagery index (left) and soil moisture (right)",
    ),
    "farm.sky_note": (
        "影像指数为各地块像元均值（云、阴影已剔除）；土壤含水量为农场各节点日均值。",
        "Index values are block means of the clear pixels (clouds and shadows masked); soil moisture is "
        "the daily mean of the farm's nodes.",
    ),
    "farm.map_scene": (
        "底图叠加：最新{index}影像，获取时间 {date}（{source}）；地块轮廓悬停可见各地块最新均值。",
        "Overlay: latest {index} image, acquired {date} ({source}); hover a block outline for its "
        "latest mean.",
    ),
    "farm.map_no_image": (
        "尚无影像叠加图：地块按最新NDVI均值着色（无数据的地块为浅绿色）。",
        "No imagery overlay yet: blocks are coloured by their latest mean NDVI (light green: no data).",
    ),
    "source.satellite": ("卫星", "satellite"),
    "source.drone": ("无人机", "drone"),
    "farm.local_time": ("时间为农场当地时间（{tz}）", "Times are the farm's local time ({tz})"),
    "farm.qc_legend": (
        "⚠ 质控可疑　✗ 质控失败　※ 数据过期（节点未按时上报）",
        "⚠ QC suspect   ✗ QC failed   ※ stale (the node has not reported in time)",
    ),
    "farm.legend_gap": (
        "空白为数据缺失；红点为质控失败，橙点为异常；阴影为告警时段。",
        "Blank stretches are missing data; red points failed QC, orange points are anomalous; "
        "shaded spans are alert periods.",
    ),
    "range.24h": ("最近24小时", "Last 24 hours"),
    "range.7d": ("最近7天", "Last 7 days"),
    "range.30d": ("最近30天", "Last 30 days"),
    "range.custom": ("自定义", "Custom"),
    "range.start": ("开始日期", "Start date"),
    "range.end": ("结束日期", "End date"),
    "qc.pass": ("通过", "pass"),
    "qc.suspect": ("可疑", "suspect"),
    "qc.fail": ("失败", "fail"),
    "qc.not_evaluated": ("未评估", "not evaluated"),
    "qc.stale": ("过期", "stale"),
    # export
    "export.csv": ("导出 CSV", "Download CSV"),
    "export.xlsx": ("导出 Excel", "Download Excel"),
    # agronomy
    "agro.et0": ("参考蒸散量 ET0（mm/天）", "Reference evapotranspiration ET0 (mm/day)"),
    "agro.balance": ("累计水分平衡（降雨 − ET0，mm）", "Cumulative water balance (rain − ET0, mm)"),
    "agro.gdd": (
        "积温 GDD（自 {date}，基温 {base} °C）",
        "Growing degree days since {date} (base {base} °C)",
    ),
    "agro.gdd_since": ("积温起算日期", "GDD since"),
    "agro.chill": ("需冷量（0–7.2 °C 小时）", "Chill hours (0–7.2 °C)"),
    "agro.frost": ("霜冻风险小时（≤ {limit} °C）", "Frost-risk hours (≤ {limit} °C)"),
    "agro.disease": ("叶面湿润病害风险", "Leaf-wetness disease risk"),
    "agro.wet_hours": ("湿润时长 {hours} 小时，平均 {temp} °C", "Wet for {hours} h at {temp} °C on average"),
    "agro.risk.0": ("无", "none"),
    "agro.risk.1": ("低", "low"),
    "agro.risk.2": ("中", "moderate"),
    "agro.risk.3": ("高", "high"),
    "agro.thi": ("猪舍温湿指数 THI", "Barn temperature-humidity index (THI)"),
    "agro.thi_band": ("当前等级：{band}", "Current band: {band}"),
    "thi.normal": ("正常", "normal"),
    "thi.alert": ("警戒", "alert"),
    "thi.danger": ("危险", "danger"),
    "thi.emergency": ("紧急", "emergency"),
    "agro.gases": ("有害气体与限值", "Barn gases against their limits"),
    "agro.limit": ("限值 {limit} {unit}", "limit {limit} {unit}"),
    "agro.water": ("饮水量与近几日对比", "Drinking water against the pen's recent days"),
    "agro.water_change": ("较前几日中位数 {pct}%", "{pct}% against the previous days' median"),
    "agro.water_nobase": ("前几日数据不足，暂不比较", "Too few previous days to compare"),
    "agro.do": ("溶解氧与黎明最低值预测", "Dissolved oxygen with the dawn-minimum forecast"),
    "agro.do_forecast": ("预测黎明溶解氧 {value} mg/L", "Forecast dawn DO {value} mg/L"),
    "agro.do_low": ("低于 {limit} mg/L，需增氧", "below {limit} mg/L: aerate"),
    "agro.ph_wt": ("pH 与水温", "pH and water temperature"),
    "agro.no_inputs": ("缺少计算所需的数据：{metrics}", "Missing the data this needs: {metrics}"),
    # alerts page
    "al.header": ("告警", "Alerts"),
    "al.filter_farm": ("农场", "Farm"),
    "al.filter_severity": ("级别", "Severity"),
    "al.filter_status": ("状态", "Status"),
    "al.status.open": ("未处理", "Open"),
    "al.status.acknowledged": ("已确认", "Acknowledged"),
    "al.status.resolved": ("已解决", "Resolved"),
    "al.none": ("没有符合条件的告警。", "No alert matches."),
    "al.detail": ("告警详情 #{id}", "Alert #{id}"),
    "al.history": ("处理记录", "History"),
    "al.token": ("操作令牌（需要 operate 权限）", "Your token (needs the operate scope)"),
    "al.ack": ("确认", "Acknowledge"),
    "al.resolve": ("解决", "Resolve"),
    "al.note": ("备注", "Note"),
    "al.acked": ("已确认告警 #{id}", "Alert #{id} acknowledged"),
    "al.resolved": ("已解决告警 #{id}", "Alert #{id} resolved"),
    "al.link": ("本告警链接", "Link to this alert"),
    "al.not_found": ("找不到告警 #{id}。", "Alert #{id} not found."),
    "al.need_token": ("请先输入令牌。", "Enter your token first."),
    "al.all": ("全部", "All"),
    "al.by": ("操作人", "By"),
    "al.event.opened": ("开启", "opened"),
    "al.event.acknowledged": ("确认", "acknowledged"),
    "al.event.resolved": ("解决", "resolved"),
    "al.event.escalated": ("升级", "escalated"),
    "al.event.attached": ("归并", "attached"),
    "al.event.suppressed": ("抑制", "suppressed"),
    "al.event.late": ("迟到数据", "late data"),
}

FARM_KIND: dict[str, tuple[str, str]] = {
    "orchard": ("智慧果园", "Orchard"),
    "pig_farm": ("智慧猪场", "Pig farm"),
    "tea_garden": ("智慧茶园", "Tea garden"),
    "pond": ("智慧渔场", "Fish pond"),
}


def t(key: str, lang: Lang = "zh", /, **fields: object) -> str:
    """The text of ``key`` in ``lang``; an unknown key shows itself (and fails the i18n test)."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    text = pair[0] if lang == "zh" else pair[1]
    return text.format(**fields) if fields else text


def lang_of(value: object) -> Lang:
    return "en" if value == "en" else "zh"


def kind_label(kind: str, lang: Lang) -> str:
    pair = FARM_KIND.get(kind)
    return kind if pair is None else pair[0 if lang == "zh" else 1]


def metric_label(metric: str, lang: Lang, *, unit: bool = True) -> str:
    """``空气温度 (°C)`` / ``Air temperature (°C)``; index series and unknown names as they are."""
    m = CATALOG.get(metric)
    if m is None:
        return metric
    label = m.label_zh if lang == "zh" else m.label_en
    return f"{label} ({m.unit})" if unit and m.unit else label


def metric_unit(metric: str) -> str:
    m = CATALOG.get(metric)
    return m.unit if m is not None else ""


def fmt_value(metric: str, value: float | None) -> str:
    """A value with the catalog's number of decimals ("–" when missing)."""
    if value is None:
        return "–"
    m = CATALOG.get(metric)
    return f"{value:.{m.decimals if m is not None else 2}f}"


def fmt_time(t: datetime | None, tz: str, *, seconds: bool = False, short: bool = False) -> str:
    """A time in the farm's zone, ``2026-05-01 14:03`` (``05-01 14:03`` short; "–" when missing)."""
    if t is None:
        return "–"
    fmt = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return t.astimezone(ZoneInfo(tz)).strftime(fmt)


def fmt_age(seconds: float | None, lang: Lang) -> str:
    """How long ago, coarsely: ``5 分钟前`` / ``5 min ago``."""
    if seconds is None:
        return "–"
    s = max(0.0, seconds)
    units = (
        (86400, "天", "d"),
        (3600, "小时", "h"),
        (60, "分钟", "min"),
    )
    for size, zh, en in units:
        if s >= size:
            n = int(s // size)
            return f"{n} {zh}前" if lang == "zh" else f"{n} {en} ago"
    return "刚刚" if lang == "zh" else "just now"
