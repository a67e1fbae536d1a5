"""Shared CLI plumbing: settings loading with one-line errors, console, exit codes."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

from agri.settings import Settings, SettingsError, load_settings

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(msg: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    sys.exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), 2)
