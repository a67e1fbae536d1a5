"""What the pages show, as plain values and pandas frames: no Streamlit here.

Every function takes a :class:`Source` (a small psycopg pool) and calls the API's HTTP-free query
functions (``api.queries``); the pages cache the results (``dashboard.cache``). A database that
cannot be reached raises :class:`DataUnavailable`; a bad argument raises the query layer's
``QueryError`` — the pages turn both into a message, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from analytics.qc import FAIL, NOT_EVALUATED, PASS, SUSPECT, gross_range
from api.queries import analytics as an
from api.queries import readings as rq
from api.queries import registry as reg
from api.queries import sky as sky_q
from api.queries.models import BucketSeries, Farm, Gateway, NodeStatus, SeriesInfo
from api.queries.sky import Overlay
from dashboard.state import farm_state, node_state, uplink_state
from kernel.catalog import CATALOG
from kernel.qc import qc_metric, thresholds_for

Conn = psycopg.Connection[Any]

#: Buckets the charts may use, shortest first; the first giving at most MAX_POINTS points is taken.
BUCKETS: tuple[tuple[str, int], ...] = (
    ("1min", 60),
    ("5min", 300),
    ("15min", 900),
    ("30min", 1800),
    ("1h", 3600),
    ("1d", 86400),
)
MAX_POINTS = 1000
#: Ranges longer than this always read the hourly rollups (or daily ones), never raw rows.
ROLLUP_AFTER = timedelta(days=3)
LATEST_QC_WINDOW = timedelta(hours=2)
#: Points scoring at least this are marked as anomalous (README: ~0.2 is alert-worthy on 5-min data).
ANOMALY_MARK = 0.2
#: Anomaly scores are computed on demand from raw points (plus a week of warm-up): short ranges only.
ANOMALY_MAX_SPAN = timedelta(days=2)
HEALTH_METRICS = ("bat_v", "rssi_dbm")
_PAGE = 1000
SKY_PREFIXES = ("sat-", "uav-")  # the pseudo nodes that carry a block's satellite / drone statistics


class DataUnavailable(Exception):
    """The database cannot be reached (down, refusing, wrong address or credentials)."""


class Source:
    """A small connection pool to the platform database; opened lazily, closed by :meth:`close`."""

    def __init__(self, dsn: str, *, max_size: int = 4, timeout_s: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s))},
            open=False,
            name="dashboard",
        )
        self._opened = False

    @contextmanager
    def conn(self) -> Iterator[Conn]:
        try:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
            with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise DataUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


def _all_pages(fetch: Any, **kw: Any) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while True:
        page = fetch(limit=_PAGE, cursor=cursor, **kw)
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


# --- registry -------------------------------------------------------------------------------------


def list_farms(src: Source) -> list[Farm]:
    with src.conn() as conn:
        return _all_pages(lambda **kw: reg.list_farms(conn, **kw))


def get_farm(src: Source, farm_id: str) -> Farm:
    with src.conn() as conn:
        return reg.get_farm(conn, farm_id)


def is_sensor(node_id: str) -> bool:
    """False for the pseudo nodes that carry imagery statistics (``sat-<block>``, ``uav-<block>``)."""
    return not node_id.startswith(SKY_PREFIXES)


def list_nodes(src: Source, farm_id: str | None = None) -> list[NodeStatus]:
    """The sensor nodes (imagery pseudo nodes left out: they have no battery, link or last seen)."""
    with src.conn() as conn:
        nodes = _all_pages(lambda **kw: reg.list_nodes(conn, farm=farm_id, **kw))
    return [n for n in nodes if is_sensor(n.node_id)]


def list_gateways(src: Source, farm_id: str | None = None) -> list[Gateway]:
    with src.conn() as conn:
        return _all_pages(lambda **kw: reg.list_gateways(conn, farm=farm_id, **kw))


# --- overview -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    """Everything the overview page shows, computed at ``now``."""

    now: datetime
    farms: pd.DataFrame  # id, name, kind, lat, lon, tz, state, nodes, online, completeness, alerts_*
    nodes: pd.DataFrame  # farm_id, node_id, name, lat, lon, state, last_seen, age_s, battery_v, ...
    gateways: pd.DataFrame  # farm_id, gateway_id, name, lat, lon, last_seen, age_s, uplink, backlog, drops
    boundaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # farm id -> GeoJSON
    blocks: list[BlockShape] = field(default_factory=list)  # every farm's field blocks
    alerts_configured: bool = False


def _health_int(meta: dict[str, Any], key: str) -> int | None:
    """A number from the gateway's last health (recorded by the alert service), None if unknown."""
    v = (meta.get("health") or {}).get(key)
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _age_s(now: datetime, t: datetime | None) -> float | None:
    return None if t is None else (now - t).total_seconds()


def today_completeness(
    src: Source, farms: Sequence[Farm], now: datetime
) -> dict[tuple[str, str], tuple[int, int]]:
    """(farm, node) -> (series-hours with data, series-hours elapsed) since local midnight today.

    Read from the hourly rollups, so it is cheap for any number of nodes.
    """
    out: dict[tuple[str, str], tuple[int, int]] = {}
    with src.conn() as conn:
        series: list[SeriesInfo] = []
        for f in farms:
            series += [s for s in rq.find_series(conn, farm=f.id) if is_sensor(s.node_id)]
        by_tz: dict[str, list[SeriesInfo]] = {}
        for s in series:
            by_tz.setdefault(s.tz, []).append(s)
        for tz, group in by_tz.items():
            start = now.astimezone(ZoneInfo(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            if end <= start:
                continue
            elapsed = max(1, round((end - start).total_seconds() / 3600))
            for b in rq.buckets(conn, group, start, end, "1h"):
                key = (b.series.farm_id, b.series.node_id)
                have, total = out.get(key, (0, 0))
                out[key] = (have + sum(1 for c in b.count if c > 0), total + elapsed)
    return out


def overview(
    src: Source,
    *,
    now: datetime | None = None,
    offline_after_s: float = 1800.0,
    alert_counts: pd.DataFrame | None = None,
) -> Overview:
    """``alert_counts`` (farm_id, node_id, severity, n of unresolved alerts; None: no alert service)
    colours nodes and farms; without it only silence and battery do."""
    now = now or datetime.now(UTC)
    counts = (
        alert_counts
        if alert_counts is not None
        else pd.DataFrame(columns=["farm_id", "node_id", "severity", "n"])
    )

    def n_alerts(severity: str, farm: str, node: str | None = None) -> int:
        sel = (counts.farm_id == farm) & (counts.severity == severity)
        if node is not None:
            sel &= counts.node_id == node
        return int(counts.n[sel].sum())

    farms = list_farms(src)
    nodes = list_nodes(src)
    gateways = list_gateways(src)
    done = today_completeness(src, farms, now)
    node_rows = []
    for n in nodes:
        age = _age_s(now, n.last_seen)
        have, total = done.get((n.farm_id, n.node_id), (0, 0))
        node_rows.append(
            {
                "farm_id": n.farm_id,
                "node_id": n.node_id,
                "name": n.name or n.node_id,
                "profile": n.profile,
                "lat": n.lat,
                "lon": n.lon,
                "last_seen": n.last_seen,
                "age_s": age,
                "battery_v": n.battery_v,
                "rssi_dbm": n.rssi_dbm,
                "completeness": n.completeness,
                "hours_with_data": have,
                "hours_expected": total,
                "state": node_state(
                    age,
                    offline_after_s=offline_after_s,
                    battery_v=n.battery_v,
                    critical=n_alerts("critical", n.farm_id, n.node_id),
                    warning=n_alerts("warning", n.farm_id, n.node_id),
                ),
            }
        )
    node_df = pd.DataFrame(
        node_rows,
        columns=[
            "farm_id", "node_id", "name", "profile", "lat", "lon", "last_seen", "age_s", "battery_v",
            "rssi_dbm", "completeness", "hours_with_data", "hours_expected", "state",
        ],
    )  # fmt: skip
    gw_rows = []
    for g in gateways:
        age = _age_s(now, g.last_seen)
        gw_rows.append(
            {
                "farm_id": g.farm_id,
                "gateway_id": g.gateway_id,
                "name": g.name or g.gateway_id,
                "lat": g.lat,
                "lon": g.lon,
                "last_seen": g.last_seen,
                "age_s": age,
                "uplink": uplink_state(age, offline_after_s=offline_after_s),
                "backlog": _health_int(g.meta, "depth"),
                "drops": _health_int(g.meta, "drops"),
            }
        )
    gw_df = pd.DataFrame(
        gw_rows,
        columns=[
            "farm_id", "gateway_id", "name", "lat", "lon", "last_seen", "age_s", "uplink", "backlog", "drops",
        ],
    )  # fmt: skip
    farm_rows = []
    for f in farms:
        mine = node_df[node_df.farm_id == f.id]
        have = int(mine.hours_with_data.sum())
        total = int(mine.hours_expected.sum())
        farm_rows.append(
            {
                "id": f.id,
                "name": f.name,
                "kind": f.kind,
                "lat": f.lat,
                "lon": f.lon,
                "tz": f.tz,
                "nodes": len(mine),
                "online": int((mine.state != "offline").sum()),
                "completeness": (have / total) if total else None,
                "alerts_critical": n_alerts("critical", f.id),
                "alerts_warning": n_alerts("warning", f.id),
                "alerts_info": n_alerts("info", f.id),
                "state": farm_state(
                    list(mine.state), critical=n_alerts("critical", f.id), warning=n_alerts("warning", f.id)
                ),
            }
        )
    farm_df = pd.DataFrame(
        farm_rows,
        columns=[
            "id", "name", "kind", "lat", "lon", "tz", "nodes", "online", "completeness",
            "alerts_critical", "alerts_warning", "alerts_info", "state",
        ],
    )  # fmt: skip
    bounds = {f.id: f.boundary for f in farms if f.boundary}
    with src.conn() as conn:
        blocks = block_shapes(conn)
    return Overview(
        now=now,
        farms=farm_df,
        nodes=node_df,
        gateways=gw_df,
        boundaries=bounds,
        blocks=blocks,
        alerts_configured=alert_counts is not None,
    )


# --- farm page ------------------------------------------------------------------------------------


def qc_flag(metric: str, times: Sequence[datetime], values: Sequence[float]) -> int:
    """QARTOD flag of the newest reading given the readings before it (catalog thresholds)."""
    if not values or metric not in CATALOG:
        return int(NOT_EVALUATED)
    t = np.array([x.timestamp() for x in times], dtype=np.float64)
    v = np.array(values, dtype=np.float64)
    res = qc_metric(metric, t, v, causal=True)
    return int(res.aggregate[-1].item())


def latest_values(src: Source, farm_id: str, *, now: datetime | None = None) -> pd.DataFrame:
    """One row per (node, metric): newest value, its time and its QC flag over the last two hours."""
    now = now or datetime.now(UTC)
    with src.conn() as conn:
        latest = [lv for lv in rq.latest(conn, farm=farm_id) if is_sensor(lv.node_id)]
        series = {s.series_id: s for s in rq.find_series(conn, farm=farm_id)}
        rows = []
        for lv in latest:
            flag: int = int(NOT_EVALUATED)
            if lv.time is not None and lv.metric in CATALOG:
                raw = rq.raw(
                    conn,
                    series[lv.series_id],
                    lv.time - LATEST_QC_WINDOW,
                    lv.time + timedelta(microseconds=1),
                    limit=5000,
                )
                # The page ends at the newest reading only if it holds the whole window.
                if raw.next_cursor is None:
                    flag = qc_flag(lv.metric, raw.time, raw.value)
            rows.append(
                {
                    "node_id": lv.node_id,
                    "metric": lv.metric,
                    "value": lv.value,
                    "unit": lv.unit,
                    "time": lv.time,
                    "age_s": _age_s(now, lv.time),
                    "qc": flag,
                }
            )
    return pd.DataFrame(rows, columns=["node_id", "metric", "value", "unit", "time", "age_s", "qc"])


def choose_bucket(start: datetime, end: datetime) -> str:
    """The shortest bucket that keeps a chart at or below MAX_POINTS points; rollups past 3 days."""
    span = (end - start).total_seconds()
    for name, width in BUCKETS:
        if span > ROLLUP_AFTER.total_seconds() and width < 3600:
            continue
        if span / width <= MAX_POINTS:
            return name
    return "1d"


@dataclass(frozen=True)
class Chart:
    """Bucketed series of one metric for several nodes, long format for plotting and export."""

    metric: str
    bucket: str
    tz: str
    frame: pd.DataFrame  # node_id, time (farm-local), mean, min, max, count, qc


def chart_series(
    src: Source,
    farm_id: str,
    metric: str,
    start: datetime,
    end: datetime,
    *,
    nodes: Sequence[str] | None = None,
    bucket: str | None = None,
) -> Chart:
    """Buckets of ``metric`` for the farm's nodes (or ``nodes``) in [start, end).

    A bucket with no reading stays in the frame with null values, so a line breaks at the gap.
    ``qc`` flags each bucket by the QC tests run on the bucket means (fail / suspect / pass).
    """
    bucket = bucket or choose_bucket(start, end)
    with src.conn() as conn:
        series = rq.find_series(conn, farm=farm_id, metric=metric)
        if nodes is not None:
            wanted = set(nodes)
            series = [s for s in series if s.node_id in wanted]
        got: list[BucketSeries] = rq.buckets(conn, series, start, end, bucket) if series else []  # type: ignore[arg-type]
    tz = series[0].tz if series else "UTC"
    frames = _bucket_frames(got)
    cols = ["node_id", "time", "mean", "min", "max", "count", "qc"]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return Chart(metric=metric, bucket=bucket, tz=tz, frame=frame)


def _bucket_frames(got: Sequence[BucketSeries]) -> list[pd.DataFrame]:
    """Each series' buckets as a frame (plain float64, NaN for an empty bucket); ``mean`` holds the
    bucket's sum for summed metrics. Series of one query share their list of bucket starts: it is
    converted once."""
    index: dict[int, pd.DatetimeIndex] = {}
    out = []
    for b in got:
        key = id(b.start)
        if key not in index:
            epoch = np.array([t.timestamp() for t in b.start], dtype=np.float64)
            index[key] = pd.DatetimeIndex((epoch * 1e9).astype("int64"), tz="UTC").tz_convert(b.series.tz)
        value = b.sum if b.sum is not None else b.mean
        df = pd.DataFrame(
            {
                "node_id": b.series.node_id,
                "time": index[key],
                "mean": np.array(value, dtype=np.float64),
                "min": np.array(b.min, dtype=np.float64),
                "max": np.array(b.max, dtype=np.float64),
                "count": np.array(b.count, dtype=np.int64),
            }
        )
        df["qc"] = _bucket_qc(b.series.metric, df)
        out.append(df)
    return out


def _bucket_qc(metric: str, df: pd.DataFrame) -> np.ndarray[Any, Any]:
    flags = np.full(len(df), NOT_EVALUATED, dtype=np.int64)
    m = CATALOG.get(metric)
    if m is None:
        return flags
    have = df["count"].to_numpy() > 0
    if have.sum() == 0:
        return flags
    t = pd.DatetimeIndex(df["time"]).asi8[have] / 1e9
    lo = df["min"].to_numpy(dtype=np.float64, na_value=np.nan)[have]
    hi = df["max"].to_numpy(dtype=np.float64, na_value=np.nan)[have]
    th = thresholds_for(metric)
    # A bucket fails if its extremes do (its mean alone would hide one bad reading). The tests on
    # neighbours (spike, rate of change, flat line) mean something only between single readings.
    both = np.stack([lo, hi])
    gr = gross_range(np.stack([t, t]), both, m.lo, m.hi, th.suspect_lo, th.suspect_hi)
    combined = gr.max(axis=0)
    if (df["count"].to_numpy()[have] <= 1).all():
        agg = qc_metric(metric, t, lo).aggregate
        combined = np.maximum(combined, np.where(agg == NOT_EVALUATED, PASS, agg))
    combined = np.where(np.isin(combined, (PASS, SUSPECT, FAIL)), combined, PASS)
    flags[have] = combined
    return flags


def farm_metrics(nodes: Sequence[NodeStatus]) -> list[str]:
    """Catalog metrics measured on the farm, in catalog order, device health last."""
    return farm_metrics_of(m for n in nodes for m in n.metrics)


def farm_metrics_of(metrics: Iterable[str]) -> list[str]:
    have = set(metrics)
    order = [m for m in CATALOG if m in have and m not in HEALTH_METRICS]
    return order + [m for m in HEALTH_METRICS if m in have]


def node_health(src: Source, farm_id: str, *, now: datetime | None = None) -> pd.DataFrame:
    """Per node: last seen, battery, RSSI, messages received / missing, drops reported by the node."""
    now = now or datetime.now(UTC)
    with src.conn() as conn:
        every = _all_pages(lambda **kw: reg.list_nodes(conn, farm=farm_id, **kw))
        nodes = [n for n in every if is_sensor(n.node_id)]
        comp = {c.node_id: c for c in rq.completeness(conn, farm=farm_id)}
    rows = []
    for n in nodes:
        c = comp.get(n.node_id)
        rows.append(
            {
                "node_id": n.node_id,
                "name": n.name or n.node_id,
                "last_seen": n.last_seen,
                "age_s": _age_s(now, n.last_seen),
                "battery_v": n.battery_v,
                "rssi_dbm": n.rssi_dbm,
                "msgs_received": n.msgs_received,
                "msgs_missing": c.msgs_missing if c else 0,
                "dropped_reported": c.dropped_reported if c else 0,
                "completeness": n.completeness,
                "firmware_version": n.firmware_version,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "node_id", "name", "last_seen", "age_s", "battery_v", "rssi_dbm", "msgs_received",
            "msgs_missing", "dropped_reported", "completeness", "firmware_version",
        ],
    )  # fmt: skip


def hourly(
    src: Source, farm_id: str, metrics: Sequence[str], start: datetime, end: datetime
) -> dict[str, pd.DataFrame]:
    """Hourly buckets of each metric, all of the farm's nodes (one query, from the rollups):
    metric -> frame (node_id, time, mean, min, max, count, qc)."""
    with src.conn() as conn:
        wanted = set(metrics)
        series = [s for s in rq.find_series(conn, farm=farm_id) if s.metric in wanted]
        got = rq.buckets(conn, series, start, end, "1h") if series else []
    frames: dict[str, list[pd.DataFrame]] = {}
    for b, df in zip(got, _bucket_frames(got), strict=True):
        frames.setdefault(b.series.metric, []).append(df)
    return {m: pd.concat(fs, ignore_index=True) for m, fs in frames.items()}


def sky_series(src: Source, farm_id: str, start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    """Daily per-block imagery index means (``ndvi_mean`` ...) and the farm's daily soil moisture:
    metric -> frame (node_id = ``sat-<block>`` / ``uav-<block>`` or the sensor node). Empty when
    the farm has no imagery yet."""
    with src.conn() as conn:
        all_series = rq.find_series(conn, farm=farm_id)
        sky = [
            s
            for s in all_series
            if s.node_id.startswith(SKY_PREFIXES) and s.metric.endswith("_mean") and s.metric in CATALOG
        ]
        if not sky:
            return {}
        soil = [s for s in all_series if s.metric == "soil_vwc" and not s.node_id.startswith(SKY_PREFIXES)]
        got = rq.buckets(conn, [*sky, *soil], start, end, "1d")
    frames: dict[str, list[pd.DataFrame]] = {}
    for b, df in zip(got, _bucket_frames(got), strict=True):
        frames.setdefault(b.series.metric, []).append(df)
    return {m: pd.concat(fs, ignore_index=True) for m, fs in frames.items()}


def anomalies(
    src: Source, farm_id: str, metric: str, nodes: Sequence[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """Readings of the chosen nodes' ``metric`` in [start, end) whose anomaly score (the API's
    on-demand scoring, causal, with a week of warm-up) is at least ANOMALY_MARK."""
    cols = ["node_id", "time", "value", "score"]
    if end - start > ANOMALY_MAX_SPAN or metric not in CATALOG:
        return pd.DataFrame(columns=cols)
    rows = []
    with src.conn() as conn:
        wanted = set(nodes)
        for s in rq.find_series(conn, farm=farm_id, metric=metric):
            if s.node_id not in wanted:
                continue
            a = an.anomaly(conn, s, start, end)
            rows += [
                (s.node_id, t, v, sc)
                for t, v, sc in zip(a.time, a.value, a.score, strict=True)
                if sc is not None and sc >= ANOMALY_MARK
            ]
    return pd.DataFrame(rows, columns=cols)


# --- farm map: field blocks and the latest imagery overlay ----------------------------------------


@dataclass(frozen=True)
class BlockShape:
    """A field block's polygon (GeoJSON, WGS 84) and its newest mean index value (if any)."""

    farm_id: str
    block_id: str
    name: str
    geometry: dict[str, Any]
    value: float | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class FarmMap:
    blocks: list[BlockShape]
    image: Overlay | None  # the latest colour-mapped index PNG and its WGS 84 bounds


def block_shapes(conn: Conn, farm_id: str | None = None, index: str = "ndvi") -> list[BlockShape]:
    """Every block of the farm (or of every farm) with its newest ``<index>_mean``."""
    blocks = sky_q.list_blocks(conn, farm_id)
    values = sky_q.latest_block_values(conn, farm_id, f"{index}_mean") if blocks else {}
    out = []
    for b in blocks:
        t, v = values.get((b.farm_id, b.block_id), (None, None))
        out.append(BlockShape(b.farm_id, b.block_id, b.name or b.block_id, b.geometry, v, t))
    return out


def farm_map(src: Source, farm_id: str, index: str = "ndvi") -> FarmMap:
    """The farm's blocks with their newest mean ``index`` and the latest overlay image (if any)."""
    with src.conn() as conn:
        blocks = block_shapes(conn, farm_id, index)
        image = sky_q.latest_overlay(conn, farm_id, index)
    return FarmMap(blocks, image)
