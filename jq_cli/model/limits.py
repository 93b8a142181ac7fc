"""Limits that hold across every worker: what one limit says, and the `10/s`
spelling of a rate. The claim that enforces them is store/limits.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jq_cli.errors import InvalidInput

RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]*)\s*$")
UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(text: str) -> tuple[int, float]:
    """`10/s`, `100/m`, `5/2s`: (starts, period in seconds). Raises InvalidInput."""
    match = RATE_PATTERN.match(text.lower())
    if not match or match.group(3) not in UNITS or (not match.group(2) and not match.group(3)):
        raise InvalidInput(f"rate {text!r} is not N/PERIOD (e.g. 10/s, 100/m, 5/2s)")
    count = int(match.group(1))
    period = float(match.group(2) or 1) * UNITS[match.group(3)]
    if count < 1 or period <= 0:
        raise InvalidInput(f"rate {text!r} must allow at least 1 start per a positive period")
    return count, period


@dataclass(frozen=True)
class Limit:
    """At most `concurrency` running at once and `rate` (starts, seconds) per queue or job
    type; with `key` per value of that payload field."""

    concurrency: int | None = None
    rate: tuple[int, float] | None = None
    key: str | None = None

    @classmethod
    def build(
        cls, concurrency: int | None = None, rate: str | None = None, key: str | None = None
    ) -> Limit:
        """Raises InvalidInput."""
        if concurrency is not None and concurrency < 1:
            raise InvalidInput(f"concurrency must be 1 or more, got {concurrency}")
        if key is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", key):
            raise InvalidInput(f"limit key {key!r} must be a payload field name")
        return cls(concurrency, parse_rate(rate) if rate else None, key)

    @property
    def empty(self) -> bool:
        return self.concurrency is None and self.rate is None
