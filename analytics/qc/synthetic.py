"""Seeded synthetic sensor series with faults injected at known positions (for tests and demos)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

DAY = 86_400.0


@dataclass(frozen=True)
class FaultySeries:
    """A clean diurnal signal plus faults; ``truth[name]`` holds the indices of each fault."""

    t: NDArray[np.float64]
    v: NDArray[np.float64]
    truth: dict[str, NDArray[np.int64]] = field(default_factory=dict)


def air_temperature(
    seed: int,
    n: int = 2 * 1440,
    dt_s: float = 60.0,
    *,
    jitter_s: float = 0.0,
    t0: float = 1_717_200_000.0,
) -> FaultySeries:
    """Two days of 1-minute air temperature (°C) with a spike, a stuck probe, an out-of-range
    burst, a jump (rate of change), missing readings and a transmission gap.

    ``jitter_s`` makes the sampling irregular (each time moved by up to ± jitter).
    """
    rng = np.random.default_rng(seed)
    t = t0 + dt_s * np.arange(n, dtype=np.float64)
    if jitter_s:
        t = t + rng.uniform(-jitter_s, jitter_s, n)
    hours = (t - t0) / 3600.0
    v = 22 + 6 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 0.08, n)
    truth: dict[str, NDArray[np.int64]] = {}
    # a lone spike of +9 °C
    i_spike = int(rng.integers(n // 10, n // 5))
    v[i_spike] += 9.0
    truth["spike"] = np.array([i_spike])
    # a probe stuck for 14 hours (flat line: suspect after 3 h, fail after 12 h)
    s0 = int(rng.integers(n // 4, n // 3))
    stuck_len = int(14 * 3600 / dt_s)
    v[s0 : s0 + stuck_len] = np.round(v[s0], 1)
    truth["stuck"] = np.arange(s0, s0 + stuck_len)
    # impossible values (gross range fail: sensor limit 60 °C)
    b0 = int(rng.integers(int(n * 0.6), int(n * 0.65)))
    v[b0 : b0 + 3] = 85.0
    truth["out_of_range"] = np.arange(b0, b0 + 3)
    # a step of -6 °C held afterwards (rate of change)
    j0 = int(rng.integers(int(n * 0.7), int(n * 0.75)))
    v[j0:] -= 6.0
    truth["jump"] = np.array([j0])
    # isolated missing readings
    miss = np.sort(rng.choice(np.arange(int(n * 0.8), int(n * 0.85)), size=5, replace=False))
    v[miss] = np.nan
    truth["missing"] = miss
    # a 2-hour transmission gap: readings dropped from the series entirely
    g0 = int(n * 0.9)
    gap_len = int(2 * 3600 / dt_s)
    keep = np.ones(n, dtype=bool)
    keep[g0 : g0 + gap_len] = False
    new_index = np.cumsum(keep) - 1
    for name, idx in list(truth.items()):
        truth[name] = new_index[idx[keep[idx]]]
    truth["after_gap"] = np.array([new_index[g0 + gap_len]])
    return FaultySeries(t[keep], v[keep], truth)
