"""The rows the store returns, typed. TypedDicts rather than dataclasses: the driver hands out
dicts, the operations layer adds keys to them and front ends print them as JSON, so a row stays a
dict at run time and the type checker knows its keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, Protocol, TypedDict


class AttemptRow(TypedDict):
    """One attempt of a job (`attempts`)."""

    job_id: int
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None
    traceback: str | None


class JobSummary(TypedDict):
    """A job as listings show it (job_list): no payload, result or history."""

    id: int
    job_type: str
    queue: str
    priority: int
    state: str
    attempts: int
    max_retries: int
    progress: float | None
    last_error: str | None
    run_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None


class JobRow(JobSummary):
    """Every column of a job (`SELECT * FROM jobs`), and its attempts once job_get adds them."""

    payload: Any
    result: Any
    progress_message: str | None
    run_count: int
    retry_base_delay: float | None
    retry_max_delay: float | None
    retry_jitter: float | None
    idempotency_key: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    published_at: datetime | None
    updated_at: datetime
    schedule_name: str | None
    fire_time: datetime | None
    # (sql/020, sql/021): unique jobs, tracing, workflows.
    unique_key: str | None
    unique_until: datetime | None
    trace_context: Any
    pending_parents: int
    on_parent_failure: str
    has_dependants: bool
    settled_by_parent: bool
    workflow_id: int | None
    parent_results: Any
    attempt_history: NotRequired[list[AttemptRow]]


class JobRef(TypedDict):
    """What publishing a job needs: the rows a state change returns (retry, promote, rescue,
    republish, hand back). `state` is absent where every row returned is queued."""

    id: int
    queue: str
    priority: int
    state: NotRequired[str]


class FiredJob(TypedDict):
    """A job a cron tick created (schedule_fire_due)."""

    id: int
    state: str
    queue: str
    priority: int
    schedule_name: str
    fire_time: datetime


class QueuedCount(TypedDict):
    queue: str
    priority: int
    n: int


class JobCounts(TypedDict):
    """Counts by state, and the queued ones by queue and priority (job_counts)."""

    by_state: dict[str, int]
    queued: list[QueuedCount]


class ScheduleRow(TypedDict):
    """Every column of a schedule (`SELECT * FROM schedules`)."""

    name: str
    job_type: str
    cron: str
    timezone: str
    payload: Any
    priority: int
    max_retries: int | None
    queue: str
    misfire: str
    enabled: bool
    last_fire_at: datetime | None
    next_fire_at: datetime
    created_at: datetime
    updated_at: datetime


class TickPlan(Protocol):
    """What schedule_fire_due needs of a plan (jq_cli.model.cron.FirePlan is one)."""

    @property
    def fire_time(self) -> datetime | None: ...  # None: advance the timer, fire nothing
    @property
    def next_fire_at(self) -> datetime: ...


class DueSchedule(ScheduleRow):
    """A schedule locked as due by schedule_fire_due, with the database's clock and the plan its
    planner made (None leaves the row alone)."""

    db_now: datetime
    plan: NotRequired[TickPlan | None]


class ScheduleJob(TypedDict):
    """A recent job of a schedule (schedule_jobs_recent); run-now jobs have no fire time."""

    id: int
    state: str
    created_at: datetime
    fire_time: datetime | None
