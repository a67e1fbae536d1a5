"""The demo district: six farms of Wanzhou (万州区) with blocks, nodes, gateways and commissioners.

Pure data plus the seeding that writes it through the platform's own functions (registry, block
import, commissioners, tokens, broker accounts). Place names follow the district plan: citrus
(龙驹, 太龙), pigs (甘宁, 分水), tea (太白) and fish (小周).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from agri.node import config as nodecfg
from agri.stack.fleet import SimNode
from agri.stack.mqtt_auth import MqttAuth, new_password, node_username
from api.queries import tokens
from store import commissioners as comm
from store import registry
from store import sky as store_sky
from store.blockgeo import import_blocks_text


@dataclass(frozen=True)
class Commissioner:
    name: str
    channel: str  # generic | wecom | dingtalk | feishu
    language: str


@dataclass(frozen=True)
class Farm:
    id: str
    name: str
    kind: str
    lat: float
    lon: float
    elevation_m: float
    sim_nodes: int  # Python-simulated nodes
    gateway: str | None  # gateway id when the farm has one (nodes send through it)
    commissioner: Commissioner
    block_kind: str
    blocks: int = 4


FARMS: tuple[Farm, ...] = (
    Farm("longju-citrus", "龙驹镇柑橘园", "orchard", 30.63, 108.63, 420.0, 50, "gw-1",
         Commissioner("li-wei", "generic", "zh"), "orchard_block"),
    Farm("ganning-pigs", "甘宁镇生态猪场", "pig_farm", 30.72, 108.27, 350.0, 40, "gw-1",
         Commissioner("zhang-min", "wecom", "zh"), "barn"),
    Farm("taibai-tea", "太白茶园", "tea_garden", 30.86, 108.52, 780.0, 24, None,
         Commissioner("chen-jing", "dingtalk", "zh"), "tea_terrace"),
    Farm("xiaozhou-pond", "小周镇生态渔场", "pond", 30.86, 108.49, 180.0, 16, None,
         Commissioner("wang-fang", "feishu", "zh"), "pond"),
    Farm("taolong-citrus", "太龙镇古红桔园", "orchard", 30.79, 108.43, 390.0, 40, None,
         Commissioner("liu-yang", "generic", "en"), "orchard_block"),
    Farm("fenshui-pigs", "分水镇生猪养殖场", "pig_farm", 30.58, 108.12, 520.0, 30, None,
         Commissioner("zhou-lei", "dingtalk", "zh"), "barn"),
)  # fmt: skip

FARM_KINDS_INTERVAL = {"orchard": 300, "pig_farm": 60, "tea_garden": 300, "pond": 120}


def block_features(f: Farm) -> dict[str, Any]:
    """A row of ``f.blocks`` rectangles (about 120 m x 90 m each) just east of the farm point."""
    dlat = 90 / 111_320
    dlon = 120 / (111_320 * math.cos(math.radians(f.lat)))
    feats = []
    for i in range(f.blocks):
        x0, y0 = f.lon + i * dlon * 1.1, f.lat
        ring = [[x0, y0], [x0 + dlon, y0], [x0 + dlon, y0 + dlat], [x0, y0 + dlat], [x0, y0]]
        feats.append(
            {
                "type": "Feature",
                "properties": {"id": f"b{i + 1}", "name": f"{f.name} {i + 1}区", "kind": f.block_kind},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def seed_farms(conn: psycopg.Connection[Any], farms: tuple[Farm, ...]) -> None:
    """Farms (with location) and their blocks, in one go (idempotent)."""
    for f in farms:
        registry.upsert_farm(conn, f.id, f.name, f.kind, lat=f.lat, lon=f.lon, elevation_m=f.elevation_m)
        if f.gateway:
            conn.execute(
                "INSERT INTO gateways (farm_id, gateway_id, name, lat, lon) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (farm_id, gateway_id) DO NOTHING",
                (f.id, f.gateway, f"{f.name} 网关", f.lat, f.lon),
            )
        import_blocks_text(
            conn, f.id, json.dumps(block_features(f), ensure_ascii=False), f"{f.id}-blocks.geojson"
        )


def seed_commissioners(conn: psycopg.Connection[Any], farms: tuple[Farm, ...], urls: dict[str, str],
                       secrets: dict[str, str | None]) -> None:  # fmt: skip
    for f in farms:
        c = f.commissioner
        secret = None if c.channel == "wecom" else secrets[c.name]  # WeCom: the key is in the URL
        comm.add(conn, c.name, c.channel, urls[c.name], secret, c.language, None)
        comm.assign(conn, c.name, [f.id], "warning", 0)


def read_token(conn: psycopg.Connection[Any]) -> str:
    """A fresh read-only token for this run (a previous run's is revoked)."""
    for t in tokens.list_tokens(conn):
        if t.name.startswith("demo-read"):
            tokens.revoke(conn, str(t.id))
    secret, _ = tokens.create(conn, f"demo-read-{time.strftime('%Y%m%d-%H%M%S')}", ["read"], None)
    return secret


def sim_nodes(
    conn: psycopg.Connection[Any],
    farms: tuple[Farm, ...],
    auth: MqttAuth,
    host: str,
    ports: dict[str, int],
    intervals: dict[str, int],
    scale: float = 1.0,
) -> list[SimNode]:
    """Register every simulated node (one transaction), give each a broker account; return them.

    ``ports`` maps a farm to the broker its nodes talk to (its own gateway's, or the central one);
    ``scale`` shrinks each farm's node count (tests). Node ids are ``s-001``...; nodes are spread over
    the farm's blocks. The caller saves ``auth`` and reloads the broker once.
    """
    out: list[SimNode] = []
    seed = 1
    with conn.transaction():
        for f in farms:
            _, sensors = nodecfg.profile(f.kind)
            metrics = [m for s in sensors for m in s.outputs()]
            n = max(1, round(f.sim_nodes * scale))
            for i in range(1, n + 1):
                node = f"s-{i:03d}"
                existing = auth.get(node_username(f.id, node))
                password = new_password()
                registry.upsert_node(conn, f.id, node, name=f"{f.name} {i}号模拟节点", profile=f.kind,
                                     metrics=[*metrics, "rssi_dbm"])  # fmt: skip
                store_sky.place_node(conn, f.id, node, f"b{(i - 1) % f.blocks + 1}")
                del existing
                user, _ = auth.add_node(f.id, node, password)
                out.append(SimNode(f.id, node, f.kind, tuple(metrics), intervals[f.kind], host, ports[f.id],
                                   user, password, seed=seed))  # fmt: skip
                seed += 1
    return out


def _off(name: str, metric: str) -> str:
    """A shipped anomaly rule switched off in the demo (its scenarios are the story, not noise)."""
    return (
        f'[[rules]]\nname = "{name}"\nenabled = false\nsource = "farm_anomaly"\nmetric = "{metric}"\n'
        "above = 0.38\n\n"
    )


def write_rules(root: Path, hold_s: int, gateway_after_s: int) -> Path:
    """Per-farm rule overrides for the demo: the scenario rules hold for ``hold_s`` instead of
    their field defaults (15-30 minutes), so each episode plays out within minutes; a gateway
    counts as down after ``gateway_after_s`` without health. Returns the directory."""
    root.mkdir(parents=True, exist_ok=True)
    gw = (
        '[[rules]]\nname = "gateway-down"\nkind = "gateway"\nintervals = 1\n'
        f'interval_s = {gateway_after_s}\nseverity = "critical"\n'
    )
    texts = {
        "orchard": (
            '[[rules]]\nname = "frost"\nmetric = "air_t"\nbelow = -2.0\nclear = 0.0\n'
            f'for_s = {hold_s}\nseverity = "critical"\nmessage = "霜冻风险 / frost risk"\n\n'
            + _off("air-anomaly", "air_t")
            + _off("soil-anomaly", "soil_vwc")
        ),
        "pig_farm": (
            '[[rules]]\nname = "heat-stress"\nmetric = "thi"\nabove = 79\nclear = 77\n'
            f'for_s = {hold_s}\nseverity = "critical"\nmessage = "猪舍热应激 (THI) / barn heat stress"\n\n'
            + _off("water-anomaly", "water_l")
        ),
        "pond": (
            '[[rules]]\nname = "do-low"\nmetric = "do_mgl"\nbelow = 3.0\nclear = 3.5\n'
            f'for_s = {hold_s}\nseverity = "critical"\n'
            'message = "溶解氧过低，开增氧机 / dissolved oxygen low: start aerators"\n\n'
            + _off("do-anomaly", "do_mgl")
        ),
        "tea_garden": _off("soil-anomaly", "soil_vwc"),
    }
    # The probe under watch at 太龙 (QC flags reach a rule only when raised, so a one-off flag such as a
    # series' first-reading gap would otherwise count towards the hold at every probe).
    extra = {
        "taolong-citrus": '[[rules]]\nname = "soil-stuck"\nsource = "qc"\nmetric = "soil_vwc"\nabove = 2.5\n'
        'for_s = 7200\nnodes = ["s-002"]\nseverity = "warning"\n'
        'message = "土壤湿度传感器卡死 / soil-moisture sensor stuck"\n\n'
    }
    for f in FARMS:
        (root / f"{f.id}.toml").write_text(
            f"# agri demo: shortened holds so scenarios play out in minutes\n{texts[f.kind]}\n"
            f"{extra.get(f.id, '')}{gw}",
            encoding="utf-8",
        )
    return root
