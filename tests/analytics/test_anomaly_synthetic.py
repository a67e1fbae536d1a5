"""Synthetic farm faults: the generator is deterministic and the detector finds the faults."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.anomaly import AnomalyState, update
from analytics.anomaly.farm import ALERT_LEVEL, alerts
from analytics.anomaly.synthetic import (
    FAULT_OF,
    KINDS,
    alarm_precision_recall,
    event_precision_recall,
    farm_masks,
    generate,
)


def test_generator_is_seeded_and_places_faults() -> None:
    a, b = generate(seed=3, farms=2, days=10), generate(seed=3, farms=2, days=10)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.faults == b.faults
    assert not np.array_equal(a.values, generate(seed=4, farms=2, days=10).values)
    assert a.kinds == list(KINDS) * 2
    n = a.values.shape[1]
    for f in a.faults:
        assert f.kind in FAULT_OF[a.kinds[f.series]]
        assert n // 2 <= f.start <= f.end < n
    stuck = [f for f in a.faults if f.kind == "stuck"]
    for f in stuck:
        assert np.ptp(a.values[f.series, f.start : f.end + 1]) == 0


def test_dead_probe_reads_zero_and_water_counter_rolls_over() -> None:
    data = generate(seed=8, farms=6, days=8)
    dead = [f for f in data.faults if f.kind == "dead"]
    assert dead
    for f in dead:
        assert np.all(data.values[f.series, f.start :] == 0.0) and f.end == data.values.shape[1] - 1
    for i, kind in enumerate(data.kinds):
        if kind == "water_l":
            hours = np.mod(data.times[i], 86_400) / 3600
            falls = np.nonzero(np.diff(data.values[i]) < 0)[0] + 1
            assert len(falls) == 7 and np.all(hours[falls] == 0.0)


#: farm alerts (QC + the stuck and drift rules + context + ALERT_LEVEL) on seeds not used in
#: development (0-10 were), as measured 2026-12-07 with state version 4 (docs/benchmarks.md,
#: "Synthetic farm faults")
MEASURED = {11: (0.92, 0.98), 12: (0.97, 1.0), 13: (0.92, 0.87)}


@pytest.mark.parametrize("seed", sorted(MEASURED))
def test_farm_alert_precision_recall_by_seed(seed: int) -> None:
    data = generate(seed=seed, farms=10)
    scores = update(AnomalyState.new(data.values.shape[0]), data.times, data.values)
    qc, explained = farm_masks(data)
    r = alarm_precision_recall(data, alerts(scores, ALERT_LEVEL, qc, explained))
    precision, recall = MEASURED[seed]
    assert r.precision >= precision - 0.02 and r.recall >= recall - 0.02, (r.precision, r.recall)
    for kind in ("dead", "stuck", "drift"):  # QC's, the stuck rule's and the drift test's: all found
        found, total = r.by_kind[kind]
        assert found == total, r.by_kind
    # context: without it the same level raises more false alarms (soil in rain, midnight)
    bare = alarm_precision_recall(data, alerts(scores, ALERT_LEVEL, qc))
    assert bare.false_alarms > r.false_alarms


def test_event_scoring_counts_alarms() -> None:
    data = generate(seed=5, farms=1, days=8)
    scores = np.zeros(data.values.shape)
    assert event_precision_recall(data, scores, 0.5).recall == 0.0
    for f in data.faults:
        scores[f.series, f.start] = 1.0
    scores[0, 10] = scores[0, 11] = 1.0  # one false alarm (two adjacent points)
    r = event_precision_recall(data, scores, 0.5)
    assert r.recall == 1.0 and r.false_alarms == 1 and r.true_alarms == len(data.faults)
