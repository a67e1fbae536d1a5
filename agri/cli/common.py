"""Shared CLI plumbing: settings loading with one-line errors, console, exit codes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import NoReturn

import typer
from rich.console import Console

from kernel.settings import Settings, SettingsError, load_settings

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


def register_modules(app: typer.Typer, modules: Iterable[str]) -> None:
    """Call ``register(app)`` of each module that exists (subsystems land at different times)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)
