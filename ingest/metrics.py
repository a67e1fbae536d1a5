"""Prometheus metrics of the ingest worker (``prometheus_client``), served on a small HTTP thread.

Counters are plain ints written by the writer thread (single writer, no lock on the hot path); a
collector turns them into metric families at scrape time and ``prometheus_client`` writes the text
format. ``GET /metrics`` returns it, ``GET /healthz`` 200 when both the broker and the database are
reachable, else 503.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
    """Bucket counts kept by the writer thread; exposed as a Prometheus histogram at scrape time."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.total += v
        self.n += 1

    def family(self, name: str, help_: str) -> HistogramMetricFamily:
        cumulative: list[tuple[str, float]] = []
        acc = 0
        for le, c in zip(self.buckets, self.counts, strict=False):
            acc += c
            cumulative.append((f"{le:g}", acc))
        cumulative.append(("+Inf", self.n))
        return HistogramMetricFamily(name, help_, buckets=cumulative, sum_value=self.total)


@dataclass
class IngestMetrics:
    received: int = 0  # MQTT messages received
    messages: int = 0  # node messages committed (a gateway batch carries many)
    stored: int = 0  # readings inserted
    duplicates: int = 0  # readings already stored (redeliveries)
    rejected: Counter[str] = field(default_factory=Counter)  # dead letters by reason
    batches: int = 0
    db_retries: int = 0
    batch_seconds: Histogram = field(default_factory=Histogram)  # first message taken -> commit
    latency_seconds: Histogram = field(default_factory=Histogram)  # MQTT receive -> commit
    last_commit: float = 0.0  # wall clock
    last_reading_lag: float = 0.0  # commit time - newest reading time in the last batch
    db_ok: bool = False
    # Set by the service: () -> whether the MQTT session is up.
    mqtt_connected: Callable[[], bool] = lambda: False
    # Set by the service: () -> (un-acked messages held, age of the oldest in seconds).
    backlog: Callable[[], tuple[int, float]] = lambda: (0, 0.0)

    def collect(self) -> Iterator[Metric]:
        """The metric families of one scrape (a ``prometheus_client`` collector)."""
        held, oldest = self.backlog()

        def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, help_, value=value)

        def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_, value=value)

        yield counter("agri_ingest_messages_received_total", "MQTT messages received", self.received)
        yield counter("agri_ingest_node_messages_total", "Node messages committed", self.messages)
        yield counter("agri_ingest_readings_stored_total", "Readings inserted", self.stored)
        yield counter(
            "agri_ingest_readings_duplicate_total",
            "Readings already stored (redeliveries absorbed by the unique key)",
            self.duplicates,
        )
        rejected = CounterMetricFamily(
            "agri_ingest_rejected_total", "Dead letters written, by reason", labels=["reason"]
        )
        for reason, n in sorted(self.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield counter("agri_ingest_batches_total", "Committed batches", self.batches)
        yield counter(
            "agri_ingest_db_retries_total", "Batch attempts retried (database unavailable)", self.db_retries
        )
        yield self.batch_seconds.family(
            "agri_ingest_batch_seconds", "Batch latency: first message taken to commit"
        )
        yield self.latency_seconds.family(
            "agri_ingest_commit_latency_seconds", "Per message: MQTT receive to database commit"
        )
        yield gauge("agri_ingest_unacked_messages", "Messages received and not yet acked", held)
        yield gauge("agri_ingest_lag_seconds", "Age of the oldest un-acked message", round(oldest, 3))
        yield gauge(
            "agri_ingest_reading_lag_seconds",
            "Last commit time minus the newest reading time in that batch",
            round(self.last_reading_lag, 3),
        )
        yield gauge(
            "agri_ingest_last_commit_timestamp_seconds", "Wall time of the last commit", self.last_commit
        )
        yield gauge("agri_ingest_mqtt_connected", "1 if connected to the broker", int(self.mqtt_connected()))
        yield gauge("agri_ingest_db_up", "1 if the last database operation succeeded", int(self.db_ok))

    def registry(self) -> CollectorRegistry:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collect(self))
        return reg

    def health(self) -> tuple[bool, dict[str, object]]:
        held, oldest = self.backlog()
        ok = self.mqtt_connected() and self.db_ok
        return ok, {
            "mqtt": "connected" if self.mqtt_connected() else "disconnected",
            "database": "ok" if self.db_ok else "unavailable",
            "unacked": held,
            "lag_s": round(oldest, 3),
            "stored": self.stored,
        }


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a daemon thread."""

    def __init__(self, metrics: IngestMetrics, host: str, port: int) -> None:
        m = metrics
        registry = metrics.registry()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    ok, body = m.health()
                    self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes are not events

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Collect(Collector):
    def __init__(self, metrics: IngestMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        return self._m.collect()
