"""The plain records the store takes and returns."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class NewJob:
    """A validated job ready to insert (see jq_cli.model.jobspec for the validation). Treat it as
    immutable; it is not frozen because a frozen dataclass's __init__ costs ten times a plain
    one's (about 3.5 us against 0.35 here), paid for every job of a bulk submit."""

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
    # Workflows and unique jobs (jq_cli.store.enqueue writes these; the plain insert paths never set them).
    unique_key: str | None = None  # job type + payload digest: see jq_cli.model.unique
    unique_for: float | None = None  # seconds in which a second submit of the key finds this job
    trace_context: str | None = None  # JSON of the submitter's W3C trace context
    depends_on: tuple[int, ...] = ()  # parents that must complete first (jq_cli.model.workflows)
    on_parent_failure: str = "cancel"  # cancel | run: what a dead or cancelled parent does to it
    parent_result: bool = False  # a chain step: receives its parent's result in ctx.parent_results

    @property
    def needs_enqueue_path(self) -> bool:
        """True when only store.enqueue can insert it (the plain paths know none of these)."""
        return bool(self.unique_key or self.trace_context or self.depends_on)


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
