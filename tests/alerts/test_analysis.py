"""Anomaly scores and QC flags stored for every evaluated reading; a restart continues the detector
state (scores equal an uninterrupted run), QC flags name their tests."""

import math
import time

import numpy as np
import pytest

from alerts.service import AlertOptions, AlertService
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


def _state_saved(db_url: str, farm: str) -> bool:
    rows = q(
        db_url,
        "SELECT s.anomaly_state IS NOT NULL FROM series s JOIN nodes n ON n.id = s.node_id"
        " WHERE n.farm_id = %s",
        farm,
    )
    assert len(rows) == 1
    return bool(rows[0][0])


def _scores(db_url: str, farm: str) -> int:
    return int(
        q(
            db_url,
            "SELECT count(*) FROM anomaly_scores a JOIN series s ON s.id = a.series_id"
            " JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s",
            farm,
        )[0][0]
    )


def test_anomaly_states_are_a_checkpoint_saved_when_due_and_at_stop(db_url: str) -> None:
    """The states are saved at most every ``anomaly_checkpoint_s`` and when the service stops; a
    crash before a checkpoint loses only detector warm-up, never a reading's evaluation."""
    farm, node = "an-ckpt", "p-1"
    register(db_url, farm, [node], "pond")
    t0 = float(int(time.time()) - 86400)
    samples = [(t0 + 300.0 * i, round(6 + 0.5 * math.sin(i / 20), 3)) for i in range(200)]
    write(db_url, farm, node, samples[:100], 0)
    slow = AlertOptions(
        database_url=db_url, dispatch=False, rules=book(), anomaly_checkpoint_s=3600.0, anomaly_floor=0.0
    )
    svc = AlertService(slow)
    while svc.step():
        pass
    # evaluated and its cursor saved, the state not yet (not due): a kill -9 now ...
    assert not _state_saved(db_url, farm)
    assert svc.conn is not None
    svc.conn.close()  # ... the process dies without stopping
    scored = _scores(db_url, farm)
    assert scored == 100
    write(db_url, farm, node, samples[100:], 100)
    svc = AlertService(slow)
    try:
        while svc.step():
            pass
        assert not _state_saved(db_url, farm)
        # every reading evaluated once: the second instance resumed at the cursor, nothing re-read
        assert _scores(db_url, farm) == 200
    finally:
        svc.close()  # a stop saves the checkpoint
    assert _state_saved(db_url, farm)
    # with checkpoint_s = 0 every step saves the states
    farm2 = "an-ckpt-2"
    register(db_url, farm2, [node], "pond")
    write(db_url, farm2, node, samples[:50], 0)
    svc = AlertService(
        AlertOptions(database_url=db_url, dispatch=False, rules=book(), anomaly_checkpoint_s=0.0)
    )
    while svc.step():
        pass
    assert _state_saved(db_url, farm2)
    assert svc.conn is not None
    svc.conn.close()


def test_stuck_probe_and_slow_trend_carry_their_state_across_a_restart(db_url: str) -> None:
    """The farm rules over days run in the service with state per series (saved at the checkpoint,
    history read back at start): their alarms, stored as suspect flags, are those of the whole
    series at once, though the service restarts inside the stuck stretch and inside the drift."""
    from analytics.anomaly import farm as farm_rules

    farm, node = "an-day", "p-9"
    register(db_url, farm, [node], "pond")
    n = 1440  # five days, every 5 min
    t = float(int(time.time()) - 5 * 86400 - 3600) + np.arange(n) * 300.0
    rng = np.random.default_rng(12)
    v = 7.0 + np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 0.05, n)
    v[700:800] = v[700]  # stuck for 8 h 20 min
    v[1200:] += np.linspace(0, 2.0, n - 1200)  # a slow rise over the last 20 h
    samples = [(float(a), round(float(b), 2)) for a, b in zip(t, v, strict=True)]
    stored = np.array([b for _, b in samples])
    want_stuck = farm_rules.stuck_alarms(t, stored)
    want_drift = farm_rules.drift_alarms(t, stored)
    assert want_stuck[750:800].any() and want_drift[1300:].any() and not want_drift[:1200].any()
    for a, b in ((0, 750), (750, 1300), (1300, n)):
        write(db_url, farm, node, samples[a:b], a)
        drain(db_url)  # a new instance each time: a stretch began, and a trend was learnt, before it
    rows = q(
        db_url,
        "SELECT extract(epoch FROM f.time)::float8, f.flag, f.tests FROM qc_flags f"
        " JOIN series s ON s.id = f.series_id JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s",
        farm,
    )
    got_stuck = sorted(a for a, _, x in rows if "stuck_probe" in x)
    got_drift = sorted(a for a, _, x in rows if "slow_trend" in x)
    assert got_stuck == t[want_stuck].tolist()
    assert got_drift == t[want_drift].tolist()
    assert all(f in (3, 4) for _, f, x in rows if "stuck_probe" in x or "slow_trend" in x)


def test_a_checkpoint_is_spread_over_steps(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint writes at most CHECKPOINT_BATCH states per step (a large one does not hold a
    step, and the alerts found in it, for its whole write); the rest follow in the next steps, and a
    stop saves whatever is left."""
    from alerts import analysis

    monkeypatch.setattr(analysis, "CHECKPOINT_BATCH", 2)
    farm = "an-spread"
    nodes = [f"p-{i}" for i in range(5)]
    register(db_url, farm, nodes, "pond")
    t0 = float(int(time.time()) - 86400)
    for node in nodes:
        write(db_url, farm, node, [(t0 + 300.0 * k, 6.0 + 0.1 * k) for k in range(10)], 0)

    def saved() -> int:
        row = q(
            db_url,
            "SELECT count(*) FILTER (WHERE s.anomaly_state IS NOT NULL AND s.farm_state IS NOT NULL)"
            " FROM series s JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s",
            farm,
        )
        return int(row[0][0])

    svc = AlertService(
        AlertOptions(database_url=db_url, dispatch=False, rules=book(), anomaly_checkpoint_s=0.0)
    )
    try:
        assert svc.step() == 5  # every series evaluated; the checkpoint begins: two states
        assert saved() == 2
        assert svc.step() == 0 and saved() == 4  # quiet steps carry on with it
        assert svc.step() == 0 and saved() == 5
        for node in nodes[:3]:  # changed again: the next checkpoint, stopped half-way
            write(db_url, farm, node, [(t0 + 3000.0, 7.0)], 10)
        assert svc.step() == 3
        assert len(svc.an._pending) == 1  # two of the three saved
    finally:
        svc.close()  # a stop saves the rest at once
    assert not svc.an._pending and not svc.an.dirty and saved() == 5


def test_a_state_of_another_detector_version_starts_afresh_and_is_logged(db_url: str) -> None:
    """After an upgrade that changes the detector's state layout (version 3 -> 4), stored states
    cannot be read: those series start learning again (scores equal a run from this point on),
    the service keeps evaluating, and one warning line says how many series lost their state."""
    import logging

    import psycopg

    farm, node = "an-ver", "p-1"
    register(db_url, farm, [node], "pond")
    t0 = float(int(time.time()) - 86400)
    samples = [(t0 + 300.0 * i, round(6 + 0.5 * math.sin(i / 20) + 0.01 * (i % 7), 3)) for i in range(260)]
    write(db_url, farm, node, samples[:130], 0)
    drain(db_url)
    assert _state_saved(db_url, farm)
    # the blob as an older detector wrote it: same bytes, version byte 3
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE series s SET anomaly_state = set_byte(anomaly_state, 0, 3) FROM nodes n"
            " WHERE n.id = s.node_id AND n.farm_id = %s",
            (farm,),
        )
    write(db_url, farm, node, samples[130:], 130)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("agri.alerts")
    logger.addHandler(handler)
    try:
        drain(db_url)
    finally:
        logger.removeHandler(handler)
    lost = [r for r in seen if r.getMessage() == "anomaly_state_discarded"]
    assert len(lost) == 1
    assert _scores(db_url, farm) == 260  # every reading still evaluated
    got = dict(
        q(
            db_url,
            "SELECT extract(epoch FROM a.time)::float8, a.score FROM anomaly_scores a"
            " JOIN series s ON s.id = a.series_id JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s",
            farm,
        )
    )
    t = np.array([a for a, _ in samples[130:]])
    fresh = score_series(t, np.array([b for _, b in samples[130:]]))
    assert max(abs(got[float(a)] - float(e)) for a, e in zip(t, fresh, strict=True)) < 1e-5
