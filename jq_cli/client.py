"""The operations every front end calls (CLI, `jq top`, the HTTP shim, the Python API).

Front ends never touch SQL, AMQP or Redis: they call a Client object, which validates input
before anything is written, commits to Postgres first, then publishes to RabbitMQ.
`jq_cli.Client` is this class. Its groups of operations live in jq_cli/ops/ as mixins: operator
actions (actions.py), health (health.py), schedules (schedules.py), queues, edits; the
connections they share in core.py, and the one preparation of a job, which AsyncClient shares
too, in prepare.py. This module holds submitting and reading jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jq_cli.config import split_names
from jq_cli.errors import InvalidInput, NotFound
from jq_cli.model.states import TERMINAL_STATES, JobState, Priority
from jq_cli.ops.actions import BULK_BATCH, PURGEABLE, ActionOperations, ActionReport
from jq_cli.ops.core import parse_state, present_job
from jq_cli.ops.edits import EditOperations
from jq_cli.ops.enqueue import EnqueueOperations
from jq_cli.ops.health import Check, HealthOperations
from jq_cli.ops.prepare import request_of
from jq_cli.ops.queues import QueueOperations
from jq_cli.ops.schedules import ScheduleOperations
from jq_cli.store import Inserted

if TYPE_CHECKING:
    from jq_cli.model.jobspec import JobRequest

__all__ = ["BULK_BATCH", "PURGEABLE", "ActionReport", "Check", "Client"]


def any_of(value: str | Sequence[str] | None) -> list[str]:
    """A filter's values: repeated (a list) and comma-separated both mean "any of" them."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [name for item in items for name in split_names(item)]


class Client(
    EnqueueOperations,
    ActionOperations,
    HealthOperations,
    ScheduleOperations,
    QueueOperations,
    EditOperations,
):
    """One connection to each service, opened on first use and kept for the object's life, so an
    application can submit thousands of jobs a second through one instance. Not thread-safe:
    give each thread its own."""

    # -- submit -------------------------------------------------------------------------------

    def submit(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: str | Priority | None = None,
        max_retries: int | None = None,
        queue: str | None = None,
        delay: float | str | None = None,
        run_at: datetime | str | None = None,
        idempotency_key: str | None = None,
        time_limit: float | str | None = None,
        unique_for: float | str | None = None,
        unique_on: Sequence[str] | None = None,
        depends_on: Sequence[int] | None = None,
        on_parent_failure: str = "cancel",
        connection: Any = None,
        **retry: float,
    ) -> int:
        """Submit one job; returns its id once the row is committed. Raises InvalidInput,
        ServiceUnavailable, SchemaNotMigrated.

        `connection` (a psycopg Connection, a SQLAlchemy Session or Connection, Django's
        connection): insert in the application's own transaction, which jq does not commit; the
        job exists if and only if that transaction commits, and is published right after the
        commit by the scheduler's doorbell. `unique_for="1h"`: a submit of the same type and
        payload (or the same values of the `unique_on` keys) within the hour returns the earlier
        job. `depends_on=[ids]`: the job waits until they completed; a parent ending dead or
        cancelled cancels it (`on_parent_failure="cancel"`) or lets it run ("run")."""
        options = {
            "priority": priority,
            "max_retries": max_retries,
            "queue": queue,
            "delay": delay,
            "run_at": run_at,
            "idempotency_key": idempotency_key,
            "time_limit": time_limit,
            "unique_for": unique_for,
            "unique_on": unique_on,
            "depends_on": depends_on,
            "on_parent_failure": on_parent_failure,
            **retry,
        }
        request = request_of(job_type, payload, options)
        return self.submit_request(request, connection=connection).id

    def submit_request(self, request: JobRequest, *, connection: Any = None) -> Inserted:
        """Submit a validated JobRequest; returns what was inserted (or found by its key)."""
        # Prepared once: the full path and the plain one take the same NewJob.
        new = self._prepare(request)
        if connection is not None or new.needs_enqueue_path:
            return self._submit_full([new], connection=connection)[0]
        inserted = self.store.job_insert(new)
        self._publish([inserted])
        return inserted

    def submit_many(
        self, jobs: Iterable[dict[str, Any] | JobRequest], *, connection: Any = None
    ) -> list[int]:
        """Submit many jobs in one transaction: all or none. Returns their ids in order. With
        `connection`, in the application's transaction (see submit)."""
        return [i.id for i in self.submit_many_detailed(jobs, connection=connection)]

    def submit_many_detailed(
        self,
        jobs: Iterable[dict[str, Any] | JobRequest],
        *,
        where: str = "job",
        numbers: Sequence[int] | None = None,
        connection: Any = None,
    ) -> list[Inserted]:
        """`numbers` label each job in error messages (e.g. its line in a file with blank lines
        skipped); by default jobs are numbered from 1."""

        jobs = list(jobs)
        labels = list(numbers) if numbers is not None else list(range(1, len(jobs) + 1))
        if len(labels) != len(jobs):
            raise ValueError("numbers must label every job")
        from jq_cli.ops.batch_prep import (
            BatchPreparer,  # and with it the job models: not for `jq show`
        )

        # Options validated once per distinct set of them, each payload on its own (batch_prep).
        preparer = BatchPreparer(self)
        prepared = [preparer.prepare(j, where, n) for n, j in zip(labels, jobs, strict=False)]
        if connection is not None or any(j.needs_enqueue_path for j in prepared):
            return self._submit_full(prepared, connection=connection)
        inserted = self.store.job_insert_many(prepared)
        self._publish(inserted)
        return inserted

    # -- read ---------------------------------------------------------------------------------

    def get(self, job_id: int) -> dict[str, Any]:
        """The job with every attempt, and the ids of its replays. Raises NotFound."""
        job = present_job(self.store.job_get(job_id))
        job["replays"] = self.store.job_replays_of(job_id)  # jq replay
        return job

    def list_jobs(
        self,
        *,
        state: str | Sequence[str] | None = None,
        job_type: str | Sequence[str] | None = None,
        priority: str | Sequence[str] | None = None,
        queue: str | Sequence[str] | None = None,
        since: float | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Jobs newest first; each filter takes one value, a list or comma-separated values, and
        means "any of" them. `before_id` continues a listing after the last id it showed (a stable
        page even while jobs are submitted, unlike an offset). Raises InvalidInput for a bad filter."""
        from jq_cli.model.jobspec import check_name, parse_priority

        states = [parse_state(s).value for s in any_of(state)]
        types = any_of(job_type)
        queues = any_of(queue)
        for name in types:
            check_name(name, "job type")
        for name in queues:
            check_name(name, "queue")
        if not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit must be between 1 and 10000, got {limit}")
        if before_id is not None and before_id < 1:
            raise InvalidInput(f"before must be a job id (1 or more), got {before_id}")
        prios = [parse_priority(p).amqp for p in any_of(priority)]
        rows = self.store.job_list(
            states=states,
            job_types=types,
            priorities=prios,
            queues=queues,
            since_seconds=since,
            limit=limit,
            before_id=before_id,
        )
        return [present_job(r) for r in rows]

    def wait(self, job_id: int, timeout: float | None = None, poll: float = 0.1) -> dict[str, Any]:
        """Block until the job is terminal (or `timeout` seconds pass); returns the job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            states = self.store.job_states([job_id])
            if job_id not in states:
                raise NotFound(f"job {job_id} not found")
            if JobState(states[job_id]) in TERMINAL_STATES:
                return self.get(job_id)
            if deadline is not None and time.monotonic() >= deadline:
                return self.get(job_id)
            time.sleep(poll)

    def dead_letters(
        self,
        *,
        job_type: str | Sequence[str] | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        return self.list_jobs(state="dead", job_type=job_type, limit=limit, before_id=before_id)
