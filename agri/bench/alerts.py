"""`agri bench alerts`: evaluation throughput against ingest's maximum rate, and alert latencies.

1. Ingest's maximum rate, measured in the same run by the ingest bench rig (simulated fleet -> MQTT ->
   ingest workers -> TimescaleDB, offered above what it can take).
2. Throughput: the alert evaluator (default rules of the fleet's farms, anomaly scoring and QC on
   every series) works through everything ingest stored, from its committed-batch feed; evaluated
   readings/s and the ratio to ingest's rate: first as ``alert_workers`` partitions at once
   (processes, farms by hash, as ingest runs ``workers`` processes), then, from the same feed
   again, as one.
3. Latency at half of ingest's rate: a writer commits live readings (some crossing a threshold) at
   that rate while `agri alerts` (a real process, with its dispatcher) runs and a local HTTP receiver
   takes the signed webhooks: committed -> alert opened, opened -> webhook received (p50/p99/max).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from agri.bench.ingest.run import Bench, BenchConfig
from alerts.config import RuleBook
from alerts.feed import Partition
from alerts.service import AlertOptions, AlertService
from kernel.decode import Accepted, Decoded
from kernel.protocol import NodeMessage, Reading
from store import commissioners
from store.writer import Writer

TRIGGER_RULES = """
[[rules]]
name = "bench-trigger"
metric = "soil_t"
above = 40
clear = 30
cooldown_s = 0
severity = "warning"
"""
SECRET = "whsec_YWdyaS1iZW5jaC1hbGVydHMtc2VjcmV0LWtleQ=="


@dataclass
class AlertBenchConfig:
    rate: float = 100_000.0  # offered to ingest (above its maximum)
    duration: float = 10.0
    nodes: int = 2000
    farms: int = 20
    workers: int = 2
    alert_workers: int = 2  # evaluator partitions for the scale-out figure (ingest runs `workers`)
    latency_s: float = 20.0
    latency_nodes: int = 500
    triggers_per_s: float = 2.0  # at most one per tick
    log: Any = field(default=lambda m: None)


class _Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the webhook receiver: note the arrival time
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                at = time.time()
                with lock:
                    outer.got.append((at, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 3)


def _tally(n: int, stored: int, wall: float, log: Any) -> dict[str, Any]:
    """An evaluation run's counts and rate; says so loudly unless each stored reading was evaluated once."""
    if n != stored:
        log(f"error: evaluated {n} readings for {stored} stored: each must be evaluated once")
    return {
        "evaluated": n,
        "stored_in_feed": stored,
        "each_once": n == stored,
        "seconds": round(wall, 2),
        "evaluated_per_s": round(n / wall) if wall else None,
    }


def throughput(db_url: str, log: Any) -> dict[str, Any]:
    """Evaluate everything in the feed with the default rules, anomaly scoring and QC."""
    svc = AlertService(AlertOptions(database_url=db_url, rules=RuleBook.load(), dispatch=False))
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*), coalesce(sum(n_rows), 0) FROM alert_feed").fetchone()
        feed_rows, feed_readings = (int(row[0]), int(row[1])) if row else (0, 0)
        t0, c0 = time.perf_counter(), time.process_time()
        consumed = 0
        deadline = time.monotonic() + 1800
        while consumed < feed_rows and time.monotonic() < deadline:
            n = svc.step()
            consumed += n
            if n == 0:  # a transaction elsewhere holds the horizon back: wait for it
                time.sleep(0.2)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = svc.ev.evaluated
        phases = {k: round(v, 2) for k, v in svc.phases.seconds.items()}
        steps = svc.chunks
    finally:
        svc.close()
    with psycopg.connect(db_url, autocommit=True) as conn:
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()
        scores = conn.execute("SELECT count(*) FROM anomaly_scores").fetchone()
        flags = conn.execute("SELECT count(*) FROM qc_flags").fetchone()
    log(f"evaluated {n} readings in {wall:.1f} s")
    return {
        **_tally(n, feed_readings, wall, log),
        "service_cpu_s": round(cpu, 2),
        "steps": steps,
        "phase_wall_s": phases,  # wall seconds per part of AlertService.step
        "alerts": alerts[0] if alerts else 0,
        "anomaly_scores_stored": scores[0] if scores else 0,
        "qc_flags_stored": flags[0] if flags else 0,
    }


# Everything an evaluation run leaves behind, so the next run starts from the same feed.
_EVALUATION_STATE = (
    "DELETE FROM alert_cursors",
    "DELETE FROM alert_state",
    "UPDATE series SET alert_watermark = NULL, anomaly_state = NULL, farm_state = NULL"
    " WHERE alert_watermark IS NOT NULL OR anomaly_state IS NOT NULL OR farm_state IS NOT NULL",
    "DELETE FROM webhook_deliveries",
    "DELETE FROM alert_events",
    "DELETE FROM alerts",
    "DELETE FROM anomaly_scores",
    "DELETE FROM qc_flags",
)


_VACUUMED = ("alert_cursors", "alert_state", "series", "alerts", "alert_events", "webhook_deliveries")


def reset_evaluation(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for q in _EVALUATION_STATE:
            conn.execute(q)
        # the deletes' dead rows: vacuumed now, not by autovacuum during a later phase
        for table in _VACUUMED:
            conn.execute(f"VACUUM ANALYZE {table}")


def _partition_worker(db_url: str, index: int, count: int, ready: Any, go: Any, out: Any) -> None:
    """One evaluator partition (a process): connect, wait for the start, work through the feed."""
    svc = AlertService(
        AlertOptions(
            database_url=db_url, rules=RuleBook.load(), dispatch=False, partition=Partition(index, count)
        )
    )
    try:
        svc.connect()  # imports, connection and saved state: before the clock starts
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM alert_feed").fetchone()
        feed_rows = int(row[0]) if row else 0
        ready.set()
        go.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        consumed = 0
        while consumed < feed_rows:  # every partition reads every feed row, its farms' readings
            n = svc.step()
            consumed += n
            if n == 0:
                time.sleep(0.05)
        out.put((index, svc.ev.evaluated, time.perf_counter() - t0, time.process_time() - c0))
    finally:
        svc.close()


def partitioned(db_url: str, workers: int, log: Any) -> dict[str, Any]:
    """Everything in the feed evaluated by ``workers`` partitions (processes, farms by hash) at once."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [
        ctx.Process(target=_partition_worker, args=(db_url, i, workers, readies[i], go, out))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for r in readies:
            if not r.wait(120):
                raise RuntimeError("an evaluator partition did not start within 120 s")
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("SELECT coalesce(sum(n_rows), 0) FROM alert_feed").fetchone()
        stored = int(row[0]) if row else 0
        t0 = time.perf_counter()
        go.set()
        got = [out.get(timeout=1800) for _ in range(workers)]
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    n = sum(g[1] for g in got)
    log(f"{workers} partitions evaluated {n} readings in {wall:.1f} s")
    return {
        "workers": workers,
        **_tally(n, stored, wall, log),
        "partitions": [
            {"index": i, "evaluated": e, "seconds": round(w, 2), "cpu_s": round(c, 2)}
            for i, e, w, c in sorted(got)
        ],
    }


def _settle(db_url: str, farm: str, log: Any, timeout: float = 300.0) -> None:
    """Wait until the service has opened the node-silent alert of every fleet node (their last
    readings are from phase 1): that one-off burst is not part of the latencies measured."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM nodes WHERE farm_id <> %s", (farm,)).fetchone()
        fleet = int(row[0]) if row else 0
        t0 = time.monotonic()
        opened = -1
        while time.monotonic() - t0 < timeout:
            row = conn.execute(
                "SELECT count(DISTINCT node_id) FROM alerts WHERE rule = 'node-silent' AND farm_id <> %s",
                (farm,),
            ).fetchone()
            opened = int(row[0]) if row else 0
            if opened >= fleet:
                log(f"latency: the service is up; {opened} silent fleet nodes alerted in "
                    f"{time.monotonic() - t0:.1f} s")  # fmt: skip
                return
            time.sleep(0.2)
    log(f"warning: only {opened} of {fleet} silent fleet nodes alerted after {timeout:.0f} s")


LIVE_METRICS = ("air_t", "air_rh", "soil_vwc", "soil_t", "bat_v")


def _live_writer(
    db_url: str,
    farm: str,
    nodes: list[str],
    rate: float,
    triggers_per_s: float,
    start_at: float,
    seconds: float,
    out: Any,
) -> None:
    """One process of live load: a transaction of current readings every half second (like one
    ingest worker's batches; larger when a commit took longer), now and then a trigger (soil_t 45
    on one reading of a node); puts (readings written, seconds from the start to the last commit,
    [(node, reading time, commit time) of each trigger]) on ``out``."""
    w = Writer(db_url, app_name="bench-alerts-writer")
    tick = 0.5
    trig_every = max(1, round(1 / (tick * triggers_per_s))) if triggers_per_s > 0 else 0
    seq = dict.fromkeys(nodes, 0)
    hot: dict[str, int] = {}  # trigger node -> ticks left above the threshold
    commits: list[tuple[str, float, float]] = []
    written = 0
    k = cursor = 0
    try:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() - start_at < seconds:
            tick_t = time.time()
            accepted = []
            triggers = []
            if trig_every and k % trig_every == 0:
                hot.setdefault(nodes[(k // trig_every) % min(50, len(nodes))], 2)
            # open loop: each transaction carries what is due by now, so a slow commit makes the next
            # one larger instead of lowering the offered rate
            due = round(rate * (tick_t - start_at + tick) / len(LIVE_METRICS)) - cursor
            for j in range(max(1, due)):
                node = nodes[cursor % len(nodes)]
                cursor += 1
                t = round(tick_t + j * 1e-5, 5)
                soil = 20.0
                if node in hot:
                    soil = 45.0 if hot[node] > 1 else 20.0
                    hot[node] -= 1
                    if soil > 40:
                        triggers.append((node, t))
                    if hot[node] <= 0:
                        del hot[node]
                vals = {"air_t": 22.0, "air_rh": 60.0, "soil_vwc": 30.0, "soil_t": soil, "bat_v": 3.9}
                readings = [Reading(farm, node, m, t, v) for m, v in vals.items()]
                accepted.append(Accepted("bench", NodeMessage(farm, node, seq[node], 0, readings), b"",
                                         f"{node}:{seq[node] + 1}".encode()))  # fmt: skip
                seq[node] += 1
            res = w.write([Decoded("bench", accepted)])
            done = time.time()
            written += res.stored
            commits += [(node, t, done) for node, t in triggers]
            k += 1
            time.sleep(max(0.0, tick_t + tick - time.time()))
    finally:
        w.close()
    out.put((written, time.time() - start_at, commits))


def latency(db_url: str, rate: float, cfg: AlertBenchConfig, root: Path) -> dict[str, Any]:
    """Live readings at ``rate`` while `agri alerts` runs; latencies of the triggered alerts."""
    log = cfg.log
    farm = "bench-latency"
    nodes = [f"l-{i:04d}" for i in range(cfg.latency_nodes)]
    recv = _Receiver()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO farms (id, name, kind) VALUES (%s, %s, 'orchard')", (farm, farm))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO nodes (farm_id, node_id) VALUES (%s, %s)", [(farm, n) for n in nodes]
            )
        commissioners.add(conn, "bench-commissioner", "generic", recv.url, SECRET, "en")
        commissioners.assign(conn, "bench-commissioner", [farm], "info", 0)
    rules = root / "bench-rules.toml"
    rules.write_text(TRIGGER_RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= {"AGRI_DATABASE_URL": db_url, "AGRI_HOME": str(root / "home"), "AGRI_LOG_LEVEL": "warning"}
    argv = [sys.executable, "-m", "agri.cli.main", "alerts", "--rules", str(rules), "--escalate-after", "600"]
    with open(root / "alerts.log", "ab") as logf:
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT)
    commits: dict[tuple[str, float], float] = {}  # (node, reading time) of a trigger -> commit time
    writers = max(1, cfg.workers)  # as many writing processes as ingest has workers
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = []
    try:
        _settle(db_url, farm, log)
        start_at = time.time() + 2.0  # the writers' imports and connections: before the clock starts
        log(
            f"latency: {rate:.0f} readings/s for {cfg.latency_s:.0f} s by {writers} writers,"
            f" {cfg.triggers_per_s:g} alerts/s"
        )
        for i in range(writers):
            args = (db_url, farm, nodes[i::writers], rate / writers, cfg.triggers_per_s / writers,
                    start_at, cfg.latency_s, out)  # fmt: skip
            procs.append(ctx.Process(target=_live_writer, args=args))
            procs[-1].start()
        written, took = 0, 0.0
        for _ in procs:
            n, secs, got = out.get(timeout=cfg.latency_s + 120)
            written, took = written + n, max(took, secs)
            commits.update({(node, t): c for node, t, c in got})
        achieved = written / took
        # every trigger's alert opened and none of their deliveries pending (the last readings are
        # still being evaluated when the writers stop)
        deadline = time.time() + 30
        while time.time() < deadline:
            with psycopg.connect(db_url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM alerts WHERE farm_id = %s AND rule = 'bench-trigger'),"
                    " (SELECT count(*) FROM webhook_deliveries WHERE farm_id = %s AND status = 'pending')",
                    (farm, farm),
                ).fetchone()
            if row and row[0] >= len(commits) and row[1] == 0 and len(recv.got) > 0:
                break
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        recv.close()
    with psycopg.connect(db_url, autocommit=True) as conn:
        opened = conn.execute(
            "SELECT a.id, n.node_id, extract(epoch FROM a.started_at)::float8,"
            " extract(epoch FROM e.at)::float8 FROM alerts a JOIN nodes n ON n.id = a.node_id"
            " JOIN alert_events e ON e.alert_id = a.id AND e.kind = 'opened'"
            " WHERE a.farm_id = %s AND a.rule = 'bench-trigger'",
            (farm,),
        ).fetchall()
    open_at = {int(a): float(at) for a, _, _, at in opened}
    c2o = []
    for _, node, started, at in opened:
        key = (str(node), round(float(started), 5))
        if key in commits:
            c2o.append(float(at) - commits[key])
    o2r = []
    for at, body in recv.got:
        if body.get("type") == "alert.opened":
            aid = body["data"]["alert_id"]
            if aid in open_at:
                o2r.append(at - open_at[aid])
    return {
        "offered_readings_per_s": round(rate),
        "achieved_readings_per_s": round(achieved),
        "alerts_opened": len(opened),
        "triggers": len(commits),
        "committed_to_open_s": {"p50": _pct(c2o, 0.5), "p99": _pct(c2o, 0.99), "max": _pct(c2o, 1.0),
                                "n": len(c2o)},
        "open_to_webhook_s": {"p50": _pct(o2r, 0.5), "p99": _pct(o2r, 0.99), "max": _pct(o2r, 1.0),
                              "n": len(o2r)},
    }  # fmt: skip


def run_alert_bench(cfg: AlertBenchConfig) -> dict[str, Any]:
    log = cfg.log
    b = Bench(BenchConfig(rate=cfg.rate, duration=cfg.duration, nodes=cfg.nodes, farms=cfg.farms,
                          workers=cfg.workers, log=log))  # fmt: skip
    try:
        b.start_services()
        b.register_fleet()
        b.start_workers()
        log("phase 1: ingest at its maximum rate")
        ing = b.run()
        ingest_rate = float(ing["readings_per_s"])
        log(f"ingest: {ingest_rate:.0f} readings/s; phase 2: evaluation throughput")
        part = None
        if cfg.alert_workers > 1:
            part = partitioned(b.db_url, cfg.alert_workers, log)
            reset_evaluation(b.db_url)
        # one worker last: the latency phase's service continues from its cursor (partition 0/1)
        thr = throughput(b.db_url, log)
        log("phase 3: latency at half of ingest's rate")
        lat = latency(b.db_url, ingest_rate / 2, cfg, b.root)
    finally:
        b.close()
    ev = thr["evaluated_per_s"] or 0
    ev_n = (part["evaluated_per_s"] or 0) if part else None
    return {
        "ingest_readings_per_s": round(ingest_rate),
        "ingest_workers": cfg.workers,
        "evaluated_readings_per_s": ev,
        "ratio_to_ingest": round(ev / ingest_rate, 2) if ingest_rate else None,
        "alert_workers": cfg.alert_workers if part else 1,
        "evaluated_readings_per_s_all_workers": ev_n,
        "ratio_to_ingest_all_workers": round(ev_n / ingest_rate, 2) if ingest_rate and ev_n else None,
        "partitioned": part,
        "throughput": thr,
        "latency": lat,
        "ingest": {k: ing[k] for k in ("readings_per_s", "stored", "p99_latency_s", "window_s", "cpu_cores")},
    }
