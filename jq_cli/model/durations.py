"""Parsing of human durations (30s, 1.5m, 2h, 7d) and instants (ISO 8601) from the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from jq_cli.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text: str | float | int, field: str = "duration") -> float:
    """Seconds in `text` ("30s", "1.5h", "7d", or a bare number of seconds). Raises InvalidInput."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InvalidInput(
                f"{field}: cannot parse {text!r} as a duration (use e.g. 30s, 5m, 2h, 7d)"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise InvalidInput(f"{field}: must be a non-negative duration, got {text!r}")
    return seconds


def parse_instant(text: str, field: str = "at") -> datetime:
    """An aware datetime from ISO 8601; a naive one is taken as UTC. Raises InvalidInput."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field}: cannot parse {text!r} as an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
