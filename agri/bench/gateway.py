"""`agri bench gateway`: spool and forwarding throughput of a real `agri gateway` process.

Two private Mosquitto brokers (farm, central) on free ports in a temp dir; the gateway runs as its
own process; the load generator is a separate process publishing pre-encoded node messages with
QoS 1 as fast as the farm broker acks them (its own rate is reported, so it is visible when it is
the limit). Phases:

1. **into the spool**: the central broker is not running. The gateway subscribes once and stops;
   N messages are queued for its session in the farm broker; then it starts again and drains them:
   rate = N / time from the first to the last row in the spool (each acked after its commit). No
   load generator competes for the CPU in this phase: this is the gateway's own intake rate.
2. **forward a backlog**: the central broker starts; rate = N / time until the spool is empty
   (every batch PUBACKed upstream, then deleted).
3. **flow through**: both brokers up; N more messages; rate = N / time from the first to the last
   of them decoded from batches on the central broker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agri.stack.mosquitto import Broker
from agri.stack.proc import free_port
from kernel.mqtt import make_client
from kernel.protocol import batch_topic, decode_batch, encode_up, up_topic

FARM, GW = "bench-farm", "gw-1"


@dataclass
class GatewayBenchResult:
    messages: int
    readings_per_message: int
    sync: str
    publisher_msgs_per_s: float
    publisher_flow_msgs_per_s: float
    spool_in_msgs_per_s: float
    forward_backlog_msgs_per_s: float
    flow_through_msgs_per_s: float
    batches_upstream: int
    bytes_per_message_upstream: float
    payload_bytes_per_message: float


def _publish(url: str, nodes: int, start_seq: int, n: int, readings: int, out: Any) -> None:
    """Load generator (own process): pre-encode, then publish QoS 1 and wait for every PUBACK."""
    t = float(int(time.time()))
    payloads = []
    for i in range(n):
        node = f"n-{i % nodes:04d}"
        metrics = {m: 20.0 + (i % 97) / 10 for m in ("air_t", "air_rh", "soil_vwc", "soil_t", "leaf_wet")}
        m = dict(list(metrics.items())[:readings])
        payloads.append((up_topic(FARM, node), encode_up(node, start_seq + i // nodes, [(t - i % 3600, m)])))
    client, kw = make_client(url, f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect(**kw)
    client.loop_start()
    t0 = time.perf_counter()
    infos = [client.publish(topic, p, qos=1) for topic, p in payloads]
    for info in infos:
        info.wait_for_publish(120)
    dt = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    out.put((n / dt, sum(len(p) for _, p in payloads) / n))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _spool_depth(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])


def _wait(pred: Any, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"benchmark: timed out waiting for {what}")


class _Counter:
    def __init__(self, url: str) -> None:
        self.n = self.batches = self.bytes = 0
        self._lock = threading.Lock()
        self.client, kw = make_client(url, "bench-central", clean_start=False, session_expiry_s=3600)
        ready = threading.Event()

        def on_connect(c: Any, *_a: Any) -> None:
            c.subscribe(batch_topic(FARM, GW), qos=1)

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            b = decode_batch(FARM, GW, msg.payload)
            with self._lock:
                self.n += len(b.messages)
                self.batches += 1
                self.bytes += len(msg.payload)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.on_message = on_message
        self.client.connect(**kw)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("benchmark: central subscriber did not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(
    messages: int = 20_000, nodes: int = 200, readings: int = 5, sync: str = "full"
) -> GatewayBenchResult:
    root = Path(tempfile.mkdtemp(prefix="agri-bench-gw-"))
    farm = Broker(root=root / "farm", port=free_port())
    central = Broker(root=root / "central", port=free_port())
    pw = "bench-password-0123"
    for b in (farm, central):
        auth = b.auth
        auth.set("admin", pw, "admin")
        auth.set("gw", pw, "gateway", FARM, GW)
        auth.save()
    gw_proc: subprocess.Popen[bytes] | None = None
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    counter: _Counter | None = None
    spool = root / "spool.db"
    try:
        farm.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
        env |= {
            "AGRI_HOME": str(root / "home"),
            "AGRI_LOG_LEVEL": "info",
            "AGRI_GATEWAY_FARM": FARM,
            "AGRI_GATEWAY_ID": GW,
            "AGRI_GATEWAY_LOCAL_URL": farm.url("gw", pw),
            "AGRI_GATEWAY_UPSTREAM_URL": central.url("gw", pw),
            "AGRI_GATEWAY_SPOOL_PATH": str(spool),
            "AGRI_GATEWAY_SPOOL_SYNC": sync,
            "AGRI_GATEWAY_BACKOFF_MIN_S": "0.1",
            "AGRI_GATEWAY_BACKOFF_MAX_S": "0.2",
            "AGRI_GATEWAY_LINGER_S": "0.05",
        }
        argv = [sys.executable, "-m", "agri.cli.main", "gateway"]
        log = root / "gateway.log"

        def start_gateway() -> subprocess.Popen[bytes]:
            n = log.read_text().count("event=local_subscribed") if log.exists() else 0
            with open(log, "ab") as out:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            _wait(
                lambda: log.read_text().count("event=local_subscribed") > n, 60, "the gateway's subscription"
            )
            return proc

        gw_proc = start_gateway()
        _stop(gw_proc)  # its persistent session now queues for it in the farm broker

        # 1. into the spool (uplink down)
        pub = ctx.Process(
            target=_publish, args=(farm.url("admin", pw), nodes, 0, messages, readings, results)
        )
        pub.start()
        pub_rate, payload_size = results.get(timeout=600)
        pub.join()
        gw_proc = start_gateway()
        t0 = _wait(lambda: _spool_depth(spool) > 0, 120, "the first message spooled")
        t1 = _wait(lambda: _spool_depth(spool) >= messages, 600, "all messages spooled")

        # 2. forward the backlog
        central.start()
        counter = _Counter(central.url("admin", pw))
        t2 = time.perf_counter()
        t3 = _wait(lambda: _spool_depth(spool) == 0, 600, "the backlog forwarded")
        _wait(lambda: counter is not None and counter.n >= messages, 60, "the backlog at the central broker")

        # 3. flow through
        pub = ctx.Process(
            target=_publish,
            args=(farm.url("admin", pw), nodes, messages // nodes + 1, messages, readings, results),
        )
        pub.start()
        t4 = _wait(lambda: counter is not None and counter.n > messages, 120, "flow-through started")
        t5 = _wait(lambda: counter is not None and counter.n >= 2 * messages, 600, "flow-through at central")
        pub_rate2, _ = results.get(timeout=60)
        pub.join()
        return GatewayBenchResult(
            messages=messages,
            readings_per_message=readings,
            sync=sync,
            publisher_msgs_per_s=round(pub_rate),
            publisher_flow_msgs_per_s=round(pub_rate2),
            spool_in_msgs_per_s=round(messages / (t1 - t0)),
            forward_backlog_msgs_per_s=round(messages / (t3 - t2)),
            flow_through_msgs_per_s=round(messages / (t5 - t4)),
            batches_upstream=counter.batches,
            bytes_per_message_upstream=round(counter.bytes / counter.n, 1),
            payload_bytes_per_message=round(payload_size, 1),
        )
    finally:
        if counter is not None:
            counter.close()
        if gw_proc is not None:
            _stop(gw_proc)
        central.stop()
        farm.stop()
        shutil.rmtree(root, ignore_errors=True)
