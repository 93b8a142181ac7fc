"""Job states, priorities and the state machine that every conditional UPDATE follows.

    submit ──► queued ──► running ──► completed
      │           ▲          │
      │ (delay)   │          ├──► retrying (run_at = now + backoff) ──► queued …
      ▼           │          │
    scheduled ────┘          └──► dead (attempts exhausted; the dead-letter queue)
    any non-terminal state ──► cancelled (jq cancel)
    dead ──► queued (jq retry: a fresh set of attempts, history kept)
    waiting ──► queued once every parent completed (in the last parent's transaction, by the
                trigger of sql/021_workflows.sql); ──► cancelled when a parent ends dead or
                cancelled (its policy may say run instead), and back to waiting on that parent's retry

A running job that is handed back on shutdown, or whose lease expired, returns to queued
(or dead, when the lost attempt was its last). An attempt ends completed, failed, cancelled,
lost (its worker's lease expired) or interrupted (handed back at shutdown; its retry is given
back); the attempts table checks those names (sql/001_jobs.sql).
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    WAITING = (
        "waiting"  # on parents (depends_on, a workflow): released by the last one's completion
    )
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED})


class Priority(str, Enum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def amqp(self) -> int:
        """The AMQP message priority; queues are declared with x-max-priority = 3."""
        return _AMQP_PRIORITY[self]


_AMQP_PRIORITY = {Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}
MAX_AMQP_PRIORITY = 3
PRIORITY_NAMES = {number: p.value for p, number in _AMQP_PRIORITY.items()}  # 3 -> "high"
