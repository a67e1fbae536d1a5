"""The alert service (`agri alerts`): tail the feed, evaluate, open/resolve alerts, escalate, dispatch.

Each evaluation step is one transaction: the feed cursor, the evaluator's changed state (episodes,
series watermarks), the alert changes and their outbox rows commit together. After ``kill -9`` the
service reloads that state and resumes from the cursor: no reading is skipped, none counted twice,
no alert doubled.

Late data: a transition found in a reading older than ``late_after_s`` (a gateway's backlog after
an outage) is recorded with its true start and end but sends nothing; the farm's commissioners get
one summary message once the backlog has been worked through. A condition still ongoing when fresh
readings arrive alerts normally.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from psycopg.types.json import Jsonb

from alerts import feed, lifecycle
from alerts.analysis import CHECKPOINT_S, DEFAULT_FLOOR, Analyzer
from alerts.config import RuleBook
from alerts.dispatcher import Dispatcher, DispatchOptions
from alerts.engine import Block, Evaluator, Event, NodeSeen, episode_key, subject
from alerts.gateways import GatewayBoard
from alerts.sites import Site, Sites
from alerts.windows import Windows
from kernel import links
from kernel.log import event, get_logger
from kernel.mqtt import make_client
from kernel.protocol import ROOT, ProtocolError, parse_topic
from kernel.rules import Episode, Rule
from store import registry
from store import sky as store_sky

log = get_logger("alerts")
HEALTH_FILTER = f"{ROOT}/+/gw/+/health"
IMAGERY_METRIC = "ndvi_median"  # the block statistic imagery fusion compares
SAT_PREFIX = store_sky.pseudo_node_id("", "satellite")  # "sat-": a block's satellite pseudo node
FUSION_LABEL = {
    "water_stress": "可能缺水 / likely water stress",
    "disease_or_damage": "可能病害或损伤，请巡查 / likely disease or damage: scout the block",
    "ndvi_drop": "原因不明 / cause unclear",
}


@dataclass
class Phases:
    """Wall seconds spent per phase of :meth:`AlertService.step` (for `agri bench alerts`)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def clock(self) -> Callable[[str], None]:
        last = [time.perf_counter()]

        def lap(name: str) -> None:
            t = time.perf_counter()
            self.seconds[name] = self.seconds.get(name, 0.0) + t - last[0]
            last[0] = t

        return lap


@dataclass
class AlertOptions:
    database_url: str
    rules: RuleBook = field(default_factory=RuleBook.load)
    partition: feed.Partition = field(default_factory=feed.Partition)
    public_url: str = "http://127.0.0.1:8501"  # the dashboard
    ack_url: str = "http://127.0.0.1:8088"  # the API (signed acknowledge links)
    link_key: bytes = field(default_factory=lambda: links.derive_key(None))
    escalate_after_s: float = 900.0
    late_after_s: float = 900.0
    summary_quiet_s: float = 30.0
    tick_s: float = 1.0
    dispatch: bool = True
    mqtt_url: str | None = None  # central broker: gateway health (topology, backlog)
    analyse: bool = True  # anomaly scores and QC flags on every evaluated reading
    anomaly_floor: float = DEFAULT_FLOOR
    anomaly_checkpoint_s: float = CHECKPOINT_S  # how often changed anomaly states are saved


class AlertService:
    def __init__(self, opts: AlertOptions) -> None:
        self.opts = opts
        self.part = opts.partition
        self.conn: psycopg.Connection[Any] | None = None
        self.kinds: dict[str, str] = {}
        self.sites = Sites()
        self.win = Windows()
        self.ev = Evaluator(self._rules_for, site_for=self._site_for)
        self.an = Analyzer(opts.anomaly_floor, sites=self.sites, checkpoint_s=opts.anomaly_checkpoint_s)
        self.pending_late: dict[str, dict[str, Any]] = {}  # farm -> summary being collected
        self.late_open: set[str] = set()  # episode keys opened from late data, not yet told
        self.dispatcher = (
            Dispatcher(
                DispatchOptions(opts.database_url, opts.link_key, opts.public_url, ack_url=opts.ack_url)
            )
            if opts.dispatch
            else None
        )
        self.chunks = 0
        self.phases = Phases()
        self.board = GatewayBoard()
        self.unknown_gateways: set[tuple[str, str]] = set()  # told once each
        self._health: queue.SimpleQueue[tuple[str, str, bytes, float]] = queue.SimpleQueue()

    # --- state --------------------------------------------------------------------------------

    def _rules_for(self, farm: str) -> list[Rule]:
        kind = self.kinds.get(farm)
        if kind is None:
            row = self._connect().execute("SELECT kind FROM farms WHERE id = %s", (farm,)).fetchone()
            kind = self.kinds[farm] = str(row[0]) if row else ""
        return self.opts.rules.rules(farm, kind)

    def _site_for(self, farm: str) -> Site:
        self.sites.load(self._connect(), [farm])
        return self.sites[farm]

    def connect(self) -> None:
        """Connect and load the saved state now (otherwise the first step does)."""
        self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                self.opts.database_url, autocommit=True, application_name="agri-alerts"
            )
            self.opts.rules.refresh_overrides(self.conn)
            self._load()
        return self.conn

    def _load(self) -> None:
        """Rebuild the evaluator from what was committed (start, or after a failed step)."""
        conn = self.conn
        assert conn is not None
        ev = Evaluator(self._rules_for, site_for=self._site_for)
        self.an = Analyzer(  # states reload lazily
            self.opts.anomaly_floor, sites=self.sites, checkpoint_s=self.opts.anomaly_checkpoint_s
        )
        self.win = Windows()  # windows too (from the stored readings)
        self.pending_late, self.late_open = {}, set()
        for key, state in conn.execute(
            "SELECT key, state FROM alert_state WHERE worker = %s", (self.part.name,)
        ).fetchall():
            kind, _, rest = str(key).partition(":")
            if kind == "ep":
                ev.episodes[rest] = Episode.from_json(state)
            elif kind == "late":
                self.late_open.add(rest)
            elif kind == "summary":
                self.pending_late[rest] = state
        for sid, pk, farm, node, source, wm in conn.execute(
            "SELECT s.id, n.id, n.farm_id, n.node_id, n.source, s.alert_watermark FROM series s"
            " JOIN nodes n ON n.id = s.node_id WHERE s.alert_watermark IS NOT NULL"
            " AND (hashtext(n.farm_id)::bigint & 2147483647) %% %s = %s",
            (self.part.count, self.part.index),
        ).fetchall():
            ev.watermarks[int(sid)] = float(wm)
            if source != "sensor":
                continue  # imagery pseudo nodes: no clock rules (see engine.Row.sensor)
            seen = ev.nodes.get(int(pk))
            if seen is None:
                ev.nodes[int(pk)] = NodeSeen(str(farm), str(node), float(wm))
            elif float(wm) > seen.last_t:
                seen.last_t = float(wm)
        self.ev = ev

    def _persist(self, conn: psycopg.Connection[Any]) -> None:
        ev = self.ev
        if ev.dirty:
            keys = sorted(ev.dirty)
            conn.execute(
                "INSERT INTO alert_state (worker, key, state) SELECT %s, k, s"
                " FROM unnest(%s::text[], %b::jsonb[]) AS u(k, s)"
                " ON CONFLICT (worker, key) DO UPDATE SET state = EXCLUDED.state",
                (self.part.name, [f"ep:{k}" for k in keys], [Jsonb(ev.episodes[k].to_json()) for k in keys]),
            )
        if ev.dirty_series:
            sids = sorted(ev.dirty_series)
            conn.execute(
                "UPDATE series s SET alert_watermark = u.w FROM unnest(%b::int[], %b::float8[]) AS u(id, w)"
                " WHERE s.id = u.id",
                (sids, [ev.watermarks[s] for s in sids]),
            )

    def _commit_done(self) -> None:
        self.an.committed()
        self.ev.dirty.clear()
        self.ev.dirty_series.clear()

    # --- evaluation ---------------------------------------------------------------------------

    def step(self, now: float | None = None) -> int:
        """Evaluate the next chunk of the feed in one transaction; the feed rows consumed."""
        conn = self._connect()
        clock = self.phases.clock()
        try:
            with conn.transaction():
                hz = feed.horizon(conn)  # before this transaction takes an xid of its own
                cursor = feed.lock_cursor(conn, self.part)
                rows = feed.next_rows(conn, cursor, hz)
                if not rows:
                    if not self.an.save_due():
                        return 0
                    self.an.persist(conn)  # quiet: save the anomaly states that changed
                else:
                    self._evaluate(conn, rows, clock, now)
            clock("commit")
        except BaseException:
            self._reset()
            raise
        self._commit_done()
        if rows:
            self.chunks += 1
        return len(rows)

    def _evaluate(
        self,
        conn: psycopg.Connection[Any],
        rows: list[feed.FeedRow],
        clock: Callable[[str], None],
        now: float | None,
    ) -> None:
        """Evaluate feed rows and save the rule state and cursor (inside the step's transaction)."""
        readings, behind = self.ev.split_blocks(feed.read_readings(conn, rows, self.part))
        clock("read")
        if self.pending_late:
            self._backlog_seen(readings + behind, time.time() if now is None else now)
        self.win.update(conn, readings, self.ev.window_span)  # day-scale rules' history, these included
        if self.opts.analyse:
            self.an.process(conn, readings, self.win)
        clock("analyse")
        now = time.time() if now is None else now
        events = self.ev.feed_blocks(readings) + self.ev.feed_blocks(behind)
        events += self.ev.windowed(readings, self.win.of)
        events += self._imagery(conn, readings)
        clock("rules")
        self._apply(conn, events, now)
        self._promote(conn, now)
        clock("alerts")
        self._persist(conn)
        feed.save_cursor(conn, self.part, (rows[-1][0], rows[-1][1]))
        clock("write_rule_state")
        self.an.persist(conn, clock)

    def checkpoint(self) -> None:
        """Save every anomaly state changed since the last checkpoint (the service stops)."""
        if self.conn is None or self.conn.closed or not (self.an.dirty or self.an._pending):
            return
        with self.conn.transaction():
            self.an.persist(self.conn, force=True)
        self._commit_done()

    def _reset(self) -> None:
        if self.conn is not None and not self.conn.closed:
            try:
                self._load()
                return
            except psycopg.Error:
                pass
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _apply(self, conn: psycopg.Connection[Any], events: list[Event], now: float) -> None:
        o = self.opts
        for e in events:
            key = episode_key(e.rule, e.farm, e.node, e.metric)
            live = now - e.t <= (e.rule.late_after_s or o.late_after_s)
            if e.kind == "open":
                if live:
                    lifecycle.open_alert(conn, e, now, o.public_url, o.escalate_after_s)
                else:
                    lifecycle.open_alert(conn, e, now, o.public_url, o.escalate_after_s, notify=False)
                    self.late_open.add(key)
                    conn.execute(
                        "INSERT INTO alert_state (worker, key, state) VALUES (%s, %s, '{}')"
                        " ON CONFLICT DO NOTHING",
                        (self.part.name, f"late:{key}"),
                    )
                    self._summary_add(conn, e, now)
                event(
                    log,
                    "alert_open",
                    rule=e.rule.name,
                    farm=e.farm,
                    node=e.node,
                    value=e.value,
                    late=not live,
                )
            else:
                if key in self.late_open:
                    self._drop_late(conn, key)
                    conn.execute(
                        "UPDATE alerts SET ended_at = %s, status = 'resolved', resolved_by = 'rules'"
                        " WHERE farm_id = %s AND coalesce(node_id, 0) = %s AND coalesce(series_id, 0) = %s"
                        " AND rule = %s AND subject = %s AND ended_at IS NULL",
                        (
                            lifecycle._ts(e.t),
                            e.farm,
                            e.node_pk or 0,
                            e.series_id or 0,
                            e.rule.name,
                            subject(e.rule, e.node, e.metric),
                        ),
                    )
                    self._summary_add(conn, e, now)
                else:
                    lifecycle.close_alert(conn, e, now, o.public_url)
                    if e.rule.kind == "gateway":
                        self._outage_add(conn, e, now)
                event(log, "alert_close", rule=e.rule.name, farm=e.farm, node=e.node, value=e.value)

    def _imagery(self, conn: psycopg.Connection[Any], blocks: list[Block]) -> list[Event]:
        """``ndvi_fall`` of every block on each new satellite date of a farm (all of a scene's blocks
        are stored in one transaction, so they arrive together): ``store.sky.farm_fusion``."""
        dates: dict[str, set[float]] = {}
        pks: dict[tuple[str, str], int] = {}
        for b in blocks:
            if b.metric == IMAGERY_METRIC and b.node.startswith(SAT_PREFIX):
                dates.setdefault(b.farm, set()).update(b.t.tolist())
                pks[(b.farm, b.node)] = b.node_pk
        events: list[Event] = []
        for farm, ts in sorted(dates.items()):
            if not any(x.metric == "ndvi_fall" for x in self._rules_for(farm)):
                continue
            for t in sorted(ts):
                when = datetime.fromtimestamp(t + 0.001, UTC)  # at or before the scene's own time
                try:
                    flags = store_sky.farm_fusion(conn, farm, metric=IMAGERY_METRIC, when=when)
                except LookupError:  # no imagery of the farm by then (cannot happen for rows just read)
                    continue
                for f in flags:
                    node = store_sky.pseudo_node_id(f.block_id, "satellite")
                    if f.z is None or (farm, node) not in pks:
                        continue
                    note = f"{FUSION_LABEL.get(f.flag, f.flag)} ({f.reason})" if f.flag != "none" else None
                    events += self.ev.derived(farm, node, pks[(farm, node)], "ndvi_fall", t, f.z, note)
        return events

    def _drop_late(self, conn: psycopg.Connection[Any], key: str) -> None:
        self.late_open.discard(key)
        conn.execute(
            "DELETE FROM alert_state WHERE worker = %s AND key = %s", (self.part.name, f"late:{key}")
        )

    def _promote(self, conn: psycopg.Connection[Any], now: float) -> None:
        """Late-opened conditions still active with fresh readings: alert normally now."""
        for key in sorted(self.late_open):
            ep = self.ev.episodes.get(key)
            if ep is None or not ep.active:
                continue
            if now - ep.last_t > self.opts.late_after_s:
                continue
            rule_name, farm, node, metric = key.split("|", 3)
            subj = f"{node}/{metric}" if metric else node
            row = conn.execute(
                "UPDATE alerts SET late = false, escalate_at = %s WHERE farm_id = %s AND subject = %s"
                " AND rule = %s AND ended_at IS NULL AND late RETURNING id",
                (lifecycle._ts(now + self.opts.escalate_after_s), farm, subj, rule_name),
            ).fetchone()
            self._drop_late(conn, key)
            if row is not None:
                alert = lifecycle._get(conn, int(row[0]))
                lifecycle._record(conn, alert["id"], "opened", "rules", now, ongoing_after_late_data=True)
                lifecycle.enqueue(conn, alert, "alert.opened", self.opts.public_url, order=0)

    def _summary_add(self, conn: psycopg.Connection[Any], e: Event, now: float) -> None:
        s = self.pending_late.setdefault(e.farm, {"farm": e.farm, "lines": [], "last": now})
        fmt = time.strftime("%m-%d %H:%M", time.gmtime(e.t + 8 * 3600))
        verb = "began" if e.kind == "open" else "ended"
        s["lines"] = [*s["lines"][-49:], f"{e.rule.name} {e.node} {verb} {fmt} (UTC+8), value {e.value:.2f}"]
        s["last"] = now
        self._save_summary(conn, e.farm)

    def _outage_add(self, conn: psycopg.Connection[Any], e: Event, now: float) -> None:
        """A gateway is back: its outage goes into the farm's summary, sent once the backlog it spooled
        has been worked through (quiet for ``summary_quiet_s``), with what was stored from it."""
        s = self.pending_late.setdefault(e.farm, {"farm": e.farm, "lines": [], "last": now})
        start = e.since - e.rule.threshold  # its last health came about one threshold before
        s["outages"] = [*s.get("outages", []), {"gw": e.node, "from": start, "to": e.t}]
        s["last"] = now
        self._save_summary(conn, e.farm)

    def _backlog_seen(self, blocks: list[Block], now: float) -> None:
        """Readings taken during a pending outage (the gateway's spool) keep its summary waiting."""
        for b in blocks:
            s = self.pending_late.get(b.farm)
            if s is not None and any(
                bool(((b.t >= o["from"]) & (b.t <= o["to"])).any()) for o in s.get("outages", ())
            ):
                s["last"] = now

    def _outage_lines(self, conn: psycopg.Connection[Any], farm: str, s: dict[str, Any]) -> list[str]:
        out = []
        for o in s.get("outages", ()):
            n, nodes = conn.execute(
                "SELECT count(*), count(DISTINCT n.id) FROM readings r JOIN series x ON x.id = r.series_id"
                " JOIN nodes n ON n.id = x.node_id WHERE n.farm_id = %s AND n.source = 'sensor'"
                " AND r.time BETWEEN %s AND %s",
                (farm, lifecycle._ts(o["from"]), lifecycle._ts(o["to"])),
            ).fetchone() or (0, 0)
            a, b = (time.strftime("%m-%d %H:%M", time.gmtime(x + 8 * 3600)) for x in (o["from"], o["to"]))
            secs = o["to"] - o["from"]
            took = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
            out.append(
                f"gateway {o['gw']} out of touch {a} - {b} (UTC+8, {took}):"
                f" {n:,} readings from {nodes} nodes taken meanwhile are stored"
            )
        return out

    def _save_summary(self, conn: psycopg.Connection[Any], farm: str) -> None:
        s = self.pending_late[farm]
        conn.execute(
            "INSERT INTO alert_state (worker, key, state) VALUES (%s, %s, %s) ON CONFLICT (worker, key)"
            " DO UPDATE SET state = EXCLUDED.state",
            (self.part.name, f"summary:{farm}", Jsonb(s)),
        )

    def _unknown_gateway(self, farm: str, gateway: str) -> None:
        if (farm, gateway) not in self.unknown_gateways:
            self.unknown_gateways.add((farm, gateway))
            event(log, "gateway_not_registered", logging.WARNING, farm=farm, gateway=gateway)

    def tick(self, now: float | None = None) -> None:
        """Clock work: silent nodes, escalations, late-data summaries."""
        now = time.time() if now is None else now
        conn = self._connect()
        try:
            with conn.transaction():
                while True:
                    try:
                        farm, gw, payload, at = self._health.get_nowait()
                    except queue.Empty:
                        break
                    health = self.board.observe(farm, gw, payload, at)
                    if health is not None and not registry.record_gateway_health(conn, farm, gw, health, at):
                        self._unknown_gateway(farm, gw)
                events = self.ev.gateway_tick(now, self.board) + self.ev.tick(now)
                self._apply(conn, events, now)
                self._persist(conn)
                for farm, s in list(self.pending_late.items()):
                    if now - float(s["last"]) < self.opts.summary_quiet_s:
                        continue
                    lines = self._outage_lines(conn, farm, s) + s["lines"]
                    view = {"farm": farm, "lines": lines, "rule": "outage.summary"}
                    conn.execute(
                        "INSERT INTO webhook_deliveries (alert_id, commissioner_id, event, payload, farm_id)"
                        " SELECT NULL, c.id, 'outage.summary', %s, %s FROM farm_commissioners fc"
                        " JOIN commissioners c ON c.id = fc.commissioner_id"
                        " WHERE fc.farm_id = %s AND c.active AND fc.escalation_order = 0",
                        (Jsonb(view), farm, farm),
                    )
                    conn.execute(
                        "DELETE FROM alert_state WHERE worker = %s AND key = %s",
                        (self.part.name, f"summary:{farm}"),
                    )
                    del self.pending_late[farm]
                    event(log, "late_summary", farm=farm, lines=len(lines))
        except BaseException:
            self._reset()
            raise
        self._commit_done()
        lifecycle.escalate_due(conn, now, self.opts.public_url, self.opts.escalate_after_s)
        self.opts.rules.refresh_overrides(conn)  # a farm's override put or deleted through the API

    # --- loop ---------------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        listen = psycopg.connect(
            self.opts.database_url, autocommit=True, application_name="agri-alerts-listen"
        )
        listen.execute("LISTEN agri_alert_feed")
        disp_thread = None
        if self.dispatcher is not None:
            disp_thread = threading.Thread(
                target=self.dispatcher.serve, args=(stop,), name="dispatch", daemon=True
            )
            disp_thread.start()
        client = self._subscribe_health() if self.opts.mqtt_url else None
        event(log, "alerts_started", partition=self.part.name, gateways=client is not None)
        next_tick = 0.0
        try:
            while not stop.is_set():
                try:
                    while self.step() and not stop.is_set():
                        pass
                    if time.monotonic() >= next_tick:
                        self.tick()
                        next_tick = time.monotonic() + self.opts.tick_s
                except psycopg.Error as exc:
                    event(log, "alerts_db_error", logging.WARNING, error=str(exc).splitlines()[0][:200])
                    stop.wait(1.0)
                    continue
                # Woken by a feed commit, or at the latest after a short wait: a notify may come
                # before that transaction is below the horizon.
                select.select([listen.fileno()], [], [], 0.25)
                for _ in listen.notifies(timeout=0):
                    pass
        finally:
            if client is not None:
                client.disconnect()
                client.loop_stop()
            listen.close()
            if disp_thread is not None:
                disp_thread.join(15)
            self.close()

    def _subscribe_health(self) -> mqtt.Client:
        """Gateway health from the central broker (retained: the current state arrives at once)."""
        assert self.opts.mqtt_url is not None
        client, kw = make_client(self.opts.mqtt_url, f"agri-alerts-{self.part.index}-{os.getpid()}")

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe(HEALTH_FILTER, qos=1)

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                t = parse_topic(msg.topic)
            except ProtocolError:
                return
            self._health.put((t.farm, t.source, bytes(msg.payload), time.time()))

        client.on_connect = on_connect
        client.on_message = on_message
        client.reconnect_delay_set(1, 10)
        client.connect_async(**kw)
        client.loop_start()
        return client

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.checkpoint()
            except psycopg.Error as exc:  # the states are a checkpoint: the next one catches up
                event(log, "checkpoint_failed", error=str(exc).splitlines()[0] if str(exc) else "")
            self.conn.close()
            self.conn = None
        if self.dispatcher is not None:
            self.dispatcher.close()
