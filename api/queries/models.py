"""What the query functions return: plain pydantic models, no HTTP in sight.

The API serialises them as they are; the dashboard uses them directly.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

FarmKind = Literal["orchard", "pig_farm", "tea_garden", "pond"]
T = TypeVar("T")
Bucket = Literal["1min", "5min", "15min", "30min", "1h", "1d"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Commissioner(_Model):
    id: int
    name: str
    min_severity: str


class Farm(_Model):
    id: str
    name: str
    kind: FarmKind
    lat: float | None
    lon: float | None
    elevation_m: float | None
    tz: str
    boundary: dict[str, Any] | None = Field(None, description="GeoJSON Polygon or MultiPolygon (WGS 84)")
    commissioners: list[Commissioner] = []
    nodes: int = 0
    created_at: datetime
    retired_at: datetime | None = None


class NodeStatus(_Model):
    farm_id: str
    node_id: str
    name: str | None
    profile: str | None
    lat: float | None
    lon: float | None
    metrics: list[str]
    firmware_version: str | None
    last_seen: datetime | None
    battery_v: float | None
    rssi_dbm: float | None
    last_seq: int | None
    msgs_received: int
    completeness: float | None = Field(None, description="1 - missing messages / span of seq seen")
    created_at: datetime
    retired_at: datetime | None = None


class Gateway(_Model):
    farm_id: str
    gateway_id: str
    name: str | None
    lat: float | None
    lon: float | None
    last_seen: datetime | None
    meta: dict[str, Any] = {}
    created_at: datetime
    retired_at: datetime | None = None


class MetricInfo(_Model):
    name: str
    unit: str
    lo: float
    hi: float
    kind: str
    label_zh: str
    label_en: str
    decimals: int
    aggregate: Literal["mean", "sum"]


class SeriesInfo(_Model):
    series_id: int
    farm_id: str
    node_id: str
    metric: str
    unit: str
    aggregate: Literal["mean", "sum"]
    tz: str


class LatestValue(_Model):
    series_id: int
    farm_id: str
    node_id: str
    metric: str
    unit: str
    time: datetime | None
    value: float | None


class RawSeries(_Model):
    series: SeriesInfo
    time: list[datetime]
    value: list[float]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class BucketSeries(_Model):
    """Columnar buckets of one series. A bucket without readings is a gap: count 0, values null."""

    series: SeriesInfo
    bucket: Bucket
    start: list[datetime] = Field(description="bucket starts in the farm's time zone")
    count: list[int]
    min: list[float | None]
    mean: list[float | None]
    max: list[float | None]
    sum: list[float | None] | None = Field(None, description="only for summed metrics (rain, water)")


class Completeness(_Model):
    farm_id: str
    node_id: str
    first_seq: int | None
    last_seq: int | None
    msgs_received: int
    msgs_missing: int
    dropped_reported: int
    completeness: float | None


class Rejected(_Model):
    id: int
    received_at: datetime
    source: str
    farm_id: str | None
    node_id: str | None
    metric: str | None
    reading_time: datetime | None
    reason: str
    detail: str


class Page(_Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class DayRange(_Model):
    start: date
    end: date
