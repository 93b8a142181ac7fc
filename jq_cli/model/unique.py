"""Unique jobs: the key that makes a second submit of the same work, within a period, return the
first job (as an idempotency key does, without the caller inventing one)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from jq_cli.errors import InvalidInput


def unique_key(job_type: str, payload: dict[str, Any], on: Sequence[str] | None) -> str:
    """The job type and a digest of the payload, or of the payload keys in `on` only. Keys are
    sorted, so the same payload written in another order is the same work. Raises InvalidInput
    for a key in `on` the payload lacks (two jobs without it would wrongly count as one)."""
    if on:
        missing = [k for k in on if k not in payload]
        if missing:
            raise InvalidInput(f"unique_on: the payload has no key {missing[0]!r}")
        chosen: dict[str, Any] = {k: payload[k] for k in sorted(set(on))}
    else:
        chosen = payload
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"), default=str)
    return f"{job_type}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"
