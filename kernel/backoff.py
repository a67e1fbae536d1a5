"""Capped exponential backoff with jitter: the one retry policy of every service loop.

After ``n`` consecutive failures the window is ``[min_s, step]`` with
``step = min(max_s, min_s * 2 ** (n + 1))`` (so ``2*min_s``, ``4*min_s``, ... up to ``max_s``), and the
delay is drawn uniformly from the whole window. Clients that failed together (every gateway of a
district when the central broker restarts) therefore spread over the full window instead of
reconnecting in lock-step, and no delay is ever shorter than ``min_s``, so a dead peer is not hammered.
The random source is injectable, so the policy itself is a pure function of the failure count.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, min_s: float, max_s: float, rand: Callable[[], float] = random.random) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s = min_s
        self.max_s = max_s
        self._rand = rand
        self.failures = 0

    def step(self, failures: int) -> float:
        """Upper end of the window after ``failures`` consecutive failures."""
        return min(self.max_s, self.min_s * 2.0 ** min(failures + 1, 60))

    def delay(self, failures: int) -> float:
        """A delay drawn from the window after ``failures`` failures (does not count a failure)."""
        return self.min_s + self._rand() * (self.step(failures) - self.min_s)

    def next_delay(self) -> float:
        """Count one more failure and return the delay before the next attempt."""
        d = self.delay(self.failures)
        self.failures += 1
        return d

    def reset(self) -> None:
        self.failures = 0
