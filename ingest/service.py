"""The ingest worker (`agri ingest`): MQTT in, batches into TimescaleDB, ack after commit.

Threads: paho's network thread fills a bounded queue (:mod:`ingest.consumer`); a decoder thread
takes messages off it, decodes them (:mod:`kernel.decode`) and forms the next batch while the
caller's thread stores the previous one in one transaction (:mod:`store.writer`) and only then
acks every message of it. While the database is unavailable the batch stays un-acked and is
retried with capped backoff; the broker stops sending once Receive Maximum messages are un-acked
and queues the rest in our persistent session. A stop request finishes (or abandons, if the
database is down) the batch being committed; every un-acked message is redelivered to this session
when the worker comes back.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ingest.consumer import Consumer, Inbound
from ingest.metrics import IngestMetrics, MetricsServer
from kernel.backoff import Backoff
from kernel.decode import Decoded, decode_message
from kernel.log import event, get_logger
from kernel.protocol import Limits
from store.writer import BatchResult, Prepared, StoreUnavailable, Writer

log = get_logger("ingest")

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0


def tune_gc() -> None:
    """For a worker process (process-wide, so the CLI calls it, not the library).

    A batch is tens of thousands of small acyclic objects; with the default thresholds the cyclic
    GC rescans them again and again and costs as much as decoding them. Collect young objects every
    100k allocations instead, and never rescan what exists at start.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def default_client_id(index: int | None = None) -> str:
    """Stable per host (and worker index), so a restarted worker resumes its broker session."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
    return f"agri-ingest-{host}" + (f"-{index}" if index is not None else "")


class _Batch(list[tuple[Inbound, Decoded]]):
    """A formed batch, with its readings already encoded when the writer's caches allowed."""

    prepared: Prepared | None = None


@dataclass
class IngestOptions:
    database_url: str
    mqtt_url: str
    client_id: str
    group: str | None = "ingest"  # None: exclusive (plain) subscription, one worker only
    session_expiry_s: int = 7 * 86400
    receive_maximum: int = 1000
    max_batch_messages: int | None = None  # default: a third of receive_maximum
    max_batch_readings: int = 50_000
    linger_s: float = 0.05
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9108  # None: no endpoint; 0: any free port
    clock_skew_s: float = 300.0
    retention_days: int = 730
    trace_path: Path | None = None  # benchmark aid: one line per committed node message
    retire: bool = False  # drain this client id's session, then end it (removing a worker slot)
    retire_idle_s: float = 3.0

    def __post_init__(self) -> None:
        if self.group is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.group):
            raise ValueError(f"group {self.group!r} must be 1-64 letters, digits, '_' or '-'")
        if self.max_batch_messages is None:
            # A third of the in-flight window: while one batch commits and the next waits decoded,
            # the broker still has room to send the one after.
            self.max_batch_messages = max(1, self.receive_maximum // 3)
        if self.max_batch_messages > self.receive_maximum:
            raise ValueError("max_batch_messages cannot exceed receive_maximum (the broker stops sending)")
        if self.max_batch_readings < 1 or self.linger_s < 0:
            raise ValueError("max_batch_readings must be >= 1 and linger_s >= 0")


class IngestWorker:
    def __init__(self, opts: IngestOptions) -> None:
        self.opts = opts
        self.metrics = IngestMetrics()
        self.consumer = Consumer(
            opts.mqtt_url,
            opts.client_id,
            group=opts.group,
            session_expiry_s=opts.session_expiry_s,
            receive_maximum=opts.receive_maximum,
            retire=opts.retire,
        )
        self.writer = Writer(opts.database_url, app_name=f"agri-ingest:{opts.client_id}"[:63])
        self.server: MetricsServer | None = None
        # Pipeline stages (see serve): forming -> ready (one decoded batch) -> committing.
        self._filling: list[tuple[Inbound, Decoded]] = []
        self._fill_deadline = 0.0
        self._pending_ready: list[tuple[Inbound, Decoded]] = []
        self._ready: queue.Queue[_Batch] = queue.Queue(maxsize=1)
        self._committing: list[tuple[Inbound, Decoded]] = []
        self._decoder_error: BaseException | None = None
        self._trace: IO[str] | None = None
        self._db_down_since: float | None = None
        self._last_received = 0.0
        self._started = time.time()
        self.metrics.backlog = self._backlog
        self.metrics.mqtt_connected = lambda: self.consumer.connected

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the metrics port (if taken: logged, ingest runs without it) and connect."""
        if self.opts.metrics_port is not None:
            try:
                self.server = MetricsServer(self.metrics, self.opts.metrics_host, self.opts.metrics_port)
                self.server.start()
            except OSError as exc:
                # Readings matter more than their metrics: keep ingesting, say so loudly.
                event(
                    log,
                    "metrics_unavailable",
                    logging.ERROR,
                    address=f"{self.opts.metrics_host}:{self.opts.metrics_port}",
                    error=exc.strerror or str(exc),
                    hint="set --metrics-port / AGRI_INGEST_METRICS_PORT to a free port",
                )
        if self.opts.trace_path is not None:
            self._trace = open(self.opts.trace_path, "a", buffering=1 << 16)  # noqa: SIM115
        event(
            log,
            "ingest_started",
            pid=os.getpid(),
            client_id=self.opts.client_id,
            group=self.opts.group,
            metrics=f"http://{self.opts.metrics_host}:{self.server.port}/metrics" if self.server else None,
            receive_maximum=self.opts.receive_maximum,
            batch_messages=self.opts.max_batch_messages,
        )
        self._db_check()
        self.consumer.start()

    def run(self, stop: threading.Event) -> None:
        """Start, then consume until ``stop`` is set."""
        self.start()
        self.serve(stop)

    def serve(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set (after :meth:`start`), then close.

        Two stages: a decoder thread forms and decodes the next batch while this thread commits
        the previous one (psycopg releases the GIL while PostgreSQL works), so one worker keeps
        both the CPU and the database busy.
        """
        drained = False
        decoder = threading.Thread(target=self._decode_loop, args=(stop,), name="decoder", daemon=True)
        decoder.start()
        try:
            while not stop.is_set():
                if self._decoder_error is not None:
                    raise self._decoder_error
                try:
                    batch = self._ready.get(timeout=0.25)
                except queue.Empty:
                    if self.opts.retire and self._retired():
                        drained = True
                        break
                    continue
                self._committing = batch
                self._commit(batch, stop)
                self._committing = []
        finally:
            stop.set()
            decoder.join(5)
            self.close(end_session=drained)

    def _decode_loop(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                if not self._fill():
                    continue
                batch = _Batch(self._filling)
                self._pending_ready = batch
                self._filling = []
                # Encode the COPY stream here, off the writer's critical path.
                batch.prepared = self.writer.prepare([d for _, d in batch])
                while not stop.is_set():
                    try:
                        self._ready.put(batch, timeout=0.25)
                        break
                    except queue.Full:
                        continue
                self._pending_ready = []
        except BaseException as exc:  # a bug here must stop the worker, not leave it stalled
            event(log, "decoder_failed", logging.ERROR, error=repr(exc)[:300])
            self._decoder_error = exc

    def _retired(self) -> bool:
        """Retire mode: unsubscribed, nothing held, and nothing arrived for a while."""
        c = self.consumer
        if not (c.connected and c.unsubscribed.is_set()) or self._backlog()[0]:
            return False
        return time.time() - max(self._last_received, self._started) >= self.opts.retire_idle_s

    def close(self, end_session: bool = False) -> None:
        if end_session:
            event(log, "session_retired", client_id=self.opts.client_id, stored=self.metrics.stored)
        self.consumer.stop(end_session=end_session)
        self.writer.close()
        if self.server is not None:
            self.server.stop()
        if self._trace is not None:
            self._trace.close()
        event(log, "ingest_stopped", stored=self.metrics.stored, unacked=self._backlog()[0])

    # --- batching -------------------------------------------------------------------------------

    def _limits(self) -> Limits:
        return Limits(
            now=time.time(), skew_s=self.opts.clock_skew_s, max_age_s=self.opts.retention_days * 86400.0
        )

    def _fill(self) -> bool:
        """Decode messages into the forming batch; True when it is complete (full or lingered)."""
        q = self.consumer.queue
        max_msgs = self.opts.max_batch_messages or 1
        batch = self._filling
        readings = sum(d.n_readings for _, d in batch)
        deadline = None if not batch else self._fill_deadline
        while len(batch) < max_msgs and readings < self.opts.max_batch_readings:
            timeout = 0.25 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                item = q.get(timeout=timeout)
            except queue.Empty:
                break  # idle (or the linger ran out)
            decoded = decode_message(item.topic, item.payload, self._limits())
            self.metrics.received += 1
            self._last_received = item.received
            batch.append((item, decoded))
            readings += decoded.n_readings
            if deadline is None:
                deadline = self._fill_deadline = time.monotonic() + self.opts.linger_s
        return bool(batch) and (
            len(batch) >= max_msgs
            or readings >= self.opts.max_batch_readings
            or time.monotonic() >= self._fill_deadline
        )

    def _commit(self, batch: _Batch, stop: threading.Event) -> None:
        t0 = time.monotonic()
        backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
        while True:
            try:
                res = self.writer.write([d for _, d in batch], batch.prepared)
                break
            except StoreUnavailable as exc:
                self.metrics.db_retries += 1
                self._db_down(str(exc), len(batch))
                if stop.wait(backoff.next_delay()):
                    return  # stopping: the batch stays un-acked and is redelivered later
        self._db_up()
        now = time.time()
        self.consumer.ack([it for it, _ in batch])
        self._record(res, batch, t0, now)

    def _db_down(self, error: str, held: int) -> None:
        """Log an outage once, when it starts."""
        self.metrics.db_ok = False
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            event(log, "db_unavailable", logging.WARNING, error=error, held=held)

    def _db_up(self) -> None:
        """Log the end of an outage once."""
        self.metrics.db_ok = True
        if self._db_down_since is not None:
            event(log, "db_recovered", down_s=round(time.monotonic() - self._db_down_since, 1))
            self._db_down_since = None

    def _record(self, res: BatchResult, batch: list[tuple[Inbound, Decoded]], t0: float, now: float) -> None:
        m = self.metrics
        m.batches += 1
        m.stored += res.stored
        m.duplicates += res.duplicates
        m.messages += res.messages
        m.rejected.update(res.rejected)
        m.last_commit = now
        m.batch_seconds.observe(time.monotonic() - t0)
        newest = 0.0
        for it, _ in batch:
            m.latency_seconds.observe(max(0.0, now - it.received))
        for a in res.committed:
            for r in a.msg.readings[-1:]:
                newest = max(newest, r.t)
        if newest:
            m.last_reading_lag = now - newest
        if self._trace is not None:
            self._trace.write(
                "".join(f"{now:.6f} {a.msg.farm} {a.msg.node} {a.msg.seq}\n" for a in res.committed)
            )
            self._trace.flush()

    def _backlog(self) -> tuple[int, float]:
        """(messages received and not yet acked, age of the oldest). Read from any thread."""
        stages = [self._committing, self._pending_ready, self._filling]
        with contextlib.suppress(Exception):
            stages += list(self._ready.queue)
        held = sum(len(b) for b in stages) + self.consumer.queue.qsize()
        firsts = [b[0][0] for b in stages if b]
        with contextlib.suppress(IndexError):
            firsts.append(self.consumer.queue.queue[0])
        oldest = min((it.received for it in firsts), default=None)
        return held, (time.time() - oldest) if oldest is not None else 0.0

    def _db_check(self) -> None:
        try:
            self.writer.ping()
        except StoreUnavailable as exc:
            self._db_down(str(exc), 0)
            return
        self.metrics.db_ok = True
        event(log, "db_connected")
