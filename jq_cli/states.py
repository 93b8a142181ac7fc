"""Job states, priorities and the state machine that every conditional UPDATE follows.

    submit ──► queued ──► running ──► completed
      │           ▲          │
      │ (delay)   │          ├──► retrying (run_at = now + backoff) ──► queued …
      ▼           │          │
    scheduled ────┘          └──► dead (attempts exhausted; the dead-letter queue)
    any non-terminal state ──► cancelled (jq cancel)
    dead ──► queued (jq retry: a fresh set of attempts, history kept)

A running job that is handed back on shutdown, or whose lease expired, returns to queued
(or dead, when the lost attempt was its last).
"""
from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED})
ACTIVE_STATES = frozenset(set(JobState) - TERMINAL_STATES)


class Priority(str, Enum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def amqp(self) -> int:
        """The AMQP message priority; queues are declared with x-max-priority = 3."""
        return _AMQP_PRIORITY[self]

    @property
    def rank(self) -> int:
        return _AMQP_PRIORITY[self]


_AMQP_PRIORITY = {Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}
MAX_AMQP_PRIORITY = 3
PRIORITY_NAMES = {number: p.value for p, number in _AMQP_PRIORITY.items()}  # 3 -> "high"


class AttemptOutcome(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"  # the worker's lease expired: it died or was cut off mid-run
    INTERRUPTED = "interrupted"  # handed back at shutdown; does not count against retries
    CANCELLED = "cancelled"
