"""Helpers shared by the ingest and fault tests: fleets of simulated nodes, what the database
holds, and ingest workers run in a thread or as real `agri ingest` processes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ingest.service import IngestOptions, IngestWorker
from kernel.mqtt import make_client
from kernel.protocol import encode_up, up_topic
from store.registry import upsert_farm, upsert_node
from tests.fixtures.process import AgriProcess
from tests.fixtures.wait import wait_until

Key = tuple[str, str, float]  # (node, metric, unix time)
METRICS = ("air_t", "air_rh", "soil_vwc", "soil_t")


def register(db_url: str, farm: str, nodes: list[str], kind: str = "orchard") -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        upsert_farm(conn, farm, farm, kind)
        for n in nodes:
            upsert_node(conn, farm, n)


def stored(db_url: str, farm: str) -> Counter[Key]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT n.node_id, s.metric, extract(epoch FROM r.time)::float8 FROM readings r"
            " JOIN series s ON s.id = r.series_id JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s",
            (farm,),
        ).fetchall()
    return Counter((str(n), str(m), round(float(t), 3)) for n, m, t in rows)


def rejected(db_url: str, farm: str) -> Counter[tuple[str | None, str | None, float | None, str]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT node_id, metric, extract(epoch FROM reading_time)::float8, reason FROM rejects"
            " WHERE farm_id = %s",
            (farm,),
        ).fetchall()
    return Counter((n, m, round(float(t), 3) if t is not None else None, str(r)) for n, m, t, r in rows)


@dataclass
class Fleet:
    """Simulated nodes publishing QoS 1 through one paho client (a persistent session, so messages
    survive a broker restart). It remembers every message and which ones the broker PUBACKed;
    every ``bad_every``-th message carries one out-of-range reading that must be dead-lettered."""

    url: str
    farm: str
    nodes: list[str]
    samples: int = 2
    t0: float = field(default_factory=lambda: float(int(time.time()) - 3 * 86400))
    bad_every: int = 0
    client_id: str = "fleet"
    # Republish what the broker acked with "No matching subscribers" (MQTT 5 reason 0x10), as an
    # MQTT 5 publisher must to survive a Mosquitto restart under shared subscriptions.
    retry_unrouted: bool = False
    seqs: dict[str, int] = field(default_factory=dict)
    sent: list[list[Any]] = field(default_factory=list)  # [info, good, bad, topic, payload]

    def __post_init__(self) -> None:
        self._unrouted: set[int] = set()
        self._lock = threading.Lock()
        self.client, kw = make_client(self.url, self.client_id, clean_start=False, session_expiry_s=600)
        self.client.on_publish = self._on_publish
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect_async(**kw)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "fleet connected")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_one(self, node: str) -> None:
        seq = self.seqs.get(node, 0)
        self.seqs[node] = seq + 1
        good: list[Key] = []
        bad: list[Key] = []
        samples = []
        for k in range(self.samples):
            t = self.t0 + (seq * self.samples + k) * 30.0
            m = {metric: round(10.0 + (seq % 50) + k / 10, 1) for metric in METRICS}
            good += [(node, metric, t) for metric in METRICS]
            samples.append((t, m))
        if self.bad_every and seq % self.bad_every == 0:
            samples[0][1]["air_t"] = 99.0
            good.remove((node, "air_t", samples[0][0]))
            bad.append((node, "air_t", samples[0][0]))
        payload = encode_up(node, seq, samples)
        topic = up_topic(self.farm, node)
        with self._lock:
            info = self.client.publish(topic, payload, qos=1)
            self.sent.append([info, good, bad, topic, payload])

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        if getattr(rc, "value", 0) == 0x10:  # No matching subscribers: nobody will get it
            self._unrouted.add(mid)

    def _republish_unrouted(self) -> None:
        with self._lock:
            for entry in self.sent:
                info = entry[0]
                if _acked(info) and info.mid in self._unrouted:
                    self._unrouted.discard(info.mid)
                    entry[0] = self.client.publish(entry[3], entry[4], qos=1)

    def publish(self, n_per_node: int, rate: float | None = None) -> None:
        """Round-robin over the nodes, ``rate`` messages/s (None: as fast as paho takes them)."""
        start = time.monotonic()
        k = 0
        for _ in range(n_per_node):
            for node in self.nodes:
                if self._stop.is_set():
                    return
                self.publish_one(node)
                k += 1
                if rate:
                    ahead = start + k / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)

    def start(self, n_per_node: int, rate: float) -> None:
        self._thread = threading.Thread(target=self.publish, args=(n_per_node, rate), daemon=True)
        self._thread.start()

    def join(self, timeout: float = 120) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "fleet did not finish publishing"

    def all_acked(self) -> bool:
        """Every message PUBACKed (and, with ``retry_unrouted``, routed to a subscriber)."""
        with self._lock:
            if not self.retry_unrouted:
                return all(_acked(e[0]) for e in self.sent)
        self._republish_unrouted()
        with self._lock:
            return all(_acked(e[0]) and e[0].mid not in self._unrouted for e in self.sent)

    def wait_acked(self, timeout: float = 60) -> None:
        wait_until(self.all_acked, timeout, "PUBACK for every fleet message")

    def expected(self) -> tuple[set[Key], set[Key]]:
        """(readings, rejected readings) of the messages the broker acknowledged."""
        good: set[Key] = set()
        bad: set[Key] = set()
        for info, g, b, _, _ in self.sent:
            if _acked(info):
                good.update((n, m, round(t, 3)) for n, m, t in g)
                bad.update((n, m, round(t, 3)) for n, m, t in b)
        return good, bad

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.client.disconnect()
        self.client.loop_stop()


def _acked(info: Any) -> bool:
    """PUBACK received. paho reports a message published while disconnected as failed (rc
    NO_CONN) although it keeps it and sends it after the reconnect; its flag still tells."""
    try:
        return bool(info.is_published())
    except RuntimeError:
        return bool(info._published)


def assert_exactly_once(db_url: str, fleet: Fleet, timeout: float = 60) -> None:
    """Every reading the broker acked is stored exactly once, or dead-lettered once with a reason."""
    good, bad = fleet.expected()
    assert good, "nothing was published"
    mine = set(fleet.nodes)

    def got() -> Counter[Key]:
        return Counter({k: c for k, c in stored(db_url, fleet.farm).items() if k[0] in mine})

    def rej() -> Counter[tuple[str | None, str | None, float | None, str]]:
        return Counter({k: c for k, c in rejected(db_url, fleet.farm).items() if k[0] in mine})

    wait_until(lambda: set(got()) >= good, timeout, f"{len(good)} readings stored")
    wait_until(lambda: {(n, m, t) for n, m, t, _ in rej()} >= bad, timeout, "rejects stored")
    g = got()
    assert set(g) == good, f"missing {len(good - set(g))}, unexpected {len(set(g) - good)}"
    assert max(g.values()) == 1
    r = rej()
    assert {(n, m, t) for n, m, t, _ in r} == bad
    assert all(reason == "out_of_range" for _, _, _, reason in r) and max(r.values(), default=1) == 1


@contextlib.contextmanager
def worker_thread(
    db_url: str, mqtt_url: str, client_id: str = "w-test", **opts: Any
) -> Iterator[IngestWorker]:
    """An ingest worker in this process (fast start); stopped and closed on exit."""
    opts.setdefault("metrics_port", 0)
    o = IngestOptions(database_url=db_url, mqtt_url=mqtt_url, client_id=client_id, **opts)
    w = IngestWorker(o)
    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: w.consumer.connected, 10, "worker connected")
        yield w
    finally:
        stop.set()
        t.join(30)


class WorkerProcess(AgriProcess):
    """A real `agri ingest` process (for kill -9 and multi-worker tests)."""

    def __init__(self, db_url: str, mqtt_url: str, client_id: str, logdir: Path, *args: str) -> None:
        env = dict(os.environ) | {
            "AGRI_DATABASE_URL": db_url,
            "AGRI_MQTT_URL": mqtt_url,
            "AGRI_HOME": str(logdir / "home"),
            "AGRI_LOG_LEVEL": "info",
        }
        argv = ["ingest", "--client-id", client_id, "--metrics-port", "0", *args]
        super().__init__(argv, env, logdir / f"{client_id}.log")


def drop_session(url: str, client_id: str) -> None:
    """Remove a persistent session from the broker (connect with clean start, no expiry)."""
    client, kw = make_client(url, client_id, clean_start=True)
    client.connect(**kw)
    client.loop_start()
    try:
        wait_until(client.is_connected, 10, f"{client_id} connected")
    finally:
        client.disconnect()
        client.loop_stop()
