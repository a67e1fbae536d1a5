"""`agri bench ingest`: a simulated fleet -> MQTT -> ingest workers -> TimescaleDB, measured.

By default everything runs privately (PostgreSQL with production durability, Mosquitto with the
platform's configuration, on free ports in a temp dir). Ingest workers are real `agri ingest`
processes on one shared subscription; the load generators are separate processes publishing
pre-encoded payloads. The same run then times a plain binary COPY of the same rows into a
hypertable of the same shape, so the result is a ratio as well as a number.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from agri.bench.ingest import baseline, procstat
from agri.bench.ingest.loadgen import DEFAULT_METRICS, LoadSpec, write_spec
from agri.stack.mosquitto import Broker
from agri.stack.mqtt_auth import MqttAuth
from agri.stack.postgres import PgCluster
from agri.stack.proc import free_port, read_foreign_pid
from store.migrate import migrate


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why."""


@dataclass
class BenchConfig:
    rate: float = 60_000.0  # readings/s offered
    duration: float = 30.0
    nodes: int = 2000
    farms: int = 20
    samples: int = 10  # samples per message
    metrics: int = 6  # metrics per sample (plus battery and RSSI per message)
    workers: int = 2
    publishers: int = 2
    path: str = "direct"  # direct | batch | gateway
    batch_size: int = 50  # node messages per gateway envelope (path batch)
    receive_maximum: int = 1000
    copy_rows: int | None = None  # None: all the stored rows
    copy_runs: int = 1  # the baseline is timed this many times (fresh table each); median reported
    database_url: str | None = None
    mqtt_url: str | None = None
    workdir: Path | None = None
    keep: bool = False
    log: Callable[[str], None] = field(default=lambda m: None)

    def __post_init__(self) -> None:
        if self.path not in ("direct", "batch", "gateway"):
            raise BenchError(f"path {self.path!r}: use direct, batch or gateway")
        if self.path == "gateway" and importlib.util.find_spec("gateway.service") is None:
            raise BenchError("path gateway needs the farm gateway (gateway/), which this checkout lacks")
        if not 1 <= self.metrics <= len(DEFAULT_METRICS):
            raise BenchError(f"metrics must be 1..{len(DEFAULT_METRICS)}")
        if (
            min(
                self.rate,
                self.duration,
                self.nodes,
                self.farms,
                self.samples,
                self.workers,
                self.publishers,
                self.copy_runs,
            )
            <= 0
        ):
            raise BenchError(
                "rate, duration, nodes, farms, samples, workers, publishers and copy runs must be positive"
            )
        if self.copy_rows is not None and self.copy_rows <= 0:
            raise BenchError("copy rows must be positive (or unset: all the stored rows)")
        if self.nodes < self.farms:
            raise BenchError("need at least one node per farm")

    @property
    def readings_per_msg(self) -> int:
        return self.samples * self.metrics + 2


class Bench:
    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.tag = secrets.token_hex(3)
        self.root = cfg.workdir or Path(_mkdtemp())
        self.pg: PgCluster | None = None
        self.broker: Broker | None = None
        self.farm_broker: Broker | None = None  # path gateway: nodes publish here
        self.gateways: list[subprocess.Popen[bytes]] = []
        self.db_url = cfg.database_url or ""
        self.ingest_url = cfg.mqtt_url or ""
        self.load_url = cfg.mqtt_url or ""
        self.workers: list[tuple[subprocess.Popen[bytes], int]] = []  # (process, metrics port)
        self.node_ids: list[tuple[str, str]] = []
        self.series_ids: list[int] = []

    # --- set-up ---------------------------------------------------------------------------------

    def start_services(self) -> None:
        log = self.cfg.log
        if not self.cfg.database_url:
            self.pg = PgCluster(root=self.root / "pg", port=free_port(), password=secrets.token_urlsafe(16))
            self.pg.start()
            self.pg.create_database()
            self.db_url = self.pg.dsn()
            log(f"database: private PostgreSQL (fsync and synchronous_commit on) at port {self.pg.port}")
        migrate(self.db_url)
        if not self.cfg.mqtt_url:
            self.broker = Broker(root=self.root / "mqtt", port=free_port())
            auth = MqttAuth(self.broker.root)
            pw_i, pw_l = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
            auth.set("bench-ingest", pw_i, "ingest")
            auth.set("bench-load", pw_l, "admin")
            auth.save()
            self.broker.start()
            self.ingest_url = self.broker.url("bench-ingest", pw_i)
            self.load_url = self.broker.url("bench-load", pw_l)
            log(f"broker: private Mosquitto at port {self.broker.port}")

    def register_fleet(self) -> None:
        c = self.cfg
        metrics = [*DEFAULT_METRICS[: c.metrics], "bat_v", "rssi_dbm"]
        farms = [f"bench-{self.tag}-{i:02d}" for i in range(c.farms)]
        self.node_ids = [(farms[i % c.farms], f"n-{i:05d}") for i in range(c.nodes)]
        with psycopg.connect(self.db_url, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO farms (id, name, kind) VALUES (%s, %s, 'orchard')", [(f, f) for f in farms]
            )
            cur.executemany("INSERT INTO nodes (farm_id, node_id) VALUES (%s, %s)", self.node_ids)
            cur.execute(
                "INSERT INTO series (node_id, metric) SELECT n.id, m FROM nodes n, unnest(%s::text[]) m"
                " WHERE n.farm_id = ANY(%s) RETURNING id",
                (metrics, farms),
            )
            self.series_ids = [int(r[0]) for r in cur.fetchall()]
        self.cfg.log(f"fleet: {c.nodes} nodes on {c.farms} farms, {len(self.series_ids)} series")

    def start_gateways(self) -> None:
        """Path gateway: a farm broker, and one `agri gateway` per farm forwarding to the central one."""
        if self.cfg.path != "gateway":
            return
        if self.broker is None:
            raise BenchError("path gateway runs its own brokers: do not pass --mqtt-url")
        farms = sorted({f for f, _ in self.node_ids})
        self.farm_broker = Broker(root=self.root / "farm-mqtt", port=free_port())
        pw = secrets.token_urlsafe(12)
        for b in (self.farm_broker, self.broker):
            auth = MqttAuth(b.root)
            for i, farm in enumerate(farms):
                auth.set(f"gw-{i}", pw, "gateway", farm, f"gw-{i}")
            auth.set("bench-load", pw, "admin")
            auth.save()
        self.broker.reload()
        self.farm_broker.start()
        self.load_url = self.farm_broker.url("bench-load", pw)
        for i, farm in enumerate(farms):
            env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
            env |= {
                "AGRI_HOME": str(self.root / f"gw-{i}"),
                "AGRI_GATEWAY_FARM": farm,
                "AGRI_GATEWAY_ID": f"gw-{i}",
                "AGRI_GATEWAY_LOCAL_URL": self.farm_broker.url(f"gw-{i}", pw),
                "AGRI_GATEWAY_UPSTREAM_URL": self.broker.url(f"gw-{i}", pw),
                "AGRI_GATEWAY_SPOOL_PATH": str(self.root / f"gw-{i}" / "spool.db"),
            }
            log = self.root / f"gateway-{i}.log"
            with open(log, "ab") as out:
                self.gateways.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "agri.cli.main", "gateway"], env=env, stdout=out, stderr=out
                    )
                )
            deadline = time.monotonic() + 60
            while "event=local_subscribed" not in (log.read_text() if log.exists() else ""):
                if self.gateways[-1].poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"gateway {farm} did not start; see {log}")
                time.sleep(0.2)
        self.cfg.log(f"gateways: {len(farms)} `agri gateway` processes (spool sync full) via a farm broker")

    def start_workers(self) -> None:
        env = dict(os.environ)
        env |= {
            "AGRI_DATABASE_URL": self.db_url,
            "AGRI_MQTT_URL": self.ingest_url,
            "AGRI_HOME": str(self.root),
        }
        for i in range(self.cfg.workers):
            port = free_port()
            argv = [
                sys.executable, "-m", "agri.cli.main", "ingest", "--client-id", f"bench-{self.tag}-{i}",
                "--group", f"bench{self.tag}", "--metrics-port", str(port), "--session-expiry", "600",
                "--receive-maximum", str(self.cfg.receive_maximum),
                "--trace-commits", str(self.root / f"trace-{i}.txt"),
            ]  # fmt: skip
            with open(self.root / f"ingest-{i}.log", "ab") as out:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            self.workers.append((proc, port))
        deadline = time.monotonic() + 60
        for proc, port in self.workers:
            while not _healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"ingest worker did not become healthy; see {self.root}/ingest-*.log")
                time.sleep(0.2)
        self.cfg.log(f"ingest: {self.cfg.workers} worker processes on $share/bench{self.tag}/...")

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        c = self.cfg
        rpm = c.readings_per_msg
        msgs_per_node = max(1, math.ceil(c.rate * c.duration / (c.nodes * rpm)))
        node_msg_rate = c.rate / rpm
        t0 = float(int(time.time()) - 86400)  # a day ago: inside retention, never in the future
        shares = [self.node_ids[i :: c.publishers] for i in range(c.publishers)]
        total_msgs = msgs_per_node * c.nodes
        start_at = time.time() + 3.0 + total_msgs * 40e-6 / c.publishers
        loaders: list[tuple[subprocess.Popen[bytes], Path]] = []
        for i, nodes in enumerate(shares):
            rate = node_msg_rate * len(nodes) / c.nodes
            if c.path == "batch":
                rate /= c.batch_size
            spec = LoadSpec(
                mqtt_url=self.load_url,
                client_id=f"bench-load-{self.tag}-{i}",
                nodes=nodes,
                msgs_per_node=msgs_per_node,
                msg_rate=rate,
                start_at=start_at,
                samples=c.samples,
                metrics=list(DEFAULT_METRICS[: c.metrics]),
                t0=t0,
                seed=i,
                via_batch=c.batch_size if c.path == "batch" else 0,
            )
            write_spec(spec, self.root / f"load-{i}.json")
            out = self.root / f"load-{i}.out"
            argv = [
                sys.executable,
                "-m",
                "agri.bench.ingest.loadgen",
                str(self.root / f"load-{i}.json"),
                str(out),
            ]
            with open(self.root / f"load-{i}.log", "ab") as logf:
                loaders.append((subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT), out))
        c.log(
            f"load: {total_msgs} messages x {rpm} readings = {total_msgs * rpm} readings, offered at "
            f"{c.rate:.0f} readings/s ({node_msg_rate:.0f} node messages/s) by {c.publishers} processes, "
            f"path {c.path}"
        )
        time.sleep(max(0.0, start_at - time.time()))
        cpu0 = self._cpu()
        for p, _ in loaders:
            p.wait()
        loads = [json.loads(out.read_text()) for _, out in loaders]
        published = rpm * sum(
            round(min(ld["acked"], ld["messages"]) / ld["messages"] * ld["node_messages"]) for ld in loads
        )
        if any(ld["acked"] < ld["messages"] for ld in loads):
            c.log("warning: a load generator did not get every PUBACK (or a PUBACK refused) within 120 s")
        expected = total_msgs * rpm
        c.log("load finished; waiting for ingest to drain")
        t_end = self._drain(expected)
        cpu1 = self._cpu()
        window = t_end - start_at
        metrics = [self._metrics(port) for _, port in self.workers]
        self.stop_workers()
        stored, distinct, rejected = self._counts()
        lat = self._latencies(loaders)
        what = "all" if c.copy_rows is None else f"up to {c.copy_rows:,}"
        c.log(f"baseline: plain binary COPY of {what} of the same rows, {c.copy_runs} time(s)")
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            # Ingest's WAL volume usually leaves a checkpoint running; let it finish first so it
            # does not land on some baseline runs and not others.
            conn.execute("CHECKPOINT")
        # The same commit size as ingest's: half the receive window of node messages (or envelopes).
        batch_rows = max(1, (c.receive_maximum // 2) * rpm * (c.batch_size if c.path == "batch" else 1))
        runs = [
            baseline.copy_rate(
                self.db_url,
                self.series_ids,
                c.copy_rows,
                min(batch_rows, 100_000),
                lambda: self._cpu().get("postgres", 0.0),
            )
            for _ in range(c.copy_runs)
        ]
        copy_rate = statistics.median(r.rows_per_s for r in runs)
        copy_per_cpu = statistics.median(r.rows_per_cpu_s for r in runs)
        copy_first = statistics.median(r.first_rows_per_s for r in runs)
        readings_per_s = stored / window if window > 0 else 0.0
        load_start = min(ld["start"] for ld in loads)
        load_end = max(ld["end"] for ld in loads)
        cpu0["load_generators"] = 0.0
        cpu1["load_generators"] = sum(float(ld["cpu_s"]) for ld in loads)
        cpu = {
            name: {
                "cpu_s": round(cpu1[name] - cpu0[name], 2),
                "cores": round((cpu1[name] - cpu0[name]) / window, 2),
            }
            for name in cpu0
            if name != "machine"
        }
        busy = (cpu1["machine"] - cpu0["machine"]) / window
        ours = sum(v["cores"] for v in cpu.values())
        pipeline_cpu = sum(
            cpu[k]["cpu_s"] for k in ("ingest_workers", "postgres", "broker", "gateways") if k in cpu
        )
        per_cpu = stored / pipeline_cpu if pipeline_cpu > 0 else 0.0
        return {
            "readings_per_s": round(readings_per_s),
            "copy_rows_per_s": round(copy_rate),
            "copy_rows_per_s_runs": [round(r.rows_per_s) for r in runs],
            "copy_rows": runs[0].rows,
            "ratio_to_copy": round(readings_per_s / copy_rate, 3) if copy_rate else None,
            "copy_first_rows": runs[0].first_rows,
            "copy_first_rows_per_s": round(copy_first),
            "ratio_to_copy_first_rows": round(readings_per_s / copy_first, 3) if copy_first else None,
            "published": published,
            "stored": stored,
            "lost": max(0, published - stored - rejected),
            "duplicates": stored - distinct,
            "rejected": rejected,
            "redeliveries_absorbed": sum(
                int(m.get("agri_ingest_readings_duplicate_total", 0)) for m in metrics
            ),
            "p50_latency_s": lat[0],
            "p99_latency_s": lat[1],
            "max_latency_s": lat[2],
            "offered_readings_per_s": c.rate,
            "loadgen_readings_per_s": round(published / max(load_end - load_start, 1e-9)),
            "loadgen_msgs_per_s": round(
                sum(ld["messages"] for ld in loads) / max(load_end - load_start, 1e-9)
            ),
            "window_s": round(window, 2),
            "cpu_cores": {k: v["cores"] for k, v in cpu.items()},
            "cpu_seconds": {k: v["cpu_s"] for k, v in cpu.items()},
            "machine_busy_cores": round(busy, 2),
            "other_processes_cores": round(max(0.0, busy - ours), 2),
            # Noise-robust efficiency: readings per CPU-second of ingest + database + broker,
            # against rows per CPU-second of the plain COPY (Python + database).
            "readings_per_cpu_s": round(per_cpu),
            "copy_rows_per_cpu_s": round(copy_per_cpu),
            "cpu_ratio_to_copy": round(per_cpu / copy_per_cpu, 3) if copy_per_cpu else None,
            "machine_cores": os.cpu_count(),
            "batches": sum(int(m.get("agri_ingest_batches_total", 0)) for m in metrics),
            "config": {
                "path": c.path,
                "nodes": c.nodes,
                "farms": c.farms,
                "samples_per_msg": c.samples,
                "readings_per_msg": rpm,
                "workers": c.workers,
                "publishers": c.publishers,
                "duration_s": c.duration,
                "receive_maximum": c.receive_maximum,
                "copy_runs": c.copy_runs,
                "batch_size": c.batch_size if c.path == "batch" else None,
                "payload_bytes_per_msg": round(
                    sum(ld["bytes"] for ld in loads) / sum(ld["messages"] for ld in loads)
                ),
            },
        }

    def _drain(self, expected: int, idle_s: float = 15.0, timeout: float = 600.0) -> float:
        """Wait until the workers have stored everything (or stopped making progress)."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            done = 0
            for _, port in self.workers:
                m = self._metrics(port)
                done += int(m.get("agri_ingest_readings_stored_total", 0))
                done += int(m.get("agri_ingest_readings_duplicate_total", 0))
            if done >= expected:
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > idle_s:
                self.cfg.log(
                    f"warning: ingest made no progress for {idle_s:.0f} s ({done}/{expected} readings)"
                )
                break
            time.sleep(0.2)
        return max(
            float(self._metrics(port).get("agri_ingest_last_commit_timestamp_seconds", 0))
            for _, port in self.workers
        )

    def _metrics(self, port: int) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        return {
            s.name: s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if not s.labels
        }

    def _cpu(self) -> dict[str, float]:
        kids = procstat.children_map()
        out: dict[str, float] = {}
        if self.broker is not None and (pid := self.broker.pid()) is not None:
            out["broker"] = procstat.cpu_seconds(procstat.tree(pid, kids))
        if self.pg is not None and (pid := read_foreign_pid(self.pg.data / "postmaster.pid")) is not None:
            out["postgres"] = procstat.cpu_seconds(procstat.tree(pid, kids))
        if self.farm_broker is not None and (pid := self.farm_broker.pid()) is not None:
            out["broker"] = out.get("broker", 0.0) + procstat.cpu_seconds(procstat.tree(pid, kids))
        if self.gateways:
            out["gateways"] = sum(procstat.cpu_seconds(procstat.tree(p.pid, kids)) for p in self.gateways)
        out["ingest_workers"] = sum(procstat.cpu_seconds(procstat.tree(p.pid, kids)) for p, _ in self.workers)
        out["machine"] = procstat.machine_cpu_seconds()[0]
        return out

    def _counts(self) -> tuple[int, int, int]:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (series_id, time)) FROM readings WHERE series_id = ANY(%s)",
                (self.series_ids,),
            ).fetchone()
            rej = conn.execute(
                "SELECT count(*) FROM rejects WHERE farm_id LIKE %s", (f"bench-{self.tag}-%",)
            ).fetchone()
        assert row is not None and rej is not None
        return int(row[0]), int(row[1]), int(rej[0])

    def _latencies(self, loaders: list[tuple[subprocess.Popen[bytes], Path]]) -> tuple[float, float, float]:
        committed: dict[tuple[str, str, str], float] = {}
        for i in range(self.cfg.workers):
            path = self.root / f"trace-{i}.txt"
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                ts, farm, node, seq = line.split()
                key = (farm, node, seq)
                t = float(ts)
                if key not in committed or t < committed[key]:
                    committed[key] = t
        lat: list[float] = []
        for _, out in loaders:
            for line in Path(str(out) + ".pub").read_text().splitlines():
                farm, node, seq, tp = line.split()
                tc = committed.get((farm, node, seq))
                if tc is not None:
                    lat.append(tc - float(tp))
        if not lat:
            return (math.nan, math.nan, math.nan)
        lat.sort()
        return (
            round(lat[len(lat) // 2], 3),
            round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
            round(lat[-1], 3),
        )

    # --- tear-down ------------------------------------------------------------------------------

    def stop_workers(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for g in self.gateways:
            if g.poll() is None:
                g.terminate()
        for g in self.gateways:
            try:
                g.wait(30)
            except subprocess.TimeoutExpired:
                g.kill()
                g.wait()
        self.stop_workers()
        if self.farm_broker is not None:
            self.farm_broker.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop(mode="fast")
        if not self.cfg.keep and self.cfg.workdir is None:
            shutil.rmtree(self.root, ignore_errors=True)
        elif self.cfg.keep:
            self.cfg.log(f"kept {self.root}")


def _mkdtemp() -> str:
    import tempfile

    d = tempfile.mkdtemp(prefix="agri-bench-ingest-")
    os.chmod(d, 0o755)  # the postgres user must traverse it when we are root
    return d


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    b = Bench(cfg)
    try:
        b.start_services()
        b.register_fleet()
        b.start_workers()
        b.start_gateways()
        return b.run()
    finally:
        b.close()
