"""The one exception of the flash workflow: it names the step and, when known, the file."""

from __future__ import annotations


class FlashError(Exception):
    """A flash step failed. ``str()`` is one line: ``<step>[ <path>]: <detail>``.

    ``step`` is one of: config, build, connect, inspect, space, prune, copy, romfs, verify, reset, wait.
    """

    def __init__(self, step: str, detail: str, path: str | None = None, hint: str | None = None) -> None:
        self.step = step
        self.detail = detail
        self.path = path
        self.hint = hint
        where = f" {path}" if path else ""
        super().__init__(f"step {step}{where}: {detail}")
