"""Test aid: `agri gateway` whose spool fails with an SQLite I/O error when a batch is acked.

Run as ``python -m tests.gateway.failing_spool_runner`` with the AGRI_GATEWAY_* variables set. The
first upstream PUBACK makes the uplink loop's spool write raise (as a failing disk would); the rest
is the real CLI command, so the exit status is what systemd would see.
"""

import sqlite3
import sys

import gateway.service
from agri.cli.main import main
from gateway.spool import BatchRange, Spool


class AckFails(Spool):
    def ack_batch(self, batch: BatchRange, acked_at: float) -> int:
        raise sqlite3.OperationalError("disk I/O error")


if __name__ == "__main__":
    gateway.service.Spool = AckFails  # type: ignore[misc]
    sys.argv = ["agri", "gateway"]
    main()
