"""Test aid: a gateway that SIGKILLs itself right after its first spool commit, before any ack.

Run as ``python -m tests.gateway.crash_runner`` with the AGRI_GATEWAY_* variables set.
"""

import os
import signal
import threading

from gateway.config import load_gateway_settings
from gateway.service import GatewayService
from kernel.log import configure


def _crash(_n: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    configure("info")
    raise SystemExit(GatewayService(load_gateway_settings(), after_spool=_crash).run(threading.Event()))
