"""Gateway entries for `agri status`.

A central install shows every gateway that publishes retained health on its broker (none on a
central-only install, so nothing is added there). A farm machine with ``AGRI_GATEWAY_*`` set also
shows its own gateway, read from the farm broker, which still works while the uplink is down.
"""

from __future__ import annotations

import os
import time
from typing import Any

from gateway.config import GatewayConfigError, load_gateway_settings
from gateway.health import component, read_health
from kernel.protocol import health_topic
from kernel.settings import MqttUrl


def status_components(central_url: str | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    now = time.time()
    if central_url is not None:
        try:
            found = read_health(central_url)
        except (OSError, TimeoutError):
            found = {}  # the broker's own status entry reports why
        for (farm, gw), h in sorted(found.items()):
            out[f"gateway {farm}/{gw}"] = component(h, now)
    if not (os.environ.get("AGRI_GATEWAY_FARM") or os.environ.get("AGRI_GATEWAY_ID")):
        return out
    try:
        cfg = load_gateway_settings()
    except GatewayConfigError as exc:
        out["gateway"] = {"state": "error", "address": None, "error": str(exc)}
        return out
    key = f"gateway {cfg.farm}/{cfg.id}"
    address = MqttUrl(cfg.local_url).public()
    try:
        found = read_health(cfg.local_url, topic=health_topic(cfg.farm, cfg.id))
    except (OSError, TimeoutError) as exc:
        out[key] = {"state": "error", "address": address, "error": f"farm broker: {exc}"}
        return out
    mine = found.get((cfg.farm, cfg.id))
    if mine is None:
        out[key] = {"state": "stopped", "address": address, "error": "no health published yet"}
    else:
        out[key] = component(mine, now) | {"address": address}
    return out
