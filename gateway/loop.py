"""The exception boundary of the gateway's threads.

Every long-running gateway loop (spooler, uplink, webhook notifier, housekeeping) is a :class:`Loop`.
Conditions the loop expects (broker down, spool write failing, webhook refused) are handled inside
it and logged once when they start and once when they end. Anything else that escapes the loop is a
defect or a condition nobody planned for: it is logged once, with the loop's name and where it was
raised, recorded in :attr:`Loop.error`, and the thread ends. The service's watchdog
(:meth:`gateway.service.GatewayService.run`) sees the dead loop, reports ``state: "failed"`` in the
health message and ends the process with a non-zero exit, so systemd restarts it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

from kernel.log import event, get_logger

log = get_logger("gateway")


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, one line, bounded."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}"


class Loop(threading.Thread):
    """A daemon thread running :meth:`loop` (or ``target``) inside the exception boundary."""

    def __init__(self, name: str, target: Callable[[], None] | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self._body = target
        self.error: str | None = None

    def loop(self) -> None:
        if self._body is not None:
            self._body()

    def run(self) -> None:
        try:
            self.loop()
        except Exception as exc:
            self.error = describe(exc)
            event(log, "loop_died", logging.ERROR, loop=self.name, error=self.error, at=_where(exc))

    def failure(self) -> str | None:
        """Why this loop is not running although it was started (None while it runs)."""
        if self.ident is None or self.is_alive():
            return None
        return f"{self.name}: {self.error or 'ended'}"
