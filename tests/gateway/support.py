"""Test helpers for the gateway: an uplink proxy that can be cut, nodes, a batch collector."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from gateway.config import GatewaySettings
from kernel.mqtt import make_client
from kernel.protocol import batch_topic, decode_batch, encode_up, up_topic
from tests.fixtures.wait import wait_until


class TcpProxy:
    """A TCP relay standing in for the gateway's uplink. ``cut()`` drops every connection and
    refuses new ones (link down); ``freeze()`` keeps connections open but relays nothing (a
    black hole: no PUBACK comes back); ``restore()`` relays again."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((host, 0))
        self._srv.listen(16)
        self._srv.settimeout(0.1)
        self.port: int = self._srv.getsockname()[1]
        self.mode = "pass"
        self.relayed = 0  # bytes relayed in either direction
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, broker_url: str) -> str:
        host_port = f"{self.target[0]}:{self.target[1]}"
        assert host_port in broker_url
        return broker_url.replace(host_port, f"127.0.0.1:{self.port}")

    def _accept(self) -> None:
        while not self._closed:
            try:
                c, _ = self._srv.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode != "pass":
                c.close()
                continue
            try:
                up = socket.create_connection(self.target, timeout=2)
            except OSError:
                c.close()
                continue
            with self._lock:
                self._socks += [c, up]
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode == "pass":
                    dst.sendall(data)
                    with self._lock:
                        self.relayed += len(data)
                # freeze: swallow
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _drop_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        self.mode = "cut"
        self._drop_all()

    def freeze(self) -> None:
        self.mode = "freeze"

    def restore(self) -> None:
        if self.mode == "freeze":
            self._drop_all()  # a frozen connection has lost bytes: it must not carry on
        self.mode = "pass"

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._srv.close()


class Node:
    """A simulated node: publishes QoS 1 messages with increasing seq and waits for the PUBACK."""

    def __init__(self, url: str, farm: str, node: str) -> None:
        self.farm, self.node = farm, node
        self.seq = 0
        self.published: list[tuple[int, bytes]] = []  # (seq, payload) acked by the farm broker
        self.client, kw = make_client(url, f"node-{farm}-{node}-{secrets.token_hex(2)}")
        self.client.connect(**kw)
        self.client.loop_start()

    def publish(self, payload: bytes | None = None, *, t: float | None = None, **metrics: float) -> bytes:
        self.seq += 1
        if payload is None:
            payload = encode_up(self.node, self.seq, [(t or time.time(), metrics or {"air_t": 20.0})])
        info = self.client.publish(up_topic(self.farm, self.node), payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), "farm broker did not PUBACK"
        self.published.append((self.seq, payload))
        return payload

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class BatchCollector:
    """Central side: a persistent session on the gateway's batch topic; decodes every envelope."""

    def __init__(self, url: str, farm: str, gateway: str) -> None:
        self.farm, self.gateway = farm, gateway
        self.batches: list[Any] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client, kw = make_client(url, f"collector-{farm}-{secrets.token_hex(3)}", clean_start=False,
                                      session_expiry_s=600)  # fmt: skip

        def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe(batch_topic(farm, gateway), qos=1)

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            b = decode_batch(farm, gateway, msg.payload)
            with self._cond:
                self.batches.append(b)
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = on_message
        self.client.connect(**kw)
        self.client.loop_start()
        assert self._subscribed.wait(10), "collector did not subscribe"

    def messages(self) -> list[tuple[str, bytes]]:
        with self._cond:
            return [m for b in self.batches for m in b.messages]

    def seqs(self) -> list[tuple[str, int]]:
        return [(node, json.loads(p)["seq"]) for node, p in self.messages()]

    def wait_messages(self, n: int, timeout: float = 20) -> list[tuple[str, bytes]]:
        wait_until(lambda: len(self.messages()) >= n, timeout, f"{n} messages upstream")
        return self.messages()

    def wait_seqs(self, expected: set[tuple[str, int]], timeout: float = 30) -> None:
        wait_until(lambda: expected <= set(self.seqs()), timeout, f"{len(expected)} (node, seq) upstream")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def gateway_settings(
    farm: str, gw: str, local_url: str, upstream_url: str, spool: Path, **over: Any
) -> GatewaySettings:
    base: dict[str, Any] = {
        "farm": farm,
        "id": gw,
        "local_url": local_url,
        "upstream_url": upstream_url,
        "spool_path": spool,
        "linger_s": 0.05,
        "health_interval_s": 0.5,
        "backoff_min_s": 0.2,
        "backoff_max_s": 1.0,
        "upstream_keepalive_s": 5,
    }
    base.update(over)
    return GatewaySettings(**base)


def gateway_env(cfg: GatewaySettings) -> dict[str, str]:
    """AGRI_GATEWAY_* variables for running ``agri gateway`` as a process with ``cfg``."""
    out = {}
    for name, value in cfg.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        out[f"AGRI_GATEWAY_{name.upper()}"] = str(value)
    return out


def spool_depth(path: Path) -> int:
    """Rows in a (possibly running) gateway's spool, read through a separate connection."""
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])


def spool_batches(path: Path) -> list[tuple[str, int, int]]:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        return [
            (str(b), int(f), int(la))
            for b, f, la in db.execute("SELECT batch_id, first_id, last_id FROM batches ORDER BY first_id")
        ]
