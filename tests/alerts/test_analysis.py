"""Anomaly scores and QC flags stored for every evaluated reading; a restart continues the detector
state (scores equal an uninterrupted run), QC flags name their tests."""

import math
import time

import numpy as np
import pytest

from analytics.anomaly import score_series
from kernel.decode import decode_message
from kernel.protocol import Limits, encode_up, up_topic
from store.writer import Writer
from tests.alerts import support
from tests.alerts.support import book, q
from tests.ingest.support import register

pytestmark = pytest.mark.integration


def write(db_url: str, farm: str, node: str, samples: list[tuple[float, float]], seq0: int) -> None:
    w = Writer(db_url)
    try:
        for i in range(0, len(samples), 50):
            part = samples[i : i + 50]
            payload = encode_up(node, seq0 + i, [(t, {"do_mgl": v}) for t, v in part])
            d = decode_message(up_topic(farm, node), payload, Limits(now=time.time()))
            assert w.write([d]).stored == len(part)
    finally:
        w.close()


def drain(db_url: str) -> None:
    support.drain(db_url, rules=book(), anomaly_floor=0.0)


def test_scores_continue_across_a_restart_and_qc_flags_are_stored(db_url: str) -> None:
    farm, node = "an-1", "p-1"
    register(db_url, farm, [node], "pond")
    t0 = float(int(time.time()) - 3 * 86400)
    rng = np.random.default_rng(7)
    n = 600
    t = t0 + np.arange(n) * 300.0
    v = 6 + 1.5 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 0.1, n)
    v[400] = 14.0  # a spike
    v[470:580] = 5.5  # stuck sensor: flat for nine hours (do_mgl's flat-line test: suspect after six)
    samples = [(float(a), round(float(b), 3)) for a, b in zip(t, v, strict=True)]
    write(db_url, farm, node, samples[:300], 0)
    drain(db_url)  # first service instance
    write(db_url, farm, node, samples[300:], 300)
    drain(db_url)  # a new instance: must continue from the saved state, not re-warm
    stored_v = np.array([b for _, b in samples])
    expected = score_series(t, stored_v)
    got = dict(q(db_url, "SELECT extract(epoch FROM time)::float8, score FROM anomaly_scores"))
    assert len(got) == n
    diff = [abs(got[float(a)] - float(e)) for a, e in zip(t, expected, strict=True) if not math.isnan(e)]
    assert max(diff) < 1e-5  # float32 storage
    assert got[float(t[400])] == max(got.values()) > 0.25  # the spike scores highest (alarm guidance 0.25)
    flags = q(db_url, "SELECT extract(epoch FROM time)::float8, flag, tests FROM qc_flags ORDER BY time")
    flat = [f for f in flags if "flat_line" in f[2]]
    assert flat and all(t[470 + 72] <= f[0] <= t[579] for f in flat)
    assert any(f[0] == t[400] for f in flags)  # the spike's jump: rate of change
