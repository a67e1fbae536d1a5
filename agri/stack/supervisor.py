"""`agri ingest --workers N`: run N worker processes on one machine, restart any that dies.

Each child is an ordinary `agri ingest` with its own client id (``<base>-<i>``: a stable id per
slot, so a restarted child resumes its broker session and gets its un-acked messages back) and
its own metrics port (``<port>+i``). Workers on other machines need nothing from this module.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from kernel.log import event, get_logger

log = get_logger("ingest")


def child_argv(base_args: Sequence[str], client_id: str, index: int, metrics_port: int | None) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "agri.cli.main",
        "ingest",
        *base_args,
        "--client-id",
        f"{client_id}-{index}",
    ]
    argv += ["--metrics-port", str(metrics_port + index if metrics_port else 0)]
    return argv


def supervise(argvs: list[list[str]], stop: threading.Event) -> int:
    """Run the children until ``stop``; restart crashed ones with a capped delay. Returns exit code."""
    procs: list[subprocess.Popen[bytes] | None] = [None] * len(argvs)
    delay = [1.0] * len(argvs)
    next_start = [0.0] * len(argvs)
    try:
        while not stop.is_set():
            now = time.monotonic()
            for i, argv in enumerate(argvs):
                p = procs[i]
                if p is not None and p.poll() is not None:
                    event(
                        log,
                        "worker_exited",
                        logging.WARNING,
                        index=i,
                        code=p.returncode,
                        restart_in_s=delay[i],
                    )
                    procs[i] = None
                    next_start[i] = now + delay[i]
                    delay[i] = min(delay[i] * 2, 30.0)
                if procs[i] is None and now >= next_start[i]:
                    procs[i] = subprocess.Popen(argv)
                    event(log, "worker_started", index=i, pid=procs[i].pid)  # type: ignore[union-attr]
            stop.wait(0.5)
    finally:
        for p in procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            if p is not None:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    return 0
