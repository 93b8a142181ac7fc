"""The plain records the store takes and returns."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class NewJob:
    """A validated job ready to insert (see jq_cli.jobspec for the validation)."""

    job_type: str
    payload_json: str
    queue: str
    priority: int
    max_retries: int
    delay: float | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    retry_base_delay: float | None = None
    retry_max_delay: float | None = None
    retry_jitter: float | None = None
    time_limit: float | None = None  # seconds; None: the handler's or the worker's default


@dataclass(frozen=True)
class Inserted:
    id: int
    state: str
    queue: str
    priority: int
    created: bool  # False when an idempotency key matched an existing job


@dataclass(frozen=True)
class Finish:
    """The outcome of one attempt, as a worker reports it."""

    job_id: int
    run: int  # the attempt number (run_count) the worker claimed
    outcome: str  # completed | failed | timeout | cancelled | snoozed
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    # Seconds until the retry when the failure may be retried; None means the job is dead.
    retry_in: float | None = None


def payload_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def hostname() -> str:
    return socket.gethostname()
