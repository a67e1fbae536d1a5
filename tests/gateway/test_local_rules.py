"""Local rules fire through a real local HTTP webhook while the uplink is down."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.service import GatewayService
from gateway.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.fixtures.wait import wait_until
from tests.gateway.conftest import Rig
from tests.gateway.support import gateway_settings

pytestmark = pytest.mark.integration

SECRET = "local-webhook-secret-0123456789"

RULES = """
[[rules]]
name = "barn-heat"
metric = "air_t"
above = 32
clear = 31
cooldown_s = 0
message = "猪舍温度过高"

[[rules]]
name = "barn-ammonia"
metric = "nh3_ppm"
above = 25
"""


class Hook:
    """A local HTTP receiver: records requests; answers with the queued status codes, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.requests.append({"headers": dict(self.headers), "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._t = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._t.start()

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests if r["status"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def test_rules_fire_via_signed_webhook_only_while_uplink_is_down(
    rig: Rig, hook: Hook, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    rig.proxy.cut()
    hook.statuses = [500]  # the first delivery fails: it must be retried
    cfg = gateway_settings(rig.farm, rig.gw, rig.local_url, rig.central_url, rig.spool,
                           rules_file=rules, webhook_url=hook.url, webhook_secret=SECRET)  # fmt: skip
    svc = GatewayService(cfg)
    svc.start()
    try:
        wait_until(lambda: svc.inbound.subscribed, 10, "farm broker subscription")
        barn = rig.node("barn-1")
        barn.publish(air_t=30.0, nh3_ppm=10.0)
        barn.publish(air_t=33.5, nh3_ppm=12.0)  # fires barn-heat
        wait_until(lambda: len(hook.delivered()) == 1, 15, "first alert delivered after a retry")
        assert [r["status"] for r in hook.requests] == [500, 200]
        first = hook.requests[-1]
        assert verify(
            SECRET.encode(), first["headers"][TIMESTAMP_HEADER], first["headers"][SIGNATURE_HEADER],
            first["body"], now=time.time(),
        )  # fmt: skip
        body = hook.delivered()[0]
        assert (body["rule"], body["node"], body["metric"], body["value"]) == (
            "barn-heat",
            "barn-1",
            "air_t",
            33.5,
        )
        assert (body["op"], body["threshold"], body["uplink"], body["farm"]) == (
            "above",
            32.0,
            "down",
            rig.farm,
        )
        assert body["message"] == "猪舍温度过高"

        barn.publish(air_t=34.0, nh3_ppm=30.0)  # same heat episode: nothing; ammonia: fires
        barn.publish(air_t=31.5, nh3_ppm=31.0)  # inside the hysteresis band: nothing
        barn.publish(air_t=30.9, nh3_ppm=5.0)  # cleared
        barn.publish(air_t=33.0, nh3_ppm=5.0)  # a new heat episode (cooldown 0): fires
        wait_until(lambda: len(hook.delivered()) == 3, 10, "two more alerts")
        time.sleep(0.5)
        assert [(b["rule"], b["value"]) for b in hook.delivered()] == [
            ("barn-heat", 33.5),
            ("barn-ammonia", 30.0),
            ("barn-heat", 33.0),
        ]

        rig.proxy.restore()
        wait_until(lambda: svc.uplink.connected, 10, "uplink back")
        barn.publish(air_t=30.0)
        barn.publish(air_t=36.0)  # central alerts now: the local rule stays quiet
        rig.collector.wait_messages(len(barn.published))
        time.sleep(0.5)
        assert len(hook.delivered()) == 3
        h = svc.health()
        assert (h["rules_fired"], h["webhooks_delivered"], h["alerts_pending"]) == (3, 3, 0)
    finally:
        svc.stop()
