"""What `agri demo` runs after the stack is up: simulated farms, then wait for Ctrl-C."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from agri.stack.manager import Stack


def run(stack: Stack, stop: threading.Event, console: Console) -> None:
    status = stack.status()
    for name, comp in status.items():
        console.print(f"  {name:<10} {comp['state']:<8} {comp.get('address') or ''}", highlight=False)
    console.print("The platform is running. Press Ctrl-C to stop.")
    while not stop.wait(1.0):
        pass
