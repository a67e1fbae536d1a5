"""Farm gateways as the central service sees them: their retained health on the central broker.

``agri/v1/{farm}/gw/{gateway}/health`` carries ``state`` (``online``; ``offline`` is the gateway's
Last Will), ``ts``, ``interval_s`` and the spool ``depth``. :class:`GatewayBoard` is pure: it keeps
the last health per gateway and turns it into rule values on a clock (see :meth:`values`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class GatewaySeen:
    farm: str
    gateway: str
    online: bool
    last_ok: float  # receipt time of the last online health
    depth: int = 0
    down_since: float | None = None


class GatewayBoard:
    def __init__(self) -> None:
        self.gateways: dict[tuple[str, str], GatewaySeen] = {}

    def observe(self, farm: str, gateway: str, payload: bytes, now: float) -> dict[str, Any] | None:
        """One health message, parsed (malformed ones are ignored, None: bad input never takes us down)."""
        try:
            obj: Any = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        g = self.gateways.get((farm, gateway))
        online = obj.get("state") != "offline"
        depth = obj.get("depth")
        if g is None:
            g = self.gateways[(farm, gateway)] = GatewaySeen(farm, gateway, online, now)
        g.online = online
        if online:
            g.last_ok, g.down_since = now, None
            if isinstance(depth, int) and depth >= 0:
                g.depth = depth
        elif g.down_since is None:
            g.down_since = now
        return obj

    def values(self, now: float, threshold_s: float) -> list[tuple[GatewaySeen, float, float]]:
        """(gateway, seconds it has been out of touch, spool depth) for each gateway.

        Offline by its Last Will counts as out of touch past ``threshold_s`` at once.
        """
        out = []
        for g in self.gateways.values():
            age = now - g.last_ok
            if not g.online and g.down_since is not None:
                age = max(age, threshold_s + 1 + (now - g.down_since))
            out.append((g, age, float(g.depth)))
        return out

    def down(self, farm: str) -> list[str]:
        return [g.gateway for (f, _), g in self.gateways.items() if f == farm and not g.online]
