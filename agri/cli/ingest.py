"""`agri ingest`: the central consumer (MQTT shared subscription -> TimescaleDB)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from agri.cli.common import fail, settings
from agri.stack.manager import Stack
from agri.stack.supervisor import child_argv, supervise
from ingest.service import IngestOptions, IngestWorker, default_client_id, tune_gc
from kernel.log import configure


def ingest(
    client_id: Annotated[
        str | None,
        typer.Option(
            help="MQTT client id; keep it stable so a restarted worker resumes its session "
            "[default: agri-ingest-<hostname>]",
            envvar="AGRI_INGEST_CLIENT_ID",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes on this machine (ids <client-id>-<i>)")
    ] = 1,
    group: Annotated[str, typer.Option(help="Shared-subscription group ($share/<group>/...)")] = "ingest",
    exclusive: Annotated[
        bool,
        typer.Option(
            help="Plain (not shared) subscription, for a single worker: unlike a shared one it survives "
            "a Mosquitto restart (see docs/delivery.md)",
            envvar="AGRI_INGEST_EXCLUSIVE",
        ),
    ] = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="Prometheus /metrics port (0: off)", envvar="AGRI_INGEST_METRICS_PORT"
        ),
    ] = 9108,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics endpoint binds")] = "127.0.0.1",
    session_expiry: Annotated[
        int,
        typer.Option(
            min=60,
            help="Seconds the broker keeps queueing for a stopped worker; longer outages lose its share",
        ),
    ] = 7 * 86400,
    receive_maximum: Annotated[
        int, typer.Option(min=2, max=65535, help="Un-acked messages the broker may send us (MQTT 5)")
    ] = 1000,
    batch_readings: Annotated[int, typer.Option(min=1, help="Readings per transaction, at most")] = 50_000,
    linger_ms: Annotated[
        int, typer.Option(min=0, max=10_000, help="Wait this long for more messages before committing")
    ] = 50,
    retire: Annotated[
        bool,
        typer.Option(
            help="Remove this worker slot: take no new messages, store what its broker session still "
            "queues, then end the session and exit (see docs/delivery.md)"
        ),
    ] = False,
    trace_commits: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Consume node and gateway uplinks, store readings exactly once, ack after commit."""

    s = settings()
    configure(s.log_level, s.log_format)
    db_url, mqtt_url = s.database_url, s.mqtt_url
    if db_url is None or mqtt_url is None:
        st = Stack(s)
        db_url = db_url or st.database_url()
        mqtt_url = mqtt_url or st.mqtt_url("ingest")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    base_id = client_id or default_client_id()
    if retire and workers > 1:
        fail("--retire drains one session: give its --client-id", 2)
    if exclusive and workers > 1:
        fail("--exclusive is for one worker: several workers must share one subscription (--group)", 2)
    if workers > 1:
        common = [
            "--group", group, "--metrics-host", metrics_host, "--session-expiry", str(session_expiry),
            "--receive-maximum", str(receive_maximum), "--batch-readings", str(batch_readings),
            "--linger-ms", str(linger_ms),
        ]  # fmt: skip
        argvs = [child_argv(common, base_id, i, metrics_port or None) for i in range(workers)]
        raise typer.Exit(supervise(argvs, stop))
    try:
        opts = IngestOptions(
            database_url=db_url,
            mqtt_url=mqtt_url,
            client_id=base_id,
            group=None if exclusive else group,
            session_expiry_s=session_expiry,
            receive_maximum=receive_maximum,
            max_batch_readings=batch_readings,
            linger_s=linger_ms / 1000,
            metrics_host=metrics_host,
            metrics_port=metrics_port or None,
            clock_skew_s=s.clock_skew_s,
            retention_days=s.retention_days,
            trace_path=trace_commits,
            retire=retire,
        )
        worker = IngestWorker(opts)
    except ValueError as exc:
        fail(str(exc), 2)
    tune_gc()
    worker.start()
    worker.serve(stop)


def register(app: typer.Typer) -> None:
    app.command()(ingest)
