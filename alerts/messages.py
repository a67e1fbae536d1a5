"""Alert messages in Chinese (default) or English: title and markdown text for the robots, and the
generic webhook's JSON payload. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from kernel.catalog import CATALOG

_SEV = {
    "zh": {"critical": "严重", "warning": "警告", "info": "提示"},
    "en": {"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"},
}
_EVENT = {
    "zh": {
        "alert.opened": "告警",
        "alert.escalated": "告警升级（无人确认）",
        "alert.resolved": "告警解除",
        "outage.summary": "离线期间数据汇总",
    },
    "en": {
        "alert.opened": "Alert",
        "alert.escalated": "Alert escalated (unacknowledged)",
        "alert.resolved": "Resolved",
        "outage.summary": "Summary of late data",
    },
}
_LBL = {
    "zh": {"farm": "农场", "node": "节点", "metric": "指标", "value": "数值", "thr": "阈值", "since": "开始",
           "dur": "持续", "link": "查看", "ack": "确认", "above": "高于", "below": "低于", "rule": "规则"},
    "en": {"farm": "Farm", "node": "Node", "metric": "Metric", "value": "Value", "thr": "Threshold",
           "since": "Since", "dur": "Duration", "link": "Dashboard", "ack": "Acknowledge", "above": "above",
           "below": "below", "rule": "Rule"},
}  # fmt: skip
CST = timezone(timedelta(hours=8))


def _dur(seconds: float, lang: str) -> str:
    m = max(0, int(seconds // 60))
    h, m = divmod(m, 60)
    if lang == "zh":
        return f"{h}小时{m}分钟" if h else f"{m}分钟"
    return f"{h} h {m} min" if h else f"{m} min"


#: derived indices a rule may name (kernel.rules.model.DERIVED): (Chinese, English, unit)
_DERIVED = {
    "thi": ("温湿指数", "Temperature-humidity index (THI)", ""),
    "do_dawn": ("预测黎明溶解氧", "Dawn dissolved-oxygen forecast", "mg/L"),
    "disease_risk": ("叶面湿润病害风险等级", "Leaf-wetness disease risk level (0-3)", ""),
    "water_drop": ("饮水量变化（对比前几日同一时段）", "Drinking water vs the same hours of recent days", ""),
    "ndvi_fall": ("NDVI 变化对比相邻地块 (z)", "NDVI change against neighbouring blocks (z)", ""),
}


def metric_label(metric: str, lang: str) -> tuple[str, str]:
    m = CATALOG.get(metric)
    if m is None:
        zh, en, unit = _DERIVED.get(metric, (metric.upper(), metric.upper(), ""))
        return (zh if lang == "zh" else en), unit
    return (m.label_zh if lang == "zh" else m.label_en), m.unit


def render(a: dict[str, Any], event: str, lang: str, now: float) -> tuple[str, str]:
    """(title, markdown text) for one alert event. ``a`` is :func:`alerts.lifecycle.alert_view`'s dict."""
    lang = lang if lang in _LBL else "zh"
    lb = _LBL[lang]
    if event == "outage.summary":
        title = f"{_EVENT[lang][event]} · {a['farm']}"
        lines = [f"### {title}"] + [f"- {x}" for x in a.get("lines", [])]
        return title, "\n".join(lines)
    label, unit = metric_label(a.get("metric") or "", lang)
    sev = _SEV[lang].get(a["severity"], a["severity"])
    title = f"[{sev}] {_EVENT[lang].get(event, event)} · {a['farm']} · {a['rule']}"
    since = datetime.fromtimestamp(a["since"], UTC).astimezone(CST).strftime("%Y-%m-%d %H:%M")
    end = a.get("ended") or now
    lines = [f"### {title}", f"- {lb['farm']}: {a['farm']}", f"- {lb['node']}: {a.get('node') or '-'}"]
    if a.get("metric"):
        lines.append(f"- {lb['metric']}: {label} ({a['metric']})")
    if a.get("value") is not None:
        lines.append(f"- {lb['value']}: {a['value']:.2f} {unit}".rstrip())
    if a.get("threshold") is not None:
        op = lb.get(a.get("op") or "above", "")
        lines.append(f"- {lb['thr']}: {op} {a['threshold']:g} {unit}".rstrip())
    lines.append(f"- {lb['since']}: {since} (UTC+8)")
    lines.append(f"- {lb['dur']}: {_dur(end - a['since'], lang)}")
    if a.get("message"):
        lines.append(f"- {a['message']}")
    if a.get("dashboard"):
        lines.append(f"- [{lb['link']}]({a['dashboard']})")
    if a.get("ack_link") and event != "alert.resolved":
        lines.append(f"- [{lb['ack']}]({a['ack_link']})")
    return title, "\n".join(lines)


def payload(a: dict[str, Any], event: str, msg_id: str, lang: str, now: float) -> dict[str, Any]:
    """The generic webhook's JSON body (Standard Webhooks: type, timestamp, data)."""
    title, text = render(a, event, lang, now)
    data = {k: v for k, v in a.items() if k != "ack_link"}
    data.update(title=title, text=text, ack_link=a.get("ack_link"), delivery_id=msg_id)
    return {"type": event, "timestamp": datetime.fromtimestamp(now, UTC).isoformat(), "data": data}
