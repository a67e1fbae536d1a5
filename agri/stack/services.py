"""The platform's long-running services as `agri up` starts them: argv, health check, ports.

A service is started as ``python -m agri.cli.main <command>`` with ``AGRI_DATABASE_URL`` and
``AGRI_MQTT_URL`` set to its own account, so every service process runs in "external services"
mode and can equally be run by systemd or on another machine.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

from kernel.settings import Settings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str  # the module implementing it; the service is skipped until it exists
    argv: Callable[[Settings], list[str]]
    mqtt_role: str | None  # broker account it connects with
    health_url: Callable[[Settings], str] | None = None
    url: Callable[[Settings], str] | None = None

    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False


def _cli(*args: str) -> Callable[[Settings], list[str]]:
    return lambda s: [sys.executable, "-m", "agri.cli.main", *args]


SERVICES: tuple[ServiceSpec, ...] = (
    # One worker on the embedded Mosquitto: an exclusive subscription, which (unlike a shared one)
    # survives a broker restart. With an external broker, workers share `$share/ingest/...`.
    ServiceSpec(
        "ingest",
        "ingest.service",
        lambda s: [
            sys.executable,
            "-m",
            "agri.cli.main",
            "ingest",
            *(["--exclusive"] if s.embedded_mqtt else []),
        ],
        mqtt_role="ingest",
    ),
    ServiceSpec("alerts", "alerts.service", _cli("alerts"), mqtt_role="monitor"),
    ServiceSpec(
        "api",
        "api.app",
        _cli("api"),
        mqtt_role="api",
        health_url=lambda s: f"http://{s.api_host}:{s.api_port}/healthz",
        url=lambda s: f"http://{s.api_host}:{s.api_port}",
    ),
    ServiceSpec(
        "dashboard",
        "dashboard.app",
        _cli("dashboard"),
        mqtt_role=None,
        health_url=lambda s: f"http://127.0.0.1:{s.dashboard_port}/_stcore/health",
        url=lambda s: f"http://127.0.0.1:{s.dashboard_port}",
    ),
)


def available_services() -> list[ServiceSpec]:
    return [s for s in SERVICES if s.available()]
