"""Prometheus text exposition for the ingest worker, served on a small HTTP thread.

Counters are plain ints written by the writer thread and read by the HTTP thread (single writer,
so no lock is needed for a consistent-enough scrape). ``GET /metrics`` returns the text format,
``GET /healthz`` 200 when both the broker and the database are reachable, else 503.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
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

    def render(self, name: str, help_: str) -> list[str]:
        out = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        acc = 0
        for le, c in zip(self.buckets, self.counts, strict=False):
            acc += c
            out.append(f'{name}_bucket{{le="{le:g}"}} {acc}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        out.append(f"{name}_sum {self.total:.6f}")
        out.append(f"{name}_count {self.n}")
        return out


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

    def render(self) -> str:
        held, oldest = self.backlog()
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, value: float | int, labels: str = "") -> None:
            lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name}{labels} {value}"])

        metric("agri_ingest_messages_received_total", "counter", "MQTT messages received", self.received)
        metric("agri_ingest_node_messages_total", "counter", "Node messages committed", self.messages)
        metric("agri_ingest_readings_stored_total", "counter", "Readings inserted", self.stored)
        metric(
            "agri_ingest_readings_duplicate_total",
            "counter",
            "Readings already stored (redeliveries absorbed by the unique key)",
            self.duplicates,
        )
        lines += [
            "# HELP agri_ingest_rejected_total Dead letters written, by reason",
            "# TYPE agri_ingest_rejected_total counter",
        ]
        lines += [f'agri_ingest_rejected_total{{reason="{r}"}} {n}' for r, n in sorted(self.rejected.items())]
        metric("agri_ingest_batches_total", "counter", "Committed batches", self.batches)
        metric(
            "agri_ingest_db_retries_total",
            "counter",
            "Batch attempts retried (database unavailable)",
            self.db_retries,
        )
        lines += self.batch_seconds.render(
            "agri_ingest_batch_seconds", "Batch latency: first message taken to commit"
        )
        lines += self.latency_seconds.render(
            "agri_ingest_commit_latency_seconds", "Per message: MQTT receive to database commit"
        )
        metric("agri_ingest_unacked_messages", "gauge", "Messages received and not yet acked", held)
        metric("agri_ingest_lag_seconds", "gauge", "Age of the oldest un-acked message", round(oldest, 3))
        metric(
            "agri_ingest_reading_lag_seconds",
            "gauge",
            "Last commit time minus the newest reading time in that batch",
            round(self.last_reading_lag, 3),
        )
        metric(
            "agri_ingest_last_commit_timestamp_seconds",
            "gauge",
            "Wall time of the last commit",
            self.last_commit,
        )
        metric(
            "agri_ingest_mqtt_connected", "gauge", "1 if connected to the broker", int(self.mqtt_connected())
        )
        metric("agri_ingest_db_up", "gauge", "1 if the last database operation succeeded", int(self.db_ok))
        return "\n".join(lines) + "\n"

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

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, m.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
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
