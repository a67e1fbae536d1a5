"""Capped exponential backoff with jitter (pure: the random source is injectable).

"Full jitter": each delay is drawn uniformly from ``[cap/2, cap]`` where ``cap`` doubles per failure
up to ``max_s``. Many gateways that lose the same central broker therefore do not reconnect in
lock-step when it returns, and no delay is ever shorter than half the current step.
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

    def next_delay(self) -> float:
        """Delay before the next attempt after one more failure."""
        cap = min(self.max_s, self.min_s * 2.0 ** min(self.failures, 60))
        self.failures += 1
        return cap / 2 + self._rand() * cap / 2

    def reset(self) -> None:
        self.failures = 0
