"""The back-off policy: how long a failed job waits before its next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.1

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the n-th failed attempt (n >= 1): min(max, base * 2**(n-1)) plus a
        uniform jitter in [0, jitter * that], so jobs that failed together do not return together."""
        exponent = min(max(failed_attempt, 1) - 1, 62)  # bounded: 2**62 already dwarfs any max
        delay = min(self.maximum, self.base * (2**exponent))
        return delay + (rng or random).uniform(0, self.jitter * delay)

    def with_overrides(
        self, base: float | None, maximum: float | None, jitter: float | None
    ) -> Backoff:
        return Backoff(
            base if base is not None else self.base,
            maximum if maximum is not None else self.maximum,
            jitter if jitter is not None else self.jitter,
        )
