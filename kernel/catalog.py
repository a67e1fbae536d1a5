"""The metric catalog: every measurable quantity, its unit, physical range and kind.

One table used by the firmware (which names it sends), validation at the gateway and ingest
(physical range), QC (gross-range test), the database (``metrics`` table is seeded from it)
and the dashboard (labels in Chinese and English).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from analytics.imagery.config import CANOPY_METRIC, INDICES, STATS, metric_name

Kind = Literal["air", "soil", "weather", "gas", "water", "power", "radio", "imagery"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    lo: float  # physical (sensor) range, inclusive: outside it a value is impossible
    hi: float
    kind: Kind
    label_zh: str
    label_en: str
    decimals: int = 1
    # Counters (rain, water flow) are summed per interval; gauges are averaged in rollups.
    aggregate: Literal["mean", "sum"] = "mean"

    def in_range(self, value: float) -> bool:
        return self.lo <= value <= self.hi


_METRICS = (
    Metric("air_t", "°C", -40.0, 60.0, "air", "空气温度", "Air temperature"),
    Metric("air_rh", "%", 0.0, 100.0, "air", "空气湿度", "Air humidity"),
    Metric("soil_vwc", "%", 0.0, 100.0, "soil", "土壤含水量", "Soil moisture (VWC)"),
    Metric("soil_t", "°C", -30.0, 60.0, "soil", "土壤温度", "Soil temperature"),
    Metric("leaf_wet", "%", 0.0, 100.0, "weather", "叶面湿度", "Leaf wetness"),
    Metric("rain_mm", "mm", 0.0, 200.0, "weather", "降雨量", "Rainfall", aggregate="sum"),
    Metric("wind_ms", "m/s", 0.0, 75.0, "weather", "风速", "Wind speed"),
    Metric("solar_wm2", "W/m²", 0.0, 1500.0, "weather", "太阳辐射", "Solar radiation", decimals=0),
    Metric("nh3_ppm", "ppm", 0.0, 500.0, "gas", "氨气浓度", "Ammonia (NH3)"),
    Metric("co2_ppm", "ppm", 0.0, 40000.0, "gas", "二氧化碳浓度", "Carbon dioxide (CO2)", decimals=0),
    Metric("h2s_ppm", "ppm", 0.0, 200.0, "gas", "硫化氢浓度", "Hydrogen sulfide (H2S)", decimals=2),
    Metric("water_l", "L", 0.0, 10000.0, "water", "饮水量", "Drinking water", aggregate="sum"),
    Metric("do_mgl", "mg/L", 0.0, 25.0, "water", "溶解氧", "Dissolved oxygen", decimals=2),
    Metric("ph", "pH", 0.0, 14.0, "water", "酸碱度", "pH", decimals=2),
    Metric("water_t", "°C", -5.0, 50.0, "water", "水温", "Water temperature"),
    Metric("bat_v", "V", 0.0, 15.0, "power", "电池电压", "Battery voltage", decimals=2),
    Metric("rssi_dbm", "dBm", -140.0, 0.0, "radio", "信号强度", "Signal strength (RSSI)", decimals=0),
)

# Imagery statistics per field block (issue 13): satellite and drone series, named {index}_{stat}.
_STAT_ZH = {"mean": "均值", "median": "中位数", "p10": "10%分位", "p90": "90%分位", "valid": "有效像元比例"}
_STAT_EN = {"mean": "mean", "median": "median", "p10": "p10", "p90": "p90", "valid": "valid fraction"}
_IMAGERY = (
    *(
        Metric(
            metric_name(i, s),
            "" if s != "valid" else "fraction",
            -1.0 if s != "valid" else 0.0,
            1.0,
            "imagery",
            f"{i.upper()} {_STAT_ZH[s]}",
            f"{i.upper()} {_STAT_EN[s]}",
            decimals=3,
        )
        for i in INDICES
        for s in STATS
    ),
    Metric(CANOPY_METRIC, "fraction", 0.0, 1.0, "imagery", "冠层覆盖度", "Canopy fraction", decimals=3),
)

CATALOG: MappingProxyType[str, Metric] = MappingProxyType({m.name: m for m in (*_METRICS, *_IMAGERY)})

FARM_KINDS = ("orchard", "pig_farm", "tea_garden", "pond")
FARM_KIND_LABELS_ZH = MappingProxyType(
    {"orchard": "智慧果园", "pig_farm": "智慧猪场", "tea_garden": "智慧茶园", "pond": "智慧渔场"}
)


def get(name: str) -> Metric | None:
    return CATALOG.get(name)
