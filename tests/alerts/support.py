"""Helpers for the alert tests: a farm with commissioners on the local receiver, an alert service thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg

from alerts.config import RuleBook
from alerts.service import AlertOptions, AlertService
from kernel.decode import decode_message
from kernel.protocol import Limits, encode_up, up_topic
from kernel.rules import parse_rules
from store import commissioners as comm
from store.writer import Writer
from tests.ingest.support import register

BARN_RULES = """
[[rules]]
name = "barn-heat"
metric = "air_t"
above = 32
clear = 30
for_s = 60
cooldown_s = 0
severity = "critical"
"""


def setup_farm(db_url: str, farm: str, base: str, nodes: list[str], kind: str = "pig_farm") -> None:
    register(db_url, farm, nodes, kind)
    with psycopg.connect(db_url, autocommit=True) as conn:
        secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        comm.add(conn, f"{farm}-gen", "generic", f"{base}/generic/{farm}", secret, "en")
        comm.add(conn, f"{farm}-wecom", "wecom", f"{base}/wecom/{farm}?key=k1")
        comm.add(conn, f"{farm}-feishu", "feishu", f"{base}/feishu/{farm}", "fsecret")
        comm.add(conn, f"{farm}-ding", "dingtalk", f"{base}/dingtalk/{farm}?access_token=t1", "SECx")
        for name in ("gen", "wecom", "feishu"):
            comm.assign(conn, f"{farm}-{name}", [farm], "warning", 0)
        comm.assign(conn, f"{farm}-ding", [farm], "warning", 1)


def book(text: str = BARN_RULES) -> RuleBook:
    b = RuleBook.load()
    b.deployment = parse_rules(text, "toml", "test.toml")
    return b


@contextmanager
def service_thread(db_url: str, **kw: Any) -> Iterator[AlertService]:
    kw.setdefault("rules", book())
    svc = AlertService(AlertOptions(database_url=db_url, **kw))
    stop = threading.Event()
    t = threading.Thread(target=svc.serve, args=(stop,), daemon=True)
    t.start()
    try:
        yield svc
    finally:
        stop.set()
        t.join(20)


def drain(db_url: str, **kw: Any) -> None:
    """Evaluate everything in the feed with one service instance (shipped default rules unless
    ``rules`` is given; no dispatcher) and close it."""
    kw.setdefault("rules", RuleBook.load())
    svc = AlertService(AlertOptions(database_url=db_url, dispatch=False, **kw))
    try:
        while svc.step():
            pass
    finally:
        svc.close()


def q(db_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(query, args).fetchall()  # type: ignore[arg-type]


def write_series(db_url: str, farm: str, series: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]) -> None:
    """Store each node's readings ``(times, {metric: values})`` through the writer (so the alert
    feed sees them), 48 samples a message, the nodes' messages of each chunk in one batch."""
    w = Writer(db_url)
    try:
        n = max(len(t) for t, _ in series.values())
        for i in range(0, n, 48):
            batch = []
            for node, (t, metrics) in series.items():
                part = [
                    (float(t[j]), {m: round(float(v[j]), 3) for m, v in metrics.items()})
                    for j in range(i, min(i + 48, len(t)))
                ]
                if part:
                    payload = encode_up(node, i, part)
                    batch.append(decode_message(up_topic(farm, node), payload, Limits(now=time.time())))
            w.write(batch)
    finally:
        w.close()
